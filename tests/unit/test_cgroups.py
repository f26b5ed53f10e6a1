"""sandbox.cgroups against fake cgroup trees in tmp_path (no root needed).

Each fake holds the files the kernel would show after mkdir, so create() only
has to make what is missing, apply() writes land in plain files we read back,
and stats() parses content copied from real kernels.  Where the kernel would
change a file by itself (freezer.state, cgroup.events), the test writes the
state the kernel would report, or wraps ``fs.write`` to play the kernel.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from pathlib import Path

import pytest

from sandbox import cgroups
from sandbox.cgroups import (
    CgroupError,
    CgroupUnavailable,
    InvalidResources,
    Resources,
    cgroup_name,
    cpus_to_quota,
    detect,
    fs,
    open_cgroup,
    parse,
    shares_to_weight,
)
from sandbox.cgroups.v1 import V1Cgroup, controller_dirs
from sandbox.cgroups.v2 import V2Cgroup
from sandbox.errors import PermissionRequired, SandboxError

MB = 1024 * 1024
V1_UNLIMITED = "9223372036854771712\n"


def put(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def text(path: Path) -> str:
    return path.read_text().strip()


@pytest.fixture
def writes(monkeypatch):
    """Every fs.write as (file name, value), in order; the writes still happen."""
    log: list[tuple[str, str]] = []
    real = fs.write

    def record(path, value):
        log.append((Path(path).name, str(value)))
        real(path, value)

    monkeypatch.setattr(fs, "write", record)
    return log


def fail_writes_to(monkeypatch, name: str, err: int) -> None:
    """Make write(2) fail with ``err`` for files called ``name`` (the kernel refusing)."""
    real = os.write

    def write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("/" + name):
            raise OSError(err, os.strerror(err))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


# ====================================================================== v2 fake

V2_GROUP_FILES = {
    "cgroup.procs": "", "cgroup.freeze": "0\n", "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.kill": "", "memory.max": "max\n", "memory.swap.max": "max\n", "memory.current": "0\n",
    "memory.peak": "0\n", "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
    "memory.low": "0\n",
    "cpu.weight": "100\n", "cpu.max": "max 100000\n", "cpu.stat": "usage_usec 0\n",
    "cpuset.cpus": "", "cpuset.mems": "", "pids.max": "max\n", "pids.current": "0\n", "io.stat": "",
}


def make_v2(root: Path, controllers: str = "cpuset cpu io memory hugetlb pids",
            group: str = "sandbox/c1", files: dict[str, str] | None = None) -> Path:
    """A unified hierarchy at ``root`` with ``group`` already made (as mkdir would)."""
    put(root / "cgroup.controllers", controllers + "\n")
    put(root / "cgroup.subtree_control")
    level = root
    for part in group.split("/"):
        level = level / part
        put(level / "cgroup.controllers", controllers + "\n")
        put(level / "cgroup.subtree_control")
    put(root / "sandbox" / "cpuset.cpus.effective", "0-3\n")
    put(root / "sandbox" / "cpuset.mems.effective", "0\n")
    wanted = files if files is not None else V2_GROUP_FILES
    for name, content in wanted.items():
        put(level / name, content)
    return level


@pytest.fixture
def v2(tmp_path):
    path = make_v2(tmp_path)
    cg = open_cgroup("c1", version="v2", root=tmp_path)
    assert isinstance(cg, V2Cgroup) and cg.paths == {"unified": path}
    return cg


def test_v2_apply_writes_converted_values(v2):
    p = v2.path
    assert v2.apply(Resources(memory=64 * MB, memory_swap=128 * MB, cpu_shares=1024, cpus=1.5,
                              cpuset_cpus="0-1", cpuset_mems="0", pids_limit=-1)) == []
    assert text(p / "memory.max") == str(64 * MB)
    assert text(p / "memory.swap.max") == str(64 * MB)       # docker's memory+swap minus memory
    assert text(p / "cpu.weight") == "39"                     # runc: 1 + (1022 * 9999) // 262142
    assert text(p / "cpu.max") == "150000 100000"
    assert text(p / "cpuset.cpus") == "0-1" and text(p / "cpuset.mems") == "0"
    assert text(p / "pids.max") == "max"


def test_v2_unlimited_values(v2):
    p = v2.path
    v2.apply(Resources(memory=-1, pids_limit=0))
    assert text(p / "memory.max") == "max" and text(p / "memory.swap.max") == "max"
    assert text(p / "pids.max") == "max"
    v2.apply(Resources(memory=32 * MB, memory_swap=-1, pids_limit=7))
    assert text(p / "memory.swap.max") == "max" and text(p / "pids.max") == "7"
    v2.apply(Resources(memory=32 * MB, memory_swap=32 * MB))
    assert text(p / "memory.swap.max") == "0"


def test_v2_cpu_max_keeps_the_half_not_given(v2):
    p = v2.path
    v2.apply(Resources(cpu_quota=50000))
    assert text(p / "cpu.max") == "50000 100000"
    v2.apply(Resources(cpu_period=200000))
    assert text(p / "cpu.max") == "50000 200000"
    v2.apply(Resources(cpu_quota=-1))
    assert text(p / "cpu.max") == "max 200000"


def test_v2_missing_controller_names_it_and_writes_nothing(tmp_path):
    make_v2(tmp_path, controllers="cpu pids")       # like a hybrid host's unified mount, almost
    cg = open_cgroup("c1", version="v2", root=tmp_path)
    with pytest.raises(CgroupUnavailable) as info:
        cg.apply(Resources(memory=64 * MB, pids_limit=5))
    assert "memory controller" in str(info.value) and info.value.hint
    assert text(cg.paths["unified"] / "pids.max") == "max"   # nothing half-applied
    cg.apply(Resources(pids_limit=5, cpu_shares=2))           # what is there still works
    assert text(cg.paths["unified"] / "cpu.weight") == "1"


def test_v2_swap_file_missing_is_a_warning(tmp_path):
    files = dict(V2_GROUP_FILES)
    del files["memory.swap.max"]
    make_v2(tmp_path, files=files)
    cg = open_cgroup("c1", version="v2", root=tmp_path)
    warnings = cg.apply(Resources(memory=64 * MB, memory_swap=96 * MB))
    assert warnings and "swap" in warnings[0]
    assert text(cg.paths["unified"] / "memory.max") == str(64 * MB)


def test_v2_cpuset_outside_the_parent_is_refused(v2):
    with pytest.raises(InvalidResources, match="Requested CPUs are not available"):
        v2.apply(Resources(cpuset_cpus="2-7"))


def test_v2_create_enables_controllers_on_every_level_above(tmp_path, writes):
    make_v2(tmp_path, group="sandbox/c1")
    cg = open_cgroup("sandbox/deep/c2", version="v2", root=tmp_path)
    put(tmp_path / "sandbox" / "deep" / "cgroup.controllers", "cpu memory pids\n")
    cg.create()
    assert cg.exists()
    enabled = [(n, v) for n, v in writes if n == "cgroup.subtree_control"]
    # root and sandbox offer six wanted controllers (as runc, hugetlb too), deep three
    assert enabled == [("cgroup.subtree_control", f"+{c}") for c in
                       ["cpu", "cpuset", "hugetlb", "io", "memory", "pids"] * 2 + ["cpu", "memory", "pids"]]
    assert not (cg.paths["unified"] / "cgroup.subtree_control").exists()   # never in the leaf


def test_v2_stats_parse_kernel_files(v2):
    p = v2.path
    put(p / "memory.current", "52428800\n")
    put(p / "memory.peak", "60000000\n")
    put(p / "memory.max", "67108864\n")
    put(p / "memory.stat", "anon 40000000\nfile 12000000\nactive_file 4000000\n"
                           "inactive_file 8000000\nslab 100000\n")
    put(p / "memory.events", "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n")
    put(p / "cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n"
                        "nr_throttled 0\nthrottled_usec 0\n")
    put(p / "pids.current", "4\n")
    put(p / "pids.max", "max\n")
    put(p / "io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"
                       "8:16 rbytes=100 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n")
    s = v2.stats()
    assert (s.memory_current, s.memory_peak, s.memory_limit) == (52428800, 60000000, 67108864)
    assert s.memory_inactive_file == 8000000
    assert (s.cpu_usage_ns, s.cpu_user_ns, s.cpu_system_ns) == (1_500_000, 1_000_000, 500_000)
    assert (s.pids_current, s.pids_limit, s.oom_kills) == (4, None, 2)
    assert (s.io_read_bytes, s.io_write_bytes) == (4196, 8192)
    assert v2.oom_kills() == 2 and s.timestamp > 0


def test_v2_stats_without_controllers(tmp_path):
    """The hybrid unified mount: only core files; pids are counted from cgroup.procs."""
    files = {"cgroup.procs": "10\n11\n", "cgroup.events": "populated 1\nfrozen 0\n",
             "cgroup.freeze": "0\n", "cpu.stat": "usage_usec 7\nuser_usec 5\nsystem_usec 2\n"}
    make_v2(tmp_path, controllers="", files=files)
    s = open_cgroup("c1", version="v2", root=tmp_path).stats()
    assert (s.memory_current, s.memory_peak, s.memory_limit) == (0, None, None)
    assert (s.pids_current, s.pids_limit, s.oom_kills, s.cpu_usage_ns) == (2, None, 0, 7000)


def test_v2_freeze_and_thaw(v2):
    p = v2.path
    put(p / "cgroup.events", "populated 1\nfrozen 1\n")   # what the kernel reports once frozen
    v2.freeze()
    assert text(p / "cgroup.freeze") == "1" and v2.frozen
    put(p / "cgroup.events", "populated 1\nfrozen 0\n")
    v2.thaw()
    assert text(p / "cgroup.freeze") == "0" and not v2.frozen


def test_v2_freeze_that_never_settles_is_undone(v2):
    v2.freeze_timeout = 0.05
    with pytest.raises(CgroupError, match="did not stop"):
        v2.freeze()
    assert text(v2.path / "cgroup.freeze") == "0"


def test_v2_kill_uses_cgroup_kill(v2, writes):
    v2.kill(wait=0)
    assert writes == [("cgroup.kill", "1")]


def test_v2_kill_of_a_frozen_group_thaws_after(v2, writes, monkeypatch):
    put(v2.path / "cgroup.events", "populated 1\nfrozen 1\n")
    recorded = fs.write

    def kernel(path, value):   # the kernel: cgroup.freeze 0 thaws the group
        recorded(path, value)
        if Path(path).name == "cgroup.freeze" and str(value) == "0":
            put(v2.path / "cgroup.events", "populated 0\nfrozen 0\n")

    monkeypatch.setattr(fs, "write", kernel)
    v2.kill(wait=0)
    assert [n for n, _ in writes] == ["cgroup.kill", "cgroup.freeze"]
    assert not v2.frozen


def test_v2_no_freezer_in_old_kernels(tmp_path):
    files = dict(V2_GROUP_FILES)
    del files["cgroup.freeze"]
    make_v2(tmp_path, files=files)
    with pytest.raises(CgroupUnavailable, match="cgroup.freeze"):
        open_cgroup("c1", version="v2", root=tmp_path).freeze()


# ====================================================================== v1 fake

V1_FILES = {
    "cpu": {"cpu.shares": "1024\n", "cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n"},
    "cpuacct": {"cpuacct.usage": "0\n", "cpuacct.usage_user": "0\n", "cpuacct.usage_sys": "0\n",
                "cpuacct.stat": "user 0\nsystem 0\n"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "memory": {"memory.limit_in_bytes": V1_UNLIMITED, "memory.memsw.limit_in_bytes": V1_UNLIMITED,
               "memory.usage_in_bytes": "0\n", "memory.max_usage_in_bytes": "0\n",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
               "memory.soft_limit_in_bytes": V1_UNLIMITED, "memory.stat": "", "memory.swappiness": "60\n",
               "cgroup.event_control": ""},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "freezer": {"freezer.state": "THAWED\n"},
    "blkio": {"blkio.throttle.io_service_bytes_recursive": "Total 0\n"},
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
}


def make_v1(root: Path, group: str = "sandbox/c1", comount: bool = False,
            skip: tuple[str, ...] = ()) -> dict[str, Path]:
    """Controller directories under ``root`` with ``group`` made; cpu,cpuacct co-mounted or not."""
    dirs = {}
    for controller, files in V1_FILES.items():
        if controller in skip:
            continue
        mount = root / ("cpu,cpuacct" if comount and controller in ("cpu", "cpuacct") else controller)
        put(mount / "cgroup.procs")
        for name, content in files.items():
            put(mount / name, "0-3\n" if name.startswith("cpuset.cpus") else
                "0\n" if name == "cpuset.mems" else content)
            put(mount / group / name, content)
        put(mount / group / "cgroup.procs")
        dirs[controller] = mount / group
    if comount:   # distros add these convenience links
        for link in ("cpu", "cpuacct"):
            (root / link).symlink_to("cpu,cpuacct")
    return dirs


@pytest.fixture
def v1(tmp_path):
    dirs = make_v1(tmp_path)
    cg = open_cgroup("c1", version="v1", root=tmp_path)
    assert isinstance(cg, V1Cgroup) and cg.paths == dirs
    return cg


def test_v1_comounted_cpu_cpuacct_share_one_directory(tmp_path, writes):
    dirs = make_v1(tmp_path, comount=True)
    assert dirs["cpu"] == dirs["cpuacct"] == tmp_path / "cpu,cpuacct" / "sandbox" / "c1"
    assert controller_dirs(tmp_path)["cpu"] == tmp_path / "cpu,cpuacct"
    cg = open_cgroup("c1", version="v1", root=tmp_path)
    cg.add(4242)
    assert len([n for n, _ in writes if n == "cgroup.procs"]) == 7   # 8 controllers, 7 directories


def test_v1_controllers_come_from_mountinfo(tmp_path):
    info = put(tmp_path / "mountinfo",
               "31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
               "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
               "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
               "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
               "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n")
    found = controller_dirs(Path("/sys/fs/cgroup"), mountinfo=str(info))
    assert found == {"cpu": Path("/sys/fs/cgroup/cpu,cpuacct"),
                     "cpuacct": Path("/sys/fs/cgroup/cpu,cpuacct"),
                     "memory": Path("/sys/fs/cgroup/memory")}


def test_v1_create_copies_cpuset_from_the_parent(tmp_path):
    make_v1(tmp_path)
    put(tmp_path / "cpuset" / "sandbox" / "cpuset.cpus")   # the "sandbox" level is new too
    put(tmp_path / "cpuset" / "sandbox" / "cpuset.mems")
    cg = open_cgroup("c1", version="v1", root=tmp_path)
    cg.create()
    for level in (tmp_path / "cpuset" / "sandbox", cg.paths["cpuset"]):
        assert text(level / "cpuset.cpus") == "0-3" and text(level / "cpuset.mems") == "0"


def test_v1_apply_writes_values(v1):
    d = v1.paths
    v1.apply(Resources(memory=64 * MB, memory_swap=128 * MB, cpu_shares=512, cpus=0.5,
                       cpuset_cpus="1", cpuset_mems="0", pids_limit=-1))
    assert text(d["memory"] / "memory.limit_in_bytes") == str(64 * MB)
    assert text(d["memory"] / "memory.memsw.limit_in_bytes") == str(128 * MB)
    assert text(d["cpu"] / "cpu.shares") == "512"
    assert text(d["cpu"] / "cpu.cfs_quota_us") == "50000"
    assert text(d["cpu"] / "cpu.cfs_period_us") == "100000"
    assert text(d["cpuset"] / "cpuset.cpus") == "1"
    assert text(d["pids"] / "pids.max") == "max"
    v1.apply(Resources(pids_limit=20, cpu_quota=-1))
    assert text(d["pids"] / "pids.max") == "20" and text(d["cpu"] / "cpu.cfs_quota_us") == "-1"


def test_v1_swappiness_and_oom_killer(v1):
    d = v1.paths["memory"]
    assert v1.apply(Resources(memory_swappiness=0, oom_kill_disable=True, memory_reservation=32 * MB)) == []
    assert text(d / "memory.swappiness") == "0" and text(d / "memory.oom_control") == "1"
    assert text(d / "memory.soft_limit_in_bytes") == str(32 * MB)
    v1.apply(Resources(memory_swappiness=-1, oom_kill_disable=False))   # -1: left as it is
    assert text(d / "memory.swappiness") == "0" and text(d / "memory.oom_control") == "0"


def test_v2_swappiness_and_oom_killer_are_warnings(v2):
    warnings = v2.apply(Resources(memory_swappiness=10, oom_kill_disable=True))
    assert [w.split(".")[0] for w in warnings] == [
        "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted",
        "Your kernel does not support OomKillDisable"]
    assert not (v2.path / "memory.swappiness").exists()


def test_v1_memory_write_order_keeps_memsw_above_memory(v1, writes):
    mem = v1.paths["memory"]
    put(mem / "memory.limit_in_bytes", f"{32 * MB}\n")
    v1.apply(Resources(memory=64 * MB, memory_swap=64 * MB))   # raising: memsw first
    assert writes == [("memory.memsw.limit_in_bytes", str(64 * MB)),
                      ("memory.limit_in_bytes", str(64 * MB))]
    writes.clear()
    v1.apply(Resources(memory=16 * MB, memory_swap=16 * MB))   # lowering: memory first
    assert writes == [("memory.limit_in_bytes", str(16 * MB)),
                      ("memory.memsw.limit_in_bytes", str(16 * MB))]
    writes.clear()
    v1.apply(Resources(memory=-1))                               # unlimited: memsw follows
    assert writes == [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")]


def test_v1_without_swap_accounting_warns_and_limits_memory(v1):
    (v1.paths["memory"] / "memory.memsw.limit_in_bytes").unlink()
    warnings = v1.apply(Resources(memory=64 * MB, memory_swap=128 * MB))
    assert warnings and "swap" in warnings[0]
    assert text(v1.paths["memory"] / "memory.limit_in_bytes") == str(64 * MB)


def test_v1_missing_controller_names_it(tmp_path):
    make_v1(tmp_path, skip=("pids",))
    cg = open_cgroup("c1", version="v1", root=tmp_path)
    with pytest.raises(CgroupUnavailable, match="pids controller is not mounted") as info:
        cg.apply(Resources(pids_limit=10, memory=64 * MB))
    assert "mount -t cgroup -o pids" in str(info.value)
    assert text(cg.paths["memory"] / "memory.limit_in_bytes") == V1_UNLIMITED.strip()
    cg.apply(Resources(memory=64 * MB))
    assert cg.stats().pids_limit is None


def test_v1_stats_parse_kernel_files(v1):
    d = v1.paths
    put(d["memory"] / "memory.usage_in_bytes", "10485760\n")
    put(d["memory"] / "memory.max_usage_in_bytes", "20971520\n")
    put(d["memory"] / "memory.limit_in_bytes", "33554432\n")
    put(d["memory"] / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    put(d["memory"] / "memory.stat", "cache 4096\nrss 8192\ninactive_file 1000\n"
                                     "hierarchical_memory_limit 33554432\ntotal_inactive_file 2000\n")
    put(d["cpuacct"] / "cpuacct.usage", "123456789\n")
    put(d["cpuacct"] / "cpuacct.usage_user", "100000000\n")
    put(d["cpuacct"] / "cpuacct.usage_sys", "23456789\n")
    put(d["pids"] / "pids.current", "3\n")
    put(d["pids"] / "pids.max", "64\n")
    put(d["blkio"] / "blkio.throttle.io_service_bytes_recursive",
        "8:0 Read 4096\n8:0 Write 12288\n8:0 Sync 16384\n8:0 Async 0\n8:0 Discard 0\n"
        "8:0 Total 16384\n8:16 Read 1\n8:16 Write 0\nTotal 16385\n")
    s = v1.stats()
    assert (s.memory_current, s.memory_peak, s.memory_limit) == (10485760, 20971520, 33554432)
    assert s.memory_inactive_file == 2000
    assert (s.cpu_usage_ns, s.cpu_user_ns, s.cpu_system_ns) == (123456789, 100000000, 23456789)
    assert (s.pids_current, s.pids_limit, s.oom_kills) == (3, 64, 3)
    assert (s.io_read_bytes, s.io_write_bytes) == (4097, 12288)
    assert v1.oom_kills() == 3


def test_v1_stats_fallbacks(v1):
    """Unlimited memory is None; no cpuacct.usage_user -> cpuacct.stat ticks; CFQ file first."""
    d = v1.paths
    (d["cpuacct"] / "cpuacct.usage_user").unlink()
    put(d["cpuacct"] / "cpuacct.stat", "user 150\nsystem 50\n")
    put(d["blkio"] / "blkio.io_service_bytes_recursive", "8:0 Read 7\n8:0 Write 9\nTotal 16\n")
    s = v1.stats()
    tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    assert (s.cpu_user_ns, s.cpu_system_ns) == (150 * tick, 50 * tick)
    assert s.memory_limit is None
    assert (s.io_read_bytes, s.io_write_bytes) == (7, 9)


def test_v1_freeze_and_thaw(v1, writes):
    state = v1.paths["freezer"] / "freezer.state"
    v1.freeze()                         # the fake file reads back FROZEN at once
    assert text(state) == "FROZEN" and v1.frozen
    v1.thaw()
    assert text(state) == "THAWED" and not v1.frozen
    assert writes == [("freezer.state", "FROZEN"), ("freezer.state", "THAWED")]


def test_v1_freeze_stuck_in_freezing_is_undone(v1, monkeypatch):
    real = fs.write

    def kernel(path, value):   # a task in D state: the group stays FREEZING
        real(path, "FREEZING" if value == "FROZEN" else value)

    monkeypatch.setattr(fs, "write", kernel)
    v1.freeze_timeout = 0.05
    with pytest.raises(CgroupError, match="did not stop") as info:
        v1.freeze()
    assert "uninterruptible" in str(info.value)
    assert text(v1.paths["freezer"] / "freezer.state") == "THAWED"


def test_v1_kill_freezes_signals_each_pid_and_thaws(v1, writes):
    child = subprocess.Popen(["sleep", "60"])
    try:
        for d in set(v1.paths.values()):
            put(d / "cgroup.procs", f"{child.pid}\n")
        v1.kill(wait=0)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert writes == [("freezer.state", "FROZEN"), ("freezer.state", "THAWED")]


def test_v1_kill_of_a_paused_group_still_thaws(v1, writes):
    put(v1.paths["freezer"] / "freezer.state", "FROZEN\n")
    v1.kill(wait=0)
    assert writes == [("freezer.state", "THAWED")]


def test_v1_destroy_removes_child_groups_deepest_first(tmp_path):
    for c in ("memory", "pids"):
        (tmp_path / c / "sandbox" / "c1" / "inner" / "leaf").mkdir(parents=True)
        put(tmp_path / c / "cgroup.procs")
    cg = open_cgroup("c1", version="v1", root=tmp_path)
    assert cg.exists()
    cg.destroy()
    assert not cg.exists() and (tmp_path / "memory" / "sandbox").is_dir()
    cg.destroy()   # already gone is fine


def test_destroy_busy_names_the_pids(tmp_path, monkeypatch):
    group = tmp_path / "sandbox" / "c1"
    put(tmp_path / "cgroup.controllers")
    put(group / "cgroup.procs", "4242\n4343\n")
    monkeypatch.setattr(fs, "RMDIR_RETRY_SECONDS", 0.02)

    def rmdir(path):
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(fs.os, "rmdir", rmdir)
    with pytest.raises(CgroupError) as info:
        open_cgroup("c1", version="v2", root=tmp_path).destroy()
    assert str(group) in str(info.value) and "4242, 4343" in str(info.value)
    assert info.value.errno == errno.EBUSY


# ====================================================================== errors from the kernel

def test_refused_write_keeps_file_value_errno_and_hint(v2, monkeypatch):
    fail_writes_to(monkeypatch, "memory.max", errno.EBUSY)
    with pytest.raises(CgroupError) as info:
        v2.apply(Resources(memory=8 * MB))
    e = info.value
    assert e.errno == errno.EBUSY and e.path == str(v2.path / "memory.max")
    assert str(8 * MB) in str(e) and "device or resource busy" in str(e)
    assert "already uses" in str(e)


def test_cpuset_ebusy_hint(v1, monkeypatch):
    fail_writes_to(monkeypatch, "cpuset.cpus", errno.EBUSY)
    with pytest.raises(CgroupError, match="child cgroup"):
        v1.apply(Resources(cpuset_cpus="0"))


def test_permission_denied_without_root(v2, monkeypatch):
    fail_writes_to(monkeypatch, "pids.max", errno.EACCES)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PermissionRequired, match="permission denied"):
        v2.apply(Resources(pids_limit=5))


def test_apply_on_a_group_not_created(tmp_path):
    make_v2(tmp_path)
    with pytest.raises(CgroupError, match="does not exist"):
        open_cgroup("nope", version="v2", root=tmp_path).apply(Resources(pids_limit=1))


# ====================================================================== resources

@pytest.mark.parametrize("kwargs, message", [
    ({"memory": 4 * MB}, "Minimum memory limit allowed is 6MB"),
    ({"memory_swap": 64 * MB}, "always set the Memory limit"),
    ({"memory": 64 * MB, "memory_swap": 32 * MB}, "memoryswap limit should be larger"),
    ({"memory": 64 * MB, "memory_swap": -5}, "Invalid memory-swap"),
    ({"cpu_shares": 1}, "Invalid cpu-shares"),
    ({"cpu_shares": 262145}, "Invalid cpu-shares"),
    ({"cpus": 0.001}, "Range of CPUs is from 0.01"),
    ({"cpus": 4096.0}, "Range of CPUs is from 0.01"),
    ({"cpus": 1.0, "cpu_quota": 50000}, "Conflicting options"),
    ({"cpu_quota": 999}, "can not be less than 1ms"),
    ({"cpu_period": 2_000_000}, "larger than 1 second"),
    ({"cpuset_cpus": "0-x"}, "Invalid value 0-x for cpuset-cpus"),
    ({"cpuset_mems": "3-1"}, "cpuset-mems"),
    ({"pids_limit": -2}, "Invalid pids limit"),
    ({"memory_swappiness": 101}, "valid memory swappiness range is 0-100"),
    ({"memory_swappiness": -2}, "valid memory swappiness range is 0-100"),
])
def test_invalid_resources_are_refused_like_docker(kwargs, message):
    with pytest.raises(InvalidResources, match=message):
        Resources(**kwargs).validate()


def test_docker_zero_means_not_set():
    r = Resources(memory=0, memory_swap=0, cpu_shares=0, cpu_quota=0, cpus=0)
    assert (r.memory, r.memory_swap, r.cpu_shares, r.cpu_quota, r.cpus) == (None,) * 5
    r.validate()


def test_requested_says_whether_any_limit_is_set():
    assert not Resources().requested() and not Resources(memory=0, cpus=0).requested()
    assert Resources(pids_limit=-1).requested() and Resources(memory_reservation=8 * MB).requested()


def test_conversions():
    assert [shares_to_weight(s) for s in (2, 1024, 262144)] == [1, 39, 10000]
    assert [cpus_to_quota(c) for c in (0.5, 1.5, 0.01, 0.3)] == [50000, 150000, 1000, 30000]
    assert Resources(cpus=2).quota_period() == (200000, 100000)
    assert Resources(memory=64 * MB, memory_swap=96 * MB).swap_only() == 32 * MB
    assert Resources(memory=64 * MB, memory_swap=-1).swap_only() == -1


# ====================================================================== detect, names, parsers

MOUNTINFO = {
    "v2": "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
    "hybrid": "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
              "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
              "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
    "unified-only": "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
                    "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
    "none": "22 1 0:20 / /proc rw - proc proc rw\n",
}


@pytest.mark.parametrize("layout, expected", [("v2", "v2"), ("hybrid", "v1"),
                                              ("unified-only", "v2"), ("none", "none")])
def test_detect_from_mountinfo(tmp_path, layout, expected):
    root = tmp_path / "cg"   # not a real directory: only mountinfo can answer
    info = put(tmp_path / "mountinfo", MOUNTINFO[layout].replace("/sys/fs/cgroup", str(root)))
    assert detect(root, mountinfo=info) == expected


def test_detect_fake_trees(tmp_path):
    make_v2(tmp_path / "two")
    make_v1(tmp_path / "one")
    (tmp_path / "empty").mkdir()
    assert detect(tmp_path / "two") == "v2"
    assert detect(tmp_path / "one") == "v1"
    assert detect(tmp_path / "empty") == "none"
    with pytest.raises(CgroupUnavailable, match="no cgroup file system"):
        open_cgroup("x", root=tmp_path / "empty")
    assert isinstance(open_cgroup("x", root=tmp_path / "one"), V1Cgroup)


def test_mountinfo_escapes_and_optional_fields():
    line = r"36 25 0:31 / /sys/fs/cgroup/my\040dir rw shared:9 master:2 - cgroup cgroup rw,pids"
    (m,) = fs.parse_mountinfo(line)
    assert m.mount_point == Path("/sys/fs/cgroup/my dir") and "pids" in m.super_options


def test_cgroup_names():
    assert cgroup_name("3f2a") == "sandbox/3f2a"
    assert cgroup_name("sandbox/3f2a") == "sandbox/3f2a"
    assert cgroup_name("top", parent=None) == "top"
    for bad in ("", "/abs", "../up", "a/../b", "a//b"):
        with pytest.raises(CgroupError, match="invalid cgroup name"):
            cgroup_name(bad)


def test_parsers():
    assert parse.cpu_list("0-2,7") == {0, 1, 2, 7} and parse.cpu_list("") == set()
    assert parse.flat_keyed("a 1\nb x\nc -2\n") == {"a": 1, "c": -2}
    assert parse.cpu_max("max 100000") == (None, 100000)
    assert parse.cpu_max("25000 50000\n") == (25000, 50000)


def test_public_api_and_error_tree():
    for name in cgroups.__all__:
        assert hasattr(cgroups, name), name
    for cls in (CgroupError, CgroupUnavailable, InvalidResources):
        assert issubclass(cls, SandboxError) and cls.__doc__
    assert issubclass(CgroupUnavailable, CgroupError) and issubclass(InvalidResources, CgroupError)
