"""What this machine allows: privilege mode, cgroup version, storage driver.

Detected, never assumed (DESIGN.md "Privilege modes").  ``sandbox info`` prints
this, and later layers use it to choose overlay or vfs and to explain what
cannot run here instead of failing half-way.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _mount_types() -> dict[str, str]:
    """mount point -> file system type, from /proc/self/mountinfo."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) >= 5 and right:
                out[fields[4].replace("\\040", " ")] = right.split()[0]
    return out


def cgroup_version(mounts: dict[str, str] | None = None) -> str:
    """'v2' (unified), 'v1 (hybrid)' (v1 controllers plus a v2 mount), 'v1', or 'none'."""
    mounts = mounts if mounts is not None else _mount_types()
    root = mounts.get(str(CGROUP_ROOT))
    if root == "cgroup2":
        return "v2"
    if root is None and not any(t == "cgroup" for t in mounts.values()):
        return "none"
    if any(t == "cgroup2" for m, t in mounts.items() if m.startswith(str(CGROUP_ROOT))):
        return "v1 (hybrid)"
    return "v1"


def userns_allowed() -> bool:
    """Can an unprivileged user create a user namespace here?"""
    with contextlib.suppress(OSError, ValueError):
        if int(Path("/proc/sys/kernel/unprivileged_userns_clone").read_text()) == 0:
            return False
    with contextlib.suppress(OSError, ValueError):
        return int(Path("/proc/sys/user/max_user_namespaces").read_text()) > 0
    return False


def privilege_mode() -> str:
    """'full' as root, 'rootless' with user namespaces, otherwise 'unavailable'."""
    if os.geteuid() == 0:
        return "full"
    return "rootless" if userns_allowed() else "unavailable"


@functools.cache
def overlay_works(scratch: str) -> bool:
    """Try a real overlay mount under ``scratch`` (the store's tmp dir), once per process."""
    if os.geteuid() != 0:
        return False
    from . import kernel  # the store works without ctypes when this is never asked
    with contextlib.suppress(OSError):
        if "overlay" not in Path("/proc/filesystems").read_text():
            return False
    try:
        with tempfile.TemporaryDirectory(dir=scratch) as tmp:
            dirs = [Path(tmp, n) for n in ("lower", "upper", "work", "merged")]
            for d in dirs:
                d.mkdir()
            kernel.mount("overlay", dirs[3], "overlay", 0,
                         f"lowerdir={dirs[0]},upperdir={dirs[1]},workdir={dirs[2]}")
            kernel.umount(dirs[3])
        return True
    except Exception:
        return False


def storage_driver(scratch: Path) -> str:
    return "overlay" if overlay_works(str(scratch)) else "vfs"


def host_facts(scratch: Path) -> dict[str, Any]:
    """Everything ``info`` reports about the host itself."""
    mode = privilege_mode()
    allows = {
        "full": "containers with namespaces, overlayfs, cgroup limits and networking",
        "rootless": "images, builds and containers in a user namespace; no cgroup limits unless delegated",
        "unavailable": "images only (store, layers, save/load); containers need root or user namespaces",
    }[mode]
    return {
        "KernelVersion": platform.release(),
        "OperatingSystem": _os_name(),
        "Architecture": platform.machine(),
        "NCPU": os.cpu_count(),
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "CgroupVersion": cgroup_version(),
        "PrivilegeMode": mode,
        "Allows": allows,
        "Driver": storage_driver(scratch),
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()
