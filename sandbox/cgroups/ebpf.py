"""The eBPF device filter that stands in for cgroup v1's devices controller on v2.

cgroup v2 has no devices files: a BPF_PROG_TYPE_CGROUP_DEVICE program attached
to the group decides each open(2) and mknod(2) of a device node (return 1 to
allow, 0 for EPERM).  Its context is ``struct bpf_cgroup_dev_ctx``
(include/uapi/linux/bpf.h)::

    u32 access_type   (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*
    u32 major
    u32 minor

The program is built from :class:`~sandbox.cgroups.devices.DeviceRuleSet`, the
same model of cgroup v1 that :func:`~sandbox.cgroups.devices.device_allowed`
evaluates, so both versions mean the same thing -- runc does the same in
``libcontainer/cgroups/devices/devicefilter.go`` (after crun's ebpf.c).  One
block per exception, then the default::

    r2 = type; r3 = access; r4 = major; r5 = minor
    if type matches and access fits and major, minor match: return !default
    ...
    return default

Only plain instructions are used (no maps, no helpers), so any kernel with
cgroup BPF and 32-bit jumps (Linux 5.1+) verifies it.  Loading and attaching
is :mod:`sandbox.kernel.bpf`'s ``bpf_*`` functions.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass

from .devices import DeviceRuleSet

#: A license string the kernel accepts for a program calling no GPL-only helper.
LICENSE = "Apache"

# struct bpf_cgroup_dev_ctx values
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
DEV_BLOCK, DEV_CHAR = 1, 2
ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
DEVICE_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}
ALL_ACCESS = ACC_MKNOD | ACC_READ | ACC_WRITE

# Opcodes (include/uapi/linux/bpf.h, bpf_common.h): class | operation | source.
LDX_MEM_W = 0x61          # BPF_LDX | BPF_MEM | BPF_W
AND64_IMM = 0x57          # BPF_ALU64 | BPF_AND | BPF_K
RSH64_IMM = 0x77          # BPF_ALU64 | BPF_RSH | BPF_K
MOV64_IMM = 0xB7          # BPF_ALU64 | BPF_MOV | BPF_K
MOV64_REG = 0xBF          # BPF_ALU64 | BPF_MOV | BPF_X
JEQ_IMM = 0x15            # BPF_JMP | BPF_JEQ | BPF_K
JNE_IMM = 0x55            # BPF_JMP | BPF_JNE | BPF_K
JNE_REG = 0x5D            # BPF_JMP | BPF_JNE | BPF_X
JNE32_IMM = 0x56          # BPF_JMP32 | BPF_JNE | BPF_K: compares the low 32 bits
EXIT = 0x95               # BPF_JMP | BPF_EXIT
R0, R1, R2, R3, R4, R5 = range(6)


@dataclass(frozen=True)
class Insn:
    """One instruction; ``target`` is a label resolved into ``off`` by assemble()."""

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    target: str | None = None


def _imm32(value: int) -> int:
    """A u32 as the s32 the instruction stores (a JMP32 compares the same bits)."""
    return value - (1 << 32) if value >= 1 << 31 else value


class Program:
    """A straight-line program with forward jumps to labels."""

    def __init__(self) -> None:
        self.insns: list[Insn] = []
        self.labels: dict[str, int] = {}

    def emit(self, code: int, dst: int = 0, src: int = 0, *, off: int = 0, imm: int = 0,
             target: str | None = None) -> None:
        self.insns.append(Insn(code, dst, src, off, imm, target))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def resolved(self) -> list[Insn]:
        """The instructions with each jump's offset (counted from the next instruction)."""
        out = []
        for i, insn in enumerate(self.insns):
            if insn.target is not None:
                insn = Insn(insn.code, insn.dst, insn.src, self.labels[insn.target] - i - 1, insn.imm)
            out.append(insn)
        return out

    def assemble(self) -> bytes:
        """``struct bpf_insn`` array in this machine's byte order."""
        little = sys.byteorder == "little"
        fmt = "<BBhi" if little else ">BBhi"
        out = bytearray()
        for insn in self.resolved():
            regs = (insn.src << 4 | insn.dst) if little else (insn.dst << 4 | insn.src)
            out += struct.pack(fmt, insn.code, regs, insn.off, insn.imm)
        return bytes(out)


def device_filter(rule_set: DeviceRuleSet) -> Program:
    """The filter program for ``rule_set`` (see the module docstring)."""
    p = Program()
    p.emit(LDX_MEM_W, R2, R1, off=0)                 # r2 = ctx->access_type
    p.emit(AND64_IMM, R2, imm=0xFFFF)             #      & 0xffff: the device type
    p.emit(LDX_MEM_W, R3, R1, off=0)                 # r3 = ctx->access_type
    p.emit(RSH64_IMM, R3, imm=16)                 #      >> 16: the access bits
    p.emit(LDX_MEM_W, R4, R1, off=4)                 # r4 = ctx->major
    p.emit(LDX_MEM_W, R5, R1, off=8)                 # r5 = ctx->minor
    default = int(rule_set.default_allow)
    for i, rule in enumerate(rule_set.rules()[1:]):   # [0] is the reset that sets the default
        skip = f"rule{i + 1}"
        p.emit(JNE_IMM, R2, imm=DEVICE_TYPES[rule.type], target=skip)
        bits = sum(ACCESS_BITS[c] for c in rule.access)
        if bits != ALL_ACCESS:
            p.emit(MOV64_REG, R1, R3)             # r1 (ctx no longer needed) = access & bits
            p.emit(AND64_IMM, R1, imm=bits)
            if rule_set.default_allow:            # a deny exception hits any shared bit
                p.emit(JEQ_IMM, R1, imm=0, target=skip)
            else:                                 # an allow exception must hold every bit
                p.emit(JNE_REG, R1, R3, target=skip)
        if rule.major is not None:
            p.emit(JNE32_IMM, R4, imm=_imm32(rule.major), target=skip)
        if rule.minor is not None:
            p.emit(JNE32_IMM, R5, imm=_imm32(rule.minor), target=skip)
        p.emit(MOV64_IMM, R0, imm=1 - default)
        p.emit(EXIT)
        p.label(skip)
    p.emit(MOV64_IMM, R0, imm=default)
    p.emit(EXIT)
    return p
