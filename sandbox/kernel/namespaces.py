"""Namespaces: the clone flags and OCI names, unshare, setns, ns_inode, and the UTS names.

https://man7.org/linux/man-pages/man7/namespaces.7.html

Separate because these are the first steps of a container (everything after
acts inside the namespaces) and the ones a threaded caller gets wrong: the
hints explain EINVAL from a process with threads.  sethostname and
setdomainname live here because they only make sense in a new UTS namespace.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os

from ._libc import PathArg, _check, _fail, _libc

__all__ = [
    "CLONE_NEWTIME", "CLONE_NEWNS", "CLONE_NEWCGROUP", "CLONE_NEWUTS", "CLONE_NEWIPC",
    "CLONE_NEWUSER", "CLONE_NEWPID", "CLONE_NEWNET", "NAMESPACES", "NAMESPACE_FILES",
    "unshare", "in_user_namespace", "setns", "ns_inode", "sethostname", "setdomainname",
]

_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]

_THREADED = ("user-namespace and mount-namespace changes need a single-threaded process, "
             "and this one has {n} threads; do it in a freshly forked child (the supervisor), "
             "not in a notebook kernel")


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

#: OCI ``linux.namespaces[].type`` -> clone flag.
NAMESPACES: dict[str, int] = {
    "mount": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "cgroup": CLONE_NEWCGROUP,
    "user": CLONE_NEWUSER,
    "time": CLONE_NEWTIME,
}

#: OCI namespace type -> its file name under ``/proc/PID/ns/``.
NAMESPACE_FILES: dict[str, str] = {
    "mount": "mnt",
    "uts": "uts",
    "ipc": "ipc",
    "pid": "pid",
    "network": "net",
    "cgroup": "cgroup",
    "user": "user",
    "time": "time",
}

_NS_HINTS = {
    _errno.ENOSPC: "too many namespaces of this type; see /proc/sys/user/max_*_namespaces",
    _errno.EUSERS: "too many nested user namespaces (at most 32)",
}


def _ns_hints(flags: int, single_threaded: int) -> dict[int, str]:
    """Hints for unshare/setns; ``single_threaded`` are the flags the kernel refuses in a threaded process."""
    hints = dict(_NS_HINTS)
    if flags & single_threaded or (flags == 0 and single_threaded):
        threads = _thread_count()
        if threads > 1:
            hints[_errno.EINVAL] = _THREADED.format(n=threads)
    if flags & CLONE_NEWUSER:
        hints[_errno.EPERM] = ("creating a user namespace was refused: check "
                               "/proc/sys/kernel/unprivileged_userns_clone and "
                               "/proc/sys/user/max_user_namespaces, or run as root")
    return hints


def in_user_namespace() -> bool:
    """Is this process in a user namespace other than the host's (rootless mode, a container)?

    The initial namespace maps every id to itself: ``0 0 4294967295``.  Inside
    another one, mounts that belong to the host (sysfs of its network, device
    nodes, its cgroups) are refused, and the runtime binds the host's instead.
    """
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def unshare(flags: int) -> None:
    """unshare(2): move the calling process into new namespaces (``CLONE_NEW*`` flags).

    The runtime calls this in the forked container child before it sets up the
    root file system.  CLONE_NEWPID and CLONE_NEWTIME only apply to children
    forked afterwards, so the runtime forks once more to become PID 1.
    https://man7.org/linux/man-pages/man2/unshare.2.html
    """
    if _libc.unshare(flags) != 0:
        # CLONE_NEWUSER implies unsharing the thread group: EINVAL with threads.
        raise _fail("unshare", _ns_names(flags), ctypes.get_errno(), _ns_hints(flags, CLONE_NEWUSER))


def _ns_names(flags: int) -> str:
    names = [name for name, flag in NAMESPACES.items() if flags & flag]
    return "+".join(names) if names else hex(flags)


def setns(fd_or_path: int | PathArg, nstype: int = 0) -> None:
    """setns(2): join an existing namespace, given as an fd or a ``/proc/PID/ns/*`` path.

    The runtime uses it for ``docker exec``, ``--network container:ID`` and OCI
    namespace entries with a ``path``.  ``nstype`` 0 accepts any type; a
    ``CLONE_NEW*`` flag makes the kernel check the fd is that kind.  A path is
    opened O_RDONLY|O_CLOEXEC and closed again.
    https://man7.org/linux/man-pages/man2/setns.2.html
    """
    if isinstance(fd_or_path, int):
        _setns_fd(fd_or_path, nstype, f"fd {fd_or_path}")
        return
    path = os.fspath(fd_or_path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise _fail("open namespace", path, e.errno or _errno.EIO,
                    {_errno.ENOENT: "no such namespace file: has the process exited?"}) from None
    try:
        _setns_fd(fd, nstype, path)
    finally:
        os.close(fd)


def _setns_fd(fd: int, nstype: int, where: str) -> None:
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        # Joining a mount namespace needs an unshared fs struct, a user namespace one thread.
        hints = _ns_hints(nstype, CLONE_NEWNS | CLONE_NEWUSER)
        if err == _errno.EINVAL and err not in hints:
            hints[err] = ("the fd is not a namespace of the requested type, or this process "
                          "cannot join it (user and mount namespaces need a single-threaded process)")
        raise _fail("setns", where, err, hints)


def ns_inode(pid: int | str, name: str) -> int:
    """The inode number of ``/proc/PID/ns/NAME``: two processes share a namespace iff these match.

    Views use it to show which namespaces a container shares with the host.
    ``name`` is an OCI type ("network") or a file name ("net", "pid_for_children").
    https://man7.org/linux/man-pages/man7/namespaces.7.html (The /proc/[pid]/ns/ directory)
    """
    path = f"/proc/{pid}/ns/{NAMESPACE_FILES.get(name, name)}"
    try:
        return os.stat(path).st_ino
    except OSError as e:
        raise _fail("stat", path, e.errno or _errno.EIO,
                    {_errno.ENOENT: "no such process, or no such namespace type on this kernel"}) from None


def sethostname(name: str) -> None:
    """sethostname(2): the container's host name, set in its own UTS namespace.

    Call it only after ``unshare(CLONE_NEWUTS)``: in the host's namespace it
    renames the host.  https://man7.org/linux/man-pages/man2/sethostname.2.html
    """
    data = name.encode()
    _check(_libc.sethostname(data, len(data)), "sethostname", name,
           {_errno.EINVAL: "a host name is at most 64 bytes",
            _errno.EPERM: "needs CAP_SYS_ADMIN in the UTS namespace's user namespace; "
                          "unshare(CLONE_NEWUTS) first"})


def setdomainname(name: str) -> None:
    """setdomainname(2): the NIS domain name (OCI ``domainname``), in the container's UTS namespace.

    https://man7.org/linux/man-pages/man2/setdomainname.2.html
    """
    data = name.encode()
    _check(_libc.setdomainname(data, len(data)), "setdomainname", name,
           {_errno.EINVAL: "a domain name is at most 64 bytes",
            _errno.EPERM: "needs CAP_SYS_ADMIN in the UTS namespace's user namespace; "
                          "unshare(CLONE_NEWUTS) first"})
