"""The cgroup v2 subtree a user may manage: where rootless containers get their limits.

A user can never write below the hierarchy's root, so in rootless mode limits
need a group somebody gave them.  cgroup v2 has a word for that: a group is
*delegated* to a user when its directory and its ``cgroup.procs``,
``cgroup.subtree_control`` and ``cgroup.threads`` are theirs
(Documentation/admin-guide/cgroup-v2.rst, "Delegation"); systemd's
``Delegate=yes`` chowns exactly those for a unit's group (user@.service,
``systemd-run --user -p Delegate=yes --scope``).  The only candidate is the
group this process is in (``0::/PATH`` of /proc/self/cgroup): a user's
processes live in their delegated group, and nothing else of the tree is
theirs.  Whether it is delegated is asked of the kernel with access(2) on
the files that matter, not guessed from sysctls or the uid.

"No internal processes" (cgroup-v2.rst): controllers can be enabled for a
group's children only while the group itself holds no process, and the
user's own processes (their shell, the namespace holder, the supervisor)
are in it.  So before enabling, :func:`evacuate` moves them into a leaf child
``init``, as rootlesskit's ``--evacuate-cgroup2`` and Podman do.  From then
on a new process of the user starts in ``<group>/init``, and :func:`find`
takes ``init``'s parent for the delegated group when that parent is also the
user's.  The ``init`` group is left as it is afterwards: the user's processes
live there, and moving them back would need the controllers switched off
under running containers.  systemd removes the whole subtree with its unit.
"""

from __future__ import annotations

import errno as E
import functools
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import CgroupError, PermissionRequired
from . import fs

#: The leaf child the delegated group's own processes move to.
LEAF = "init"
#: What a delegation hands over, beside the directory itself (cgroup.threads only matters
#: for threaded subtrees, which the engine does not make).
FILES = ("cgroup.procs", "cgroup.subtree_control")


@dataclass(frozen=True)
class Delegation:
    """The delegated group of this process, or why there is none (``reason``)."""

    mount: Path
    group: str = ""        # below ``mount``, no leading slash; "" when none was found
    reason: str = ""       # '' when delegated

    @property
    def available(self) -> bool:
        return not self.reason

    @property
    def path(self) -> Path:
        return self.mount / self.group

    def controllers(self) -> list[str]:
        """The controllers its parent gave it (its cgroup.controllers), sorted."""
        if not self.available:
            return []
        return sorted((fs.read(self.path / "cgroup.controllers") or "").split())


def own_group(proc_cgroup: str | os.PathLike[str] = "/proc/self/cgroup") -> str | None:
    """The path of the unified-hierarchy line (``0::/user.slice/...``); None without one."""
    try:
        text = Path(proc_cgroup).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def not_manageable(path: Path) -> str:
    """'' when this process may create groups in ``path`` and move processes and
    controllers there, else the first file it may not write."""
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{path} is not writable"
    for name in FILES:
        if not os.access(path / name, os.W_OK):
            return f"{path / name} is not writable"
    return ""


def find(mount: str | os.PathLike[str],
         proc_cgroup: str | os.PathLike[str] = "/proc/self/cgroup") -> Delegation:
    """The group of this process below the cgroup2 ``mount`` if it is delegated to it."""
    root = Path(mount)
    own = own_group(proc_cgroup)
    if own is None:
        return Delegation(root, reason="this process is in no cgroup v2 group")
    if own.startswith("/.."):    # a cgroup namespace whose root is below our group
        return Delegation(root, reason=f"this process's cgroup {own} is outside its cgroup namespace")
    group = own.strip("/")
    if not group:
        return Delegation(root, reason="this process is in the root cgroup, which is never delegated")
    parent, _, leaf = group.rpartition("/")
    if leaf == LEAF and parent and not not_manageable(root / parent):
        group = parent           # evacuated before (see the module docstring)
    why = not_manageable(root / group)
    if why:
        return Delegation(root, group, f"the cgroup /{group} is not delegated to this user ({why})")
    return Delegation(root, group)


@functools.cache
def current(mount: Path) -> Delegation:
    """:func:`find` for this process, read once: its group does not change under it."""
    return find(mount)


def evacuate(group: Path) -> None:
    """Move the processes of ``group`` into ``group/init`` so it may enable controllers.

    Processes forked while the others move show up on the next read; a
    process that exits meanwhile is fine.  Any other refusal is left to the
    caller's enabling step, which then leaves the controllers out.
    """
    pids = fs.read_pids(group)
    if not pids:
        return
    leaf = group / LEAF
    try:
        fs.mkdir(leaf)
    except (CgroupError, PermissionRequired):
        return
    for _ in range(20):
        for pid in pids:
            try:
                fs.write(leaf / "cgroup.procs", pid)
            except (CgroupError, PermissionRequired) as e:
                if getattr(e, "errno", None) != E.ESRCH:
                    return
        pids = fs.read_pids(group)
        if not pids:
            return
