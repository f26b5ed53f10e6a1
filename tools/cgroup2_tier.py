"""The cgroup v2 tier: tests and labs against a pure cgroup2 ``/sys/fs/cgroup`` on a hybrid host.

Most class machines run the unified hierarchy; this project's development VM
is a v1 hybrid.  So that the v2 code runs for real and not only against file
trees, this tool:

1. finds which of the controllers the engine uses (memory, cpu, cpuset, io,
   pids) can leave their v1 hierarchy: none of its groups has children and
   its mount can be unmounted (a mount some process holds open is "busy");
2. moves those to the unified hierarchy (unmount v1, ``+name`` in the root's
   ``cgroup.subtree_control``);
3. runs pytest in a private mount namespace where ``/sys/fs/cgroup`` is the
   cgroup2 mount itself, as on a v2 distribution (the engine detects v2
   there; a limit whose controller did not move is refused by the engine
   with its reason, and tests that need one skip);
4. always puts the layout back: the controllers leave the unified root and
   each v1 hierarchy is mounted again where it was, with its options, also
   when pytest fails or the tool is interrupted.

On a host whose ``/sys/fs/cgroup`` is already cgroup2 there is nothing to do
(the main run is the v2 run) and the tool says so.  Exit status: pytest's, or
0 with the reason on one line when the tier cannot run here.

    python tools/cgroup2_tier.py                      # the default selection below
    python tools/cgroup2_tier.py tests/integration/test_cgroups.py -k freeze
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
#: v2 controller -> the v1 subsystem bound to it (cpuacct has no v2 controller: cpu.stat counts usage).
CONTROLLERS = {"memory": ("memory",), "cpu": ("cpu",), "cpuset": ("cpuset",),
               "io": ("blkio",), "pids": ("pids",)}
DEFAULT_SELECTION = ["tests/integration/test_cgroups.py", "tests/integration/test_containers.py",
                     "tests/integration/test_runtime_lifecycle.py", "tests/integration/test_monitor.py",
                     "tests/integration/test_rootless_cgroup2.py", "tests/labs/test_labs.py::test_lab"]
ENV_FLAG = "SANDBOX_TEST_CGROUP2_TIER"


@dataclass(frozen=True)
class V1Mount:
    mount_point: str
    options: str        # the super options, e.g. "rw,cpu"
    controllers: tuple[str, ...]


def mountinfo() -> list[tuple[str, str, str]]:
    """(mount point, fs type, super options) of this namespace's mounts."""
    rows = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fstype, _source, options = right.split()[:3]
            rows.append((left.split()[4], fstype, options))
    return rows


def unified_mount() -> str | None:
    for point, fstype, _ in mountinfo():
        if fstype == "cgroup2":
            return point
    return None


def v1_mounts() -> list[V1Mount]:
    out = []
    for point, fstype, options in mountinfo():
        if fstype == "cgroup":
            names = tuple(o for o in options.split(",") if o not in ("rw", "ro") and "=" not in o)
            out.append(V1Mount(point, options, names))
    return out


def groups_in_use(mount_point: str) -> list[str]:
    """The groups below a v1 mount, after removing the empty ones our engines keep as parents
    (and dockerd's /docker, which the dockerd comparisons leave the same way)."""
    for entry in os.scandir(mount_point):
        if entry.is_dir() and (entry.name.startswith("sandbox") or entry.name == "docker"):
            for sub in sorted((p for p in Path(entry.path).rglob("*") if p.is_dir()),
                              key=lambda p: len(p.parts), reverse=True):
                try:
                    sub.rmdir()
                except OSError:
                    pass
            try:
                os.rmdir(entry.path)
            except OSError:
                pass
    left = [e.name for e in os.scandir(mount_point) if e.is_dir()]
    if not left:
        _wait_for_dying_groups(mount_point)
    return left


def _wait_for_dying_groups(mount_point: str, seconds: float = 3.0) -> None:
    """Wait until the groups just removed are freed: a hierarchy whose root still has a
    dying child is not destroyed by its unmount (cgroup_kill_sb), so its controllers
    could not move and the next mount would pick the old hierarchy up again."""
    names = [o for o in next(opts for point, _, opts in mountinfo() if point == mount_point).split(",")
             if o not in ("rw", "ro") and "=" not in o]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open("/proc/cgroups") as f:
            counts = [int(row.split()[2]) for row in f if row.split()[0] in names]
        if all(n <= 1 for n in counts):
            return
        time.sleep(0.05)


def plan() -> tuple[list[str], list[V1Mount], dict[str, str]]:
    """The controllers that can move, their v1 mounts, and for the others why not."""
    mounts = v1_mounts()
    movable: list[str] = []
    release: list[V1Mount] = []
    why: dict[str, str] = {}
    for v2name, v1names in CONTROLLERS.items():
        holders = [m for m in mounts if set(m.controllers) & set(v1names)]
        if not holders:
            why[v2name] = "not mounted under v1 and not in the unified hierarchy (kernel without it?)"
            continue
        busy = {m.mount_point: groups_in_use(m.mount_point) for m in holders}
        busy = {point: groups for point, groups in busy.items() if groups}
        if busy:
            why[v2name] = "its v1 hierarchy has groups in use (" + "; ".join(
                f"{point}: {', '.join(groups[:3])}" for point, groups in busy.items()) + ")"
            continue
        movable.append(v2name)
        release += [m for m in holders if m not in release]
    return movable, release, why


def write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def move(movable: list[str], release: list[V1Mount], unified: Path, why: dict[str, str]) -> list[V1Mount]:
    """Unmount the v1 hierarchies and enable their controllers in v2; the mounts actually released."""
    released = []
    for m in release:
        done = subprocess.run(["umount", m.mount_point], capture_output=True, text=True)
        if done.returncode != 0:
            for name in movable:
                if set(CONTROLLERS[name]) & set(m.controllers):
                    why[name] = f"umount {m.mount_point}: {done.stderr.strip() or 'failed'} (a process holds it open)"
            continue
        released.append(m)
    for name in list(movable):
        if name in why:
            movable.remove(name)
            continue
        # The kernel frees a hierarchy a little after its last unmount: try for a second.
        for _ in range(20):
            try:
                write(unified / "cgroup.subtree_control", f"+{name}")
                break
            except OSError as e:
                error = e
                time.sleep(0.05)
        else:
            why[name] = f"could not enable it in the unified hierarchy: {error}" + (
                " (its v1 hierarchy lives on: a mount namespace made while it was mounted, a container's "
                "or a dockerd's, still holds a copy of the mount)" if getattr(error, "errno", None) == 2 else "")
            movable.remove(name)
    return released


def restore(moved: list[str], released: list[V1Mount], unified: Path) -> list[str]:
    """Put the layout back; the problems met (empty when all went back)."""
    problems = []
    # Groups the tests' engines keep as parents (empty "sandbox" directories) hold the controllers.
    for top in sorted(unified.iterdir()) if unified.is_dir() else ():
        if top.is_dir() and top.name.startswith("sandbox"):
            for sub in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                try:
                    sub.rmdir()
                except OSError as e:
                    problems.append(f"rmdir {sub}: {e}")
            try:
                top.rmdir()
            except OSError as e:
                problems.append(f"rmdir {top}: {e}")
    for name in moved:
        try:
            write(unified / "cgroup.subtree_control", f"-{name}")
        except OSError as e:
            problems.append(f"-{name} in {unified}/cgroup.subtree_control: {e}")
    for m in released:
        for _ in range(40):   # the controller is free again a little after it left v2
            done = subprocess.run(["mount", "-t", "cgroup", "-o", m.options, "cgroup", m.mount_point],
                                  capture_output=True, text=True)
            if done.returncode == 0:
                break
            time.sleep(0.05)
        else:
            problems.append(f"mount -t cgroup -o {m.options} cgroup {m.mount_point}: {done.stderr.strip()}")
    return problems


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        print("cgroup2 tier: skipped, it needs root (it moves controllers between hierarchies)")
        return 0
    root_fs = next((fstype for point, fstype, _ in mountinfo() if point == str(ROOT)), None)
    if root_fs == "cgroup2":
        print("cgroup2 tier: skipped, /sys/fs/cgroup is cgroup2 already: the main run is the v2 run")
        return 0
    unified_point = unified_mount()
    if unified_point is None:
        print("cgroup2 tier: skipped, no cgroup2 hierarchy is mounted on this host")
        return 0
    unified = Path(unified_point)
    movable, release, why = plan()
    moved: list[str] = []
    released: list[V1Mount] = []

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, interrupted)
    try:
        released = move(movable, release, unified, why)
        moved = movable
        available = (unified / "cgroup.controllers").read_text().split()
        print(f"cgroup2 tier: /sys/fs/cgroup is cgroup2 for this run; controllers: {' '.join(available) or 'none'}")
        for name, reason in sorted(why.items()):
            print(f"cgroup2 tier: {name} stays on v1: {reason}")
        args = argv or DEFAULT_SELECTION
        script = ('umount -l /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"')
        env = dict(os.environ, **{ENV_FLAG: ",".join(moved) or "-"})
        return subprocess.call(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                                sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", *args],
                               env=env)
    finally:
        problems = restore(moved, released, unified)
        signal.signal(signal.SIGTERM, old)
        if problems:
            print("cgroup2 tier: THE LAYOUT WAS NOT PUT BACK IN FULL:\n  " + "\n  ".join(problems), file=sys.stderr)
        else:
            print("cgroup2 tier: the v1 layout is back as it was")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
