"""The runtime's cgroup plan: device lists checked once per distinct list, never half-cached."""

from __future__ import annotations

import pytest

from sandbox.errors import InvalidResources, InvalidSpec
from sandbox.runtime import devices as devices_mod
from sandbox.runtime import resources
from sandbox.runtime.rootfs import DEFAULT_DEVICES

DENY_ALL = [{"allow": False, "access": "rwm"}]
NULL = {"path": "/dev/null", "type": "c", "major": 1, "minor": 3}


def _linux(rules, devices=()):
    return {"resources": {"devices": rules}, "devices": list(devices)}


def test_the_same_device_list_is_planned_once_and_gives_the_same_rules(monkeypatch):
    resources._device_plans.clear()
    calls = []
    real = devices_mod.cgroup_rules
    monkeypatch.setattr(devices_mod, "cgroup_rules", lambda *a: calls.append(a) or real(*a))
    first = resources.device_plan(_linux(DENY_ALL))
    second = resources.device_plan(_linux([dict(r) for r in DENY_ALL]))   # equal, not the same object
    assert first == second and len(calls) == 1
    # deny-all, then runc's defaults: mknod of c and b, the six devices, pty slaves, ptmx
    assert len(first[0]) == 1 + 2 + len(DEFAULT_DEVICES) + 2


def test_a_different_list_gets_its_own_plan_and_its_own_warnings():
    resources._device_plans.clear()
    plain, _ = resources.device_plan(_linux(DENY_ALL))
    # /dev/null listed in linux.devices: runc's default rule for it is left out, so it is shut out
    listed, warnings = resources.device_plan(_linux(DENY_ALL, [NULL]))
    assert len(listed) == len(plain) - 1
    assert warnings and "linux.devices[0]" in warnings[0]


def test_a_caller_changing_its_plan_does_not_change_the_cache():
    resources._device_plans.clear()
    rules, warnings = resources.device_plan(_linux(DENY_ALL))
    rules.clear()
    warnings.append("mine")
    again, again_warnings = resources.device_plan(_linux(DENY_ALL))
    assert again and not again_warnings


def test_a_bad_list_is_refused_every_time_and_never_cached():
    resources._device_plans.clear()
    bad = _linux([{"allow": True, "type": "x", "access": "rwm"}])
    for _ in range(2):
        with pytest.raises(InvalidResources):
            resources.device_plan(bad)
    assert not resources._device_plans


def test_cgroup_name_is_the_spec_path_or_sandbox_id():
    assert resources.cgroup_name("abc", {"linux": {}}) == "sandbox/abc"
    assert resources.cgroup_name("abc", {"linux": {"cgroupsPath": "/x/y"}}) == "x/y"
    with pytest.raises(InvalidSpec):
        resources.cgroup_name("abc", {"linux": {"cgroupsPath": "system.slice:docker:abc"}})
