"""Turning a container record into a mounted rootfs and an OCI spec.

This is what happens between ``docker create`` and the runtime, in the
supervisor:

* :func:`make_dirs` lays out the container directory, with an *init layer*
  holding empty files and directories for everything the runtime mounts over
  (``/etc/hosts``, ``/proc``, ``/dev``, volume targets).  It sits between the
  image and the writable layer, exactly as Docker's ``-init`` layer does, so
  the mount points the runtime needs never show up in ``diff`` or ``commit``.
* :func:`mount_rootfs` mounts image layers + init layer + writable layer with
  overlayfs at ``rootfs/``; :func:`unmount_rootfs` undoes it.  A container of
  the ``vfs`` driver has no mount: :func:`make_vfs_rootfs` copies its image
  (and the init layer) to ``rootfs/`` once, at create (see :mod:`sandbox.image.vfs`).
* :func:`build_spec` maps docker's ``Config``/``HostConfig`` onto
  :class:`~sandbox.runtime.spec.ContainerOptions` and lets
  :func:`~sandbox.runtime.spec.default_spec` add Docker's defaults.  User and
  group names are looked up in the container's own ``/etc/passwd`` and
  ``/etc/group`` at start, as Docker does, so ``-u nobody`` means the image's
  nobody.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shlex
import stat
from pathlib import Path
from typing import Any

from .. import kernel
from ..errors import KernelError, UsageError
from ..runtime import spec as spec_mod
from ..runtime.spec.mounts import gid_mapped_here
from ..runtime.paths import secure_join
from ..image.layers import mount_overlay  # userxattr in a user namespace; containers.merged uses it from here

#: Files the runtime bind-mounts or covers, created empty in the init layer.
INIT_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf")
INIT_DIRS = ("dev", "proc", "sys", "dev/pts", "dev/shm")

_RLIMITS = {name: getattr(resource, "RLIMIT_" + name.upper()) for name in
            ("nofile", "nproc", "core", "cpu", "data", "fsize", "memlock", "stack", "as",
             "locks", "sigpending", "msgqueue", "nice", "rtprio") if hasattr(resource, "RLIMIT_" + name.upper())}


class HostFacts:
    """What default_spec needs to know about this host, looked up once per process."""

    def __init__(self) -> None:
        self.bounding_set = kernel.host_bounding_set()
        # cgroups.detect, not hostinfo.cgroup_version: a hybrid host ("v1 (hybrid)",
        # this VM) is v1 for containers; a cgroup2 mount would show the host's
        # unified tree instead of the container's own groups.
        from ..cgroups import detect
        self.cgroup_version = "v1" if detect() == "v1" else "v2"
        self.hard_limits = {}
        for name, number in _RLIMITS.items():
            hard = resource.getrlimit(number)[1]
            self.hard_limits[name] = -1 if hard == resource.RLIM_INFINITY else hard
        self._devices: list[dict[str, Any]] | None = None

    @property
    def devices(self) -> list[dict[str, Any]]:
        if self._devices is None:
            self._devices = spec_mod.host_devices()
        return self._devices


def make_dirs(cdir: Path, mountpoints: list[str], file_mountpoints: list[str] = (),  # type: ignore[assignment]
              driver: str = "overlay") -> None:
    """The container directory: init layer, writable layer, mount point, fifos.

    Mount points live in the init layer, so they never show in ``diff`` or a
    commit; a bind mount of a file needs a file to mount on (``file_mountpoints``).
    A vfs container has no upper and work directories: its rootfs is its own copy.
    """
    subs = ("rootfs", "bundle") if driver == "vfs" else ("upper", "work", "rootfs", "bundle")
    for sub in subs:
        (cdir / sub).mkdir(parents=True, exist_ok=True)
    for name in ("stdout.fifo", "stderr.fifo"):
        with contextlib.suppress(FileExistsError):
            os.mkfifo(cdir / name, 0o600)
    init = cdir / "init"
    if driver != "vfs" and not mountpoints and not os.path.lexists(init):
        # Every overlay container without volumes has the same init layer, a read-only
        # lower one: one shared copy, linked, instead of ten entries to make and delete
        # for each container (a third of a warm run's directory work here).
        os.symlink(os.path.join("..", "..", shared_init_layer(cdir.parent.parent).name), init)
        return
    _make_init_layer(init)
    for target in mountpoints:
        rel = os.path.normpath(target).lstrip("/")
        if rel and rel not in INIT_FILES:
            if target in file_mountpoints:
                (init / rel).parent.mkdir(parents=True, exist_ok=True)
                (init / rel).touch()
            else:
                (init / rel).mkdir(parents=True, exist_ok=True)


#: In the store's root: the init layer overlay containers without volumes share.
SHARED_INIT = "init-layer"


def _make_init_layer(init: Path) -> None:
    """The stubs the runtime mounts over: /etc/hosts, hostname, resolv.conf, /dev, /proc, /sys."""
    init.mkdir(parents=True, exist_ok=True)
    for d in INIT_DIRS:
        (init / d).mkdir(parents=True, exist_ok=True)
    for f in INIT_FILES:
        (init / f).parent.mkdir(parents=True, exist_ok=True)
        (init / f).touch()
    with contextlib.suppress(FileExistsError):
        os.symlink("/proc/mounts", init / "etc" / "mtab")


def shared_init_layer(root: Path) -> Path:
    """``$SANDBOX_ROOT/init-layer``, made once (in a temporary directory, renamed in whole).

    Never written after that, and never removed: it is a few empty entries,
    and any container directory may link to it (``init`` -> ``../../init-layer``).
    A temporary one a killed supervisor left (``.init-layer-*``) goes at the
    next start (``supervisor.adopt``).
    """
    shared = root / SHARED_INIT
    if shared.is_dir():
        return shared
    tmp = root / f".{SHARED_INIT}-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        _make_init_layer(tmp)
        os.rename(tmp, shared)
    except OSError as e:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
        if not shared.is_dir():
            raise KernelError("make the shared init layer", str(shared), e.errno or errno.EIO) from None
    return shared


def write_etc_files(cdir: Path, hostname: str, domainname: str, network_mode: str,
                    extra_hosts: list[str], dns: list[str], dns_search: list[str],
                    dns_options: list[str] = ()) -> None:  # type: ignore[assignment]
    """hostname, hosts and resolv.conf for a new container, as Docker writes them.

    On a network the supervisor wires up, hosts and resolv.conf are written
    again at every start, once the container's addresses are known.
    """
    from ..network import etcfiles
    (cdir / "hostname").write_text(hostname + "\n")
    (cdir / "hosts").write_text(etcfiles.hosts_text(hostname, domainname, network_mode, extra_hosts))
    embedded = network_mode not in ("none", "host", "bridge", "default", "slirp4netns") \
        and not network_mode.startswith("container:")
    (cdir / "resolv.conf").write_text(etcfiles.resolv_text(network_mode, embedded, dns, dns_search,
                                                           list(dns_options)))


def lower_dirs(store: Any, cdir: Path, chain_ids: list[str]) -> list[str]:
    """overlay lowerdirs, top first: the init layer, then the image's layers."""
    from ..image.layers import LayerStore
    layers = LayerStore(store)
    out = [str(cdir / "init")]
    for chain in reversed(chain_ids):
        layer = layers.get(chain)
        layers._ensure_link(layer)
        out.append(str(store.links_dir / layer.link))
    return out


def make_vfs_rootfs(store: Any, cdir: Path, chain_ids: list[str]) -> Any:
    """A vfs container's ``rootfs/``: its image's base tree and init layer, copied (CopyStats).

    The base tree is made here if the client has not made it yet (slow: a
    create names an image whose tree is made by the client, see
    ``op_create_named``).
    """
    from ..image import vfs
    from ..image.layers import LayerStore
    base = LayerStore(store).base_tree(chain_ids) if chain_ids else None
    return vfs.make_rootfs(base, cdir / "init", cdir / "rootfs")


def mount_rootfs(store: Any, cdir: Path, chain_ids: list[str], driver: str = "overlay", *,
                 volatile: bool = False) -> None:
    """Mount the container's overlay on ``cdir/rootfs`` (no-op when mounted already).

    A vfs container's rootfs is a plain directory, made at create: nothing to mount.
    ``volatile`` (a ``--rm`` container, whose writable layer is thrown away at
    its exit, as Podman does for those): overlayfs skips every sync of the
    upper layer, which makes the unmount ~0.7 ms cheaper here (it no longer
    syncs the store's file system).  Such an upper layer must never be mounted
    again (the kernel refuses it), and none is: the container is removed when
    it exits.  A kernel without the option (before 5.10) mounts without it.
    """
    target = cdir / "rootfs"
    if driver == "vfs":
        from ..image.vfs import DIRS_FILE
        if not (cdir / DIRS_FILE).is_file():
            raise UsageError(f"the root file system of the vfs container in {cdir} was not made completely",
                             hint="remove the container and create it again")
        return
    if is_mounted(target):
        return
    lowers = lower_dirs(store, cdir, chain_ids)
    options = f"lowerdir={':'.join(lowers)},upperdir={cdir / 'upper'},workdir={cdir / 'work'}"
    if len(options) >= kernel.PAGE_SIZE - 64:
        raise UsageError(f"the image has too many layers ({len(chain_ids)}) for one overlay mount",
                         hint="squash the image (export and import it)")
    # The record's driver decides, not this process's environment (None: the
    # kernel, else what wrote the upper dir; see image.layers.mount_overlay).
    fuse = True if driver == "fuse-overlayfs" else None
    try:
        try:
            mount_overlay(target, options + ",volatile" if volatile else options, fuse=fuse)
        except KernelError as e:
            if not volatile or e.errno != errno.EINVAL:
                raise
            mount_overlay(target, options, fuse=fuse)
    except KernelError as e:
        raise KernelError("mount overlay on", str(target), e.errno or errno.EIO,
                          hint="is this running without root, or on a file system overlayfs "
                               "cannot use as upper layer?") from None


def is_mounted(path: Path) -> bool:
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except FileNotFoundError:
        return False


def unmount_rootfs(cdir: Path) -> None:
    target = cdir / "rootfs"
    while is_mounted(target):
        try:
            kernel.umount(target, kernel.MNT_DETACH)
        except KernelError as e:
            if e.errno in (errno.EINVAL, errno.ENOENT):
                return
            raise


# --------------------------------------------------------------------------- users

def _read_db(rootfs: Path, name: str) -> list[list[str]]:
    try:
        path = secure_join(str(rootfs), name)
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(rootfs: Path, user: str, group_add: list[str] | None = None) -> tuple[int, int, list[int]]:
    """docker's ``-u name|uid[:group|gid]`` against the container's passwd and group files."""
    user = (user or "").strip()
    name, _, group = user.partition(":")
    passwd = _read_db(rootfs, "/etc/passwd")
    groups = _read_db(rootfs, "/etc/group")
    uid, gid = 0, 0
    login = "root"
    if name:
        if name.isdigit():
            uid = int(name)
            entry = next((p for p in passwd if len(p) > 3 and p[2] == name), None)
        else:
            entry = next((p for p in passwd if p[0] == name and len(p) > 3), None)
            if entry is None:
                raise UsageError(f"unable to find user {name}: no matching entries in passwd file",
                                 hint="use a numeric uid, or a user the image defines in /etc/passwd")
            uid = int(entry[2])
        if entry is not None:
            gid, login = int(entry[3]), entry[0]
        else:
            login = ""
    if group:
        gid = _group_id(groups, group)
    extra = sorted({int(g[2]) for g in groups if len(g) > 3 and login and login in g[3].split(",")}
                   - {gid}) if login else []
    for g in group_add or []:
        extra.append(_group_id(groups, g))
    return uid, gid, extra


def home_dir(rootfs: Path, uid: int) -> str:
    """The home of ``uid`` in the container's /etc/passwd, else ``/``: what runc's init sets as
    HOME when the environment has none (so ``docker run busybox env`` shows HOME=/root)."""
    entry = next((p for p in _read_db(rootfs, "/etc/passwd") if len(p) > 5 and p[2] == str(uid)), None)
    return entry[5] or "/" if entry is not None else "/"


def with_home(env: list[str], rootfs: Path, uid: int) -> list[str]:
    """``env`` with HOME appended from the passwd file when it has none."""
    if any(e.startswith("HOME=") for e in env):
        return env
    return [*env, f"HOME={home_dir(rootfs, uid)}"]


def _group_id(groups: list[list[str]], group: str) -> int:
    if group.isdigit():
        return int(group)
    entry = next((g for g in groups if g[0] == group and len(g) > 2), None)
    if entry is None:
        raise UsageError(f"unable to find group {group}: no matching entries in group file",
                         hint="use a numeric gid, or a group the image defines in /etc/group")
    return int(entry[2])


# --------------------------------------------------------------------------- the spec

def process_args(config: dict[str, Any]) -> list[str]:
    """Entrypoint + Cmd, the way docker joins them."""
    return list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])


def build_spec(record: dict[str, Any], cdir: Path, facts: HostFacts,
               volume_mounts: list[dict[str, Any]],
               netns_path: str | None = None,
               namespace_paths: dict[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The OCI spec for ``record``, whose rootfs is mounted at ``cdir/rootfs``.

    ``netns_path``: the network namespace the supervisor made and wired up
    for it (bridge and user networks), or another container's.
    ``namespace_paths``: other namespaces to join, {"pid": "/proc/PID/ns/pid"}
    (``--pid``/``--ipc container:NAME``, see :func:`joined_namespaces`).
    """
    config, host = record["Config"], record["HostConfig"]
    rootfs = cdir / "rootfs"
    uid, gid, extra = resolve_user(rootfs, config.get("User") or "", host.get("GroupAdd") or [])
    # Rootless with one uid mapped: the image's other groups (wheel, ...) do not exist here, and
    # setgroups(2) is denied anyway; a group not mapped in this user namespace is left out.
    extra = [g for g in extra if gid_mapped_here(g)]
    seccomp, nnp = _security_options(host.get("SecurityOpt") or [])
    devices = [f"{d['PathOnHost']}:{d.get('PathInContainer') or d['PathOnHost']}:"
               f"{d.get('CgroupPermissions') or 'rwm'}" for d in host.get("Devices") or []]
    ulimits = [(u["Name"], int(u["Soft"]), int(u["Hard"])) for u in host.get("Ulimits") or []]
    opts = spec_mod.ContainerOptions(
        args=process_args(config),
        env=with_home(list(config.get("Env") or []), rootfs, uid),
        cwd=config.get("WorkingDir") or "/",
        user=f"{uid}:{gid}",
        additional_gids=extra,
        hostname=config.get("Hostname") or record["Id"][:12],
        domainname=config.get("Domainname") or "",
        terminal=bool(config.get("Tty")),
        readonly_rootfs=bool(host.get("ReadonlyRootfs")),
        cap_add=list(host.get("CapAdd") or []),
        cap_drop=list(host.get("CapDrop") or []),
        privileged=bool(host.get("Privileged")),
        no_new_privileges=nnp,
        seccomp=seccomp,
        host_namespaces=_host_namespaces(host),
        mounts=_etc_mounts(cdir) + volume_mounts,
        tmpfs=dict(host.get("Tmpfs") or {}),
        shm_size=host.get("ShmSize") or spec_mod.DEFAULT_SHM_SIZE,
        devices=devices,
        ulimits=ulimits,
        sysctls=dict(host.get("Sysctls") or {}),
        init=bool(host.get("Init")),
        stop_signal=config.get("StopSignal"),
        cgroups_path=f"/sandbox/{record['Id']}",
        resources=_resource_limits(host),
        oom_score_adj=int(host.get("OomScoreAdj") or 0),
        netns_path=netns_path,
        namespace_paths=dict(namespace_paths or {}),
    )
    warnings: list[str] = []
    spec = spec_mod.default_spec(str(rootfs), opts, host_bounding_set=facts.bounding_set,
                                 cgroup_version=facts.cgroup_version, hard_limits=facts.hard_limits,
                                 host_device_list=facts.devices if host.get("Privileged") else [],
                                 warnings=warnings)
    return spec, warnings


def _host_namespaces(host: dict[str, Any]) -> list[str]:
    """The namespaces shared with the host: ``--pid/--ipc/--uts host``, ``--network host``."""
    shared = [kind for kind, mode in (("pid", host.get("PidMode")), ("ipc", host.get("IpcMode")),
                                      ("uts", host.get("UTSMode"))) if mode == "host"]
    if (host.get("NetworkMode") or "none") == "host":
        shared.append("network")
    return shared


def _security_options(security_opt: list[str]) -> tuple[Any, bool]:
    """(seccomp: "default", "unconfined" or a profile, no_new_privileges) from ``--security-opt``."""
    seccomp: Any = "default"
    nnp = False
    for opt in security_opt:
        key, sep, value = opt.partition("=") if "=" in opt else opt.partition(":")
        if key == "seccomp":
            if value == "unconfined":
                seccomp = "unconfined"
            else:
                import json
                seccomp = json.loads(value)
        elif key == "no-new-privileges":
            nnp = value.lower() in ("", "true", "1")
    return seccomp, nnp


def _resource_limits(host: dict[str, Any]) -> spec_mod.ResourceLimits:
    """docker's HostConfig limits as the spec's (``--cpus`` is a quota over a 100 ms period)."""
    return spec_mod.ResourceLimits(
        memory=host.get("Memory") or None,
        memory_swap=host.get("MemorySwap") or None,
        cpu_shares=host.get("CpuShares") or None,
        cpu_quota=(host.get("CpuQuota") or None) if not host.get("NanoCpus")
        else host["NanoCpus"] * 100000 // 10**9,
        cpu_period=(host.get("CpuPeriod") or None) if not host.get("NanoCpus") else 100000,
        cpuset_cpus=host.get("CpusetCpus") or None,
        cpuset_mems=host.get("CpusetMems") or None,
        memory_reservation=host.get("MemoryReservation") or None,
        memory_swappiness=host.get("MemorySwappiness"),
        oom_kill_disable=bool(host.get("OomKillDisable")),
        pids_limit=host.get("PidsLimit") if host.get("PidsLimit") not in (None, 0) else None)


def _etc_mounts(cdir: Path) -> list[dict[str, Any]]:
    """/etc/hostname, /etc/hosts and /etc/resolv.conf, bound from the container's directory."""
    return [{"destination": f"/etc/{name}", "type": "bind", "source": str(cdir / name),
             "options": ["rbind", "rprivate"]} for name in ("hostname", "hosts", "resolv.conf")]


def joined_namespaces(host_config: dict[str, Any], running_pid: Any) -> dict[str, str]:
    """``--pid container:NAME`` and ``--ipc container:NAME``: the other container's namespace files.

    ``running_pid(ref)`` is the pid of the running container ``ref`` (it raises when
    there is none): its namespaces are joined by path, as runc joins any namespace.
    """
    joins = {}
    for kind, mode in (("pid", host_config.get("PidMode")), ("ipc", host_config.get("IpcMode"))):
        if mode and mode.startswith("container:"):
            joins[kind] = f"/proc/{running_pid(mode.partition(':')[2])}/ns/{kind}"
    return joins


def ensure_workdir(rootfs: Path, workdir: str, uid: int = 0, gid: int = 0) -> None:
    """Docker creates a missing WORKDIR at start (in the writable layer)."""
    if not workdir or workdir == "/":
        return
    path = secure_join(str(rootfs), workdir)
    if not os.path.isdir(path):
        os.makedirs(path, 0o755, exist_ok=True)


def command_line(config: dict[str, Any]) -> str:
    """The COMMAND column of ``ps``: entrypoint and cmd joined, quoted like docker."""
    args = process_args(config)
    return " ".join(shlex.quote(a) if (" " in a or not a) else a for a in args)


def is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False
