"""seccomp: filters built with libseccomp from an OCI ``linux.seccomp`` section, and load_bpf.

https://man7.org/linux/man-pages/man3/seccomp_rule_add.3.html

Separate because it is the one topic with a library of its own
(libseccomp.so.2, opened on first use), and only the runtime needs it:
:class:`SeccompFilter` compiles a profile once, in the caller, and the
container's init only hands the bytes to :func:`load_bpf` (prctl, from
:mod:`.process`) as its last step before exec.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import re
from collections.abc import Sequence

from ..errors import KernelError
from ._libc import _fail
from .process import _prctl

__all__ = [
    "SECCOMP_ACTIONS", "SECCOMP_OPS", "SECCOMP_ARCHES", "seccomp_available",
    "seccomp_syscall_known", "seccomp_action", "SeccompArg", "SeccompFilter", "load_bpf",
]

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
