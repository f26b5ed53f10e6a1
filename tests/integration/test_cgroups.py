"""sandbox.cgroups on this machine's real hierarchies (root only).

v1: limits land in the kernel's files, a real process is counted, frozen
(its CPU time stops), thawed, killed, and its group removed; a memory hog is
OOM-killed inside a 32 MB group, the kill is counted and the OOM notifier
(an eventfd) reports it; a pids limit holds while a process forks past it;
device rules let a process open /dev/null and refuse /dev/zero.  v2: the
cgroup2 mount (``/sys/fs/cgroup/unified`` on a hybrid host) freezes through
cgroup.freeze/cgroup.events, kills through cgroup.kill, enforces device rules
with a real eBPF program, and its POLLPRI change notification (what the v2
OOM notifier waits for on memory.events) is exercised on cgroup.events when
the memory controller is bound to v1.  Both versions give the same Stats shape.

Every group is named ``sandbox-test-<random>/x`` and removed in a finally
block, every child is reaped; the session's leak checker fails the run
otherwise.  Nothing here needs CAP_SYS_RESOURCE.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import secrets
import select
import signal
import subprocess
import sys
import time
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import kernel
from sandbox.cgroups import (
    Cgroup,
    CgroupError,
    CgroupUnavailable,
    InvalidResources,
    Resources,
    Stats,
    detect,
    device_allowed,
    open_cgroup,
)
from sandbox.cgroups.fs import read_mountinfo
from sandbox.cgroups.oom import EventsFileNotifier
from tests.conftest import requires_root

pytestmark = requires_root

MB = 1024 * 1024


def _cgroup2_mount() -> Path | None:
    for m in read_mountinfo():
        if m.fstype == "cgroup2":
            return m.mount_point
    return None


def _spawn_in(cg: Cgroup, argv: list[str]) -> subprocess.Popen[bytes]:
    """Start ``argv`` so that it runs (and allocates) only once inside ``cg``.

    A shell waits for one line on stdin, the test moves it into the group, and
    only then does it exec the program: memory the program touches is charged
    to the group (v1 does not move old charges), and it cannot fork outside.
    """
    proc = subprocess.Popen(["/bin/sh", "-c", 'read _; exec "$@"', "sh", *argv],
                            stdin=subprocess.PIPE)
    try:
        cg.add(proc.pid)
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.close()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def _reap(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:  # still frozen somewhere: nothing more to do here
            pass


def _cleanup(top: Cgroup, *groups: Cgroup) -> None:
    """Kill what is left (thawing frozen groups), then remove the groups, leaf first."""
    for cg in (*groups, top):
        if cg.exists():
            try:
                cg.kill()
            except CgroupError:
                pass
    for cg in (*groups, top):
        cg.destroy()


@pytest.fixture
def v1_group() -> Iterator[Cgroup]:
    if detect() != "v1":
        pytest.skip("requires a cgroup v1 (or hybrid) host")
    prefix = f"sandbox-test-{secrets.token_hex(4)}"
    cg = open_cgroup(f"{prefix}/x", version="v1")
    top = open_cgroup(prefix, version="v1", parent=None)
    try:
        cg.create()
        yield cg
    finally:
        _cleanup(top, cg)
    assert not cg.exists() and not top.exists()


@pytest.fixture
def v2_group() -> Iterator[Cgroup]:
    mount = _cgroup2_mount()
    if mount is None:
        pytest.skip("requires a cgroup2 mount")
    prefix = f"sandbox-test-{secrets.token_hex(4)}"
    cg = open_cgroup(f"{prefix}/x", version="v2")
    top = open_cgroup(prefix, version="v2", parent=None)
    try:
        cg.create()
        yield cg
    finally:
        _cleanup(top, cg)
    assert not cg.exists() and not top.exists()


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks


# ---------------------------------------------------------------- v1

def test_v1_limits_stats_freeze_kill_destroy(v1_group: Cgroup) -> None:
    cg = v1_group
    paths = cg.paths
    warnings = cg.apply(Resources(memory=64 * MB, pids_limit=10, cpu_shares=512, cpus=0.5,
                                  cpuset_cpus="0", cpuset_mems="0"))
    assert warnings == []
    assert int((paths["memory"] / "memory.limit_in_bytes").read_text()) == 64 * MB
    assert (paths["pids"] / "pids.max").read_text().strip() == "10"
    assert (paths["cpu"] / "cpu.shares").read_text().strip() == "512"
    assert (paths["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
    assert (paths["cpu"] / "cpu.cfs_period_us").read_text().strip() == "100000"
    assert (paths["cpuset"] / "cpuset.cpus").read_text().strip() == "0"

    procs = [_spawn_in(cg, ["/bin/sh", "-c", "while :; do :; done"])]
    try:
        pid = procs[0].pid
        assert cg.pids() == [pid]
        assert wait_for(lambda: cg.stats().cpu_usage_ns > 0)
        s = cg.stats()
        assert s.pids_current == 1 and s.pids_limit == 10
        assert s.memory_current > 0 and s.memory_limit == 64 * MB
        assert s.memory_peak is not None and s.memory_peak >= s.memory_current

        cg.freeze()
        assert cg.frozen
        assert (paths["freezer"] / "freezer.state").read_text().strip() == "FROZEN"
        before = (cg.stats().cpu_usage_ns, _cpu_ticks(pid))
        time.sleep(0.3)
        assert (cg.stats().cpu_usage_ns, _cpu_ticks(pid)) == before, "a frozen task ran"

        cg.thaw()
        assert not cg.frozen
        assert wait_for(lambda: cg.stats().cpu_usage_ns > before[0]), "a thawed task did not run"

        # docker update on the live group: lower the pids limit, drop the quota
        cg.apply(Resources(pids_limit=-1, cpu_quota=-1))
        assert (paths["pids"] / "pids.max").read_text().strip() == "max"
        assert (paths["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "-1"

        cg.kill()
        assert procs[0].wait(timeout=10) == -signal.SIGKILL
        assert cg.pids() == []
    finally:
        _reap(procs)
    cg.destroy()
    assert not any(p.exists() for p in paths.values())


def test_v1_real_time_burst_and_idle_reach_the_kernel(v1_group: Cgroup) -> None:
    """The OCI cpu fields beyond Docker's flags, on the real cpu hierarchy: a real-time budget
    beyond the parent's is refused with the reason (the parent has none), and nothing else written."""
    from sandbox.cgroups.limits import ExtraLimits
    cpu = v1_group.paths["cpu"]
    if not (cpu / "cpu.cfs_burst_us").exists() or not (cpu / "cpu.idle").exists():
        pytest.skip("this kernel has no cpu.cfs_burst_us or cpu.idle")
    assert v1_group.apply(Resources(extra=ExtraLimits(cpu_burst=2000, cpu_idle=1))) == []
    assert (cpu / "cpu.cfs_burst_us").read_text().strip() == "2000" and (cpu / "cpu.idle").read_text().strip() == "1"
    if not (cpu / "cpu.rt_runtime_us").exists():
        return
    with pytest.raises(CgroupError) as info:
        v1_group.apply(Resources(extra=ExtraLimits(cpu_rt_runtime=10000)))
    assert info.value.errno == errno.EINVAL and "parent" in (info.value.hint or "")
    assert (cpu / "cpu.rt_runtime_us").read_text().strip() == "0"


def test_v1_kill_of_a_frozen_group_thaws_it(v1_group: Cgroup) -> None:
    cg = v1_group
    procs = [_spawn_in(cg, ["sleep", "300"]) for _ in range(2)]
    try:
        assert wait_for(lambda: len(cg.pids()) == 2)
        cg.freeze()
        cg.kill()   # SIGKILL does not end a frozen v1 task; kill() must thaw after signalling
        assert [p.wait(timeout=10) for p in procs] == [-signal.SIGKILL] * 2
        assert not cg.frozen
    finally:
        _reap(procs)


def test_v1_destroy_with_a_process_inside_names_it(v1_group: Cgroup) -> None:
    cg = v1_group
    procs = [_spawn_in(cg, ["sleep", "300"])]
    try:
        with pytest.raises(CgroupError) as info:
            cg.destroy()
        assert str(procs[0].pid) in str(info.value)
        assert cg.exists()
    finally:
        cg.kill()
        _reap(procs)


def test_v1_memory_hog_is_oom_killed(v1_group: Cgroup) -> None:
    cg = v1_group
    memsw = (cg.paths["memory"] / "memory.memsw.limit_in_bytes").exists()
    cg.apply(Resources(memory=32 * MB, memory_swap=32 * MB if memsw else None))
    assert cg.oom_kills() == 0
    hog = "s = b'x' * (200 << 20); print(len(s))"
    procs = [_spawn_in(cg, [sys.executable, "-c", hog])]
    try:
        assert procs[0].wait(timeout=60) == -signal.SIGKILL
        assert cg.oom_kills() >= 1
        assert cg.stats().oom_kills >= 1
    finally:
        _reap(procs)


def test_v1_memory_limit_below_usage_is_explained(v1_group: Cgroup) -> None:
    """The kernel cannot reclaim anonymous memory without swap: the write fails."""
    cg = v1_group
    if (cg.paths["memory"] / "memory.memsw.limit_in_bytes").exists():
        cg.apply(Resources(memory=64 * MB, memory_swap=64 * MB))
    hold = "import sys, time; s = b'x' * (40 << 20); print('ok', flush=True); time.sleep(300)"
    proc = subprocess.Popen(["/bin/sh", "-c", 'read _; exec "$@"', "sh", sys.executable, "-c", hold],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        cg.add(proc.pid)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        assert proc.stdout.readline() == b"ok\n"
        with pytest.raises(CgroupError) as info:
            cg.apply(Resources(memory=8 * MB, memory_swap=8 * MB if (
                cg.paths["memory"] / "memory.memsw.limit_in_bytes").exists() else None))
        assert "memory" in str(info.value) and "already uses" in str(info.value)
        assert info.value.errno is not None
    finally:
        cg.kill()
        _reap([proc])


# ---------------------------------------------------------------- v2

def test_v2_freeze_thaw_kill_destroy(v2_group: Cgroup) -> None:
    cg = v2_group
    path = cg.paths["unified"]
    if not (path / "cgroup.freeze").exists():
        pytest.skip("requires the cgroup v2 freezer (Linux 5.2+)")
    procs = [_spawn_in(cg, ["/bin/sh", "-c", "while :; do :; done"])]
    try:
        pid = procs[0].pid
        assert cg.pids() == [pid]
        assert cg.stats().pids_current == 1
        cg.freeze()
        assert cg.frozen
        assert "frozen 1" in (path / "cgroup.events").read_text()
        before = _cpu_ticks(pid)
        time.sleep(0.3)
        assert _cpu_ticks(pid) == before, "a frozen task ran"
        cg.thaw()
        assert "frozen 0" in (path / "cgroup.events").read_text()
        assert wait_for(lambda: _cpu_ticks(pid) > before)
        if (path / "cgroup.kill").exists():
            cg.freeze()  # cgroup.kill also ends frozen tasks; kill() thaws the group after
        cg.kill()
        assert procs[0].wait(timeout=10) == -signal.SIGKILL
        assert not cg.frozen and cg.pids() == []
    finally:
        _reap(procs)
    cg.destroy()
    assert not path.exists()


def test_v2_missing_controller_is_named(v2_group: Cgroup) -> None:
    cg = v2_group
    assert isinstance(cg.stats().cpu_usage_ns, int)   # cpu.stat is a core file
    controllers = (cg.paths["unified"] / "cgroup.controllers").read_text().split()
    if "memory" in controllers:
        pytest.skip("the memory controller is enabled on this cgroup2 mount")
    with pytest.raises(CgroupUnavailable, match="memory controller"):
        cg.apply(Resources(memory=64 * MB))
    cg.apply(Resources())   # nothing asked, nothing needed


# ---------------------------------------------------------------- the checks

COUNTER = """
import mmap, os, sys
m = mmap.mmap(os.open(sys.argv[1], os.O_RDWR), 8)
n = 0
while True:
    n += 1
    m[:8] = n.to_bytes(8, "little")
"""


def _freeze_stops_a_counter(cg: Cgroup, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_bytes(bytes(8))

    def value() -> int:
        return int.from_bytes(counter.read_bytes()[:8], "little")

    procs = [_spawn_in(cg, [sys.executable, "-c", COUNTER, str(counter)])]
    try:
        assert wait_for(lambda: value() > 1000), "the counter never started"
        cg.freeze()
        assert cg.frozen
        stopped = value()
        time.sleep(0.3)
        assert value() == stopped, "the counter moved in a frozen group"
        cg.thaw()
        assert not cg.frozen
        assert wait_for(lambda: value() > stopped), "the counter did not resume after thaw"
        cg.kill()
        assert procs[0].wait(timeout=10) == -signal.SIGKILL
    finally:
        _reap(procs)


def test_v1_freeze_stops_a_counter_and_thaw_resumes_it(v1_group: Cgroup, tmp_path: Path) -> None:
    _freeze_stops_a_counter(v1_group, tmp_path)


def test_v2_freeze_stops_a_counter_and_thaw_resumes_it(v2_group: Cgroup, tmp_path: Path) -> None:
    if not (v2_group.paths["unified"] / "cgroup.freeze").exists():
        pytest.skip("requires the cgroup v2 freezer (Linux 5.2+)")
    _freeze_stops_a_counter(v2_group, tmp_path)


FORKER = """
import os, sys, time
made = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(300)
            os._exit(0)
        made += 1
except OSError as exc:
    print(made, exc.errno, flush=True)
time.sleep(300)
"""


def test_v1_pids_limit_holds(v1_group: Cgroup) -> None:
    """A process forking without end: pids.current never passes the limit and
    the fork past it fails with EAGAIN (pids.rst)."""
    cg = v1_group
    limit = 5
    cg.apply(Resources(pids_limit=limit))
    proc = subprocess.Popen(["/bin/sh", "-c", 'read _; exec "$@"', "sh", sys.executable, "-c", FORKER],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        cg.add(proc.pid)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        highest = 0
        while not select.select([proc.stdout], [], [], 0.001)[0]:
            highest = max(highest, cg.stats().pids_current)   # sampled while it forks
        made, err = map(int, proc.stdout.readline().split())
        assert err == errno.EAGAIN
        assert made == limit - 1                  # the forking process counts too
        s = cg.stats()
        assert s.pids_current == limit and s.pids_limit == limit
        assert highest <= limit
        assert int((cg.paths["pids"] / "pids.current").read_text()) == limit
        cg.kill()
    finally:
        _reap([proc])
    assert cg.pids() == []


def test_v1_oom_notifier_reports_the_kill(v1_group: Cgroup) -> None:
    cg = v1_group
    memsw = (cg.paths["memory"] / "memory.memsw.limit_in_bytes").exists()
    cg.apply(Resources(memory=32 * MB, memory_swap=32 * MB if memsw else None))
    with cg.oom_notifier() as oom:
        assert select.select([oom], [], [], 0)[0] == [] and oom.read() == 0
        hog = "s = bytearray()\nwhile True: s += bytes(1 << 20)"
        procs = [_spawn_in(cg, [sys.executable, "-c", hog])]
        try:
            assert procs[0].wait(timeout=60) == -signal.SIGKILL
        finally:
            _reap(procs)
        assert select.select([oom], [], [], 10)[0] == [oom], "no OOM notification"
        assert oom.read() >= 1
        assert oom.read() == 0 and select.select([oom], [], [], 0)[0] == []   # consumed
        assert cg.stats().oom_kills >= 1
        cg.destroy()   # the kernel signals the eventfd once more; that is no OOM
        assert wait_for(lambda: bool(select.select([oom], [], [], 0)[0]))
        assert oom.read() == 0 and oom.gone
    assert oom.closed
    with pytest.raises(ValueError):
        oom.fileno()


def test_v1_oom_notifier_needs_an_existing_group(v1_group: Cgroup) -> None:
    missing = open_cgroup(v1_group.name + "-not-created", version="v1", parent=None)
    with pytest.raises(CgroupError, match="does not exist"):
        missing.oom_notifier()


def test_v2_oom_notifier(v2_group: Cgroup) -> None:
    """The v2 notifier on the real mount: a real OOM kill where the memory
    controller is enabled; otherwise a named refusal, and the same POLLPRI
    machinery watching cgroup.events (populated 0 -> 1 when a process joins)."""
    cg = v2_group
    path = cg.paths["unified"]
    if "memory" in (path / "cgroup.controllers").read_text().split():
        cg.apply(Resources(memory=32 * MB, memory_swap=32 * MB))
        with cg.oom_notifier() as oom:
            procs = [_spawn_in(cg, [sys.executable, "-c", "s = b'x' * (200 << 20)"])]
            try:
                assert procs[0].wait(timeout=60) == -signal.SIGKILL
            finally:
                _reap(procs)
            assert select.select([oom], [], [], 10)[0] == [oom]
            assert oom.read() >= 1 and cg.stats().oom_kills >= 1
        return
    with pytest.raises(CgroupUnavailable, match="memory controller") as info:
        cg.oom_notifier()
    assert info.value.hint
    with EventsFileNotifier(path / "cgroup.events", keys=("populated",)) as watch:
        assert select.select([watch], [], [], 0.2)[0] == [] and watch.read() == 0
        procs = [_spawn_in(cg, ["sleep", "300"])]
        try:
            assert select.select([watch], [], [], 5)[0] == [watch], "no POLLPRI on a change"
            assert watch.read() == 1
            assert select.select([watch], [], [], 0)[0] == [], "read() did not consume it"
            cg.kill()
            assert procs[0].wait(timeout=10) == -signal.SIGKILL
        finally:
            _reap(procs)
        assert wait_for(lambda: bool(select.select([watch], [], [], 0)[0]))
        assert watch.read() == 0           # populated 1 -> 0 is no new event
        cg.destroy()                       # a removed file polls as changed for ever ...
        assert select.select([watch], [], [], 1)[0] == [watch]
        assert watch.read() == 0 and watch.gone
        assert select.select([watch], [], [], 0)[0] == []   # ... so it is no longer watched


def _stats_shape(s: Stats) -> dict[str, str]:
    hints = typing.get_type_hints(Stats)
    out = {}
    for f in dataclasses.fields(s):
        value = getattr(s, f.name)
        assert isinstance(value, (int, float)) or value is None, (f.name, value)
        assert value is not None or type(None) in typing.get_args(hints[f.name]), f.name
        out[f.name] = str(hints[f.name])
    return out


def test_v1_and_v2_stats_have_the_same_shape(v1_group: Cgroup, v2_group: Cgroup) -> None:
    procs = [_spawn_in(cg, ["/bin/sh", "-c", "while :; do :; done"]) for cg in (v1_group, v2_group)]
    try:
        for cg in (v1_group, v2_group):
            assert wait_for(lambda: cg.stats().cpu_usage_ns > 0)  # noqa: B023 - called at once
        one, two = v1_group.stats(), v2_group.stats()
        assert type(one) is type(two) is Stats
        assert _stats_shape(one) == _stats_shape(two)
        assert one.pids_current == two.pids_current == 1
        assert one.cpu_usage_ns > 0 and two.cpu_usage_ns > 0
        assert one.oom_kills == two.oom_kills == 0
        for cg in (v1_group, v2_group):
            cg.kill()
    finally:
        _reap(procs)


# ---------------------------------------------------------------- devices

OPENER = """
import os, sys
for path in sys.argv[1:]:
    try:
        os.close(os.open(path, os.O_RDWR))
        print(path, "ok", flush=True)
    except OSError as exc:
        print(path, exc.errno, flush=True)
"""

ONLY_DEV_NULL = [
    {"allow": False, "access": "rwm"},                                      # deny everything
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},  # but /dev/null
]


def _open_in(cg: Cgroup, *paths: str) -> dict[str, str]:
    proc = subprocess.Popen(["/bin/sh", "-c", 'read _; exec "$@"', "sh", sys.executable, "-c",
                             OPENER, *paths], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        cg.add(proc.pid)
        out, _ = proc.communicate(b"go\n", timeout=30)
    finally:
        _reap([proc])
    assert proc.returncode == 0
    return dict(line.split() for line in out.decode().splitlines())


def _check_only_dev_null(cg: Cgroup) -> None:
    assert device_allowed(ONLY_DEV_NULL, "c", 1, 3, "rw")
    assert not device_allowed(ONLY_DEV_NULL, "c", 1, 5, "rw")
    assert cg.apply_devices(ONLY_DEV_NULL) == []
    result = _open_in(cg, "/dev/null", "/dev/zero", "/dev/full")
    assert result == {"/dev/null": "ok", "/dev/zero": str(errno.EPERM),
                      "/dev/full": str(errno.EPERM)}


def test_v1_device_rules_allow_dev_null_only(v1_group: Cgroup) -> None:
    cg = v1_group
    _check_only_dev_null(cg)
    assert (cg.paths["devices"] / "devices.list").read_text().split("\n")[0] == "c 1:3 rwm"
    # Read-only /dev/full, applied again to the live group: the list is replaced.
    cg.apply_devices(ONLY_DEV_NULL + [{"allow": True, "type": "c", "major": 1, "minor": 7,
                                       "access": "r"}])
    assert set((cg.paths["devices"] / "devices.list").read_text().split("\n")) >= \
        {"c 1:3 rwm", "c 1:7 r"}
    assert _open_in(cg, "/dev/full", "/dev/zero")["/dev/full"] == str(errno.EPERM)  # O_RDWR


def test_v1_device_rule_errors_write_nothing(v1_group: Cgroup) -> None:
    cg = v1_group
    before = (cg.paths["devices"] / "devices.list").read_text()
    with pytest.raises(InvalidResources, match=r"devices\[1\]\.access"):
        cg.apply_devices([{"allow": False}, {"allow": True, "type": "c", "access": "rx"}])
    assert (cg.paths["devices"] / "devices.list").read_text() == before


def test_v2_device_rules_are_an_ebpf_program(v2_group: Cgroup) -> None:
    """On a hybrid host this is the unified mount; cgroup BPF filters there too."""
    cg = v2_group
    try:
        _check_only_dev_null(cg)
    except CgroupUnavailable as exc:
        pytest.skip(f"this kernel cannot attach cgroup device programs: {exc}")
    # Applying again replaces the program instead of stacking a second one.
    cg.apply_devices(ONLY_DEV_NULL + [{"allow": True, "type": "c", "major": 1, "minor": 5}])
    fd = os.open(cg.paths["unified"], os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert len(kernel.bpf_prog_query(fd, kernel.BPF_CGROUP_DEVICE)) == 1
    finally:
        os.close(fd)
    assert _open_in(cg, "/dev/zero", "/dev/full") == {"/dev/zero": "ok",
                                                       "/dev/full": str(errno.EPERM)}


def wait_for(check, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()

