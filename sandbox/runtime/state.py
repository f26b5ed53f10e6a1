"""A container's state directory below the runtime root, and what goes in it.

``<root>/<id>/`` holds ``state.json`` (written by ``create`` once the init is
ready), ``exec.fifo`` until ``start``, and, for a container without a mount
namespace of its own, ``host-mounts.json``.  The root is on tmpfs
(``/run/sandbox-runtime``): a reboot forgets containers that cannot survive
it anyway, so nothing here is fsynced.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import time
from collections.abc import Mapping
from typing import Any

from .. import cgroups
from ..errors import CgroupError
from . import rootfs as fs

#: In a container's state directory: the mounts below its rootfs before it
#: was created, when it has no mount namespace of its own (see rootfs.unmount_below).
HOST_MOUNTS = "host-mounts.json"


def default_root() -> str:
    """Where container state lives: /run/sandbox-runtime as root, $XDG_RUNTIME_DIR otherwise."""
    if os.geteuid() == 0:
        return "/run/sandbox-runtime"
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/sandbox-runtime-{os.getuid()}"
    return os.path.join(base, "sandbox-runtime")


def now() -> str:
    """The runtime spec's ``created``: RFC 3339 with nanoseconds, UTC."""
    t = time.time_ns()
    stamp = _dt.datetime.fromtimestamp(t // 10**9, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{t % 10**9:09d}Z"


def own_mount_namespace(spec: Mapping[str, Any]) -> bool:
    """Whether the container gets a mount namespace (new, or joined by path)."""
    return any(ns.get("type") == "mount" for ns in (spec.get("linux") or {}).get("namespaces") or [])


def unmount_host_mounts(state_dir: str, rootfs: str | None) -> None:
    """Take away the mounts a container without a mount namespace made in ours."""
    try:
        with open(os.path.join(state_dir, HOST_MOUNTS)) as f:
            keep = json.load(f)
    except (OSError, ValueError):
        return
    if rootfs:
        fs.unmount_below(rootfs, keep)


def remove_cgroup(cg: cgroups.Cgroup) -> None:
    """Remove the group; a process that slipped in (a fork racing the kill) is killed first."""
    try:
        cg.destroy()
    except CgroupError:
        cg.kill()
        cg.destroy()


def remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def write_pid_file(path: str, pid: int) -> None:
    write_atomic(path, str(pid).encode())


def write_json(path: str, data: Any) -> None:
    write_atomic(path, json.dumps(data, separators=(",", ":")).encode())


def write_atomic(path: str, data: bytes) -> None:
    """Temp file + rename: a reader sees the old file or the new one, never half of one.

    No fsync: runtime state lives on tmpfs (/run) and dies with the boot anyway.
    """
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)
