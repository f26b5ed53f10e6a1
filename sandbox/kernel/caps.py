"""Capabilities: names and bit masks, the bounding and ambient sets, capget and capset.

https://man7.org/linux/man-pages/man7/capabilities.7.html

Separate because the table is data as well: the spec generator and the option
parser read :data:`CAPS` without making a call.  The calls (bounding set first,
then capset, then the ambient set) go through :mod:`.process`'s prctl.
"""

from __future__ import annotations

import ctypes
import errno as _errno
from collections.abc import Iterable

from ..errors import KernelError
from ._libc import _fail, _libc
from .process import (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAP_AMBIENT_IS_SET,
                      PR_CAP_AMBIENT_RAISE, PR_CAPBSET_DROP, PR_CAPBSET_READ, _prctl)

__all__ = [
    "CAPS", "cap_number", "caps_from_mask", "caps_to_mask", "last_cap", "host_bounding_set",
    "capbset_read", "capbset_drop", "cap_ambient_raise", "cap_ambient_clear_all",
    "cap_ambient_is_set", "capget", "capset",
]

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
