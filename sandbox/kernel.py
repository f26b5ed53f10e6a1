"""The only module that calls libc through ctypes.

Every wrapper raises :class:`sandbox.errors.KernelError` keeping the errno, the
operation and the path, so a failure reads like ``mount overlay on /x: invalid
argument`` instead of a bare ``OSError``; where a common cause is known the
error's ``hint`` says it (no root, a threaded process, ...).

The runtime uses these in runc's order (see runc's ``libcontainer/standard_init_linux.go``)::

    unshare / setns        namespaces first: everything after acts inside them
    mount, pivot_root      the root file system, in the new mount namespace
    sethostname            in the new UTS namespace
    set_no_new_privs       before seccomp, so loading the filter needs no CAP_SYS_ADMIN
    capabilities           bounding set, then capset, then ambient
    load_bpf               seccomp last before exec: the filter would block the steps above
                           (SeccompFilter.compile builds it once, in the caller)

Sections: syscall numbers, namespaces, mounts, prctl, capabilities, pidfds,
network interfaces (loopback up, close-on-exec marking), devices and ids,
seccomp (libseccomp, loaded on first use), bpf (cgroup v2 device programs).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import platform
import re
from collections.abc import Iterable, Sequence
from typing import Union

from .errors import KernelError

def _load_libc() -> ctypes.CDLL:
    """glibc by its soname first: ``find_library`` runs ``ldconfig -p`` (about 10 ms),
    which every cold ``sandbox`` command would pay."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library   # runs ldconfig: only when the soname did not load
        return ctypes.CDLL(find_library("c"), use_errno=True)


_libc = _load_libc()
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.prctl.restype = ctypes.c_int
_libc.syscall.restype = ctypes.c_long

PathArg = Union[str, os.PathLike[str]]  # a path as os.open accepts it

_EPERM_ROOT = "this needs root (CAP_SYS_ADMIN); is the process running without root?"
_THREADED = ("user-namespace and mount-namespace changes need a single-threaded process, "
             "and this one has {n} threads; do it in a freshly forked child (the supervisor), "
             "not in a notebook kernel")


def _b(value: PathArg | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _fail(op: str, path: str | None, err: int, hints: dict[int, str] | None = None) -> KernelError:
    """A KernelError for a failed call, with the hint for its errno if one is known."""
    hint = (hints or {}).get(err)
    if hint is None and err == _errno.EPERM:
        hint = _EPERM_ROOT
    return KernelError(op, path, err, hint=hint)


def _check(result: int, op: str, path: str | None = None, hints: dict[int, str] | None = None) -> int:
    if result < 0:
        raise _fail(op, path, ctypes.get_errno(), hints)
    return result


# ------------------------------------------------------------------ syscall numbers

#: Syscalls glibc (2.36, Debian 12) has no wrapper for, by ``platform.machine()``.
#: pidfd_open and pidfd_send_signal were added after the tables were unified,
#: so they have one number everywhere (except alpha).
SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "pivot_root": {"x86_64": 155, "aarch64": 41, "armv7l": 218, "ppc64le": 203,
                   "s390x": 217, "riscv64": 41},
    "pidfd_open": dict.fromkeys(("x86_64", "aarch64", "armv7l", "ppc64le", "s390x", "riscv64"), 434),
    "pidfd_send_signal": dict.fromkeys(("x86_64", "aarch64", "armv7l", "ppc64le", "s390x", "riscv64"), 424),
    "pidfd_getfd": dict.fromkeys(("x86_64", "aarch64", "armv7l", "ppc64le", "s390x", "riscv64"), 438),
}


def syscall_number(name: str, machine: str | None = None) -> int:
    """The number of syscall ``name`` on ``machine`` (default: this one), from :data:`SYSCALL_NUMBERS`."""
    machine = machine or platform.machine()
    try:
        return SYSCALL_NUMBERS[name][machine]
    except KeyError:
        raise KernelError(name, None, _errno.ENOSYS,
                          hint=f"no syscall number for {name} on {machine} in sandbox.kernel; "
                               f"supported: {', '.join(sorted(SYSCALL_NUMBERS.get(name, {})))}") from None


def _syscall(name: str, *args: int | bytes | None) -> int:
    # Variadic: pass every integer as a C long, or the kernel may see garbage upper bits.
    cargs = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return int(_libc.syscall(ctypes.c_long(syscall_number(name)), *cargs))


# ------------------------------------------------------------------ namespaces
# https://man7.org/linux/man-pages/man7/namespaces.7.html

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


def pivot_root(new_root: PathArg, put_old: PathArg) -> None:
    """pivot_root(2): make ``new_root`` the root file system and move the old root to ``put_old``.

    Unlike chroot the old root can then be unmounted (``umount(put_old,
    MNT_DETACH)``), so the container cannot climb back out.  glibc has no
    wrapper; the syscall number comes from :data:`SYSCALL_NUMBERS`.
    https://man7.org/linux/man-pages/man2/pivot_root.2.html
    """
    if _syscall("pivot_root", _b(new_root), _b(put_old)) != 0:
        raise _fail("pivot_root", os.fspath(new_root), ctypes.get_errno(), {
            _errno.EINVAL: "new_root must be a mount point (bind-mount it onto itself), put_old must "
                           "be at or under it, and neither may be on a shared mount (make / "
                           "MS_REC|MS_PRIVATE in a new mount namespace first)",
            # A new_root that is a plain directory on the root file system gives EBUSY, not EINVAL.
            _errno.EBUSY: "new_root or put_old is on the same mount as the current root: bind-mount "
                          "new_root onto itself (MS_BIND) first so it is a mount point of its own",
        })


# ------------------------------------------------------------------ mounts
# mount(2) flags, from <sys/mount.h>: https://man7.org/linux/man-pages/man2/mount.2.html

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_POSIXACL = 1 << 16
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

#: The propagation types: the kernel takes exactly one of them per mount(2) call.
MS_PROPAGATION = MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE

# umount2(2) flags
MNT_DETACH = 2

#: OCI mount option -> (flags it sets, flags it clears, propagation flags), as in
#: runc's libcontainer/specconv.  Options not listed are file system data ("size=64m").
MOUNT_OPTIONS: dict[str, tuple[int, int, int]] = {
    "defaults": (0, 0, 0),
    "ro": (MS_RDONLY, 0, 0),
    "rw": (0, MS_RDONLY, 0),
    "nosuid": (MS_NOSUID, 0, 0),
    "suid": (0, MS_NOSUID, 0),
    "nodev": (MS_NODEV, 0, 0),
    "dev": (0, MS_NODEV, 0),
    "noexec": (MS_NOEXEC, 0, 0),
    "exec": (0, MS_NOEXEC, 0),
    "sync": (MS_SYNCHRONOUS, 0, 0),
    "async": (0, MS_SYNCHRONOUS, 0),
    "dirsync": (MS_DIRSYNC, 0, 0),
    "remount": (MS_REMOUNT, 0, 0),
    "mand": (MS_MANDLOCK, 0, 0),
    "nomand": (0, MS_MANDLOCK, 0),
    "atime": (0, MS_NOATIME, 0),
    "noatime": (MS_NOATIME, 0, 0),
    "diratime": (0, MS_NODIRATIME, 0),
    "nodiratime": (MS_NODIRATIME, 0, 0),
    "relatime": (MS_RELATIME, 0, 0),
    "norelatime": (0, MS_RELATIME, 0),
    "strictatime": (MS_STRICTATIME, 0, 0),
    "nostrictatime": (0, MS_STRICTATIME, 0),
    "lazytime": (MS_LAZYTIME, 0, 0),
    "nolazytime": (0, MS_LAZYTIME, 0),
    "iversion": (MS_I_VERSION, 0, 0),
    "noiversion": (0, MS_I_VERSION, 0),
    "acl": (MS_POSIXACL, 0, 0),
    "noacl": (0, MS_POSIXACL, 0),
    "silent": (MS_SILENT, 0, 0),
    "loud": (0, MS_SILENT, 0),
    "nosymfollow": (MS_NOSYMFOLLOW, 0, 0),
    "symfollow": (0, MS_NOSYMFOLLOW, 0),
    "bind": (MS_BIND, 0, 0),
    "rbind": (MS_BIND | MS_REC, 0, 0),
    "private": (0, 0, MS_PRIVATE),
    "rprivate": (0, 0, MS_PRIVATE | MS_REC),
    "slave": (0, 0, MS_SLAVE),
    "rslave": (0, 0, MS_SLAVE | MS_REC),
    "shared": (0, 0, MS_SHARED),
    "rshared": (0, 0, MS_SHARED | MS_REC),
    "unbindable": (0, 0, MS_UNBINDABLE),
    "runbindable": (0, 0, MS_UNBINDABLE | MS_REC),
}

#: The kernel copies mount options into one page; longer option strings are cut
#: and overlay then fails with a misleading ENOENT (see DESIGN.md).
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def parse_mount_options(options: Iterable[str]) -> tuple[int, int, str]:
    """An OCI mount's ``options`` as (mount flags, propagation flags, data string).

    Options apply in order, so ``["ro", "rw"]`` is read-write.  The kernel takes
    one propagation type per call, so the last propagation option wins (the
    state runc reaches by applying them one after another).  Unknown options
    ("size=64m", "mode=755") are joined with "," into the data string.
    """
    flags = propagation = 0
    data: list[str] = []
    for option in options:
        entry = MOUNT_OPTIONS.get(option)
        if entry is None:
            data.append(option)
            continue
        set_flags, clear_flags, prop = entry
        flags = (flags | set_flags) & ~clear_flags
        if prop:
            propagation = prop
    return flags, propagation, ",".join(data)


def mount(source: str | None, target: PathArg, fstype: str | None,
          flags: int = 0, data: str | None = None) -> None:
    """mount(2): mounts, bind mounts, remounts and propagation changes.

    ``data`` longer than a page is refused before the kernel cuts it.
    https://man7.org/linux/man-pages/man2/mount.2.html
    """
    if data is not None and len(data.encode()) >= PAGE_SIZE:
        raise KernelError(f"mount {fstype or source}", os.fspath(target), _errno.E2BIG,
                          hint=f"mount options are {len(data)} bytes, over the kernel's {PAGE_SIZE}-byte page")
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        err = ctypes.get_errno()
        hint = "mounting needs root (CAP_SYS_ADMIN)" if err == _errno.EPERM else None
        raise KernelError(f"mount {fstype or source}", os.fspath(target), err, hint=hint)


def umount(target: PathArg, flags: int = 0) -> None:
    """umount2(2): unmount, with ``MNT_DETACH`` for a lazy unmount of a busy mount.

    https://man7.org/linux/man-pages/man2/umount2.2.html
    """
    if _libc.umount2(_b(target), flags) != 0:
        raise _fail("umount", os.fspath(target), ctypes.get_errno(),
                    {_errno.EBUSY: "something still uses it; MNT_DETACH unmounts lazily"})


# ------------------------------------------------------------------ prctl
# https://man7.org/linux/man-pages/man2/prctl.2.html

PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_GET_KEEPCAPS = 7
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_GET_NAME = 16
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET = 1
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_LOWER = 3
PR_CAP_AMBIENT_CLEAR_ALL = 4


def _prctl(op: str, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0,
           hints: dict[int, str] | None = None) -> int:
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), op, None, hints)


def set_no_new_privs() -> None:
    """PR_SET_NO_NEW_PRIVS: execve can never gain privileges again (setuid bits, file caps).

    OCI ``process.noNewPrivileges``; Docker's ``--security-opt no-new-privileges``.
    It is inherited and cannot be unset.
    https://www.kernel.org/doc/html/latest/userspace-api/no_new_privs.html
    """
    _prctl("prctl(PR_SET_NO_NEW_PRIVS)", PR_SET_NO_NEW_PRIVS, 1)


def get_no_new_privs() -> bool:
    """PR_GET_NO_NEW_PRIVS: whether no_new_privs is set (``NoNewPrivs`` in /proc/PID/status)."""
    return _prctl("prctl(PR_GET_NO_NEW_PRIVS)", PR_GET_NO_NEW_PRIVS) == 1


PR_SET_DUMPABLE = 4


def set_dumpable(dumpable: bool) -> None:
    """PR_SET_DUMPABLE: a process that changed its uid is made non-dumpable, which
    also makes its own /proc/self/fd unreadable to it; the runtime sets it back
    before exec (execve recomputes it anyway).
    """
    _prctl("prctl(PR_SET_DUMPABLE)", PR_SET_DUMPABLE, int(dumpable))


def set_pdeathsig(sig: int) -> None:
    """PR_SET_PDEATHSIG: the signal this process gets when its parent (thread) dies.

    The container child sets SIGKILL so it does not outlive a crashed
    supervisor half-way through set-up.  Cleared by fork and by execve of a
    setuid binary.  https://man7.org/linux/man-pages/man2/prctl.2.html
    """
    _prctl("prctl(PR_SET_PDEATHSIG)", PR_SET_PDEATHSIG, int(sig),
           hints={_errno.EINVAL: f"{sig} is not a valid signal number"})


def get_pdeathsig() -> int:
    """PR_GET_PDEATHSIG: the parent-death signal, 0 when none is set."""
    value = ctypes.c_int(0)
    _prctl("prctl(PR_GET_PDEATHSIG)", PR_GET_PDEATHSIG, ctypes.addressof(value))
    return value.value


def set_child_subreaper(enabled: bool = True) -> None:
    """PR_SET_CHILD_SUBREAPER: orphaned descendants are re-parented to this process, not PID 1.

    The supervisor sets it so it can reap (and record the exit code of)
    container processes whose intermediate parent already exited.
    https://man7.org/linux/man-pages/man2/prctl.2.html
    """
    _prctl("prctl(PR_SET_CHILD_SUBREAPER)", PR_SET_CHILD_SUBREAPER, int(enabled))


def is_child_subreaper() -> bool:
    """PR_GET_CHILD_SUBREAPER: whether this process is a child subreaper."""
    value = ctypes.c_int(0)
    _prctl("prctl(PR_GET_CHILD_SUBREAPER)", PR_GET_CHILD_SUBREAPER, ctypes.addressof(value))
    return value.value != 0


def set_name(comm: str) -> None:
    """PR_SET_NAME: the calling thread's name (``comm``, at most 15 bytes) shown by ps and top.

    The supervisor names itself and each container's set-up child, so a
    student's ``ps`` explains what it sees.  Longer names are cut to 15 bytes.
    """
    buf = ctypes.create_string_buffer(comm.encode()[:15], 16)
    _prctl("prctl(PR_SET_NAME)", PR_SET_NAME, ctypes.addressof(buf))


def get_name() -> str:
    """PR_GET_NAME: the calling thread's name."""
    buf = ctypes.create_string_buffer(16)
    _prctl("prctl(PR_GET_NAME)", PR_GET_NAME, ctypes.addressof(buf))
    return buf.value.decode(errors="replace")


def set_keepcaps(keep: bool) -> None:
    """PR_SET_KEEPCAPS: keep the permitted capabilities across a setuid from root to a user.

    The runtime sets it before switching to ``process.user`` and then restores
    the OCI capability sets with :func:`capset`.  Cleared by execve.
    https://man7.org/linux/man-pages/man7/capabilities.7.html
    """
    _prctl("prctl(PR_SET_KEEPCAPS)", PR_SET_KEEPCAPS, int(keep),
           hints={_errno.EPERM: "SECBIT_KEEP_CAPS_LOCKED is set for this process"})


def get_keepcaps() -> bool:
    """PR_GET_KEEPCAPS: whether the keep-capabilities flag is set."""
    return _prctl("prctl(PR_GET_KEEPCAPS)", PR_GET_KEEPCAPS) == 1


# ------------------------------------------------------------------ capabilities
# https://man7.org/linux/man-pages/man7/capabilities.7.html

#: Every capability the kernel headers (6.x) name, in bit order.
CAPS: dict[str, int] = {name: bit for bit, name in enumerate((
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
))}

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_CapDataPair = _CapData * 2
_libc.capget.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
_libc.capset.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]


def cap_number(cap: int | str) -> int:
    """A capability as its bit number: accepts 13, "CAP_NET_RAW" or "NET_RAW" (Docker's --cap-add spelling)."""
    if isinstance(cap, int):
        return cap
    name = cap.upper()
    name = name if name.startswith("CAP_") else "CAP_" + name
    if name not in CAPS:
        raise KernelError("capability", cap, _errno.EINVAL,
                          hint="not a capability name; see capabilities(7) or sandbox.kernel.CAPS")
    return CAPS[name]


def caps_from_mask(mask: int) -> set[str]:
    """The names of the capabilities whose bits are set in ``mask``."""
    return {name for name, bit in CAPS.items() if mask >> bit & 1}


def caps_to_mask(caps: Iterable[int | str]) -> int:
    """The bit mask of capabilities given by name or number."""
    mask = 0
    for cap in caps:
        mask |= 1 << cap_number(cap)
    return mask


_last_cap: int | None = None


def last_cap() -> int:
    """The highest capability number this kernel knows (``/proc/sys/kernel/cap_last_cap``).

    Capabilities above it cannot be in any set; the runtime drops names it does not know.
    Read once per process: the kernel's value cannot change while it runs.
    """
    global _last_cap
    if _last_cap is None:
        _last_cap = _read_last_cap()
    return _last_cap


def _read_last_cap() -> int:
    path = "/proc/sys/kernel/cap_last_cap"
    try:
        with open(path) as f:
            return int(f.read())
    except OSError as e:
        raise _fail("read", path, e.errno or _errno.EIO) from None


def host_bounding_set(status: str | None = None) -> set[str]:
    """The capabilities in this process's bounding set (``CapBnd`` of /proc/self/status).

    A container cannot get a capability outside it, so the runtime clamps (or
    refuses) requested capabilities to this set.  On some hosts it is not the
    full set: e.g. CAP_SYS_RESOURCE can be missing for every process.
    ``status`` is the file's text, for tests.
    """
    if status is None:
        try:
            with open("/proc/self/status") as f:
                status = f.read()
        except OSError as e:
            raise _fail("read", "/proc/self/status", e.errno or _errno.EIO) from None
    for line in status.splitlines():
        if line.startswith("CapBnd:"):
            return caps_from_mask(int(line.split()[1], 16))
    raise KernelError("read", "/proc/self/status", _errno.ENODATA, hint="no CapBnd line")


def capbset_read(cap: int | str) -> bool:
    """PR_CAPBSET_READ: whether ``cap`` is in this thread's bounding set."""
    return _prctl("prctl(PR_CAPBSET_READ)", PR_CAPBSET_READ, cap_number(cap),
                  hints={_errno.EINVAL: f"capability {cap} is above this kernel's last_cap"}) == 1


def capbset_drop(cap: int | str) -> None:
    """PR_CAPBSET_DROP: remove ``cap`` from the bounding set, for this process and all it execs.

    The runtime drops every capability not in OCI ``capabilities.bounding``
    before exec; it needs CAP_SETPCAP, so it happens before capset.
    """
    _prctl("prctl(PR_CAPBSET_DROP)", PR_CAPBSET_DROP, cap_number(cap),
           hints={_errno.EPERM: "dropping from the bounding set needs CAP_SETPCAP; drop bounding "
                                "capabilities before capset() removes it",
                  _errno.EINVAL: f"capability {cap} is above this kernel's last_cap"})


def cap_ambient_raise(cap: int | str) -> None:
    """PR_CAP_AMBIENT_RAISE: keep ``cap`` across execve of a non-setuid program as a non-root user.

    OCI ``capabilities.ambient``; the capability must already be permitted and inheritable.
    """
    _prctl("prctl(PR_CAP_AMBIENT_RAISE)", PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap_number(cap),
           hints={_errno.EPERM: "an ambient capability must be in the permitted and inheritable "
                                "sets first (capset), and SECBIT_NO_CAP_AMBIENT_RAISE unset"})


def cap_ambient_clear_all() -> None:
    """PR_CAP_AMBIENT_CLEAR_ALL: empty the ambient set before raising the OCI ones."""
    _prctl("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def cap_ambient_is_set(cap: int | str) -> bool:
    """PR_CAP_AMBIENT_IS_SET: whether ``cap`` is in the ambient set."""
    return _prctl("prctl(PR_CAP_AMBIENT_IS_SET)", PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET,
                  cap_number(cap)) == 1


def capget(pid: int = 0) -> tuple[int, int, int]:
    """capget(2): (effective, permitted, inheritable) of ``pid`` (0: this thread) as 64-bit masks.

    For ``inspect``-style views and for tests; :func:`caps_from_mask` names the bits.
    https://man7.org/linux/man-pages/man2/capget.2.html
    """
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = _CapDataPair()
    if _libc.capget(ctypes.byref(header), data) != 0:
        raise _fail("capget", f"pid {pid}" if pid else None, ctypes.get_errno(),
                    {_errno.ESRCH: "no such process"})
    return (data[0].effective | data[1].effective << 32,
            data[0].permitted | data[1].permitted << 32,
            data[0].inheritable | data[1].inheritable << 32)


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2): set this thread's effective, permitted and inheritable capabilities (64-bit masks).

    The runtime calls it last among the capability steps, after the bounding set is dropped.
    https://man7.org/linux/man-pages/man2/capset.2.html
    """
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = _CapDataPair()
    for i in range(2):
        data[i].effective = effective >> (32 * i) & 0xFFFFFFFF
        data[i].permitted = permitted >> (32 * i) & 0xFFFFFFFF
        data[i].inheritable = inheritable >> (32 * i) & 0xFFFFFFFF
    if _libc.capset(ctypes.byref(header), data) != 0:
        raise _fail("capset", None, ctypes.get_errno(), {
            _errno.EPERM: "capset can only drop capabilities: permitted may not grow, effective must "
                          "be within permitted, and inheritable within permitted and the bounding set",
        })


# ------------------------------------------------------------------ pidfds
# https://man7.org/linux/man-pages/man2/pidfd_open.2.html


def pidfd_open(pid: int, flags: int = 0) -> int:
    """pidfd_open(2): a file descriptor that refers to process ``pid`` and cannot be fooled by pid reuse.

    The supervisor watches containers with pidfds (readable when the process
    exits) and signals them through :func:`pidfd_send_signal`.  The fd is close-on-exec.
    """
    fd = _syscall("pidfd_open", pid, flags)
    return _check(fd, "pidfd_open", f"pid {pid}", {_errno.ESRCH: "no such process"})


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    """pidfd_send_signal(2): send ``sig`` to the process behind ``pidfd``; never hits a reused pid.

    https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html
    """
    _check(_syscall("pidfd_send_signal", pidfd, int(sig), None, 0), "pidfd_send_signal",
           f"pidfd {pidfd}", {_errno.ESRCH: "the process has already exited"})



def pidfd_getfd(pidfd: int, targetfd: int) -> int:
    """pidfd_getfd(2): a duplicate of file descriptor ``targetfd`` of the process behind ``pidfd``.

    A restarted supervisor takes back a terminal's master from the process that
    kept it (see ``sandbox/supervisor/ttykeeper.py``).  Needs ptrace access (root).
    https://man7.org/linux/man-pages/man2/pidfd_getfd.2.html
    """
    fd = _syscall("pidfd_getfd", pidfd, targetfd, 0)
    return _check(fd, "pidfd_getfd", f"fd {targetfd}", {_errno.EBADF: "the process has no such descriptor"})

# ------------------------------------------------------------------ network interfaces

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


PIDFD_GET_INFO = (3 << 30) | (64 << 16) | (0xFF << 8) | 11   # _IOWR(0xFF, 11, struct pidfd_info)
PIDFD_INFO_EXIT = 1 << 3


def pidfd_exit_status(pidfd: int) -> int | None:
    """The wait status of the exited process behind ``pidfd``, or None.

    Linux 6.15+ keeps it for anyone holding a pidfd (``PIDFD_GET_INFO`` with
    ``PIDFD_INFO_EXIT``), even after another process reaped it: that is how a
    restarted supervisor learns the exit code of a container it did not fork.
    """
    import struct
    buf = ctypes.create_string_buffer(64)
    struct.pack_into("Q", buf, 0, PIDFD_INFO_EXIT)
    if _libc.ioctl(pidfd, ctypes.c_ulong(PIDFD_GET_INFO), buf) != 0:
        return None
    mask = struct.unpack_from("Q", buf, 0)[0]
    if not mask & PIDFD_INFO_EXIT:
        return None
    return int(struct.unpack_from("i", buf, 60)[0])


def interface_up(name: str = "lo") -> None:
    """Bring network interface ``name`` up in the calling process's network namespace.

    A new network namespace has only ``lo``, and it is down: ``ping 127.0.0.1``
    fails until something raises it, which Docker (and runc for a fresh netns)
    does.  SIOCSIFFLAGS on a datagram socket is two ioctls, far cheaper than a
    netlink library for this one job.  https://man7.org/linux/man-pages/man7/netdevice.7.html
    """
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        request = struct.pack("16sH14x", name.encode(), 0)
        try:
            flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | _IFF_UP))
        except OSError as e:
            raise _fail("ioctl(SIOCSIFFLAGS)", name, e.errno or _errno.EIO,
                        {_errno.ENODEV: "no such network interface in this namespace",
                         _errno.EPERM: "needs CAP_NET_ADMIN in the network namespace"}) from None


def mark_cloexec_from(lowest: int, keep: Iterable[int] = ()) -> None:
    """Set close-on-exec on every open fd >= ``lowest`` except those in ``keep``.

    The container must not inherit the runtime's descriptors (state files, the
    store's locks, a notebook's sockets) -- runc's CloseExecFrom.  Marking rather
    than closing keeps the fds the init still needs until the exec itself.
    """
    import fcntl

    kept = set(keep)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= lowest and fd not in kept:
            try:
                flags = fcntl.fcntl(fd, fcntl.F_GETFD)
                fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
            except OSError:
                pass  # the fd listdir itself used, already closed


# ------------------------------------------------------------------ devices and ids


def mknod(path: PathArg, mode: int, major: int, minor: int) -> None:
    """mknod(2): a device node for the container's minimal /dev (OCI ``linux.devices``).

    ``mode`` includes the type (``stat.S_IFCHR | 0o666``).
    https://man7.org/linux/man-pages/man2/mknod.2.html
    """
    try:
        os.mknod(path, mode, os.makedev(major, minor))
    except OSError as e:
        raise _fail("mknod", os.fspath(path), e.errno or _errno.EIO, {
            _errno.EPERM: "creating device nodes needs CAP_MKNOD in the initial user namespace; "
                          "in a user namespace bind-mount the host's device instead",
        }) from None


def setgroups(groups: Sequence[int]) -> None:
    """setgroups(2): the supplementary groups of ``process.user.additionalGids``.

    https://man7.org/linux/man-pages/man2/setgroups.2.html
    """
    try:
        os.setgroups(list(groups))
    except OSError as e:
        raise _fail("setgroups", None, e.errno or _errno.EIO, {
            _errno.EPERM: "needs CAP_SETGID; in a user namespace /proc/self/setgroups must say "
                          "'allow' and a gid_map must be written first",
        }) from None


def setresuid(ruid: int, euid: int, suid: int) -> None:
    """setresuid(2): switch to ``process.user.uid`` (real, effective and saved) before exec.

    https://man7.org/linux/man-pages/man2/setresuid.2.html
    """
    try:
        os.setresuid(ruid, euid, suid)
    except OSError as e:
        raise _fail("setresuid", f"{ruid}:{euid}:{suid}", e.errno or _errno.EIO, {
            _errno.EPERM: "needs CAP_SETUID",
            _errno.EINVAL: "the uid is not mapped in this user namespace (check uid_map)",
        }) from None


def setresgid(rgid: int, egid: int, sgid: int) -> None:
    """setresgid(2): switch to ``process.user.gid``; call it before setresuid, which drops CAP_SETGID.

    https://man7.org/linux/man-pages/man2/setresgid.2.html
    """
    try:
        os.setresgid(rgid, egid, sgid)
    except OSError as e:
        raise _fail("setresgid", f"{rgid}:{egid}:{sgid}", e.errno or _errno.EIO, {
            _errno.EPERM: "needs CAP_SETGID",
            _errno.EINVAL: "the gid is not mapped in this user namespace (check gid_map)",
        }) from None


# ------------------------------------------------------------------ seccomp (libseccomp)
# https://man7.org/linux/man-pages/man3/seccomp_rule_add.3.html

#: OCI ``linux.seccomp`` action -> libseccomp action value (the ERRNO/TRACE data goes in the low 16 bits).
SECCOMP_ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": 0x00000000,           # = KILL_THREAD
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}

#: OCI comparison operator -> libseccomp ``enum scmp_compare``.
SECCOMP_OPS: dict[str, int] = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}

#: OCI architecture -> libseccomp's name for it (resolved with seccomp_arch_resolve_name).
SECCOMP_ARCHES: dict[str, str] = {
    "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm", "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips", "SCMP_ARCH_MIPS64": "mips64", "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel", "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc", "SCMP_ARCH_PPC64": "ppc64", "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390", "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc", "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64",
}

_SCMP_FLTATR_CTL_NNP = 3
_NR_SCMP_ERROR = -1
_SECCOMP_LIB = "libseccomp.so.2"


class _ScmpArgCmp(ctypes.Structure):
    # struct scmp_arg_cmp from <seccomp.h>: 24 bytes on every ABI.
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


_seccomp: ctypes.CDLL | None = None


def _libseccomp() -> ctypes.CDLL:
    global _seccomp
    if _seccomp is None:
        try:
            lib = ctypes.CDLL(_SECCOMP_LIB, use_errno=True)
        except OSError:
            raise KernelError("load", _SECCOMP_LIB, _errno.ENOENT,
                              hint="seccomp filters need libseccomp: apt install libseccomp2") from None
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.restype = None
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(_ScmpArgCmp)]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        _seccomp = lib
    return _seccomp


def seccomp_available() -> bool:
    """Whether libseccomp (libseccomp.so.2) can be loaded, so :class:`SeccompFilter` works."""
    try:
        _libseccomp()
    except KernelError:
        return False
    return True


def seccomp_syscall_known(name: str) -> bool:
    """Whether libseccomp knows ``name`` as a syscall of any architecture.

    Names of other architectures ("socketcall" on x86_64) resolve to pseudo
    numbers and count as known; a typo or a syscall newer than the library does not.
    """
    return int(_libseccomp().seccomp_syscall_resolve_name(name.encode())) != _NR_SCMP_ERROR


def seccomp_action(action: str, errno_ret: int | None = None) -> int:
    """An OCI action name as libseccomp's value.

    ``SCMP_ACT_ERRNO`` and ``SCMP_ACT_TRACE`` carry ``errno_ret`` (OCI
    ``errnoRet``; default EPERM, as runc); ``"SCMP_ACT_ERRNO(38)"`` is accepted too.
    """
    match = re.fullmatch(r"(SCMP_ACT_\w+)\((\d+)\)", action)
    if match:
        action, errno_ret = match[1], int(match[2])
    if action not in SECCOMP_ACTIONS:
        raise KernelError("seccomp action", action, _errno.EINVAL,
                          hint=f"OCI seccomp actions are {', '.join(SECCOMP_ACTIONS)}")
    value = SECCOMP_ACTIONS[action]
    if action in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        value |= (_errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF
    return value


SeccompArg = tuple[int, str, int, int]


class SeccompFilter:
    """A seccomp-bpf filter built with libseccomp from an OCI ``linux.seccomp`` section.

    The runtime loads it as the last step before exec (it would block the
    set-up calls otherwise).  Rules and architectures are collected first and
    compiled by :meth:`load`; unknown syscall names are skipped and listed in
    ``skipped``, as runc does, so one profile serves older and newer kernels.
    ``no_new_privs=False`` (runc's choice) leaves that bit to the runtime:
    loading then needs CAP_SYS_ADMIN or :func:`set_no_new_privs` first.
    https://man7.org/linux/man-pages/man3/seccomp_init.3.html
    """

    def __init__(self, default_action: str, *, errno_ret: int | None = None,
                 no_new_privs: bool = False) -> None:
        self._lib = _libseccomp()
        self.default_action = seccomp_action(default_action, errno_ret)
        self.no_new_privs = no_new_privs
        self.arches: list[int] = []
        #: (action value, syscall name, syscall number, comparisons) for each rule to add.
        self.rules: list[tuple[int, str, int, list[SeccompArg]]] = []
        #: Syscall names this libseccomp does not know (not added, as in runc).
        self.skipped: list[str] = []

    def add_arch(self, oci_arch: str) -> None:
        """Also filter calls made with another ABI (``SCMP_ARCH_X86`` for 32-bit programs on x86_64).

        Without it such calls hit the bad-arch action and the process is killed.
        """
        name = SECCOMP_ARCHES.get(oci_arch, oci_arch)
        token = self._lib.seccomp_arch_resolve_name(name.encode())
        if token == 0:
            raise KernelError("seccomp_arch_add", oci_arch, _errno.EINVAL,
                              hint=f"unknown architecture; OCI knows {', '.join(SECCOMP_ARCHES)}")
        if token not in self.arches:
            self.arches.append(token)

    def add_rule(self, action: str, syscall: str, args: Sequence[SeccompArg] = (),
                 *, errno_ret: int | None = None) -> None:
        """Apply ``action`` when ``syscall`` is called with arguments matching all of ``args``.

        Each arg is (index 0-5, OCI op like "SCMP_CMP_EQ", value, value_two);
        value_two is the mask for SCMP_CMP_MASKED_EQ.  A rule whose action is
        the default action is dropped (libseccomp refuses it, runc skips it).
        """
        value = seccomp_action(action, errno_ret)
        for index, op, _, _ in args:
            if op not in SECCOMP_OPS or not 0 <= index <= 5:
                raise KernelError("seccomp_rule_add", syscall, _errno.EINVAL,
                                  hint=f"bad argument comparison ({index}, {op!r}): index is 0-5 "
                                       f"and op one of {', '.join(SECCOMP_OPS)}")
        nr = self._lib.seccomp_syscall_resolve_name(syscall.encode())
        if nr == _NR_SCMP_ERROR:
            self.skipped.append(syscall)
            return
        if value != self.default_action:
            self.rules.append((value, syscall, nr, list(args)))

    def load(self) -> None:
        """Compile the filter and install it on the calling thread (and its future children).

        https://man7.org/linux/man-pages/man3/seccomp_load.3.html
        """
        lib = self._lib
        ctx = self._build()
        try:
            self._seccomp_call("seccomp_load", None, lib.seccomp_load(ctx), _LOAD_HINTS)
        finally:
            lib.seccomp_release(ctx)

    def compile(self) -> bytes:
        """The filter as a classic BPF program (``struct sock_filter`` array), for :func:`load_bpf`.

        libseccomp takes tens of milliseconds to build Docker's profile; the
        runtime compiles each profile once in the parent and each container
        init only loads the bytes, which takes microseconds.
        https://man7.org/linux/man-pages/man3/seccomp_export_bpf.3.html
        """
        lib = self._lib
        ctx = self._build()
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            self._seccomp_call("seccomp_export_bpf", None, lib.seccomp_export_bpf(ctx, fd))
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)
            lib.seccomp_release(ctx)

    def _build(self) -> int:
        lib = self._lib
        ctx = lib.seccomp_init(self.default_action)
        if not ctx:
            raise KernelError("seccomp_init", None, _errno.EINVAL, hint="libseccomp refused the default action")
        try:
            self._seccomp_call("seccomp_attr_set", None, lib.seccomp_attr_set(
                ctx, _SCMP_FLTATR_CTL_NNP, int(self.no_new_privs)))
            for token in self.arches:
                rc = lib.seccomp_arch_add(ctx, token)
                if rc != -_errno.EEXIST:  # the native arch is always in
                    self._seccomp_call("seccomp_arch_add", hex(token), rc)
            for value, name, nr, args in self.rules:
                for group in _comparison_groups(args):
                    array = (_ScmpArgCmp * max(len(group), 1))(*(
                        _ScmpArgCmp(index, SECCOMP_OPS[op], a & 0xFFFFFFFFFFFFFFFF, b & 0xFFFFFFFFFFFFFFFF)
                        for index, op, a, b in group))
                    self._seccomp_call("seccomp_rule_add", name,
                                       lib.seccomp_rule_add_array(ctx, value, nr, len(group), array))
        except BaseException:
            lib.seccomp_release(ctx)
            raise
        return int(ctx)

    @staticmethod
    def _seccomp_call(op: str, path: str | None, rc: int, hints: dict[int, str] | None = None) -> None:
        # libseccomp returns -errno instead of setting errno.
        if rc < 0:
            raise _fail(op, path, -rc, hints)


_LOAD_HINTS = {
    _errno.EACCES: "loading a seccomp filter needs CAP_SYS_ADMIN or no_new_privs: "
                   "call set_no_new_privs() first",
    _errno.EINVAL: "the kernel refused the filter (is seccomp enabled: CONFIG_SECCOMP_FILTER?)",
}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


def load_bpf(program: bytes) -> None:
    """Install a compiled seccomp filter (:meth:`SeccompFilter.compile`) on the calling thread.

    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER): needs no_new_privs or CAP_SYS_ADMIN.
    https://man7.org/linux/man-pages/man2/seccomp.2.html
    """
    if not program or len(program) % 8:
        raise KernelError("seccomp", None, _errno.EINVAL, hint="not a BPF program (8-byte instructions)")
    prog = _SockFprog(len(program) // 8, program)
    _prctl("prctl(PR_SET_SECCOMP)", _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER,
           ctypes.addressof(prog), hints=_LOAD_HINTS)


def _comparison_groups(args: list[SeccompArg]) -> list[list[SeccompArg]]:
    """The comparisons of one OCI rule as libseccomp rules.

    libseccomp ANDs the comparisons of a rule but allows one per argument, so
    like runc, several comparisons on the same argument become one rule each (OR).
    """
    indexes = [index for index, _, _, _ in args]
    if len(set(indexes)) == len(indexes):
        return [args]
    return [[arg] for arg in args]


# ------------------------------------------------------------------ bpf (cgroup device programs)
# cgroup v2 has no devices controller: device rules are an eBPF program attached to
# the group (sandbox.cgroups.ebpf builds it).  https://man7.org/linux/man-pages/man2/bpf.2.html;
# the attribute layouts are ``union bpf_attr`` in include/uapi/linux/bpf.h.  A
# program stays attached after its fd is closed, until it is detached or the group
# is removed.

SYSCALL_NUMBERS["bpf"] = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361,
                          "s390x": 351, "riscv64": 280}

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6              # attach type
BPF_F_ALLOW_OVERRIDE = 1
BPF_F_ALLOW_MULTI = 2
_BPF_PROG_LOAD, _BPF_PROG_ATTACH, _BPF_PROG_DETACH = 5, 8, 9
_BPF_PROG_GET_FD_BY_ID, _BPF_PROG_QUERY = 13, 16

_BPF_HINTS = {
    _errno.EPERM: "eBPF programs need root (CAP_SYS_ADMIN, or CAP_BPF on Linux 5.8+)",
    _errno.ENOSYS: "this kernel has no bpf() system call (CONFIG_BPF_SYSCALL)",
    _errno.EBADF: "the target is not an open cgroup2 directory",
}


class _BpfProgLoadAttr(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
                ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32)]


class _BpfAttachAttr(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("replace_bpf_fd", ctypes.c_uint32)]


class _BpfQueryAttr(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                ("query_flags", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("prog_ids", ctypes.c_uint64), ("prog_cnt", ctypes.c_uint32)]


class _BpfGetFdAttr(ctypes.Structure):
    _fields_ = [("prog_id", ctypes.c_uint32), ("next_id", ctypes.c_uint32),
                ("open_flags", ctypes.c_uint32)]


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    return _syscall("bpf", cmd, ctypes.addressof(attr), ctypes.sizeof(attr))


def bpf_prog_load(prog_type: int, insns: bytes, license: str = "Apache", name: str = "",
                  expected_attach_type: int = 0) -> int:
    """Load an eBPF program (``struct bpf_insn`` array) and return its fd (close-on-exec).

    When the verifier refuses it, the load is repeated with a log and the log's
    last lines become the error's hint.
    """
    if not insns or len(insns) % 8:
        raise KernelError("bpf(BPF_PROG_LOAD)", name or None, _errno.EINVAL,
                          hint="the program must be a whole number of 8-byte instructions")
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    attr = _BpfProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8,
                            insns=ctypes.addressof(code), license=ctypes.addressof(lic),
                            prog_name=name.encode()[:15],
                            expected_attach_type=expected_attach_type)
    fd = _bpf(_BPF_PROG_LOAD, attr)
    if fd >= 0:
        return fd
    err = ctypes.get_errno()
    log = ctypes.create_string_buffer(1 << 16)
    attr.log_level, attr.log_size, attr.log_buf = 1, len(log), ctypes.addressof(log)
    fd = _bpf(_BPF_PROG_LOAD, attr)
    if fd >= 0:
        return fd
    text = log.value.decode(errors="replace").strip().splitlines()
    hints = dict(_BPF_HINTS)
    if text:
        hints[err] = "the verifier said: " + " | ".join(text[-4:])
    raise _fail("bpf(BPF_PROG_LOAD)", name or None, err, hints)


def bpf_prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = 0,
                    path: str | None = None) -> None:
    """Attach program ``prog_fd`` to ``target_fd`` (an open cgroup2 directory)."""
    attr = _BpfAttachAttr(target_fd=target_fd, attach_bpf_fd=prog_fd, attach_type=attach_type,
                          attach_flags=flags)
    _check(_bpf(_BPF_PROG_ATTACH, attr), "bpf(BPF_PROG_ATTACH)", path, {
        **_BPF_HINTS,
        _errno.EPERM: "a parent cgroup holds a device program that allows no others, "
                      "or this needs root (CAP_SYS_ADMIN)",
        _errno.EINVAL: "this kernel cannot attach this program type to a cgroup "
                       "(CONFIG_CGROUP_BPF)"})


def bpf_prog_detach(target_fd: int, prog_fd: int, attach_type: int, path: str | None = None) -> None:
    """Detach program ``prog_fd`` from ``target_fd``."""
    attr = _BpfAttachAttr(target_fd=target_fd, attach_bpf_fd=prog_fd, attach_type=attach_type)
    _check(_bpf(_BPF_PROG_DETACH, attr), "bpf(BPF_PROG_DETACH)", path, _BPF_HINTS)


def bpf_prog_query(target_fd: int, attach_type: int, path: str | None = None) -> list[int]:
    """Ids of the programs attached to ``target_fd`` itself (not its ancestors)."""
    size = 64
    for _ in range(10):
        ids = (ctypes.c_uint32 * size)()
        attr = _BpfQueryAttr(target_fd=target_fd, attach_type=attach_type,
                             prog_ids=ctypes.addressof(ids), prog_cnt=size)
        if _bpf(_BPF_PROG_QUERY, attr) >= 0:
            return list(ids[:attr.prog_cnt])
        err = ctypes.get_errno()
        if err != _errno.ENOSPC:    # ENOSPC: more programs than ids; prog_cnt says how many
            raise _fail("bpf(BPF_PROG_QUERY)", path, err, _BPF_HINTS)
        size = max(attr.prog_cnt, size * 2)
    raise _fail("bpf(BPF_PROG_QUERY)", path, _errno.ENOSPC, _BPF_HINTS)


def bpf_prog_get_fd_by_id(prog_id: int) -> int:
    """An fd (close-on-exec) for the loaded program with id ``prog_id``."""
    attr = _BpfGetFdAttr(prog_id=prog_id)
    return _check(_bpf(_BPF_PROG_GET_FD_BY_ID, attr), "bpf(BPF_PROG_GET_FD_BY_ID)",
                  str(prog_id), {**_BPF_HINTS, _errno.ENOENT: "the program is gone"})
