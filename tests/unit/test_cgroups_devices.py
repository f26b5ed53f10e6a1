"""Device rules: OCI parsing, the kernel's model, v1 writes, v2's eBPF program.

No root needed: v1 writes land in a fake tree; the v2 program is run by a
small interpreter of the instructions it uses (the real kernel runs it in
tests/integration/test_cgroups.py) and the bpf(2) calls are recorded.
"""

from __future__ import annotations

import errno
import itertools
import os
import random
import struct
import sys

import pytest

from sandbox import kernel
from sandbox.cgroups import (
    CgroupError,
    CgroupUnavailable,
    DeviceRule,
    DeviceRuleSet,
    InvalidResources,
    device_allowed,
    open_cgroup,
    parse_device_rules,
)
from sandbox.cgroups import ebpf
from sandbox.errors import KernelError
from tests.unit.test_cgroups import fail_writes_to, make_v1, make_v2
from tests.unit.test_cgroups import writes  # noqa: F401  (a fixture)

DENY_ALL = {"allow": False, "access": "rwm"}

#: Docker's default device rules (oci/defaults.go), as they appear in config.json.
DOCKER_DEFAULT = [
    DENY_ALL,
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
      for ma, mi in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (10, 200))),
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
]


# ====================================================================== parsing

@pytest.mark.parametrize("rules, message", [
    ("c 1:3 rwm", r"linux.resources.devices must be a list"),
    ([DENY_ALL, "c 1:3"], r"devices\[1\] must be an object"),
    ([{"type": "c"}], r"devices\[0\].allow must be true or false \(it is required\)"),
    ([{"allow": "yes"}], r"devices\[0\].allow must be true or false, not 'yes'"),
    ([{"allow": True, "type": "x"}], r"devices\[0\].type must be"),
    ([DENY_ALL, {"allow": True, "type": "c", "major": "1"}], r"devices\[1\].major must be an integer"),
    ([{"allow": True, "type": "c", "minor": True}], r"devices\[0\].minor must be an integer"),
    ([{"allow": True, "type": "c", "minor": 1.5}], r"devices\[0\].minor must be an integer"),
    ([{"allow": True, "type": "c", "major": 1 << 32}], r"devices\[0\].major must be between"),
    ([{"allow": True, "type": "c", "major": -2}], r"devices\[0\].major must be between"),
    ([{"allow": True, "type": "c", "access": "rx"}], r"devices\[0\].access must be a combination"),
    ([{"allow": True, "type": "c", "access": ""}], r"devices\[0\].access"),
    ([{"allow": True, "type": "c", "access": "rr"}], r"devices\[0\].access"),
    ([{"allow": True, "type": "a", "access": "r"}], r'devices\[0\]: type "a" means every device'),
    ([{"allow": False, "major": 1}], r'devices\[0\]: type "a"'),
])
def test_bad_rules_name_the_field(rules, message):
    with pytest.raises(InvalidResources, match=message):
        parse_device_rules(rules)


def test_rule_defaults_and_spelling():
    rules = parse_device_rules([
        DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": -1, "access": "wr"},
        {"allow": True, "type": "b", "major": None, "minor": 3},
        {"allow": False, "type": None, "access": None},
    ])
    assert rules == [DeviceRule(False), DeviceRule(True, "c", 1, None, "rw"),
                     DeviceRule(True, "b", None, 3, "rwm"), DeviceRule(False)]
    assert [r.cgroup_line() for r in rules] == ["a *:* rwm", "c 1:* rw", "b *:3 rwm", "a *:* rwm"]
    assert str(rules[1]) == "allow c 1:* rw"
    assert parse_device_rules(None) == [] and parse_device_rules(rules) == rules


# ====================================================================== the kernel's model

def test_docker_default_rules():
    assert device_allowed(DOCKER_DEFAULT, "c", 1, 3, "rw")           # /dev/null
    assert device_allowed(DOCKER_DEFAULT, "c", 136, 4, "rw")         # a pty
    assert device_allowed(DOCKER_DEFAULT, "c", 8, 0, "m")            # mknod anything
    assert device_allowed(DOCKER_DEFAULT, "b", 8, 0, "m")
    assert not device_allowed(DOCKER_DEFAULT, "b", 8, 0, "r")        # but not open it
    assert not device_allowed(DOCKER_DEFAULT, "c", 10, 229, "rw")    # /dev/fuse
    assert not device_allowed(DOCKER_DEFAULT, "c", 1, 1, "r")        # /dev/mem


def test_privileged_and_last_rule_wins():
    assert device_allowed([{"allow": True, "access": "rwm"}], "b", 8, 0, "rwm")
    assert not device_allowed([], "c", 1, 3, "r")                    # runc starts from deny-all
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
             {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]
    assert device_allowed(rules, "c", 1, 3, "r") and not device_allowed(rules, "c", 1, 3, "rw")
    rules += [{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 1}]
    assert device_allowed(rules, "c", 2, 0, "rw") and not device_allowed(rules, "c", 1, 9, "m")
    assert not device_allowed(rules, "c", 1, 9, "rm")   # one denied letter refuses the request


def test_a_request_needs_one_rule_granting_every_letter():
    """cgroup v1 (and the eBPF filter) match one exception per request, as the kernel does."""
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 1, "access": "r"},
             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "w"}]
    assert device_allowed(rules, "c", 1, 3, "r") and device_allowed(rules, "c", 1, 3, "w")
    assert not device_allowed(rules, "c", 1, 3, "rw")
    same = [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "w"}]
    assert device_allowed(same, "c", 1, 3, "rw")          # the same pattern is merged


@pytest.mark.parametrize("rules", [
    [DENY_ALL, {"allow": True, "type": "c", "major": 1}, {"allow": False, "type": "c", "major": 1, "minor": 3}],
    [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 5}, {"allow": False, "type": "c"}],
    [DENY_ALL, {"allow": True, "type": "c", "major": 1}, {"allow": False, "type": "c", "minor": 3}],
    [{"allow": True}, {"allow": False, "type": "b"}, {"allow": True, "type": "b", "major": 8, "access": "r"}],
])
def test_rules_the_kernel_would_ignore_are_refused(rules):
    with pytest.raises(InvalidResources, match=r"devices\[2\].*only changes a rule with exactly") as info:
        DeviceRuleSet.from_rules(rules)
    assert info.value.hint


def test_taking_back_a_different_letter_or_type_is_fine():
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 1, "access": "r"},
             {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
             {"allow": False, "type": "b", "major": 1, "minor": 3}]
    assert DeviceRuleSet.from_rules(rules).exceptions == {("c", 1, None): "r"}


def test_minimal_rule_list():
    state = DeviceRuleSet.from_rules(DOCKER_DEFAULT + [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"},
        {"allow": False, "type": "c", "major": 5, "minor": 2, "access": "rw"}])
    lines = [str(r) for r in state.rules()]
    assert lines[:3] == ["deny a *:* rwm", "allow b *:* m", "allow c *:* m"]
    assert "allow c 1:3 rwm" in lines and "allow c 5:2 m" in lines
    # Taking "m" back from /dev/ptmx too would be ignored: "allow c *:* m" still covers it.
    with pytest.raises(InvalidResources, match=r"cannot take 'm' back from the earlier rule allow c \*:\* m"):
        DeviceRuleSet.from_rules(DOCKER_DEFAULT + [{"allow": False, "type": "c", "major": 5, "minor": 2}])


def _last_match_wins(rules: list[DeviceRule], kind: str, major: int, minor: int, letter: str) -> bool:
    for r in reversed(rules):
        if r.is_reset:
            return r.allow
        if r.type == kind and r.major in (None, major) and r.minor in (None, minor) \
                and letter in r.access:
            return r.allow
    return False


def _random_rules(rng: random.Random) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for _ in range(rng.randint(0, 6)):
        if rng.random() < 0.15:
            out.append({"allow": rng.random() < 0.5})
            continue
        out.append({"allow": rng.random() < 0.5, "type": rng.choice("bc"),
                    "major": rng.choice([None, 1, 2]), "minor": rng.choice([None, 3, 5]),
                    "access": "".join(rng.sample("rwm", rng.randint(1, 3)))})
    return out


REQUESTS = [(kind, major, minor, "".join(access))
            for kind, major, minor in itertools.product("bc", (1, 2, 7), (3, 5, 9))
            for n in (1, 2, 3) for access in itertools.combinations("rwm", n)]


def _accepted_rule_lists(count: int) -> list[list[dict[str, object]]]:
    rng, out = random.Random(20240531), []
    while len(out) < count:
        rules = _random_rules(rng)
        try:
            DeviceRuleSet.from_rules(rules)
        except InvalidResources:
            continue
        out.append(rules)
    return out


def test_accepted_lists_mean_last_match_wins_per_letter():
    for rules in _accepted_rule_lists(400):
        checked = parse_device_rules(rules)
        state = DeviceRuleSet.from_rules(rules)
        for kind, major, minor, access in REQUESTS:
            if len(access) == 1:
                assert state.allowed(kind, major, minor, access) == \
                    _last_match_wins(checked, kind, major, minor, access), (rules, kind, major, minor, access)


def test_allowed_refuses_nonsense_requests():
    state = DeviceRuleSet()
    with pytest.raises(ValueError):
        state.allowed("a", 1, 3, "r")
    with pytest.raises(ValueError):
        state.allowed("c", 1, 3, "x")


# ====================================================================== the eBPF program

MASK64 = (1 << 64) - 1


def run_filter(program: ebpf.Program, kind: str, major: int, minor: int, access: str) -> int:
    """Run the program the way the kernel would, for the instructions it uses."""
    ctx = struct.pack("=III", sum(ebpf.ACCESS_BITS[c] for c in access) << 16 | ebpf.DEVICE_TYPES[kind],
                      major, minor)
    regs = [0] * 11
    insns = program.resolved()
    pc = 0
    for _ in range(10_000):
        i = insns[pc]
        pc += 1
        imm = i.imm & MASK64
        if i.code == ebpf.LDX_MEM_W:
            assert i.src == ebpf.R1 and i.imm == 0
            regs[i.dst] = struct.unpack_from("=I", ctx, i.off)[0]
        elif i.code == ebpf.AND64_IMM:
            regs[i.dst] &= imm
        elif i.code == ebpf.RSH64_IMM:
            regs[i.dst] >>= i.imm
        elif i.code == ebpf.MOV64_IMM:
            regs[i.dst] = imm
        elif i.code == ebpf.MOV64_REG:
            regs[i.dst] = regs[i.src]
        elif i.code == ebpf.JEQ_IMM:
            pc += i.off if regs[i.dst] == imm else 0
        elif i.code == ebpf.JNE_IMM:
            pc += i.off if regs[i.dst] != imm else 0
        elif i.code == ebpf.JNE_REG:
            pc += i.off if regs[i.dst] != regs[i.src] else 0
        elif i.code == ebpf.JNE32_IMM:
            pc += i.off if regs[i.dst] & 0xFFFFFFFF != i.imm & 0xFFFFFFFF else 0
        elif i.code == ebpf.EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {i.code:#x}")
    raise AssertionError("the program did not end")


def test_filter_agrees_with_the_model():
    for rules in _accepted_rule_lists(300) + [DOCKER_DEFAULT]:
        state = DeviceRuleSet.from_rules(rules)
        program = ebpf.device_filter(state)
        assert all(i.off >= 0 for i in program.resolved())   # forward jumps only: no loops
        for kind, major, minor, access in REQUESTS:
            assert run_filter(program, kind, major, minor, access) == \
                int(state.allowed(kind, major, minor, access)), (rules, kind, major, minor, access)


def test_filter_handles_numbers_above_2_31():
    state = DeviceRuleSet.from_rules([DENY_ALL, {"allow": True, "type": "c", "major": 0xFFFFFFF0,
                                                  "minor": 1 << 31, "access": "r"}])
    program = ebpf.device_filter(state)
    assert run_filter(program, "c", 0xFFFFFFF0, 1 << 31, "r") == 1
    assert run_filter(program, "c", 0xFFFFFFF0, 1 << 30, "r") == 0


@pytest.mark.skipif(sys.byteorder != "little", reason="checks the little-endian encoding")
def test_instruction_encoding():
    p = ebpf.Program()
    p.emit(ebpf.LDX_MEM_W, ebpf.R4, ebpf.R1, off=4)
    p.emit(ebpf.JNE32_IMM, ebpf.R4, imm=-1, target="end")
    p.emit(ebpf.MOV64_IMM, ebpf.R0, imm=1)
    p.label("end")
    p.emit(ebpf.EXIT)
    assert p.assemble() == bytes.fromhex("6114040000000000" "56040100ffffffff"
                                         "b700000001000000" "9500000000000000")


# ====================================================================== v1 writes

def test_v1_writes_deny_all_then_the_rules_in_order(tmp_path, writes):
    make_v1(tmp_path)
    cg = open_cgroup("c1", version="v1", root=tmp_path)
    rules = [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
             {"allow": True, "type": "c", "major": 136, "access": "rw"},
             {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "m"}]
    assert cg.apply_devices(rules) == []
    assert writes == [("devices.deny", "a"), ("devices.allow", "c 1:3 rwm"),
                      ("devices.allow", "c 136:* rw"), ("devices.deny", "c 1:3 m")]
    writes.clear()
    cg.apply_devices([{"allow": True}, {"allow": False, "type": "b", "major": 8}])
    assert writes == [("devices.allow", "a *:* rwm"), ("devices.deny", "b 8:* rwm")]
    writes.clear()
    cg.apply_devices([])
    assert writes == [("devices.deny", "a")]            # nothing listed: nothing allowed


def test_v1_refused_rules_write_nothing(tmp_path, writes):
    make_v1(tmp_path)
    cg = open_cgroup("c1", version="v1", root=tmp_path)
    with pytest.raises(InvalidResources, match=r"devices\[2\].minor"):
        cg.apply_devices([DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3},
                          {"allow": True, "type": "c", "major": 1, "minor": "5"}])
    with pytest.raises(InvalidResources, match=r"devices\[2\]"):
        cg.apply_devices([DENY_ALL, {"allow": True, "type": "c", "major": 1},
                          {"allow": False, "type": "c", "major": 1, "minor": 3}])
    assert writes == []


def test_v1_missing_devices_controller_or_group(tmp_path):
    make_v1(tmp_path, skip=("devices",))
    cg = open_cgroup("c1", version="v1", root=tmp_path)
    with pytest.raises(CgroupUnavailable, match="devices controller is not mounted"):
        cg.apply_devices([DENY_ALL])
    with pytest.raises(CgroupError, match="does not exist"):
        open_cgroup("nope", version="v1", root=tmp_path).apply_devices([DENY_ALL])


def test_v1_refused_write_explains_the_parent(tmp_path, monkeypatch):
    make_v1(tmp_path)
    fail_writes_to(monkeypatch, "devices.allow", errno.EPERM)
    monkeypatch.setattr("os.geteuid", lambda: 0)
    with pytest.raises(CgroupError, match="parent group allows") as info:
        open_cgroup("c1", version="v1", root=tmp_path).apply_devices([DENY_ALL, {"allow": True}])
    assert info.value.errno == errno.EPERM


# ====================================================================== v2 bpf calls

class FakeBpf:
    """Records the bpf(2) calls; ``attached`` plays the kernel's list."""

    def __init__(self, monkeypatch, attached=(), fail=None):
        self.calls: list[tuple[object, ...]] = []
        self.attached = list(attached)
        self.fail = fail or {}
        self.programs: list[bytes] = []
        for name in ("bpf_prog_query", "bpf_prog_load", "bpf_prog_attach",
                     "bpf_prog_detach", "bpf_prog_get_fd_by_id"):
            monkeypatch.setattr(kernel, name, getattr(self, name.removeprefix("bpf_")))

    def _maybe_fail(self, op):
        if op in self.fail:
            raise KernelError(f"bpf({op})", None, self.fail[op], hint="told to fail")

    def prog_query(self, fd, attach_type):
        self.calls.append(("query", attach_type))
        return list(self.attached)

    def prog_load(self, prog_type, insns, license, name):
        self._maybe_fail("BPF_PROG_LOAD")
        self.calls.append(("load", prog_type, license, name))
        self.programs.append(insns)
        return _devnull()

    def prog_attach(self, target, prog, attach_type, flags=0):
        self._maybe_fail("BPF_PROG_ATTACH")
        self.calls.append(("attach", attach_type, flags))

    def prog_get_fd_by_id(self, prog_id):
        self.calls.append(("get", prog_id))
        return _devnull()

    def prog_detach(self, target, prog, attach_type):
        self.calls.append(("detach", attach_type))


def _devnull() -> int:
    return os.open("/dev/null", os.O_RDONLY)


def test_v2_loads_attaches_then_detaches_the_old_program(tmp_path, monkeypatch):
    make_v2(tmp_path)
    cg = open_cgroup("c1", version="v2", root=tmp_path)
    bpf = FakeBpf(monkeypatch, attached=[41])
    assert cg.apply_devices(DOCKER_DEFAULT) == []
    assert bpf.calls == [("query", kernel.BPF_CGROUP_DEVICE),
                         ("load", kernel.BPF_PROG_TYPE_CGROUP_DEVICE, "Apache", "sandbox_devices"),
                         ("attach", kernel.BPF_CGROUP_DEVICE, kernel.BPF_F_ALLOW_MULTI),
                         ("get", 41), ("detach", kernel.BPF_CGROUP_DEVICE)]
    assert bpf.programs == [ebpf.device_filter(DeviceRuleSet.from_rules(DOCKER_DEFAULT)).assemble()]


def test_v2_kernel_without_cgroup_bpf_is_unavailable(tmp_path, monkeypatch):
    make_v2(tmp_path)
    cg = open_cgroup("c1", version="v2", root=tmp_path)
    FakeBpf(monkeypatch, fail={"BPF_PROG_ATTACH": errno.EINVAL})
    with pytest.raises(CgroupUnavailable, match="apply device rules to cgroup") as info:
        cg.apply_devices([DENY_ALL])
    assert info.value.errno == errno.EINVAL and info.value.hint == "told to fail"
    FakeBpf(monkeypatch, fail={"BPF_PROG_LOAD": errno.EPERM})
    with pytest.raises(CgroupError) as info:
        cg.apply_devices([DENY_ALL])
    assert not isinstance(info.value, CgroupUnavailable) and info.value.errno == errno.EPERM


def test_v2_bad_rules_touch_no_kernel(tmp_path, monkeypatch):
    make_v2(tmp_path)
    bpf = FakeBpf(monkeypatch)
    with pytest.raises(InvalidResources, match=r"devices\[0\].type"):
        open_cgroup("c1", version="v2", root=tmp_path).apply_devices([{"allow": True, "type": "u"}])
    assert bpf.calls == []
