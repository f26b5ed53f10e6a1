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
blockIO, hugepageLimits,       extra (:mod:`.limits`)       applied where the kernel
network, rdma, unified,                                     has the file, else refused
cpu.realtime*/burst/idle                                    naming the field
=============================  ===========================  =========================

A value of the wrong type raises InvalidResources naming its JSON path
("linux.resources.memory.limit must be an integer"); a field this engine does
not apply (kernel memory, checkBeforeUpdate, ...) or does not know comes
back as a warning instead of being dropped in silence (unless it asks for
nothing: null, false, {} or []).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidResources
from .base import Resources
from .devices import parse_device_rules, unknown_rule_keys
from .limits import THROTTLES, DeviceThrottle, DeviceWeight, ExtraLimits

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

#: section -> OCI field -> (ExtraLimits field, JSON type), for the fields beyond Docker's flags.
EXTRA: dict[str, dict[str, tuple[str, str]]] = {
    "cpu": {"realtimeRuntime": ("cpu_rt_runtime", "int"), "realtimePeriod": ("cpu_rt_period", "uint"),
            "burst": ("cpu_burst", "uint"), "idle": ("cpu_idle", "int")},
}

#: blockIO's device lists -> the throttle kind
_THROTTLE_LISTS = dict(zip(("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice",
                            "throttleWriteIOPSDevice"), THROTTLES))

#: OCI fields this engine knows but does not apply, and what to tell the user.
UNSUPPORTED: dict[str, str] = {
    "memory.kernel": "kernel memory limits are deprecated and ignored by recent kernels (runc 1.1 ignores them too)",
    "memory.kernelTCP": "kernel memory settings are ignored, as runc 1.1 ignores them",
    "memory.useHierarchy": "use_hierarchy is always on in current kernels",
    "memory.checkBeforeUpdate": "checkBeforeUpdate is not supported",
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
    extra = ExtraLimits()
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
                elif key in EXTRA.get(section, {}):
                    name, kind = EXTRA[section][key]
                    setattr(extra, name, _check(value, kind, f"{where}.{key}"))
                elif not _unset(value):
                    warnings.append(_ignored(f"{section}.{key}"))
        elif section in _SECTIONS:
            if body is not None:
                warnings += _SECTIONS[section](body, where, extra)
        elif not _unset(body):
            warnings.append(_ignored(section))
    if extra.requested():
        values["extra"] = extra
    if values.get("pids_limit") == 0:
        values["pids_limit"] = None   # runc leaves pids.max alone for 0
    if values.get("oom_kill_disable") is False:
        values["oom_kill_disable"] = None   # runc writes memory.oom_control only for true
    return Resources(**values), warnings


def _object(body: object, where: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidResources(f"{where} must be an object, not {body!r}")
    return body


def _array(body: object, where: str) -> list[Any]:
    if not isinstance(body, list):
        raise InvalidResources(f"{where} must be an array, not {body!r}")
    return body


def _device_numbers(entry: object, where: str) -> tuple[Mapping[str, Any], int, int]:
    entry = _object(entry, where)
    major, minor = (_check(entry.get(k), "int", f"{where}.{k}") for k in ("major", "minor"))
    if not isinstance(major, int) or not isinstance(minor, int):
        raise InvalidResources(f"{where} needs major and minor device numbers", hint="e.g. 8 and 0 for /dev/sda")
    return entry, major, minor


def _block_io(body: object, where: str, extra: ExtraLimits) -> list[str]:
    warnings = []
    for key, value in _object(body, where).items():
        at = f"{where}.{key}"
        if key == "weight":
            extra.blkio_weight = _int_or_none(value, at)
        elif key == "leafWeight":
            extra.blkio_leaf_weight = _int_or_none(value, at)
        elif key == "weightDevice":
            for i, e in enumerate(_array(value or [], at)):
                entry, major, minor = _device_numbers(e, f"{at}[{i}]")
                extra.blkio_weight_device.append(DeviceWeight(
                    major, minor, _int_or_none(entry.get("weight"), f"{at}[{i}].weight"),
                    _int_or_none(entry.get("leafWeight"), f"{at}[{i}].leafWeight")))
        elif key in _THROTTLE_LISTS:
            for i, e in enumerate(_array(value or [], at)):
                entry, major, minor = _device_numbers(e, f"{at}[{i}]")
                rate = _check(entry.get("rate"), "uint", f"{at}[{i}].rate")
                extra.blkio_throttle.append(DeviceThrottle(_THROTTLE_LISTS[key], major, minor, int(rate or 0)))
        elif not _unset(value):
            warnings.append(f"{at} is not an OCI resource field this engine knows; ignored")
    return warnings


def _int_or_none(value: object, where: str) -> int | None:
    checked = _check(value, "uint", where)
    return checked if isinstance(checked, int) and not isinstance(checked, bool) else None


def _hugepages(body: object, where: str, extra: ExtraLimits) -> list[str]:
    for i, e in enumerate(_array(body, where)):
        entry = _object(e, f"{where}[{i}]")
        size = _check(entry.get("pageSize"), "str", f"{where}[{i}].pageSize")
        limit = _check(entry.get("limit"), "uint", f"{where}[{i}].limit")
        if not isinstance(size, str) or not isinstance(limit, int):
            raise InvalidResources(f"{where}[{i}] needs pageSize and limit", hint='e.g. {"pageSize": "2MB", "limit": 0}')
        extra.hugetlb[size] = limit
    return []


def _network(body: object, where: str, extra: ExtraLimits) -> list[str]:
    obj = _object(body, where)
    classid = _check(obj.get("classID"), "uint", f"{where}.classID")
    extra.net_classid = classid if isinstance(classid, int) else None
    for i, e in enumerate(_array(obj.get("priorities") or [], f"{where}.priorities")):
        entry = _object(e, f"{where}.priorities[{i}]")
        name = _check(entry.get("name"), "str", f"{where}.priorities[{i}].name")
        prio = _check(entry.get("priority"), "uint", f"{where}.priorities[{i}].priority")
        if not isinstance(name, str) or not isinstance(prio, int):
            raise InvalidResources(f"{where}.priorities[{i}] needs name and priority")
        extra.net_priorities[name] = prio
    return [f"{where}.{k} is not an OCI resource field this engine knows; ignored"
            for k in obj if k not in ("classID", "priorities") and not _unset(obj[k])]


def _rdma(body: object, where: str, extra: ExtraLimits) -> list[str]:
    for dev, e in _object(body, where).items():
        entry = _object(e, f"{where}.{dev}")
        limits = {}
        for key, name in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object")):
            value = _check(entry.get(key), "uint", f"{where}.{dev}.{key}")
            if isinstance(value, int):
                limits[name] = value
        extra.rdma[dev] = limits
    return []


def _unified(body: object, where: str, extra: ExtraLimits) -> list[str]:
    for key, value in _object(body, where).items():
        text = _check(value, "str", f"{where}[{key!r}]")
        assert isinstance(text, str)
        extra.unified[key] = text
    return []


#: whole sections of linux.resources that go to ExtraLimits: section -> reader (returns warnings)
_SECTIONS = {"blockIO": _block_io, "hugepageLimits": _hugepages, "network": _network, "rdma": _rdma,
             "unified": _unified}


def _unset(value: object) -> bool:
    """null, false, {} and [] ask for nothing, so ignoring them needs no warning."""
    return value is None or value is False or value == {} or value == []


def _ignored(field: str) -> str:
    why = UNSUPPORTED.get(field)
    if why is not None:
        return f"{ROOT}.{field}: {why}; ignored"
    return f"{ROOT}.{field} is not an OCI resource field this engine knows; ignored"
