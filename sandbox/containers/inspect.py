"""Read-only views of a running container: ``top`` and ``stats``.

Both read the kernel directly (the container's cgroup and /proc), so they
work from any client without a round trip through the supervisor.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from ..errors import InvalidStateTransition


def _cgroup(record: dict[str, Any]) -> Any:
    from .. import cgroups
    try:
        return cgroups.open_cgroup(record["Id"])
    except Exception:  # noqa: BLE001 - no cgroups on this host
        return None


def container_pids(record: dict[str, Any]) -> list[int]:
    cg = _cgroup(record)
    if cg is not None and cg.exists():
        return sorted(cg.pids())
    pid = int(record["State"].get("Pid") or 0)
    return [pid] if pid else []


def top(record: dict[str, Any], ps_args: str | None = None) -> dict[str, Any]:
    """``docker top``: the host's ``ps`` (``-ef`` by default), rows of the container's pids."""
    if not record["State"].get("Running"):
        raise InvalidStateTransition(f"container {record['Id']} is not running", state=record["State"]["Status"],
                                     hint="top needs a running container")
    pids = set(container_pids(record))
    args = (ps_args or "-ef").split()
    out = subprocess.run(["ps", *args], capture_output=True, text=True, check=False).stdout.splitlines()
    if not out:
        return {"Titles": [], "Processes": []}
    titles = out[0].split()
    try:
        pid_col = titles.index("PID")
    except ValueError:
        raise InvalidStateTransition("ps output has no PID column", hint="keep PID in the ps options") from None
    rows = []
    for line in out[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > pid_col and fields[pid_col].isdigit() and int(fields[pid_col]) in pids:
            rows.append(fields)
    return {"Titles": titles, "Processes": rows}


def stats_snapshot(record: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """One sample in docker's stats JSON shape (cpu_stats, memory_stats, pids_stats, ...)."""
    import time
    cg = _cgroup(record)
    s = cg.stats() if cg is not None and cg.exists() and record["State"].get("Running") else None
    now = time.time()
    ncpu = os.cpu_count() or 1
    with open("/proc/stat") as f:
        system_ticks = sum(int(x) for x in f.readline().split()[1:8])
    system_ns = system_ticks * (10**9 // os.sysconf("SC_CLK_TCK"))
    snap: dict[str, Any] = {
        "read": now, "id": record["Id"], "name": record["Name"], "sampled": s is not None,
        "cpu_stats": {"cpu_usage": {"total_usage": s.cpu_usage_ns if s else 0,
                                    "usage_in_usermode": s.cpu_user_ns if s else 0,
                                    "usage_in_kernelmode": s.cpu_system_ns if s else 0},
                      "system_cpu_usage": system_ns, "online_cpus": ncpu},
        "memory_stats": {"usage": s.memory_current if s else 0,
                         "limit": (s.memory_limit if s and s.memory_limit else _host_memory()),
                         "max_usage": (s.memory_peak or 0) if s else 0,
                         "stats": {"inactive_file": s.memory_inactive_file if s else 0},
                         "failcnt": s.oom_kills if s else 0},
        "pids_stats": {"current": s.pids_current if s else 0, "limit": s.pids_limit if s else None},
        "blkio_stats": {"read_bytes": s.io_read_bytes if s else 0, "write_bytes": s.io_write_bytes if s else 0},
        "networks": _networks(int(record["State"].get("Pid") or 0)),
        "precpu_stats": (previous or {}).get("cpu_stats") or {"cpu_usage": {"total_usage": 0},
                                                              "system_cpu_usage": 0, "online_cpus": ncpu},
    }
    return snap


def cpu_percent(snap: dict[str, Any]) -> float:
    """docker's formula: container CPU delta over system CPU delta, times the CPUs."""
    cur, pre = snap["cpu_stats"], snap["precpu_stats"]
    d_cpu = cur["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
    d_sys = cur["system_cpu_usage"] - pre["system_cpu_usage"]
    if d_cpu > 0 and d_sys > 0:
        return d_cpu / d_sys * cur["online_cpus"] * 100.0
    return 0.0


def memory_usage(snap: dict[str, Any]) -> tuple[int, int]:
    m = snap["memory_stats"]
    return max(m["usage"] - m["stats"].get("inactive_file", 0), 0), int(m["limit"])


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _networks(pid: int) -> dict[str, Any]:
    if not pid:
        return {}
    out: dict[str, Any] = {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            for line in f.readlines()[2:]:
                name, _, rest = line.partition(":")
                v = rest.split()
                out[name.strip()] = {"rx_bytes": int(v[0]), "tx_bytes": int(v[8])}
    except OSError:
        pass
    return out
