"""Docker's defaults as a reusable OCI runtime-spec (``config.json``) generator.

:func:`default_spec` turns a rootfs path and :class:`ContainerOptions` (what
``docker run`` flags mean) into a complete ``config.json`` dict, runtime-spec
v1.1.0, with the security defaults Docker gives every container
(DESIGN.md "Security defaults match Docker's"):

* 14 capabilities (:data:`DEFAULT_CAPABILITIES`), none inheritable; a non-root
  user keeps them only in the bounding set (Docker 23+), so its programs start
  without privileges.
* Masked ``/proc`` and ``/sys`` files that leak host details and read-only
  ``/proc`` directories that would change the host (:data:`MASKED_PATHS`,
  :data:`READONLY_PATHS`).
* A small ``/dev`` on tmpfs with six devices and a device cgroup that denies
  everything else (:data:`DEFAULT_DEVICES`, :data:`DEFAULT_DEVICE_RULES`).
* Docker's seccomp allowlist (:mod:`sandbox.runtime.seccomp_profile`).
* New pid, network, ipc, uts, mount and cgroup namespaces.  Docker gives a
  private cgroup namespace on v2 hosts only; here it is private on v1 too, so
  a container sees its own group as ``/`` in /proc/self/cgroup everywhere and
  a lab reads the same on every host (``cgroupns="host"`` restores Docker's v1
  behaviour).

What the host cannot grant is clamped, never half-applied: capabilities outside
the host's bounding set and rlimits above its hard limit are cut, and a
sentence goes into the ``warnings`` list the caller passes in (``docker run``
prints such warnings before the container starts).

This module is pure: it reads no host state itself, except the helpers that say
so (:func:`host_devices`, :func:`device_from_path`).  The host's bounding set,
cgroup version, architecture and rlimit hard limits are parameters.

References: github.com/opencontainers/runtime-spec (config.md,
config-linux.md), moby ``oci/defaults.go``, ``oci/caps``, ``daemon/oci_linux.go``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..kernel import CAPS
from . import seccomp_profile

OCI_VERSION = "1.1.0"

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Where ``--init`` puts the init binary inside the container (Docker's path).
INIT_PATH_IN_CONTAINER = "/sbin/docker-init"
#: The host's init binary (Debian package ``tini``; static, so any image can run it).
DEFAULT_INIT_BINARY = "/usr/bin/tini-static"

#: Docker's default ``--shm-size``.
DEFAULT_SHM_SIZE = 64 * 1024 * 1024

#: Docker's 14 (moby ``oci/caps/defaults.go``), in Docker's order.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

#: Every capability the kernel knows, index == number (<linux/capability.h>).
#: Every capability this engine knows, in kernel bit order (kept in one place: sandbox.kernel.caps).
ALL_CAPABILITIES: tuple[str, ...] = tuple(sorted(CAPS, key=CAPS.__getitem__))

#: Hidden from the container (a /dev/null bind for files, an empty read-only
#: tmpfs for directories): they leak host details or poke hardware.
#: /proc/kcore is the host's memory; /proc/keys the host's keyrings;
#: /proc/timer_list and sched_debug reveal host tasks; /sys/firmware holds
#: ACPI tables and EFI variables; powercap gives RAPL energy counters, a side
#: channel (CVE-2020-8694).  A runtime skips paths that do not exist.
MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)

#: Visible but read-only: writing there would change the host kernel
#: (/proc/sys sysctls, /proc/sysrq-trigger can reboot the machine).
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)


def _device(path: str, major: int, minor: int, kind: str = "c") -> dict[str, Any]:
    return {"path": path, "type": kind, "major": major, "minor": minor,
            "fileMode": 0o666, "uid": 0, "gid": 0}


#: The devices every container gets (OCI config-linux.md "Default Devices").
#: /dev/console and /dev/ptmx are made by the runtime (console when a terminal
#: is asked for, ptmx as a symlink to pts/ptmx).
DEFAULT_DEVICES: tuple[dict[str, Any], ...] = (
    _device("/dev/null", 1, 3), _device("/dev/zero", 1, 5), _device("/dev/full", 1, 7),
    _device("/dev/random", 1, 8), _device("/dev/urandom", 1, 9), _device("/dev/tty", 5, 0),
)


def _rule(allow: bool, kind: str | None = None, major: int | None = None,
          minor: int | None = None, access: str = "rwm") -> dict[str, Any]:
    rule: dict[str, Any] = {"allow": allow}
    if kind is not None:
        rule["type"] = kind
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    rule["access"] = access
    return rule


#: The device cgroup: deny everything, then allow mknod of any node (opening
#: it is still refused), the default devices and the terminal devices
#: (/dev/console 5:1, /dev/ptmx 5:2, /dev/pts/* 136:*), as Docker and runc do.
#: A missing major/minor means "*".  No deny may follow a wildcard allow: cgroup
#: v1 cannot punch a hole into an allowed range (runc refuses such a list).
DEFAULT_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    _rule(False),
    _rule(True, "c", access="m"),
    _rule(True, "b", access="m"),
    *(_rule(True, d["type"], d["major"], d["minor"]) for d in DEFAULT_DEVICES),
    _rule(True, "c", 5, 1),
    _rule(True, "c", 5, 2),
    _rule(True, "c", 136),
)

RLIM_INFINITY = 2**64 - 1

RLIMIT_NAMES = frozenset({
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
    "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
})

#: Namespaces a container gets, in the order a runtime should list them.
NAMESPACES = ("pid", "network", "ipc", "uts", "mount", "cgroup")

#: sysctls that are namespaced, and which namespace must be private for them
#: (moby ``opts.ValidateSysctl``); all others would change the host.
_SYSCTL_IPC = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
               "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
_SYSCTL_UTS = ("kernel.domainname", "kernel.hostname")


@dataclass
class ResourceLimits:
    """cgroup limits, in docker's units (bytes, shares, microseconds).

    ``memory_swap`` is memory + swap like ``--memory-swap``: None means twice
    ``memory`` (Docker's default), -1 unlimited.
    """

    memory: int | None = None
    memory_swap: int | None = None
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpuset_cpus: str | None = None
    pids_limit: int | None = None


@dataclass
class ContainerOptions:
    """Every ``docker run`` knob that ends up in ``config.json``.

    Names are resolved by the caller: ``user`` is ``"uid[:gid]"`` in numbers
    (the engine looks names up in the image's /etc/passwd), ``hostname`` is
    the short id when the user gave none.  Lists of strings use docker's
    syntax (``cap_add=["NET_ADMIN"]``, ``devices=["/dev/fuse:/dev/fuse:rwm"]``).
    """

    args: list[str] = field(default_factory=list)
    env: list[str] | Mapping[str, str] = field(default_factory=list)
    cwd: str = "/"
    user: str = "0:0"
    additional_gids: list[int] = field(default_factory=list)
    hostname: str = ""
    domainname: str = ""
    terminal: bool = False
    readonly_rootfs: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    no_new_privileges: bool = False
    #: "default", "unconfined", or a profile in Docker's JSON format.
    seccomp: str | dict[str, Any] = "default"
    #: Namespaces shared with the host: any of "pid", "ipc", "uts", "network".
    host_namespaces: Collection[str] = ()
    #: Join this network namespace (``/proc/PID/ns/net``, a bind-mounted netns).
    netns_path: str | None = None
    #: Join other namespaces by path, e.g. {"ipc": "/proc/123/ns/ipc"} (``--ipc container:ID``).
    namespace_paths: Mapping[str, str] = field(default_factory=dict)
    #: "private" or "host"; None: private (Docker: private on v2, host on v1).
    cgroupns: str | None = None
    #: Extra mounts: dicts with destination, type, source, options.
    mounts: list[dict[str, Any]] = field(default_factory=list)
    #: ``--tmpfs``: destination -> "opt,opt" (may be "").
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    shm_size: int = DEFAULT_SHM_SIZE
    #: ``--device host[:container[:perms]]``.
    devices: list[str] = field(default_factory=list)
    #: ``--ulimit``: (name, soft, hard); -1 means unlimited.
    ulimits: list[tuple[str, int, int]] = field(default_factory=list)
    sysctls: Mapping[str, str] = field(default_factory=dict)
    init: bool = False
    init_path: str = DEFAULT_INIT_BINARY
    stop_signal: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    cgroups_path: str | None = None
    resources: ResourceLimits = field(default_factory=ResourceLimits)
    oom_score_adj: int = 0
    #: Add a user namespace with these maps: (container_id, host_id, size).
    rootless: bool = False
    uid_mappings: list[tuple[int, int, int]] = field(default_factory=list)
    gid_mappings: list[tuple[int, int, int]] = field(default_factory=list)


# ---------------------------------------------------------------------------
# The spec

def default_spec(rootfs: str, opts: ContainerOptions, *,
                 host_bounding_set: Collection[str] | None = None,
                 cgroup_version: str = "v2",
                 arch: str | None = None,
                 kernel: str | None = None,
                 host_device_list: Sequence[Mapping[str, Any]] | None = None,
                 default_ulimits: Sequence[tuple[str, int, int]] = (),
                 hard_limits: Mapping[str, int] | None = None,
                 warnings: list[str] | None = None) -> dict[str, Any]:
    """A complete ``config.json`` (OCI runtime-spec 1.1.0) for ``opts``.

    ``host_bounding_set`` clamps capabilities (None: no clamping);
    ``cgroup_version`` is "v1" or "v2"; ``arch``/``kernel`` pick the seccomp
    architectures and rules (the host's when None); ``host_device_list`` is
    what ``--privileged`` exposes (scanned with :func:`host_devices` when
    None); ``default_ulimits`` are the daemon's ``default-ulimits``, overridden
    per name by ``opts.ulimits``; ``hard_limits`` (name -> hard limit) clamps
    them.  Clamping messages are appended to ``warnings``.  Bad input raises
    :class:`~sandbox.errors.UsageError` before anything is built.
    """
    warnings = warnings if warnings is not None else []
    if cgroup_version not in ("v1", "v2"):
        raise UsageError(f"cgroup version must be 'v1' or 'v2', not {cgroup_version!r}")
    _check_namespaces(opts)
    caps = capability_set(opts.cap_add, opts.cap_drop, opts.privileged, host_bounding_set,
                          warnings=warnings)
    ulimits = _merge_ulimits(default_ulimits, opts.ulimits)
    limits, rlimit_warnings = rlimits(ulimits, hard_limits)
    warnings.extend(rlimit_warnings)
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": _process(opts, caps, limits),
        "root": {"path": rootfs, "readonly": bool(opts.readonly_rootfs)},
        "mounts": _mounts(opts, cgroup_version),
        "linux": _linux(opts, caps, cgroup_version, arch, kernel, host_device_list),
    }
    if opts.hostname and "uts" not in opts.host_namespaces:
        spec["hostname"] = opts.hostname  # runc refuses a hostname in the host's UTS namespace
    if opts.domainname and "uts" not in opts.host_namespaces:
        spec["domainname"] = opts.domainname
    annotations = dict(opts.annotations)
    if opts.stop_signal:
        annotations.setdefault("org.opencontainers.image.stopSignal", opts.stop_signal)
    if annotations:
        spec["annotations"] = annotations
    return spec


def _check_namespaces(opts: ContainerOptions) -> None:
    known = {"pid", "ipc", "uts", "network"}
    unknown = set(opts.host_namespaces) - known
    if unknown:
        raise UsageError(f"cannot share namespace(s) {', '.join(sorted(unknown))} with the host",
                         hint="host namespaces can be: " + ", ".join(sorted(known)))
    joins = dict(opts.namespace_paths)
    if opts.netns_path:
        joins["network"] = opts.netns_path
    for kind in joins:
        if kind not in NAMESPACES and kind != "user":
            raise UsageError(f"cannot join a {kind!r} namespace",
                             hint="known: " + ", ".join(NAMESPACES + ("user",)))
        if kind in opts.host_namespaces:
            raise UsageError(f"the {kind} namespace cannot be both the host's and {joins[kind]}")
    if opts.cgroupns not in (None, "private", "host"):
        raise UsageError(f"invalid cgroupns mode {opts.cgroupns!r}",
                         hint="use 'private' or 'host'")


def parse_user(user: str) -> tuple[int, int]:
    """``"uid[:gid]"`` in numbers -> (uid, gid); gid 0 when left out, like Docker without passwd."""
    text = (user or "0").strip()
    uid_text, _, gid_text = text.partition(":")
    try:
        uid = int(uid_text)
        gid = int(gid_text) if gid_text else 0
    except ValueError:
        raise UsageError(f"user {user!r} is not numeric 'uid[:gid]'",
                         hint="resolve user and group names from the image's /etc/passwd "
                              "and /etc/group first") from None
    if uid < 0 or gid < 0:
        raise UsageError(f"user {user!r}: ids cannot be negative")
    return uid, gid


def _process(opts: ContainerOptions, caps: list[str],
             limits: list[dict[str, Any]]) -> dict[str, Any]:
    if not opts.args:
        raise UsageError("no command specified",
                         hint="give a command after the image name, or an image with CMD/ENTRYPOINT")
    if not opts.cwd.startswith("/"):
        raise UsageError(f"the working directory {opts.cwd!r} is not an absolute path")
    uid, gid = parse_user(opts.user)
    user: dict[str, Any] = {"uid": uid, "gid": gid}
    if opts.additional_gids:
        user["additionalGids"] = sorted(set(opts.additional_gids))
    args = list(opts.args)
    if opts.init:
        args = [INIT_PATH_IN_CONTAINER, "--", *args]
    # Docker 23+: a non-root user gets no effective/permitted capabilities, so
    # it behaves as it would on a normal host; root keeps all of them.
    running = caps if uid == 0 else []
    process: dict[str, Any] = {
        "terminal": bool(opts.terminal),
        "user": user,
        "args": args,
        "env": container_env(opts.env, opts.hostname, opts.terminal),
        "cwd": opts.cwd or "/",
        "capabilities": {"bounding": list(caps), "effective": list(running),
                         "permitted": list(running), "inheritable": [], "ambient": []},
        "noNewPrivileges": bool(opts.no_new_privileges),
        "oomScoreAdj": opts.oom_score_adj,
    }
    if limits:
        process["rlimits"] = limits
    return process


def container_env(env: Iterable[str] | Mapping[str, str], hostname: str,
                  terminal: bool) -> list[str]:
    """Docker's environment: PATH, HOSTNAME, TERM=xterm with a terminal, then ``env``.

    A variable in ``env`` replaces the default of the same name in place.
    """
    items = [f"{k}={v}" for k, v in env.items()] if isinstance(env, Mapping) else list(env)
    out = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"]
    if terminal:
        out.append("TERM=xterm")
    positions = {entry.partition("=")[0]: i for i, entry in enumerate(out)}
    for entry in items:
        name = entry.partition("=")[0]
        if not name:
            raise UsageError(f"invalid environment variable {entry!r}")
        if name in positions:
            out[positions[name]] = entry
        else:
            positions[name] = len(out)
            out.append(entry)
    return out


# ---------------------------------------------------------------------------
# Capabilities

def normalize_capability(name: str) -> str:
    """``net_admin``, ``NET_ADMIN`` or ``CAP_NET_ADMIN`` -> ``CAP_NET_ADMIN``; ``all`` -> ``ALL``."""
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    full = upper if upper.startswith("CAP_") else "CAP_" + upper
    if full not in ALL_CAPABILITIES:
        valid = ", ".join(c[4:] for c in ALL_CAPABILITIES)
        raise UsageError(f"unknown capability: {name!r}", hint=f"valid capabilities: ALL, {valid}")
    return full


def capability_set(cap_add: Iterable[str], cap_drop: Iterable[str], privileged: bool,
                   host_bounding_set: Collection[str] | None, *,
                   warnings: list[str] | None = None) -> list[str]:
    """The container's capabilities, sorted, as Docker's ``TweakCapabilities`` computes them.

    ``--privileged`` and ``--cap-add ALL`` mean every capability the host has
    (minus ``cap_drop``); ``--cap-drop ALL`` keeps only ``cap_add``; otherwise
    the 14 defaults minus ``cap_drop`` plus ``cap_add``.  The result is cut to
    ``host_bounding_set`` (no process can hand out a capability it cannot hold);
    a capability cut that the user asked for or that Docker gives by default
    adds a sentence to ``warnings``.
    """
    adds = [normalize_capability(c) for c in cap_add]
    drops = [normalize_capability(c) for c in cap_drop]
    available = [c for c in ALL_CAPABILITIES
                 if host_bounding_set is None or c in _cap_names(host_bounding_set)]
    if privileged:
        return sorted(available)
    if "ALL" in adds:
        return sorted(c for c in available if c not in drops)
    wanted = [c for c in adds if c != "ALL"] if "ALL" in drops else \
        [c for c in DEFAULT_CAPABILITIES if c not in drops] + adds
    kept = sorted({c for c in wanted if c in available})
    missing = sorted(set(wanted) - set(kept))
    if missing and warnings is not None:
        warnings.append(
            f"capabilities {', '.join(missing)} are not in this host's bounding set and were "
            f"left out (the engine itself runs without them)")
    return kept


def _cap_names(caps: Collection[str]) -> set[str]:
    return {c.upper() if c.upper().startswith("CAP_") else "CAP_" + c.upper() for c in caps}


# ---------------------------------------------------------------------------
# rlimits

def rlimits(ulimits: Iterable[tuple[str, int, int]],
            hard_limits: Mapping[str, int] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """OCI ``process.rlimits`` from docker's ``--ulimit`` triples, plus warnings.

    Names are docker's (``nofile``) or the kernel's (``RLIMIT_NOFILE``); -1 is
    unlimited.  A soft limit above its hard limit is refused as Docker does.
    ``hard_limits`` (name -> the host's hard limit, -1 unlimited) clamps both
    values: without CAP_SYS_RESOURCE no process can raise a hard limit, so the
    container could not start with it.
    """
    host = {_rlimit_name(k): _rlimit_value(v) for k, v in (hard_limits or {}).items()}
    out: list[dict[str, Any]] = []
    warnings: list[str] = []
    for name, soft, hard in ulimits:
        short = _rlimit_name(name)
        soft_v, hard_v = _rlimit_value(soft), _rlimit_value(hard)
        if soft_v > hard_v:
            raise UsageError(f"ulimit {short}: soft limit {soft} is above the hard limit {hard}",
                             hint=f"use --ulimit {short}={hard}:{hard} or raise the hard limit")
        ceiling = host.get(short)
        if ceiling is not None and hard_v > ceiling:
            warnings.append(f"ulimit {short}={soft}:{hard} is above this host's hard limit "
                            f"{_rlimit_text(ceiling)}; clamped to {_rlimit_text(min(soft_v, ceiling))}"
                            f":{_rlimit_text(ceiling)}")
            soft_v, hard_v = min(soft_v, ceiling), ceiling
        out.append({"type": "RLIMIT_" + short.upper(), "hard": hard_v, "soft": soft_v})
    return out, warnings


def _merge_ulimits(defaults: Iterable[tuple[str, int, int]],
                   given: Iterable[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    merged = {_rlimit_name(u[0]): u for u in defaults}
    merged.update({_rlimit_name(u[0]): u for u in given})
    return list(merged.values())


def _rlimit_name(name: str) -> str:
    short = name.strip().lower()
    short = short[len("rlimit_"):] if short.startswith("rlimit_") else short
    if short not in RLIMIT_NAMES:
        raise UsageError(f"unknown ulimit {name!r}", hint="known: " + ", ".join(sorted(RLIMIT_NAMES)))
    return short


def _rlimit_value(value: int | None) -> int:
    if value is None or value < 0 or value >= RLIM_INFINITY:
        return RLIM_INFINITY
    return int(value)


def _rlimit_text(value: int) -> str:
    return "unlimited" if value == RLIM_INFINITY else str(value)


# ---------------------------------------------------------------------------
# Mounts

def _mount(dest: str, kind: str, source: str, options: Sequence[str]) -> dict[str, Any]:
    return {"destination": dest, "type": kind, "source": source, "options": list(options)}


def _mounts(opts: ContainerOptions, cgroup_version: str) -> list[dict[str, Any]]:
    """Docker's default mounts, with the user's mounts replacing any at the same place."""
    host = set(opts.host_namespaces)
    sys_rw = "rw" if opts.privileged else "ro"
    pts = ["rw", "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    if not opts.rootless or _maps_id(opts.gid_mappings, 5):
        pts.append("gid=5")  # tty group; an unmapped gid would make the mount fail
    shm_k = max(opts.shm_size // 1024, 1)
    defaults = [
        _mount("/proc", "proc", "proc", ["rw", "nosuid", "noexec", "nodev"]),
        _mount("/dev", "tmpfs", "tmpfs", ["rw", "nosuid", "strictatime", "mode=755", "size=65536k"]),
        _mount("/dev/pts", "devpts", "devpts", pts),
        _sys_mount(opts, sys_rw),
        _cgroup_mount(cgroup_version, sys_rw),
        (_mount("/dev/mqueue", "bind", "/dev/mqueue", ["rbind", "nosuid", "noexec", "nodev"])
         if "ipc" in host else
         _mount("/dev/mqueue", "mqueue", "mqueue", ["rw", "nosuid", "noexec", "nodev"])),
        (_mount("/dev/shm", "bind", "/dev/shm", ["rbind", "nosuid", "noexec", "nodev"])
         if "ipc" in host else
         _mount("/dev/shm", "tmpfs", "shm",
                ["rw", "nosuid", "noexec", "nodev", "mode=1777", f"size={shm_k}k"])),
    ]
    user = [_user_mount(m) for m in opts.mounts]
    user += [_tmpfs_mount(dest, options) for dest, options in opts.tmpfs.items()]
    if opts.init:
        user.append(_mount(INIT_PATH_IN_CONTAINER, "bind", opts.init_path, ["rbind", "ro"]))
    taken = {m["destination"] for m in user}
    seen: set[str] = set()
    for m in user:
        if m["destination"] in seen:
            raise UsageError(f"duplicate mount point: {m['destination']}")
        seen.add(m["destination"])
    # As Docker: a user mount replaces the default at the same place, and a
    # user /dev replaces every default below /dev.
    kept = [m for m in defaults if m["destination"] not in taken
            and not ("/dev" in taken and m["destination"].startswith("/dev/"))]
    # Parents before children, or a later mount would hide an earlier one.
    user.sort(key=lambda m: len([p for p in m["destination"].split("/") if p]))
    return kept + user


def _sys_mount(opts: ContainerOptions, sys_rw: str) -> dict[str, Any]:
    if opts.rootless and "network" in opts.host_namespaces:
        # sysfs can only be mounted by the owner of the network namespace;
        # runc's rootless conversion binds the host's /sys instead.
        return _mount("/sys", "none", "/sys", ["rbind", "nosuid", "noexec", "nodev", "ro"])
    return _mount("/sys", "sysfs", "sysfs", [sys_rw, "nosuid", "noexec", "nodev"])


def _cgroup_mount(cgroup_version: str, sys_rw: str) -> dict[str, Any]:
    kind = "cgroup2" if cgroup_version == "v2" else "cgroup"
    return _mount("/sys/fs/cgroup", kind, kind, [sys_rw, "nosuid", "noexec", "nodev"])


def _user_mount(m: Mapping[str, Any]) -> dict[str, Any]:
    dest = m.get("destination")
    if not dest or not str(dest).startswith("/"):
        raise UsageError(f"mount destination {dest!r} is not an absolute path")
    out = {"destination": os.path.normpath(str(dest)), "type": m.get("type", "bind"),
           "source": m.get("source", ""), "options": list(m.get("options", []))}
    if out["type"] == "bind" and not any(o in ("bind", "rbind") for o in out["options"]):
        out["options"].insert(0, "rbind")
    return out


def _tmpfs_mount(dest: str, options: str) -> dict[str, Any]:
    if not dest.startswith("/"):
        raise UsageError(f"tmpfs destination {dest!r} is not an absolute path")
    given = [o for o in (options or "").split(",") if o]
    # Docker's --tmpfs defaults; an option the user gave wins over its opposite.
    opposite = {"noexec": "exec", "nosuid": "suid", "nodev": "dev", "rw": "ro"}
    merged = [o for o, other in opposite.items() if o not in given and other not in given]
    return _mount(os.path.normpath(dest), "tmpfs", "tmpfs", merged + given)


def _maps_id(mappings: Iterable[tuple[int, int, int]], container_id: int) -> bool:
    return any(start <= container_id < start + size for start, _, size in mappings)


# ---------------------------------------------------------------------------
# linux: namespaces, devices, resources, security

def _linux(opts: ContainerOptions, caps: list[str], cgroup_version: str, arch: str | None,
           kernel: str | None,
           host_device_list: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    linux: dict[str, Any] = {"namespaces": _namespaces(opts, cgroup_version)}
    if opts.rootless:
        if not opts.uid_mappings or not opts.gid_mappings:
            raise UsageError("rootless mode needs uid and gid mappings",
                             hint="map at least container id 0 to your own uid and gid")
        linux["uidMappings"] = _id_mappings(opts.uid_mappings)
        linux["gidMappings"] = _id_mappings(opts.gid_mappings)
    devices, rules = _devices(opts, host_device_list)
    linux["devices"] = devices
    linux["resources"] = _resources(opts.resources, rules)
    if opts.cgroups_path:
        linux["cgroupsPath"] = opts.cgroups_path
    sysctls = _sysctls(opts)
    if sysctls:
        linux["sysctl"] = sysctls
    if not opts.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    # --privileged turns the default filter off; a profile file the user
    # named explicitly still applies (as in Docker).
    if not opts.privileged or isinstance(opts.seccomp, Mapping):
        seccomp = _seccomp(opts.seccomp, caps, arch, kernel)
        if seccomp is not None:
            linux["seccomp"] = seccomp
    return linux


def _namespaces(opts: ContainerOptions, cgroup_version: str) -> list[dict[str, str]]:
    joins = dict(opts.namespace_paths)
    if opts.netns_path:
        joins["network"] = opts.netns_path
    cgroupns = opts.cgroupns or "private"
    out: list[dict[str, str]] = []
    if opts.rootless or "user" in joins:
        out.append(_namespace("user", joins.get("user")))
    for kind in NAMESPACES:
        if kind in opts.host_namespaces or (kind == "cgroup" and cgroupns == "host"):
            continue
        out.append(_namespace(kind, joins.get(kind)))
    return out


def _namespace(kind: str, path: str | None) -> dict[str, str]:
    return {"type": kind, "path": path} if path else {"type": kind}


def _id_mappings(mappings: Iterable[tuple[int, int, int]]) -> list[dict[str, int]]:
    return [{"containerID": c, "hostID": h, "size": s} for c, h, s in mappings]


def _resources(limits: ResourceLimits, device_rules: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"devices": device_rules}
    memory: dict[str, int] = {}
    if limits.memory:
        memory["limit"] = limits.memory
        swap = limits.memory_swap if limits.memory_swap is not None else 2 * limits.memory
        memory["swap"] = swap
        if swap != -1 and swap < limits.memory:
            raise UsageError("--memory-swap must be at least --memory",
                             hint="--memory-swap is memory plus swap; -1 means unlimited swap")
    elif limits.memory_swap not in (None, 0):
        raise UsageError("--memory-swap needs --memory")
    if memory:
        out["memory"] = memory
    cpu = {key: value for key, value in (("shares", limits.cpu_shares),
                                         ("quota", limits.cpu_quota),
                                         ("period", limits.cpu_period),
                                         ("cpus", limits.cpuset_cpus)) if value}
    if cpu:
        out["cpu"] = cpu
    if limits.pids_limit:
        out["pids"] = {"limit": limits.pids_limit}
    return out


def _sysctls(opts: ContainerOptions) -> dict[str, str]:
    host = set(opts.host_namespaces)
    for key in opts.sysctls:
        if key in _SYSCTL_IPC or key.startswith("fs.mqueue."):
            needs = "ipc"
        elif key in _SYSCTL_UTS:
            needs = "uts"
        elif key.startswith("net."):
            needs = "network"
        else:
            raise UsageError(f"sysctl {key!r} is not allowed: it is not namespaced and would "
                             "change the host", hint="only net.*, fs.mqueue.*, kernel.msg*/sem/shm* "
                             "and kernel.hostname/domainname can be set per container")
        if needs in host:
            raise UsageError(f"sysctl {key!r} cannot be set while sharing the host's {needs} "
                             f"namespace")
    return {k: str(v) for k, v in opts.sysctls.items()}


def _seccomp(choice: str | dict[str, Any], caps: list[str], arch: str | None,
             kernel: str | None) -> dict[str, Any] | None:
    if isinstance(choice, Mapping):
        return seccomp_profile.from_docker_profile(choice, caps, arch, kernel=kernel)
    if choice == "unconfined":
        return None
    if choice == "default":
        return seccomp_profile.default_profile(caps, arch, kernel=kernel)
    raise UsageError(f"invalid seccomp option {choice!r}",
                     hint="use 'default', 'unconfined' or a profile file (seccomp=FILE)")


# ---------------------------------------------------------------------------
# Devices

def parse_device(spec: str) -> dict[str, str]:
    """docker's ``--device host[:container[:perms]]`` -> its HostConfig entry.

    Returns ``{"PathOnHost", "PathInContainer", "CgroupPermissions"}`` (what
    ``docker inspect`` shows).  As in Docker, a second field made only of
    r/w/m letters is the permissions, not a path.
    """
    parts = spec.split(":")
    if not 1 <= len(parts) <= 3 or not parts[0]:
        raise UsageError(f"invalid device specification: {spec!r}",
                         hint="use --device /dev/HOST[:/dev/CONTAINER[:rwm]]")
    host, container, perms = parts[0], "", "rwm"
    if len(parts) == 3:
        container, perms = parts[1], parts[2]
    elif len(parts) == 2:
        if _valid_device_mode(parts[1]):
            perms = parts[1]
        else:
            container = parts[1]
    container = container or host
    if not _valid_device_mode(perms):
        raise UsageError(f"invalid device mode {perms!r} in {spec!r}",
                         hint="use a combination of r (read), w (write) and m (mknod)")
    for path in (host, container):
        if not path.startswith("/"):
            raise UsageError(f"device path {path!r} in {spec!r} is not absolute")
    return {"PathOnHost": host, "PathInContainer": container, "CgroupPermissions": perms}


def _valid_device_mode(mode: str) -> bool:
    return bool(mode) and set(mode) <= set("rwm") and len(set(mode)) == len(mode)


def device_from_path(path: str, container_path: str | None = None) -> dict[str, Any]:
    """The OCI ``linux.devices`` entry for the host device node at ``path`` (reads the host)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise UsageError(f"error gathering device information while adding custom device "
                         f"{path!r}: {e.strerror.lower() if e.strerror else e}") from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise UsageError(f"{path!r} is not a device node")
    return {"path": container_path or path, "type": kind, "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid, "gid": st.st_gid}


#: Below /dev, what a privileged container does not take from the host (as runc).
_HOST_DEV_SKIP = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every device node below ``root`` (reads the host), for ``--privileged``.

    Skips what the container makes itself (pts, shm, mqueue, console) and
    symlinks, as runc's ``HostDevices`` does.
    """
    found: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _HOST_DEV_SKIP)
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if name == "console" or os.path.islink(path):
                continue
            try:
                found.append(device_from_path(path))
            except UsageError:
                continue  # not a device node, or gone meanwhile
    return found


def _devices(opts: ContainerOptions, host_device_list: Sequence[Mapping[str, Any]] | None
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """linux.devices and the device cgroup rules."""
    devices = [dict(d) for d in DEFAULT_DEVICES]
    if opts.privileged:
        host = host_devices() if host_device_list is None else host_device_list
        devices = _unique_devices(devices + [dict(d) for d in host])
        rules: list[dict[str, Any]] = [_rule(True)]  # a privileged container may use any device
    else:
        rules = [dict(r) for r in DEFAULT_DEVICE_RULES]
    for spec in opts.devices:
        wanted = parse_device(spec)
        for device in _devices_below(wanted["PathOnHost"], wanted["PathInContainer"]):
            devices = _unique_devices(devices + [device])
            if not opts.privileged:
                rules.append(_rule(True, device["type"], device["major"], device["minor"],
                                   wanted["CgroupPermissions"]))
    return devices, rules


def _devices_below(host: str, container: str) -> list[dict[str, Any]]:
    """One device, or every device in a directory (``--device /dev/snd``), as Docker."""
    if not os.path.isdir(host):
        return [device_from_path(host, container)]
    found = []
    for device in host_devices(host):
        relative = os.path.relpath(device["path"], host)
        found.append({**device, "path": os.path.join(container, relative)})
    return found


def _unique_devices(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last entry for each container path wins."""
    by_path = {d["path"]: d for d in devices}
    return list(by_path.values())
