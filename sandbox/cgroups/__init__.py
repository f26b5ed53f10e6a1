"""cgroup v1 and v2 behind one interface (DESIGN.md "Key decisions").

Most current distributions run the unified cgroup v2 hierarchy; many class
machines (and the reference VM) still run v1 "hybrid": every controller on its
own v1 mount below ``/sys/fs/cgroup`` plus a controller-less cgroup2 mount at
``/sys/fs/cgroup/unified``.  The engine only sees :class:`Cgroup`:

* :mod:`sandbox.cgroups.v1` -- one directory per controller
  (Documentation/admin-guide/cgroup-v1/*.rst).
* :mod:`sandbox.cgroups.v2` -- one directory in the unified tree
  (Documentation/admin-guide/cgroup-v2.rst).

Layout follows youki's ``libcgroups`` (STYLE.md): ``base`` holds the shared
interface and the docker-flag semantics of :class:`Resources`, ``fs`` the
unbuffered file access and ``mountinfo`` reading, ``parse`` the kernel's file
formats, ``oci`` the OCI ``linux.resources`` reader, ``devices`` the device
rules (and ``ebpf`` their v2 program), ``oom`` the OOM notifiers,
``delegation`` the v2 subtree a user may manage (rootless mode's limits).

::

    >>> cg = open_cgroup("3f2a9c")              # sandbox/3f2a9c, v1 or v2
    >>> cg.create(); cg.apply(Resources(memory=64 << 20, cpus=0.5))
    >>> cg.apply_devices([{"allow": False}, {"allow": True, "type": "c", "major": 1, "minor": 3}])
    >>> cg.add(pid); cg.stats().memory_current
    >>> with cg.oom_notifier() as oom: oom.wait(1.0)   # OOM events since created
    >>> cg.freeze(); cg.thaw(); cg.kill(); cg.destroy()
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import CgroupError, CgroupUnavailable, InvalidResources
from . import delegation
from .base import Cgroup, Resources, Stats, cpus_to_quota, shares_to_weight
from .delegation import Delegation
from .devices import DeviceRule, DeviceRuleSet, device_allowed, parse_device_rules
from .fs import DEFAULT_ROOT, MountInfo, read_mountinfo
from .oci import resources_from_oci
from .oom import OomNotifier


def detect(root: str | os.PathLike[str] = DEFAULT_ROOT,
           mountinfo: str | os.PathLike[str] = "/proc/self/mountinfo") -> str:
    """Which cgroup version the engine should use below ``root``: "v2", "v1" or "none".

    A cgroup2 mount AT ``root`` is v2.  Any v1 mount below it is "v1" -- also on
    a hybrid host, whose cgroup2 mount has no controllers (the kernel binds each
    controller to one hierarchy only).  A cgroup2 mount below ``root`` and no v1
    mounts is "v2".  When mountinfo knows nothing about ``root`` (a test tree,
    a bind mount), the files decide: ``cgroup.controllers`` means v2, controller
    directories with ``cgroup.procs`` mean v1.
    """
    root_path = Path(root)
    mounts = [m for m in read_mountinfo(mountinfo) if m.is_cgroup and m.below(root_path)]
    if any(m.fstype == "cgroup2" and m.mount_point == root_path for m in mounts):
        return "v2"
    if any(m.fstype == "cgroup" for m in mounts):
        return "v1"
    if mounts:
        return "v2"
    if (root_path / "cgroup.controllers").is_file():
        return "v2"
    try:
        if any((e / "cgroup.procs").is_file() for e in root_path.iterdir() if e.is_dir()):
            return "v1"
    except OSError:
        pass
    return "none"


def cgroup_name(name: str, parent: str | None = "sandbox") -> str:
    """The group's path below a hierarchy root: ``name`` as given when it has a
    slash ("sandbox/3f2a", "sandbox-test-1/x"), else ``parent/name``.

    Refuses absolute paths and ``..`` so a container id can never name a group
    outside the hierarchy.
    """
    full = name if "/" in name or not parent else f"{parent}/{name}"
    parts = full.split("/")
    if not name or any(p in ("", ".", "..") for p in parts):
        raise CgroupError(f"invalid cgroup name {name!r}",
                          hint="use a relative path such as 'sandbox/<container-id>'")
    return "/".join(parts)


def cgroup_opener(*, version: str | None = None, root: str | os.PathLike[str] | None = None,
                  parent: str | None = "sandbox", rootless: bool | None = None) -> Callable[[str], Cgroup]:
    """:func:`open_cgroup` with the hierarchy looked up once, for a long-lived caller.

    Finding the version and the controller mounts reads /proc/self/mountinfo,
    which costs about a millisecond on a host with many mounts; the runtime
    opens a group for every create, start and status check.  ``rootless``
    as for :func:`open_cgroup`.
    """
    from . import v1, v2

    base = Path(root) if root is not None else Path(DEFAULT_ROOT)
    found = version or detect(base)
    if found == "v2":
        unified = v2.unified_root(base, explicit=root is not None)
        below = _delegated_group(unified, root, rootless)
        return lambda name: v2.V2Cgroup(cgroup_name(name, parent), unified, below)
    if found == "v1":
        dirs = v1.controller_dirs(base)
        return lambda name: v1.V1Cgroup(cgroup_name(name, parent), dict(dirs))
    return lambda name: open_cgroup(name, version=version, root=root, parent=parent, rootless=rootless)


def _delegated_group(unified: Path, root: str | os.PathLike[str] | None, rootless: bool | None) -> str:
    """Where a v2 group's name starts: "" (the root), or the user's delegated group.

    ``rootless`` None means "in a user namespace, on the real hierarchy" (a
    fake ``root`` in tests is used as it is).  Rootless without a delegation
    the names stay below the root, where creating them is refused, and the
    caller runs without limits.
    """
    if rootless is None:
        from ..kernel import in_user_namespace
        rootless = root is None and in_user_namespace()
    if not rootless:
        return ""
    own = delegation.current(unified)
    return own.group if own.available else ""


def delegated(root: str | os.PathLike[str] | None = None) -> Delegation:
    """This process's delegated cgroup v2 group, or why it has none: where rootless limits go.

    Only a cgroup2 hierarchy at ``root`` counts: on a v1 or hybrid host the
    limits live in v1 groups, which are not handed to users (the hybrid
    unified mount has no controllers to give).
    """
    from . import v2

    base = Path(root) if root is not None else Path(DEFAULT_ROOT)
    if detect(base) != "v2":
        return Delegation(base, reason=f"{base} is cgroup v1 here, whose limits are not delegated to users; "
                                       "a cgroup v2 host delegates them (systemd's Delegate=yes)")
    return delegation.current(v2.unified_root(base, explicit=root is not None))


def open_cgroup(name: str, *, version: str | None = None,
                root: str | os.PathLike[str] | None = None,
                parent: str | None = "sandbox", rootless: bool | None = None) -> Cgroup:
    """A handle on the group ``name`` (see :func:`cgroup_name`); nothing is created.

    Rootless (``rootless`` None: this process is in a user namespace), a v2
    group is below the user's delegated group when they have one
    (:mod:`.delegation`): nothing else of the tree is theirs.

    ``version`` None detects it; "v2" on a hybrid host picks the cgroup2 mount
    found in mountinfo (``/sys/fs/cgroup/unified``), which can freeze and kill
    but enforce no limits.  ``root`` overrides where the hierarchy lives (tests
    use a fake tree); for v1 it is the directory holding the controller mounts,
    for v2 the cgroup2 mount itself.
    """
    # Imported here: a client that never touches a container does not load them.
    from . import v1, v2

    path = cgroup_name(name, parent)
    base = Path(root) if root is not None else Path(DEFAULT_ROOT)
    found = version or detect(base)
    if found == "v2":
        unified = v2.unified_root(base, explicit=root is not None)
        return v2.V2Cgroup(path, unified, _delegated_group(unified, root, rootless))
    if found == "v1":
        return v1.V1Cgroup(path, v1.controller_dirs(base))
    if found == "none":
        raise CgroupUnavailable(
            f"no cgroup file system is mounted at {base}",
            hint="mount one: mount -t cgroup2 none /sys/fs/cgroup; or run without limits")
    raise CgroupError(f"unknown cgroup version {version!r}", hint="use 'v1', 'v2' or None to detect")


__all__ = [
    "Cgroup", "CgroupError", "CgroupUnavailable", "Delegation", "DeviceRule", "DeviceRuleSet",
    "InvalidResources", "MountInfo", "OomNotifier", "Resources", "Stats", "cgroup_name",
    "cgroup_opener", "cpus_to_quota", "delegated", "detect", "device_allowed", "open_cgroup", "parse_device_rules",
    "resources_from_oci", "shares_to_weight",
]
