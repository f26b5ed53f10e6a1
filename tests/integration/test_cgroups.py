"""sandbox.cgroups on this machine's real hierarchies (root only).

v1: limits land in the kernel's files, a real process is counted, frozen
(its CPU time stops), thawed, killed, and its group removed; a memory hog is
OOM-killed inside a 32 MB group and the kill is counted.  v2: the cgroup2
mount (``/sys/fs/cgroup/unified`` on a hybrid host) freezes through
cgroup.freeze/cgroup.events and kills through cgroup.kill.

Every group is named ``sandbox-test-<random>/x`` and removed in a finally
block, every child is reaped; the session's leak checker fails the run
otherwise.  Nothing here needs CAP_SYS_RESOURCE.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.cgroups import (
    Cgroup,
    CgroupError,
    CgroupUnavailable,
    Resources,
    detect,
    open_cgroup,
)
from sandbox.cgroups.fs import read_mountinfo
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


def wait_for(check, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()

