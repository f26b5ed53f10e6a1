"""Docker's JSON shapes for what the engine returns: list entries, inspect documents, stats, filters.

Our container records already *are* ``docker inspect``'s document (plus a
private ``Sandbox`` section, left out here); the list endpoints use other,
smaller shapes (``/containers/json``'s ``Names``, ``Ports``, ``Status``...),
made here from the records.  Filters come in both of Docker's JSON forms:
``{"label": ["a=b"]}`` and the old ``{"label": {"a=b": true}}``.
"""

from __future__ import annotations

import calendar
import json
import time
from typing import Any

from .http import ApiError


def unix_time(text: str) -> int:
    """An RFC 3339 time of a record as Unix seconds (the list endpoints' ``Created``)."""
    if not text or text.startswith("0001"):
        return 0
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))


def filters(raw: Any) -> dict[str, list[str]]:
    """A ``filters`` query value, in either JSON form, as name -> values."""
    if raw in (None, "", {}):
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as e:
            raise ApiError(400, f"invalid filters: {e}") from None
    if not isinstance(raw, dict):
        raise ApiError(400, "invalid filters: expected a JSON object")
    out: dict[str, list[str]] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            out[key] = [k for k, on in value.items() if on]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        else:
            out[key] = [str(value)]
    return out


def inspect_container(rec: dict[str, Any]) -> dict[str, Any]:
    doc = {k: v for k, v in rec.items() if k != "Sandbox"}
    doc.setdefault("SizeRw", None)
    return doc


def ports_list(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """``/containers/json``'s ``Ports``: published ones with their host side, exposed ones without."""
    out: list[dict[str, Any]] = []
    published = (rec.get("NetworkSettings") or {}).get("Ports") or {}
    running = bool(rec["State"].get("Running"))
    for key in (rec["Config"].get("ExposedPorts") or {}):
        port, _, proto = key.partition("/")
        bound = published.get(key) if running else None
        if bound:
            for b in bound:
                out.append({"IP": b.get("HostIp") or "0.0.0.0", "PrivatePort": int(port),
                            "PublicPort": int(b["HostPort"]), "Type": proto or "tcp"})
        else:
            out.append({"PrivatePort": int(port), "Type": proto or "tcp"})
    return out


def container_summary(rec: dict[str, Any]) -> dict[str, Any]:
    """One entry of ``GET /containers/json``."""
    from ..containers.status import status_text
    from ..containers.setup import command_line
    ns = rec.get("NetworkSettings") or {}
    return {
        "Id": rec["Id"], "Names": [rec["Name"]], "Image": rec["Config"].get("Image") or rec["Image"],
        "ImageID": rec["Image"], "Command": command_line(rec["Config"]), "Created": unix_time(rec["Created"]),
        "Ports": ports_list(rec), "Labels": rec["Config"].get("Labels") or {},
        "State": rec["State"]["Status"], "Status": status_text(rec["State"]),
        "HostConfig": {"NetworkMode": rec["HostConfig"].get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": ns.get("Networks") or {}},
        "Mounts": [{k: m.get(k) for k in ("Type", "Name", "Source", "Destination", "Driver", "Mode", "RW",
                                          "Propagation") if k in m} for m in rec.get("Mounts") or []],
    }


def image_summary(engine: Any, image: Any, containers: dict[str, int]) -> dict[str, Any]:
    """One entry of ``GET /images/json``."""
    info = engine.images.inspect(image.id)
    return {"Id": image.id, "ParentId": info.get("Parent") or "", "RepoTags": image.tags or ["<none>:<none>"],
            "RepoDigests": info.get("RepoDigests") or [], "Created": unix_time(info.get("Created") or ""),
            "Size": int(info.get("Size") or image.size), "SharedSize": -1,
            "VirtualSize": int(info.get("VirtualSize") or info.get("Size") or image.size),
            "Labels": ((info.get("Config") or {}).get("Labels")) or {}, "Containers": containers.get(image.id, 0)}


def docker_stats(snap: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """Our stats sample as Docker's stats JSON (what ``docker stats`` and docker-py read)."""
    def stamp(t: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"

    cpu = snap["cpu_stats"]
    ncpu = int(cpu.get("online_cpus") or 1)
    total = int(cpu["cpu_usage"]["total_usage"])

    def cpu_doc(c: dict[str, Any]) -> dict[str, Any]:
        usage = c.get("cpu_usage") or {}
        t = int(usage.get("total_usage") or 0)
        return {"cpu_usage": {"total_usage": t, "percpu_usage": [t // ncpu] * ncpu,
                              "usage_in_kernelmode": int(usage.get("usage_in_kernelmode") or 0),
                              "usage_in_usermode": int(usage.get("usage_in_usermode") or 0)},
                "system_cpu_usage": int(c.get("system_cpu_usage") or 0), "online_cpus": ncpu,
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}

    mem = snap["memory_stats"]
    nets = {name: {"rx_bytes": v.get("rx_bytes", 0), "rx_packets": 0, "rx_errors": 0, "rx_dropped": 0,
                   "tx_bytes": v.get("tx_bytes", 0), "tx_packets": 0, "tx_errors": 0, "tx_dropped": 0}
            for name, v in (snap.get("networks") or {}).items() if name != "lo"}
    blk = snap.get("blkio_stats") or {}
    return {
        "read": stamp(snap["read"]), "preread": stamp(previous["read"]) if previous else "0001-01-01T00:00:00Z",
        "pids_stats": {k: v for k, v in (snap.get("pids_stats") or {}).items() if v is not None},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 0, "minor": 0, "op": "read", "value": int(blk.get("read_bytes") or 0)},
            {"major": 0, "minor": 0, "op": "write", "value": int(blk.get("write_bytes") or 0)}]},
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": {**cpu_doc(cpu), "cpu_usage": {**cpu_doc(cpu)["cpu_usage"], "total_usage": total}},
        "precpu_stats": cpu_doc(previous["cpu_stats"]) if previous else cpu_doc(snap["precpu_stats"]),
        "memory_stats": {"usage": int(mem["usage"]), "max_usage": int(mem.get("max_usage") or 0),
                         "limit": int(mem["limit"]), "failcnt": int(mem.get("failcnt") or 0),
                         "stats": {"inactive_file": int((mem.get("stats") or {}).get("inactive_file") or 0),
                                   "total_inactive_file": int((mem.get("stats") or {}).get("inactive_file") or 0)}},
        "name": snap["name"], "id": snap["id"], "networks": nets,
    }
