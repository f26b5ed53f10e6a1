"""The container's file system: mounts, /dev, pivot_root, masked and read-only paths.

Runs in the container's init (PID 1 of the new PID namespace, already in the
new mount namespace), in runc's order (``libcontainer/rootfs_linux.go``)::

    propagation    / becomes rslave (or linux.rootfsPropagation): nothing we
                   mount from here on reaches the host
    bind rootfs    onto itself, so it is a mount point pivot_root accepts
    mounts         config.json ``mounts`` in order; destinations resolved
                   inside the rootfs, a symlinked /proc or /sys refused
    devices        default devices + linux.devices in the /dev tmpfs, links
    pivot_root     the rootfs becomes /, the old root is detached
    ro/masked      readonly paths remounted read-only, masked paths hidden
    ro rootfs      last, so the steps above could still create mount points

Every step raises :class:`~sandbox.errors.KernelError` (or OSError) that the
init turns into a :class:`~sandbox.errors.ContainerStartError` naming the step.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .. import kernel
from ..errors import KernelError
from .paths import is_symlink, make_dirs, make_file, secure_join

#: statvfs(2) flag -> mount(2) flag, for the flags a remount must keep: in a
#: user namespace the kernel "locks" nosuid/nodev/noexec/atime flags of a mount
#: and refuses a remount that would clear them (mount_namespaces(7)).
_KEPT_FLAGS = {os.ST_NOSUID: kernel.MS_NOSUID, os.ST_NODEV: kernel.MS_NODEV,
               os.ST_NOEXEC: kernel.MS_NOEXEC, os.ST_NOATIME: kernel.MS_NOATIME,
               os.ST_NODIRATIME: kernel.MS_NODIRATIME, os.ST_RELATIME: kernel.MS_RELATIME}

#: Devices every container gets (runtime-spec config-linux.md "Default Devices").
DEFAULT_DEVICES: tuple[tuple[str, int, int], ...] = (
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
    ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
)

#: Links runc makes in /dev (/dev/core only when the kernel has /proc/kcore).
DEV_LINKS: tuple[tuple[str, str], ...] = (
    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
)

_PROPAGATION = {"private": kernel.MS_PRIVATE, "slave": kernel.MS_SLAVE,
                "shared": kernel.MS_SHARED, "unbindable": kernel.MS_UNBINDABLE}


def set_propagation(spec: Mapping[str, Any]) -> None:
    """Make every mount below / a slave (or what linux.rootfsPropagation says).

    In a new mount namespace the mounts are copies of the host's and, on a
    systemd host, shared: a mount made here would appear on the host.  rslave
    keeps host mounts flowing in (a USB stick) but nothing flowing out.
    """
    name = spec.get("linux", {}).get("rootfsPropagation") or "rslave"
    flag = _PROPAGATION[name.lstrip("r")] | kernel.MS_REC
    kernel.mount(None, "/", None, flag)


def make_parent_private(rootfs: str) -> None:
    """Make the mount that holds ``rootfs`` private if it is shared (runc's rootfsParentMountPrivate).

    pivot_root refuses a new root whose parent mount is shared, which it is
    when ``rootfsPropagation`` says "shared"; private also keeps the bind of
    the rootfs from propagating to other namespaces.
    """
    best, shared = "", False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            inside = rootfs == point or rootfs.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best = point
                shared = any(o.startswith("shared:") for o in fields[6:fields.index("-")])
    if best and shared:
        kernel.mount(None, best, None, kernel.MS_PRIVATE)


def set_root_propagation(name: str) -> None:
    """``linux.rootfsPropagation`` on the new root, after pivot_root (as runc applies it)."""
    flag = _PROPAGATION[name.lstrip("r")] | (kernel.MS_REC if name.startswith("r") else 0)
    kernel.mount(None, "/", None, flag)


def mounts_below(rootfs: str) -> list[str]:
    """The mount points at or below ``rootfs`` in this mount namespace."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == rootfs or point.startswith(rootfs.rstrip("/") + "/"):
                out.append(point)
    return out


def unmount_below(rootfs: str, keep: Iterable[str] = ()) -> None:
    """Lazily unmount every mount at or below ``rootfs`` but those in ``keep``, deepest first.

    A container without a mount namespace of its own has its mounts in the
    caller's namespace (runc leaves them there); delete takes them away.
    """
    kept = set(keep)
    points = [p for p in mounts_below(rootfs) if p not in kept]
    for point in sorted(set(points), key=len, reverse=True):
        try:
            kernel.umount(point, kernel.MNT_DETACH)
        except KernelError:
            pass     # gone already (a parent's detach took it)


def bind_rootfs(rootfs: str) -> None:
    """Bind the rootfs onto itself: pivot_root needs new_root to be a mount point."""
    kernel.mount(rootfs, rootfs, None, kernel.MS_BIND | kernel.MS_REC)


def mount_all(rootfs: str, mounts: Iterable[Mapping[str, Any]], *, new_cgroupns: bool,
              in_userns: bool) -> None:
    """The spec's ``mounts``, in order (parents come before their children)."""
    for m in mounts:
        mount_entry(rootfs, m, new_cgroupns=new_cgroupns, in_userns=in_userns)


def mount_entry(rootfs: str, m: Mapping[str, Any], *, new_cgroupns: bool, in_userns: bool) -> None:
    dest_in = os.path.normpath(m["destination"])
    if dest_in in ("/proc", "/sys") and is_symlink(rootfs + dest_in):
        # A /proc that is a symlink could point anywhere, so procfs (and the
        # masking of its files) would land elsewhere: CVE-2019-19921.
        raise KernelError("mount", dest_in, errno.ELOOP,
                          hint=f"{dest_in} is a symlink in the rootfs; it must be a real directory")
    dest = secure_join(rootfs, dest_in)
    kind = m.get("type") or ""
    options = list(m.get("options") or [])
    flags, propagation, data = kernel.parse_mount_options(options)
    if flags & kernel.MS_BIND:
        _bind(m.get("source", ""), rootfs, dest_in, dest, flags, propagation, in_userns)
        return
    make_dirs(dest)
    # The kernel file systems go where the runtime puts them (their own steps
    # mount again below the first mount, by name); every other mount, a
    # volume's tmpfs say, goes on the destination's descriptor.
    if kind == "cgroup":
        _mount_cgroup_v1(dest, flags)
    elif kind == "cgroup2":
        _mount_cgroup_v2(dest, flags, new_cgroupns)
    elif kind == "sysfs":
        _mount_sysfs(dest, flags, in_userns)
    else:
        with in_root(rootfs, dest_in) as target:
            kernel.mount(m.get("source") or kind, target, kind, flags, data or None)
    if propagation:
        with in_root(rootfs, dest_in) as target:    # the new mount's top, opened again
            kernel.mount(None, target, None, propagation)


@contextlib.contextmanager
def in_root(rootfs: str, path: str) -> Iterator[str]:
    """A name for ``path`` resolved inside ``rootfs`` that no later rename can redirect.

    ``secure_join`` gives a path, and mounting on a path is a second lookup
    that a process sharing a volume with this container could race with a
    symlink (CVE-2021-30465).  Here the destination is opened with
    ``RESOLVE_IN_ROOT`` and the mount made on ``/proc/self/fd/N``, the inode
    already found, as runc does.
    """
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = kernel.open_in_root(root_fd, path, os.O_PATH)
    finally:
        os.close(root_fd)
    try:
        yield kernel.fd_path(fd)
    finally:
        os.close(fd)


def _bind(source: str, rootfs: str, dest_in: str, dest: str, flags: int, propagation: int,
          in_userns: bool) -> None:
    if os.path.isdir(source):
        make_dirs(dest)
    else:
        make_file(dest)
    with in_root(rootfs, dest_in) as target:
        kernel.mount(source, target, None, kernel.MS_BIND | (flags & kernel.MS_REC))
    # A bind mount ignores every other flag; they take a second call, a remount
    # (of the new mount: the destination opened again).
    extra = flags & ~(kernel.MS_BIND | kernel.MS_REC | kernel.MS_REMOUNT)
    if extra:
        with in_root(rootfs, dest_in) as target:
            remount(target, extra, in_userns=in_userns)
    if propagation:
        with in_root(rootfs, dest_in) as target:
            kernel.mount(None, target, None, propagation)


def remount(path: str, flags: int, *, in_userns: bool = False) -> None:
    """Change the flags of the bind mount at ``path`` (ro, nosuid, ...), keeping locked ones."""
    want = kernel.MS_BIND | kernel.MS_REMOUNT | flags
    try:
        kernel.mount(None, path, None, want)
    except KernelError as e:
        if e.errno != errno.EPERM:
            raise
        # Locked flags (always in a user namespace, sometimes for root too):
        # keep whatever the mount has now and add ours.
        kernel.mount(None, path, None, want | current_flags(path))


def current_flags(path: str) -> int:
    have = os.statvfs(path).f_flag
    return sum(ms for st, ms in _KEPT_FLAGS.items() if have & st)


def _mount_sysfs(dest: str, flags: int, in_userns: bool) -> None:
    try:
        kernel.mount("sysfs", dest, "sysfs", flags)
    except KernelError as e:
        # sysfs belongs to a network namespace: in a user namespace that did not
        # create its network namespace, bind the host's (as runc does).
        if not (in_userns and e.errno == errno.EPERM):
            raise
        kernel.mount("/sys", dest, None, kernel.MS_BIND | kernel.MS_REC)
        remount(dest, flags | kernel.MS_REC, in_userns=True)


def _mount_cgroup_v2(dest: str, flags: int, new_cgroupns: bool) -> None:
    if new_cgroupns:
        # In its own cgroup namespace the container sees its group as the root.
        try:
            kernel.mount("cgroup2", dest, "cgroup2", flags)
            return
        except KernelError as e:
            # A user namespace that does not own the network namespace (rootless on
            # the host's network) has /sys bound from the host, and the kernel refuses
            # a cgroup2 mount there (EBUSY, or EPERM): bind the container's own group,
            # which shows the same tree a cgroup namespace would (runc's mountCgroupV2).
            if e.errno not in (errno.EBUSY, errno.EPERM):
                raise
    # Sharing the host's cgroup namespace a fresh cgroup2 mount would show the
    # whole host tree: bind the container's own group instead.
    source = "/sys/fs/cgroup" + _own_cgroup_v2()
    kernel.mount(source, dest, None, kernel.MS_BIND)
    remount(dest, flags)


#: /proc/self/cgroup and the cgroup mounts as seen before the cgroup namespace
#: was created (see :func:`remember_cgroups`): inside it paths are relative to
#: the container's group ("/" for its own, "/../.." for a host root).
_OWN_CGROUPS: str | None = None
_CGROUP_MOUNTS: list[tuple[str, str, list[str]]] | None = None


def remember_cgroups() -> None:
    """Read /proc/self/cgroup and mountinfo now, before unshare(CLONE_NEWCGROUP) rewrites them."""
    global _OWN_CGROUPS, _CGROUP_MOUNTS
    with open("/proc/self/cgroup") as f:
        _OWN_CGROUPS = f.read()
    _CGROUP_MOUNTS = _host_cgroup_mounts()


def _cgroup_lines() -> list[str]:
    if _OWN_CGROUPS is not None:
        return _OWN_CGROUPS.splitlines()
    with open("/proc/self/cgroup") as f:
        return f.read().splitlines()


def _own_cgroup_v2() -> str:
    for line in _cgroup_lines():
        if line.startswith("0::"):
            return line[3:].rstrip("/")
    return ""


def _mount_cgroup_v1(dest: str, flags: int) -> None:
    """A tmpfs at ``dest`` with the container's group of each v1 hierarchy bound in.

    That is what runc and Docker show on a v1 host: /sys/fs/cgroup/memory in
    the container is the host's /sys/fs/cgroup/memory/<group>, so ``cat
    memory.limit_in_bytes`` reads the container's own limit.
    """
    kernel.mount("tmpfs", dest, "tmpfs", kernel.MS_NOSUID | kernel.MS_NODEV | kernel.MS_NOEXEC,
                 "mode=755")
    own = _own_cgroups_v1()
    for mount_point, root, keys in (_CGROUP_MOUNTS if _CGROUP_MOUNTS is not None
                                    else _host_cgroup_mounts()):
        group = next((own[k] for k in keys if k in own), None)
        if group is None:
            continue
        rel = os.path.relpath(group, root) if group.startswith(root) else "."
        source = os.path.normpath(os.path.join(mount_point, rel))
        target = os.path.join(dest, os.path.basename(mount_point))
        make_dirs(target)
        kernel.mount(source, target, None, kernel.MS_BIND | kernel.MS_REC)
        remount(target, flags | kernel.MS_NOSUID | kernel.MS_NODEV | kernel.MS_NOEXEC)
    if flags & kernel.MS_RDONLY:
        # runc 1.1 leaves this tmpfs rw (a write then fails with EACCES all the
        # same); read-only says so plainly (EROFS).
        remount(dest, flags | kernel.MS_NOSUID | kernel.MS_NODEV | kernel.MS_NOEXEC)


def _own_cgroups_v1() -> dict[str, str]:
    """hierarchy key ("memory", "cpu,cpuacct", "name=systemd", "") -> this process's group."""
    out: dict[str, str] = {}
    for line in _cgroup_lines():
        _, controllers, path = line.split(":", 2)
        out[controllers] = path
        for c in controllers.split(","):
            out.setdefault(c, path)
    return out


def _host_cgroup_mounts() -> list[tuple[str, str, list[str]]]:
    """(mount point, root in the hierarchy, keys naming it in /proc/self/cgroup) per cgroup mount."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, opts = fields[sep + 1], fields[sep + 3]
            mount_point = fields[4]
            if not mount_point.startswith("/sys/fs/cgroup/"):
                continue
            if fstype == "cgroup":
                keys = [o for o in opts.split(",") if o not in ("rw", "ro")]
                found.append((mount_point, fields[3], [",".join(keys), *keys]))
            # A hybrid host's cgroup2 (/sys/fs/cgroup/unified) is left out, as runc does:
            # the v1 view is the v1 hierarchies.
    return found


# --------------------------------------------------------------------------- /dev

def create_devices(rootfs: str, devices: Iterable[Mapping[str, Any]], *, in_userns: bool) -> None:
    """The default devices and ``linux.devices`` as nodes in the container's /dev.

    In a user namespace mknod is refused (a device node made there would
    bypass the host's permissions), so the host's node is bind-mounted onto an
    empty file instead, as runc does.
    """
    wanted = {path: {"path": path, "type": "c", "major": major, "minor": minor, "fileMode": 0o666}
              for path, major, minor in DEFAULT_DEVICES}
    for d in devices:
        wanted[os.path.normpath(d["path"])] = dict(d)
    old_umask = os.umask(0)
    try:
        for device in wanted.values():
            _create_device(rootfs, device, in_userns)
    finally:
        os.umask(old_umask)


def _create_device(rootfs: str, d: Mapping[str, Any], in_userns: bool) -> None:
    target = secure_join(rootfs, d["path"])
    make_dirs(os.path.dirname(target))
    if os.path.lexists(target):
        os.unlink(target)
    mode = d.get("fileMode", 0o666) & 0o7777
    kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d["type"]]
    if in_userns:
        make_file(target)
        kernel.mount(d["path"], target, None, kernel.MS_BIND)
        return
    if kind == stat.S_IFIFO:
        os.mkfifo(target, mode)
    else:
        kernel.mknod(target, kind | mode, d["major"], d["minor"])
    os.chown(target, d.get("uid", 0), d.get("gid", 0))


def create_dev_links(rootfs: str, *, ptmx: bool) -> None:
    """/dev/fd, stdin, stdout, stderr, core, and /dev/ptmx -> pts/ptmx for a private devpts."""
    links = list(DEV_LINKS)
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    if ptmx:
        links.append(("pts/ptmx", "/dev/ptmx"))
    for source, link in links:
        path = secure_join(rootfs, link)
        if os.path.lexists(path):
            if link != "/dev/ptmx":
                continue
            os.unlink(path)
        os.symlink(source, path)


# --------------------------------------------------------------------------- pivot_root and after

def pivot_root(rootfs: str) -> None:
    """Make ``rootfs`` the root and detach the old one (runc's fd-based dance).

    ``pivot_root(".", ".")`` stacks the old root on top of the new one at the
    same place, so no put_old directory has to exist in the image; the old
    root is then made a slave (so the detach does not propagate to the host)
    and unmounted lazily.  https://man7.org/linux/man-pages/man2/pivot_root.2.html
    """
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.chdir(rootfs)
        kernel.pivot_root(".", ".")
        os.fchdir(old)
        kernel.mount(None, ".", None, kernel.MS_SLAVE | kernel.MS_REC)
        kernel.umount(".", kernel.MNT_DETACH)
    finally:
        os.close(old)
    os.chdir("/")


def chroot_into(rootfs: str) -> None:
    """``--no-pivot``: move the rootfs over / and chroot (for a rootfs on a ramfs)."""
    os.chdir(rootfs)
    kernel.mount(rootfs, "/", None, kernel.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def readonly_path(path: str) -> None:
    """Bind ``path`` onto itself read-only (linux.readonlyPaths); a missing path is skipped."""
    try:
        kernel.mount(path, path, None, kernel.MS_BIND | kernel.MS_REC)
    except KernelError as e:
        if e.errno == errno.ENOENT:
            return
        raise
    remount(path, kernel.MS_RDONLY | kernel.MS_REC | current_flags(path))


@contextlib.contextmanager
def empty_file() -> Iterator[str]:
    """An empty read-only regular file to mask files with, gone again afterwards.

    It is made in the container's /dev tmpfs and unlinked once the masks are
    bound (a bind keeps its inode alive), so /dev lists only what it should.
    Where /dev cannot take it, /dev/null (runc's choice) is used instead.
    """
    path = "/dev/.sandbox-masked"
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    except OSError:
        yield "/dev/null"
        return
    try:
        yield path
    finally:
        os.unlink(path)


def mask_path(path: str, empty_file: str = "/dev/null") -> None:
    """Hide ``path`` (linux.maskedPaths): an empty file over a file, an empty read-only tmpfs over a dir.

    runc binds /dev/null over files; a write to a device node succeeds even on
    a read-only mount, so the init passes an empty regular file instead
    (``empty_file``) and the write fails with EROFS, as "masked" suggests.
    Paths this kernel lacks (/proc/timer_stats is gone since 4.11) are skipped.
    """
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if is_dir:
        kernel.mount("tmpfs", path, "tmpfs", kernel.MS_RDONLY, "size=0k")
    else:
        kernel.mount(empty_file, path, None, kernel.MS_BIND)
        remount(path, kernel.MS_RDONLY | current_flags(path))


def readonly_root() -> None:
    """``root.readonly``: remount / read-only, after every mount point exists."""
    remount("/", kernel.MS_RDONLY | current_flags("/"))
