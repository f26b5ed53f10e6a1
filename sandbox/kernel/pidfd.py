"""pidfds: process file descriptors that cannot be fooled by pid reuse.

https://man7.org/linux/man-pages/man2/pidfd_open.2.html

Separate because only the supervisor and the runtime's caller side use them (to
watch, signal and take back from container processes); none of it runs in
the container.  glibc 2.36 has no wrappers, so the calls go through
:data:`~sandbox.kernel.SYSCALL_NUMBERS`.
"""

from __future__ import annotations

import ctypes
import errno as _errno

from ._libc import _check, _libc, _syscall

__all__ = ["pidfd_open", "pidfd_send_signal", "pidfd_getfd", "PIDFD_GET_INFO", "PIDFD_INFO_EXIT",
           "pidfd_exit_status"]


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
