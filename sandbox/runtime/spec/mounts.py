"""The ``mounts`` list: Docker's default mounts (/proc, /dev, /dev/pts, /sys, cgroups, mqueue, shm) and the user's.

A user mount replaces the default at the same place, parents come before
children, and rootless mode changes the two mounts a user namespace cannot
make (devpts with an unmapped tty group, sysfs in the host's network
namespace).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...errors import UsageError
from .options import INIT_PATH_IN_CONTAINER, ContainerOptions


def _mount(dest: str, kind: str, source: str, options: Sequence[str]) -> dict[str, Any]:
    return {"destination": dest, "type": kind, "source": source, "options": list(options)}


def mount_list(opts: ContainerOptions, cgroup_version: str) -> list[dict[str, Any]]:
    """Docker's default mounts, with the user's mounts replacing any at the same place."""
    host = set(opts.host_namespaces)
    sys_rw = "rw" if opts.privileged else "ro"
    pts = ["rw", "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    # gid 5 is the tty group; a gid the container's user namespace does not map makes the mount
    # fail: the spec's own mappings (rootless bundles), or the namespace this spec is made in
    # (the engine's rootless mode with one uid mapped: only gid 0 exists there).
    if (_maps_id(opts.gid_mappings, 5) if opts.rootless else gid_mapped_here(5)):
        pts.append("gid=5")
    shm_k = max(opts.shm_size // 1024, 1)
    defaults = [
        _mount("/proc", "proc", "proc", ["rw", "nosuid", "noexec", "nodev"]),
        _mount("/dev", "tmpfs", "tmpfs", ["rw", "nosuid", "strictatime", "mode=755", "size=65536k"]),
        _mount("/dev/pts", "devpts", "devpts", pts),
        _sys_mount(opts, sys_rw),
        _cgroup_mount(cgroup_version, sys_rw),
        (_mount("/dev/mqueue", "bind", "/dev/mqueue", ["rbind", "nosuid", "noexec", "nodev"])
         if "ipc" in host else
         _mount("/dev/mqueue", "mqueue", "mqueue", ["rw", "nosuid", "noexec", "nodev"])),
        (_mount("/dev/shm", "bind", "/dev/shm", ["rbind", "nosuid", "noexec", "nodev"])
         if "ipc" in host else
         _mount("/dev/shm", "tmpfs", "shm",
                ["rw", "nosuid", "noexec", "nodev", "mode=1777", f"size={shm_k}k"])),
    ]
    user = [_user_mount(m) for m in opts.mounts]
    user += [_tmpfs_mount(dest, options) for dest, options in opts.tmpfs.items()]
    if opts.init:
        user.append(_mount(INIT_PATH_IN_CONTAINER, "bind", opts.init_path, ["rbind", "ro"]))
    taken = {m["destination"] for m in user}
    seen: set[str] = set()
    for m in user:
        if m["destination"] in seen:
            raise UsageError(f"duplicate mount point: {m['destination']}")
        seen.add(m["destination"])
    # As Docker: a user mount replaces the default at the same place, and a
    # user /dev replaces every default below /dev.
    kept = [m for m in defaults if m["destination"] not in taken
            and not ("/dev" in taken and m["destination"].startswith("/dev/"))]
    # Parents before children, or a later mount would hide an earlier one.
    user.sort(key=lambda m: len([p for p in m["destination"].split("/") if p]))
    return kept + user


def _sys_mount(opts: ContainerOptions, sys_rw: str) -> dict[str, Any]:
    if opts.rootless and "network" in opts.host_namespaces:
        # sysfs can only be mounted by the owner of the network namespace;
        # runc's rootless conversion binds the host's /sys instead.
        return _mount("/sys", "none", "/sys", ["rbind", "nosuid", "noexec", "nodev", "ro"])
    return _mount("/sys", "sysfs", "sysfs", [sys_rw, "nosuid", "noexec", "nodev"])


def _cgroup_mount(cgroup_version: str, sys_rw: str) -> dict[str, Any]:
    kind = "cgroup2" if cgroup_version == "v2" else "cgroup"
    return _mount("/sys/fs/cgroup", kind, kind, [sys_rw, "nosuid", "noexec", "nodev"])


def _user_mount(m: Mapping[str, Any]) -> dict[str, Any]:
    dest = m.get("destination")
    if not dest or not str(dest).startswith("/"):
        raise UsageError(f"mount destination {dest!r} is not an absolute path")
    out = {"destination": os.path.normpath(str(dest)), "type": m.get("type", "bind"),
           "source": m.get("source", ""), "options": list(m.get("options", []))}
    if out["type"] == "bind" and not any(o in ("bind", "rbind") for o in out["options"]):
        out["options"].insert(0, "rbind")
    return out


def _tmpfs_mount(dest: str, options: str) -> dict[str, Any]:
    if not dest.startswith("/"):
        raise UsageError(f"tmpfs destination {dest!r} is not an absolute path")
    given = [o for o in (options or "").split(",") if o]
    # Docker's --tmpfs defaults; an option the user gave wins over its opposite.
    opposite = {"noexec": "exec", "nosuid": "suid", "nodev": "dev", "rw": "ro"}
    merged = [o for o, other in opposite.items() if o not in given and other not in given]
    return _mount(os.path.normpath(dest), "tmpfs", "tmpfs", merged + given)


def _maps_id(mappings: Iterable[tuple[int, int, int]], container_id: int) -> bool:
    return any(start <= container_id < start + size for start, _, size in mappings)


def gid_mapped_here(gid: int, path: str = "/proc/self/gid_map") -> bool:
    """Whether ``gid`` exists in the user namespace this process is in (always, in the initial one)."""
    try:
        with open(path) as f:
            rows = [tuple(int(x) for x in line.split()) for line in f if line.strip()]
    except OSError:
        return True
    return any(inner <= gid < inner + count for inner, _outer, count in rows)
