"""OCI ``linux.resources`` (runtime-spec config-linux.md "Control groups") as Resources.

The runtime reads a bundle's config.json; this turns its resources object into
the engine's :class:`~sandbox.cgroups.Resources` with runc's meanings:

=============================  ===========================  =========================
OCI field                      Resources                    note
=============================  ===========================  =========================
memory.limit                   memory                       -1 unlimited
memory.swap                    memory_swap                  memory + swap, as runc
memory.reservation             memory_reservation           soft limit
memory.swappiness              memory_swappiness            0..100; v1 only (v2: warning)
memory.disableOOMKiller        oom_kill_disable             v1 only (v2: warning)
cpu.shares                     cpu_shares                   v2: converted to weight
cpu.quota / cpu.period         cpu_quota / cpu_period       us
cpu.cpus / cpu.mems            cpuset_cpus / cpuset_mems    "0-2,4"
pids.limit                     pids_limit                   0 is "not set", as runc
devices                        -- (Cgroup.apply_devices)    checked here
=============================  ===========================  =========================

A value of the wrong type raises InvalidResources naming its JSON path
("linux.resources.memory.limit must be an integer"); a field this engine does
not apply (blockIO, hugepageLimits, ...) or does not know comes
back as a warning instead of being dropped in silence (unless it asks for
nothing: null, false, {} or []).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidResources
from .base import Resources
from .devices import parse_device_rules, unknown_rule_keys

ROOT = "linux.resources"

#: section -> OCI field -> (Resources field, JSON type: "int", "uint", "bool" or "str").
SUPPORTED: dict[str, dict[str, tuple[str, str]]] = {
    "memory": {"limit": ("memory", "int"), "swap": ("memory_swap", "int"),
               "reservation": ("memory_reservation", "int"), "swappiness": ("memory_swappiness", "uint"),
               "disableOOMKiller": ("oom_kill_disable", "bool")},
    "cpu": {"shares": ("cpu_shares", "uint"), "quota": ("cpu_quota", "int"),
            "period": ("cpu_period", "uint"), "cpus": ("cpuset_cpus", "str"),
            "mems": ("cpuset_mems", "str")},
    "pids": {"limit": ("pids_limit", "int")},
}

#: OCI fields this engine knows but does not apply, and what to tell the user.
UNSUPPORTED: dict[str, str] = {
    "memory.kernel": "kernel memory limits are deprecated and ignored by recent kernels",
    "memory.kernelTCP": "kernel TCP buffer limits are not supported",
    "memory.useHierarchy": "use_hierarchy is always on in current kernels",
    "memory.checkBeforeUpdate": "checkBeforeUpdate is not supported",
    "cpu.realtimeRuntime": "real-time CPU limits are not supported",
    "cpu.realtimePeriod": "real-time CPU limits are not supported",
    "cpu.burst": "CPU burst is not supported",
    "cpu.idle": "SCHED_IDLE groups are not supported",
    "blockIO": "block I/O limits are not supported",
    "hugepageLimits": "huge page limits are not supported",
    "network": "network class ids and priorities are not supported",
    "rdma": "RDMA limits are not supported",
    "unified": "raw cgroup v2 files (linux.resources.unified) are not supported",
}


def _check(value: object, kind: str, where: str) -> int | str | bool | None:
    if value is None:
        return None
    if kind == "bool":
        if not isinstance(value, bool):
            raise InvalidResources(f"{where} must be true or false, not {value!r}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise InvalidResources(f"{where} must be a string, not {value!r}",
                                   hint='a list such as "0-2,4"')
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidResources(f"{where} must be an integer, not {value!r}")
    if kind == "uint" and value < 0:
        raise InvalidResources(f"{where} must be a non-negative integer, not {value}")
    return value


def resources_from_oci(linux_resources: Mapping[str, Any] | None) -> tuple[Resources, list[str]]:
    """(Resources, warnings) for an OCI ``linux.resources`` object.

    Only types are checked here; values are checked by ``Cgroup.apply`` (docker's
    rules) and devices by ``Cgroup.apply_devices``, both before any write.
    """
    if linux_resources is None:
        return Resources(), []
    if not isinstance(linux_resources, Mapping):
        raise InvalidResources(f"{ROOT} must be an object, not {linux_resources!r}")
    values: dict[str, Any] = {}
    warnings: list[str] = []
    for section, body in linux_resources.items():
        where = f"{ROOT}.{section}"
        if section == "devices":
            parse_device_rules(body, where)
            warnings += unknown_rule_keys(body or [], where)
        elif section in SUPPORTED:
            if body is None:
                continue
            if not isinstance(body, Mapping):
                raise InvalidResources(f"{where} must be an object, not {body!r}")
            for key, value in body.items():
                if key in SUPPORTED[section]:
                    name, kind = SUPPORTED[section][key]
                    values[name] = _check(value, kind, f"{where}.{key}")
                elif not _unset(value):
                    warnings.append(_ignored(f"{section}.{key}"))
        elif not _unset(body):
            warnings.append(_ignored(section))
    if values.get("pids_limit") == 0:
        values["pids_limit"] = None   # runc leaves pids.max alone for 0
    if values.get("oom_kill_disable") is False:
        values["oom_kill_disable"] = None   # runc writes memory.oom_control only for true
    return Resources(**values), warnings


def _unset(value: object) -> bool:
    """null, false, {} and [] ask for nothing, so ignoring them needs no warning."""
    return value is None or value is False or value == {} or value == []


def _ignored(field: str) -> str:
    why = UNSUPPORTED.get(field)
    if why is not None:
        return f"{ROOT}.{field}: {why}; ignored"
    return f"{ROOT}.{field} is not an OCI resource field this engine knows; ignored"
