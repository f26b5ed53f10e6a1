"""libc, loaded once; the errno -> :class:`~sandbox.errors.KernelError` helpers; syscall numbers.

The bottom of :mod:`sandbox.kernel`: every topic module imports this one and
nothing imports upwards.  It is separate so that libc is opened in one place
and each topic sets the ``argtypes`` of only the functions it calls.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import platform

from ..errors import KernelError

__all__ = ["PathArg", "SYSCALL_NUMBERS", "syscall_number"]


def _load_libc() -> ctypes.CDLL:
    """glibc by its soname first: ``find_library`` runs ``ldconfig -p`` (about 10 ms),
    which every cold ``sandbox`` command would pay."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library   # runs ldconfig: only when the soname did not load
        return ctypes.CDLL(find_library("c"), use_errno=True)


_libc = _load_libc()
_libc.syscall.restype = ctypes.c_long

PathArg = str | os.PathLike[str]  # a path as os.open accepts it

_EPERM_ROOT = "this needs root (CAP_SYS_ADMIN); is the process running without root?"


def _b(value: PathArg | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


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
    # bpf(2): cgroup v2 device programs (sandbox.kernel.bpf)
    "bpf": {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361,
            "s390x": 351, "riscv64": 280},
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
