"""The calling process's own attributes, mostly through prctl(2).

https://man7.org/linux/man-pages/man2/prctl.2.html

no_new_privs, the parent-death signal, child subreaper, the thread's name,
dumpable and keepcaps, plus close-on-exec marking of inherited fds.  Separate
because the supervisor needs these (its name, subreaper) without the container
topics; the prctl table and ``_prctl`` are shared with :mod:`.caps` and
:mod:`.seccomp`, which import them from here.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from collections.abc import Iterable

from ._libc import _check, _libc

__all__ = [
    "PR_SET_PDEATHSIG", "PR_GET_PDEATHSIG", "PR_GET_KEEPCAPS", "PR_SET_KEEPCAPS", "PR_SET_NAME",
    "PR_GET_NAME", "PR_CAPBSET_READ", "PR_CAPBSET_DROP", "PR_SET_CHILD_SUBREAPER",
    "PR_GET_CHILD_SUBREAPER", "PR_SET_NO_NEW_PRIVS", "PR_GET_NO_NEW_PRIVS", "PR_CAP_AMBIENT",
    "PR_CAP_AMBIENT_IS_SET", "PR_CAP_AMBIENT_RAISE", "PR_CAP_AMBIENT_LOWER",
    "PR_CAP_AMBIENT_CLEAR_ALL", "PR_SET_DUMPABLE",
    "set_no_new_privs", "get_no_new_privs", "set_dumpable", "set_pdeathsig", "get_pdeathsig",
    "set_child_subreaper", "is_child_subreaper", "set_name", "get_name", "set_keepcaps",
    "get_keepcaps", "mark_cloexec_from",
]

_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.prctl.restype = ctypes.c_int

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
