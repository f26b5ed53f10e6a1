"""A container's cgroup: made, limited and closed to devices before its init is forked.

The device list is the same for nearly every container (Docker's defaults,
then runc's ``AllowedDevices``): it is parsed and checked against
``linux.devices`` once per distinct list and process, not once per
container, since that check replays the whole list for every device node.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from .. import cgroups, kernel
from ..errors import CgroupError, InvalidSpec
from . import devices as devices_mod

#: json of (linux.resources.devices, linux.devices) -> (checked rules, shut-out warnings).
_device_plans: dict[str, tuple[list[cgroups.DeviceRule], list[str]]] = {}


def cgroup_name(container_id: str, spec: Mapping[str, Any]) -> str:
    """The group's name below each hierarchy's root: ``cgroupsPath``, else sandbox/ID."""
    path = (spec.get("linux") or {}).get("cgroupsPath")
    if path and ":" in path:
        raise InvalidSpec("linux.cgroupsPath", f"{path!r} is a systemd slice path, and this "
                          "runtime drives cgroupfs directly", hint="use a path such as /sandbox/ID")
    return path.strip("/") if path else f"sandbox/{container_id}"


def device_plan(linux: Mapping[str, Any]) -> tuple[list[cgroups.DeviceRule], list[str]]:
    """The checked device rules of ``linux`` and the warnings for nodes they shut out (cached)."""
    spec_rules = (linux.get("resources") or {}).get("devices")
    devices = linux.get("devices") or []
    key = json.dumps([spec_rules, devices], sort_keys=True, default=str)
    plan = _device_plans.get(key)
    if plan is None:
        rules = devices_mod.cgroup_rules(spec_rules, devices)
        checked = cgroups.parse_device_rules(rules)
        cgroups.DeviceRuleSet.from_rules(checked)   # a list the kernel would not take raises here
        plan = _device_plans[key] = (checked, devices_mod.shut_out(checked, devices))
    return list(plan[0]), list(plan[1])


def make_cgroup(open_cgroup: Callable[[str], cgroups.Cgroup], container_id: str,
                spec: Mapping[str, Any]) -> tuple[cgroups.Cgroup | None, list[str]]:
    """Create and limit the container's group; (None, why) where none can be had (rootless)."""
    linux = spec.get("linux") or {}
    name = cgroup_name(container_id, spec)
    try:
        resources, warnings = cgroups.resources_from_oci(linux.get("resources") or {})
    except CgroupError as e:
        raise InvalidSpec("linux.resources", Exception.__str__(e), hint=e.hint) from None
    try:
        cg = open_cgroup(name)
        cg.create()
    except (CgroupError, PermissionError) as e:
        return None, _no_cgroup(e, [k for k, v in vars(resources).items() if v is not None])
    try:
        warnings += cg.apply(resources)
        if not kernel.in_user_namespace():
            # Rootless, device rules are not ours to set (v2's are an eBPF program,
            # which needs CAP_BPF on the host) nor needed: a user namespace may not
            # mknod, so a container opens only the nodes bound into it (runc and
            # crun skip them there too).
            rules, shut_out = device_plan(linux)
            warnings += cg.apply_devices(rules)
            warnings += shut_out
    except BaseException:
        cg.destroy()
        raise
    return cg, warnings


def _no_cgroup(e: Exception, limits: list[str]) -> list[str]:
    """What to say when no group could be made; re-raises ``e`` where running without one is wrong."""
    if limits and not kernel.in_user_namespace():
        raise e
    if limits:  # rootless without a delegated cgroup: run, and say so (Docker's rootless does too)
        flags = ", ".join("--" + k.replace("_", "-") for k in limits)
        own = cgroups.delegated()
        if own.available:   # delegated, yet the group could not be made: say what failed
            return [f"rootless: limits not applied ({flags}): cannot make a group in the delegated "
                    f"cgroup /{own.group}: {e}"]
        return [f"rootless: limits not applied ({flags}): no cgroup is delegated to "
                "this user; on a cgroup v2 host systemd delegates one (systemd-run --user "
                "-p Delegate=yes, or Delegate=yes for user@.service)"]
    if kernel.in_user_namespace():
        return []  # rootless without delegation: nothing was asked for, so nothing to say
    return [f"no cgroup: {e}; the container runs without limits or pause"]
