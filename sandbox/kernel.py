"""The only module that calls libc through ctypes.

Every wrapper raises :class:`sandbox.errors.KernelError` keeping the errno, the
operation and the path, so a failure reads like ``mount overlay on /x: invalid
argument`` instead of a bare ``OSError``.  The runtime issue extends this
module (clone, setns, pivot_root, capabilities); for now the image store needs
mount and umount.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

from .errors import KernelError

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

# mount(2) flags, from <sys/mount.h>
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

# umount2(2) flags
MNT_DETACH = 2

#: The kernel copies mount options into one page; longer option strings are cut
#: and overlay then fails with a misleading ENOENT (see DESIGN.md).
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _b(value: str | os.PathLike[str] | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(source: str | None, target: str | os.PathLike[str], fstype: str | None,
          flags: int = 0, data: str | None = None) -> None:
    """mount(2).  ``data`` longer than a page is refused before the kernel cuts it."""
    if data is not None and len(data.encode()) >= PAGE_SIZE:
        raise KernelError(f"mount {fstype or source}", os.fspath(target), 7,  # E2BIG
                          hint=f"mount options are {len(data)} bytes, over the kernel's {PAGE_SIZE}-byte page")
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        err = ctypes.get_errno()
        hint = "mounting needs root (CAP_SYS_ADMIN)" if err == 1 else None
        raise KernelError(f"mount {fstype or source}", os.fspath(target), err, hint=hint)


def umount(target: str | os.PathLike[str], flags: int = 0) -> None:
    """umount2(2)."""
    if _libc.umount2(_b(target), flags) != 0:
        raise KernelError("umount", os.fspath(target), ctypes.get_errno())
