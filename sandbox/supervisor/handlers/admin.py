"""Small requests: the supervisor's own (ping, shutdown) and a record's (rename, update, prune, commit's pause)."""

from __future__ import annotations

import os
from typing import Any

from ...containers.records import NAME_RE
from ...errors import ContainerExists, UsageError
from ..box import Box
from ..conn import Conn
from ..core import Core


def op_ping(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    from ..._version import __version__
    spares = core.runtime.spares
    return {"pid": os.getpid(), "keeper": core.keeper, "version": __version__,
            "containers": len(core.boxes),
            # how creates found their init (sandbox/runtime/spare.py): for benchmarks and tests
            "spares": {"made": spares.made, "taken": spares.taken, "missed": spares.missed,
                       "off": spares.broken} if spares is not None else None}


def op_shutdown(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    """Stop the supervisor; containers keep running and are adopted by the next one."""
    core.loop.running = False
    return {"pid": os.getpid()}


def op_rename(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    box = core.box(msg["id"])
    new = str(msg["name"]).lstrip("/")
    if not NAME_RE.match(new):
        raise UsageError(f"Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    other = core.taken_names().get(new)
    if other and other != box.id:
        raise ContainerExists(f'Conflict. The container name "/{new}" is already in use by container '
                              f'"{other}". You have to remove (or rename) that container to be able '
                              "to reuse that name.")
    old = box.name
    box.rec["Name"] = "/" + new
    box.save(durable=True)
    box.event("rename", oldName="/" + old)
    return {"Id": box.id}


#: docker update's resource keys, as HostConfig spells them.
UPDATABLE = ("Memory", "MemorySwap", "MemoryReservation", "CpuShares", "CpuQuota", "CpuPeriod",
             "NanoCpus", "CpusetCpus", "PidsLimit")


def op_update(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    """docker update: new limits in the record, and on the live cgroup when running."""
    from ...cgroups import Resources
    box = core.box(msg["id"])
    changes = dict(msg["resources"])
    host = box.rec["HostConfig"]
    res = Resources(memory=changes.get("Memory"), memory_swap=changes.get("MemorySwap"),
                    memory_reservation=changes.get("MemoryReservation"),
                    cpu_shares=changes.get("CpuShares"), cpu_quota=changes.get("CpuQuota"),
                    cpu_period=changes.get("CpuPeriod"),
                    cpus=(changes["NanoCpus"] / 1e9) if changes.get("NanoCpus") else None,
                    cpuset_cpus=changes.get("CpusetCpus"), pids_limit=changes.get("PidsLimit"))
    warnings: list[str] = []
    if box.running and box.rc is not None and box.rc.cgroup is not None:
        warnings = box.rc.cgroup.apply(res)
    elif box.running and any(v is not None for v in vars(res).values()):
        from ...cgroups import delegated
        from ...kernel import in_user_namespace  # rootless: the container got no cgroup (see runtime.resources)
        if in_user_namespace():
            why = ("no cgroup is delegated to this user" if not delegated().available
                   else "the container was started without a cgroup")
            warnings = [f"rootless: the new limits are kept for the next start but not applied: {why}"]
    for key in UPDATABLE:
        if changes.get(key) is not None:
            host[key] = changes[key]
    if changes.get("RestartPolicy"):
        host["RestartPolicy"] = changes["RestartPolicy"]
    box.save(durable=True)
    box.event("update")
    return {"Warnings": warnings}


def _matches_labels(box: Box, labels: list[str]) -> bool:
    mine = box.rec["Config"].get("Labels") or {}
    for item in labels:
        k, _, v = item.partition("=")
        if k not in mine or (v and mine[k] != v):
            return False
    return True


def op_prune(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    removed = []
    for box in list(core.boxes.values()):
        if not box.running and box.restart_timer is None and _matches_labels(box, msg.get("labels") or []):
            box.remove(force=False, volumes=False)
            removed.append(box.id)
    return {"ContainersDeleted": removed, "SpaceReclaimed": 0}


def op_commit_pause(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    """Freeze (or thaw) a running container around a commit, as docker commit --pause does.

    The freeze belongs to ``conn``: should the committing client die before it
    thaws (a kill -9 mid-commit), the supervisor thaws the container when that
    connection closes (``Supervisor.conn_closed``).  Nobody else could: the
    container is not "paused", so ``unpause`` refuses it, and it would stay
    frozen for good.
    """
    box = core.box(msg["id"])
    if box.running and box.rc is not None and box.rc.cgroup is not None and not box.state.get("Paused"):
        if msg.get("freeze"):
            box.rc.cgroup.freeze()
            box.frozen_for = conn
        else:
            box.rc.cgroup.thaw()
            box.frozen_for = None
    return None


HANDLERS = {"ping": op_ping, "shutdown": op_shutdown, "rename": op_rename, "update": op_update,
            "prune": op_prune, "commit_pause": op_commit_pause}
