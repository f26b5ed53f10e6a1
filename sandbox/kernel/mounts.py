"""Mounts: mount(2) flags, OCI mount options, mount, umount and pivot_root.

Separate because the image store and the container set-up mount too (overlay
layers, binds, volumes) without touching any other topic: they need this
module alone.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from collections.abc import Iterable

from ..errors import KernelError
from ._libc import PathArg, _b, _fail, _libc, _syscall

__all__ = [
    "MS_RDONLY", "MS_NOSUID", "MS_NODEV", "MS_NOEXEC", "MS_SYNCHRONOUS", "MS_REMOUNT",
    "MS_MANDLOCK", "MS_DIRSYNC", "MS_NOSYMFOLLOW", "MS_NOATIME", "MS_NODIRATIME", "MS_BIND",
    "MS_MOVE", "MS_REC", "MS_SILENT", "MS_POSIXACL", "MS_UNBINDABLE", "MS_PRIVATE", "MS_SLAVE",
    "MS_SHARED", "MS_RELATIME", "MS_I_VERSION", "MS_STRICTATIME", "MS_LAZYTIME", "MS_PROPAGATION",
    "MNT_DETACH", "MOUNT_OPTIONS", "PAGE_SIZE", "parse_mount_options", "mount", "umount",
    "pivot_root",
]

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

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
