"""The device list the runtime applies: the spec's rules, then runc's."""

from sandbox.cgroups.devices import DeviceRuleSet
from sandbox.runtime.devices import cgroup_rules, runtime_rules, shut_out

DENY_ALL = [{"allow": False, "access": "rwm"}]    # what `runc spec` writes


def test_a_deny_all_list_still_opens_the_defaults_and_allows_mknod():
    state = DeviceRuleSet.from_rules(cgroup_rules(DENY_ALL, []))
    for major, minor in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2), (136, 4)):
        assert state.allowed("c", major, minor, "rwm")
    assert state.allowed("c", 10, 229, "m") and state.allowed("b", 8, 0, "m")
    assert not state.allowed("c", 10, 229, "rw") and not state.allowed("b", 8, 0, "r")


def test_runc_order_and_a_listed_default_is_left_to_the_spec():
    rules = runtime_rules([{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}])
    assert [(r["type"], r.get("major"), r.get("minor"), r["access"]) for r in rules] == [
        ("c", None, None, "m"), ("b", None, None, "m"), ("c", 1, 8, "rwm"), ("c", 1, 7, "rwm"),
        ("c", 5, 0, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 9, "rwm"), ("c", 136, None, "rwm"),
        ("c", 5, 2, "rwm")]
    state = DeviceRuleSet.from_rules(cgroup_rules(DENY_ALL, [{"path": "/dev/null"}]))
    assert not state.allowed("c", 1, 3, "rw")


def test_the_spec_rules_come_first_so_they_cannot_take_a_default_back():
    rules = cgroup_rules(DENY_ALL + [{"allow": False, "type": "c", "major": 1, "minor": 3,
                                      "access": "rwm"}], [])
    assert DeviceRuleSet.from_rules(rules).allowed("c", 1, 3, "rw")


def test_a_listed_device_the_rules_deny_is_named_in_a_warning():
    fuse = {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}
    warnings = shut_out(cgroup_rules(DENY_ALL, [fuse]), [fuse])
    assert len(warnings) == 1 and warnings[0].startswith("linux.devices[0]: /dev/fuse")
    allowed = DENY_ALL + [{"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}]
    assert shut_out(cgroup_rules(allowed, [fuse]), [fuse]) == []
