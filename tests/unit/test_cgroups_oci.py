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
from tests.unit.test_cgroups import make_v1, make_v2, text

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
    assert r == Resources(memory=64 * MB, memory_swappiness=60)
    assert warnings == [
        "linux.resources.memory.madeUp is not an OCI resource field this engine knows; ignored",
        "linux.resources.blockIO: block I/O limits are not supported; ignored",
        "linux.resources.rdma: RDMA limits are not supported; ignored",
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
