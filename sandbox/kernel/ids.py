"""Devices and ids: mknod for the container's /dev, setgroups, setresgid and setresuid.

Separate because these are thin wrappers of :mod:`os` calls, not ctypes: they
exist so that a failure is a :class:`~sandbox.errors.KernelError` with a hint
(CAP_MKNOD, an unmapped uid) like every other step of the set-up.
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Sequence

from ._libc import PathArg, _fail

__all__ = ["mknod", "setgroups", "setresuid", "setresgid"]


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
