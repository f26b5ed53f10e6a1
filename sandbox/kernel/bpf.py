"""bpf(2): load, attach, detach and query the eBPF programs of cgroup v2 devices.

https://man7.org/linux/man-pages/man2/bpf.2.html; the attribute layouts are
``union bpf_attr`` in include/uapi/linux/bpf.h.

cgroup v2 has no devices controller: device rules are an eBPF program attached
to the group (:mod:`sandbox.cgroups.ebpf` builds it).  A program stays attached
after its fd is closed, until it is detached or the group is removed.
Separate because only the cgroup code on a v2 host calls it, in the caller
and never in the container.
"""

from __future__ import annotations

import ctypes
import errno as _errno

from ..errors import KernelError
from ._libc import _check, _fail, _syscall

__all__ = [
    "BPF_PROG_TYPE_CGROUP_DEVICE", "BPF_CGROUP_DEVICE", "BPF_F_ALLOW_OVERRIDE", "BPF_F_ALLOW_MULTI",
    "bpf_prog_load", "bpf_prog_attach", "bpf_prog_detach", "bpf_prog_query", "bpf_prog_get_fd_by_id",
]

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
