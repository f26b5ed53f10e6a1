"""resources_from_oci: OCI linux.resources to Resources, runc's meanings, named errors."""

from __future__ import annotations

import pytest

from sandbox.cgroups import (
    CgroupUnavailable,
    InvalidResources,
    Resources,
    open_cgroup,
    resources_from_oci,
)
from sandbox.cgroups.limits import DeviceThrottle, DeviceWeight, ExtraLimits, io_weight
from tests.unit.test_cgroups import make_v1, make_v2, put, text

MB = 1024 * 1024


def test_supported_fields_map_to_resources():
    r, warnings = resources_from_oci({
        "memory": {"limit": 64 * MB, "swap": 128 * MB, "reservation": 32 * MB},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 32},
        "devices": [{"allow": False, "access": "rwm"}],
    })
    assert r == Resources(memory=64 * MB, memory_swap=128 * MB, memory_reservation=32 * MB,
                          cpu_shares=512, cpu_quota=50000, cpu_period=100000,
                          cpuset_cpus="0-1", cpuset_mems="0", pids_limit=32)
    assert warnings == [] and r.requested()
    r.validate()


def test_empty_and_null():
    for empty in (None, {}, {"memory": None, "cpu": {}, "pids": {"limit": None}}):
        r, warnings = resources_from_oci(empty)
        assert r == Resources() and not r.requested() and warnings == []
    r, _ = resources_from_oci({"pids": {"limit": 0}, "memory": {"limit": -1}})
    assert r.pids_limit is None and r.memory == -1   # runc: pids 0 is "not set"


def test_unsupported_and_unknown_fields_are_warnings():
    r, warnings = resources_from_oci({
        "memory": {"limit": 64 * MB, "swappiness": 60, "disableOOMKiller": False,
                   "kernel": None, "madeUp": 1},
        "blockIO": {"weight": 500}, "hugepageLimits": [], "network": None,
        "rdma": {"mlx5_1": {"hcaHandles": 3}}, "whatever": 1,
        "devices": [{"allow": False, "access": "rwm", "comment": "deny all"}],
    })
    assert r == Resources(memory=64 * MB, memory_swappiness=60,
                          extra=ExtraLimits(blkio_weight=500, rdma={"mlx5_1": {"hca_handle": 3}}))
    assert warnings == [
        "linux.resources.memory.madeUp is not an OCI resource field this engine knows; ignored",
        "linux.resources.whatever is not an OCI resource field this engine knows; ignored",
        "linux.resources.devices[0].comment is not an OCI device rule field; ignored",
    ]


@pytest.mark.parametrize("resources, message", [
    ([], "linux.resources must be an object"),
    ({"memory": 5}, "linux.resources.memory must be an object"),
    ({"memory": {"limit": "64m"}}, "linux.resources.memory.limit must be an integer"),
    ({"memory": {"swap": 1.5}}, "linux.resources.memory.swap must be an integer"),
    ({"memory": {"reservation": True}}, "linux.resources.memory.reservation must be an integer"),
    ({"cpu": {"shares": -1}}, "linux.resources.cpu.shares must be a non-negative integer"),
    ({"cpu": {"period": "100000"}}, "linux.resources.cpu.period must be an integer"),
    ({"cpu": {"cpus": 2}}, "linux.resources.cpu.cpus must be a string"),
    ({"cpu": {"mems": ["0"]}}, "linux.resources.cpu.mems must be a string"),
    ({"pids": {"limit": "10"}}, "linux.resources.pids.limit must be an integer"),
    ({"memory": {"disableOOMKiller": 1}}, "linux.resources.memory.disableOOMKiller must be true or false"),
    ({"memory": {"swappiness": -1}}, "linux.resources.memory.swappiness must be a non-negative integer"),
    ({"devices": [{"allow": 1}]}, r"linux.resources.devices\[0\].allow must be true or false"),
    ({"devices": {"allow": False}}, "linux.resources.devices must be a list"),
])
def test_wrong_types_name_the_field(resources, message):
    with pytest.raises(InvalidResources, match=message):
        resources_from_oci(resources)


def test_values_are_checked_by_apply_with_dockers_words(tmp_path):
    make_v2(tmp_path)
    r, _ = resources_from_oci({"memory": {"limit": 64 * MB, "swap": 32 * MB}})
    with pytest.raises(InvalidResources, match="memoryswap limit should be larger"):
        open_cgroup("c1", version="v2", root=tmp_path).apply(r)


# ====================================================================== memory reservation

def test_reservation_lands_in_each_version(tmp_path):
    dirs = make_v1(tmp_path / "one")
    make_v2(tmp_path / "two")
    v1 = open_cgroup("c1", version="v1", root=tmp_path / "one")
    v2 = open_cgroup("c1", version="v2", root=tmp_path / "two")
    for cg in (v1, v2):
        cg.apply(Resources(memory=64 * MB, memory_reservation=32 * MB))
    assert text(dirs["memory"] / "memory.soft_limit_in_bytes") == str(32 * MB)
    assert text(v2.paths["unified"] / "memory.low") == str(32 * MB)
    for cg in (v1, v2):
        cg.apply(Resources(memory_reservation=-1))
    assert text(dirs["memory"] / "memory.soft_limit_in_bytes") == "-1"
    assert text(v2.paths["unified"] / "memory.low") == "max"


@pytest.mark.parametrize("kwargs, message", [
    ({"memory_reservation": 4 * MB}, "Minimum memory reservation allowed is 6MB"),
    ({"memory": 32 * MB, "memory_reservation": 64 * MB}, "can not be less than memory reservation"),
])
def test_reservation_refused_like_docker(kwargs, message):
    with pytest.raises(InvalidResources, match=message):
        Resources(**kwargs).validate()


def test_reservation_needs_the_memory_controller(tmp_path):
    make_v2(tmp_path, controllers="cpu pids")
    with pytest.raises(CgroupUnavailable, match="memory controller"):
        open_cgroup("c1", version="v2", root=tmp_path).apply(Resources(memory_reservation=32 * MB))


# ====================================================================== beyond Docker's flags

FULL = {
    "blockIO": {"weight": 300, "weightDevice": [{"major": 254, "minor": 0, "weight": 500}],
                "throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1048576}],
                "throttleWriteIOPSDevice": [{"major": 254, "minor": 0, "rate": 0}]},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
    "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
    "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
    "cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 0, "burst": 1000, "idle": 1},
}


def test_oci_fields_beyond_dockers_flags_are_read():
    r, warnings = resources_from_oci(FULL)
    assert warnings == [] and r.requested()
    assert r.extra == ExtraLimits(
        blkio_weight=300, blkio_weight_device=[DeviceWeight(254, 0, 500)],
        blkio_throttle=[DeviceThrottle("read_bps", 254, 0, 1048576), DeviceThrottle("write_iops", 254, 0, 0)],
        hugetlb={"2MB": 0}, net_classid=1048577, net_priorities={"eth0": 5},
        rdma={"mlx5_1": {"hca_handle": 3, "hca_object": 10000}}, cpu_rt_period=1000000, cpu_rt_runtime=0,
        cpu_burst=1000, cpu_idle=1)


def _v1_with_extra_files(tmp_path):
    dirs = make_v1(tmp_path)
    for name in ("blkio.bfq.weight", "blkio.bfq.weight_device", "blkio.throttle.read_bps_device",
                 "blkio.throttle.write_iops_device"):
        put(dirs["blkio"] / name, "")
    for name in ("cpu.rt_period_us", "cpu.rt_runtime_us", "cpu.cfs_burst_us", "cpu.idle"):
        put(dirs["cpu"] / name, "")
    for controller, name in (("hugetlb", "hugetlb.2MB.limit_in_bytes"), ("net_cls,net_prio", "net_cls.classid"),
                             ("net_cls,net_prio", "net_prio.ifpriomap"), ("rdma", "rdma.max")):
        put(tmp_path / controller / "cgroup.procs")
        put(tmp_path / controller / "sandbox" / "c1" / name, "")
    return dirs


def test_v1_writes_each_extra_field(tmp_path):
    dirs = _v1_with_extra_files(tmp_path)
    cg = open_cgroup("c1", version="v1", root=tmp_path)
    r, _ = resources_from_oci(FULL)
    assert cg.apply(r) == []
    blkio, cpu = dirs["blkio"], dirs["cpu"]
    assert text(blkio / "blkio.bfq.weight") == "300" and text(blkio / "blkio.bfq.weight_device") == "254:0 500"
    assert text(blkio / "blkio.throttle.read_bps_device") == "254:0 1048576"
    assert text(blkio / "blkio.throttle.write_iops_device") == "254:0 0"
    assert text(cpu / "cpu.rt_period_us") == "1000000" and text(cpu / "cpu.rt_runtime_us") == "0"
    assert text(cpu / "cpu.cfs_burst_us") == "1000" and text(cpu / "cpu.idle") == "1"
    group = "sandbox/c1"
    assert text(tmp_path / "hugetlb" / group / "hugetlb.2MB.limit_in_bytes") == "0"
    assert text(tmp_path / "net_cls,net_prio" / group / "net_cls.classid") == "1048577"
    assert text(tmp_path / "net_cls,net_prio" / group / "net_prio.ifpriomap") == "eth0 5"
    assert text(tmp_path / "rdma" / group / "rdma.max") == "mlx5_1 hca_handle=3 hca_object=10000"


@pytest.mark.parametrize("resources, message", [
    ({"hugepageLimits": [{"pageSize": "1GB", "limit": 0}]}, r"hugepageLimits \(1GB\): this kernel has no "
                                                             "hugetlb.1GB.limit_in_bytes"),
    ({"blockIO": {"leafWeight": 100}}, "blockIO.leafWeight: this kernel has no blkio.leaf_weight"),
    ({"unified": {"memory.high": "max"}}, "linux.resources.unified needs cgroup v2"),
])
def test_v1_refuses_what_the_kernel_lacks_and_writes_nothing(tmp_path, resources, message):
    dirs = _v1_with_extra_files(tmp_path)
    cg = open_cgroup("c1", version="v1", root=tmp_path)
    r, _ = resources_from_oci({"pids": {"limit": 7}, **resources})
    with pytest.raises((CgroupUnavailable, InvalidResources), match=message):
        cg.apply(r)
    assert text(dirs["pids"] / "pids.max") == "max"        # nothing half-applied


def test_v1_weights_without_bfq_or_cfq_say_why(tmp_path):
    make_v1(tmp_path)
    r, _ = resources_from_oci({"blockIO": {"weight": 300}})
    with pytest.raises(CgroupUnavailable, match="blockIO.weight: no I/O weights") as info:
        open_cgroup("c1", version="v1", root=tmp_path).apply(r)
    assert "scheduler" in (info.value.hint or "")


def test_v2_writes_each_extra_field_and_refuses_v1_only_ones(tmp_path):
    files = {"io.weight": "default 100\n", "io.max": "", "hugetlb.2MB.max": "max\n", "rdma.max": "",
             "cpu.max.burst": "0\n", "cpu.idle": "0\n", "memory.high": "max\n"}
    make_v2(tmp_path, controllers="cpu cpuset io memory pids hugetlb rdma")
    cg = open_cgroup("c1", version="v2", root=tmp_path)
    for name, content in files.items():
        put(cg.paths["unified"] / name, content)
    put(cg.paths["unified"] / "cgroup.controllers", "cpu cpuset io memory pids hugetlb rdma\n")
    full = {k: v for k, v in FULL.items() if k != "network"}
    full["cpu"] = {"burst": 1000, "idle": 1}
    full["unified"] = {"memory.high": "50M"}
    r, _ = resources_from_oci(full)
    assert cg.apply(r) == []
    p = cg.paths["unified"]
    assert text(p / "io.weight") == f"254:0 {io_weight(500)}"      # the last write: the device's weight
    assert io_weight(10) == 1 and io_weight(1000) == 10000 and io_weight(300) == 2930
    assert text(p / "io.max") == "254:0 wiops=max"
    assert text(p / "hugetlb.2MB.max") == "0" and text(p / "rdma.max") == "mlx5_1 hca_handle=3 hca_object=10000"
    assert text(p / "cpu.max.burst") == "1000" and text(p / "cpu.idle") == "1" and text(p / "memory.high") == "50M"
    for only_v1 in ({"network": {"classID": 1}}, {"cpu": {"realtimeRuntime": 5}}, {"blockIO": {"leafWeight": 20}}):
        with pytest.raises(InvalidResources, match="no cgroup v2 equivalent"):
            cg.apply(resources_from_oci(only_v1)[0])
    with pytest.raises(CgroupUnavailable, match="has no file memory.nonsense"):
        cg.apply(resources_from_oci({"unified": {"memory.nonsense": "1"}})[0])


@pytest.mark.parametrize("resources, message", [
    ({"blockIO": {"weight": 5}}, "Range of blkio weight is from 10 to 1000"),
    ({"blockIO": {"weightDevice": [{"major": 8, "weight": 100}]}}, "needs major and minor"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": -1}]}}, "non-negative"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 0}]}, "is not of the form 2MB"),
    ({"hugepageLimits": {"pageSize": "2MB"}}, "hugepageLimits must be an array"),
    ({"cpu": {"idle": 3}}, "cpu.idle must be 0 or 1"),
    ({"unified": {"../escape": "1"}}, "is not a cgroup v2 file name"),
    ({"unified": {"memory.high": 5}}, "must be a string"),
    ({"network": {"priorities": [{"name": "eth0"}]}}, "needs name and priority"),
])
def test_extra_fields_refuse_bad_values(resources, message):
    with pytest.raises(InvalidResources, match=message):
        resources_from_oci(resources)[0].validate()
