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
from dataclasses import dataclass
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
    """Do the sysctls let an unprivileged user create a user namespace?  (A hint; :func:`mode` tries.)"""
    with contextlib.suppress(OSError, ValueError):
        if int(Path("/proc/sys/kernel/unprivileged_userns_clone").read_text()) == 0:
            return False
    with contextlib.suppress(OSError, ValueError):
        return int(Path("/proc/sys/user/max_user_namespaces").read_text()) > 0
    return False


#: The three modes, and what each lets a user do (``sandbox info``, the labs' banner).
MODES = {
    "root": "containers with namespaces, overlayfs, cgroup limits and networking",
    "rootless": "images, builds and containers in a user namespace",   # + rootless_limits()
    "no-namespaces": "images and builds; containers run without isolation (namespaces are refused here)",
}


@dataclass(frozen=True)
class Mode:
    """What this process may do: ``root``, ``rootless`` or ``no-namespaces``, and why.

    ``reason`` says, for the two lesser modes, what the probe met and what
    would give more; ``subuids``/``subgids`` are the user's ranges in
    /etc/subuid and /etc/subgid (start, count), which rootless mode maps as
    Podman does, with ``newuidmap``/``newgidmap`` when both are installed.
    """

    name: str
    reason: str = ""
    subuids: tuple[tuple[int, int], ...] = ()
    subgids: tuple[tuple[int, int], ...] = ()
    newuidmap: str | None = None
    newgidmap: str | None = None

    @property
    def allows(self) -> str:
        return MODES[self.name] + ("; " + rootless_limits() if self.name == "rootless" else "")


def rootless_limits() -> str:
    """Whether a rootless container gets cgroup limits here, and why (sandbox.cgroups.delegation)."""
    from .cgroups import delegated
    own = delegated()
    if not own.available:
        return f"no cgroup limits: {own.reason}"
    return (f"cgroup limits in the delegated cgroup /{own.group} "
            f"(controllers: {' '.join(own.controllers()) or 'none'})")


ONE_UID = "one uid is mapped (root in the container is you, and files of other users become yours)"


@functools.cache
def mode() -> Mode:
    """The mode of this process, found by trying (once per process)."""
    import shutil
    from . import rootless
    euid = os.geteuid()
    if rootless.inside():  # joined: "root" here is the user, in their own user namespace
        maps = []
        for kind in ("uid", "gid"):
            with open(f"/proc/self/{kind}_map") as f:
                rows = [tuple(int(x) for x in line.split()) for line in f if line.strip()]
            maps.append(tuple((host, count) for inner, host, count in rows if inner != 0))
        return Mode("rootless", "" if all(maps) else ONE_UID, maps[0], maps[1])
    if euid == 0:
        error = rootless.probe_unshare(user=False)
        if error is None:
            return Mode("root")
        user_error = rootless.probe_unshare(user=True)
        if user_error is None:  # root in a container that may only make user namespaces
            return Mode("rootless", f"root here cannot make namespaces ({error}), a user namespace can")
        return Mode("no-namespaces", f"unshare is refused here: {user_error}; containers need a host "
                                     "that allows namespaces (root, or user namespaces) for isolation")
    error = rootless.probe_unshare(user=True)
    if error is not None:
        return Mode("no-namespaces", f"user namespaces are refused here ({error}); as root, or where "
                                     "unprivileged user namespaces are allowed, containers are isolated")
    name = rootless.user_name(euid)
    subuids = rootless.id_ranges("/etc/subuid", name, euid)
    subgids = rootless.id_ranges("/etc/subgid", name, os.getegid())
    tools = shutil.which("newuidmap"), shutil.which("newgidmap")
    reason = "" if subuids and subgids and all(tools) else (
        ONE_UID + ": "
        + ("install uidmap for newuidmap/newgidmap" if not all(tools)
           else f"add {name} to /etc/subuid and /etc/subgid (usermod --add-subuids 100000-165535 "
                f"--add-subgids 100000-165535 {name})")
        + " to map a range as Podman does")
    return Mode("rootless", reason, subuids, subgids, *tools)


def privilege_mode() -> str:
    """``root``, ``rootless`` or ``no-namespaces``: :func:`mode`'s name."""
    return mode().name


def overlay_works(scratch: str) -> bool:
    """Whether a real overlay mount works under ``scratch`` (see ``image.vfs.overlay_works``)."""
    from .image import vfs
    return vfs.overlay_works(scratch)


def storage_driver(scratch: Path) -> str:
    """overlay, fuse-overlayfs or vfs: what a container made now gets (``$SANDBOX_STORAGE_DRIVER``
    forces it).  fuse-overlayfs is named as a driver of its own so ``info`` shows it (see ``image.vfs``)."""
    from .image import vfs
    return vfs.storage_driver(scratch)


def host_facts(scratch: Path) -> dict[str, Any]:
    """Everything ``info`` reports about the host itself."""
    found = mode()
    return {
        "KernelVersion": platform.release(),
        "OperatingSystem": _os_name(),
        "Architecture": platform.machine(),
        "NCPU": os.cpu_count(),
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "CgroupVersion": cgroup_version(),
        "PrivilegeMode": found.name,
        "PrivilegeModeReason": found.reason,
        "Allows": found.allows,
        "Driver": storage_driver(scratch),
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()
