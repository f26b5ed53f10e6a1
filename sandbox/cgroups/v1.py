"""cgroup v1: one directory per controller (Documentation/admin-guide/cgroup-v1/).

Each controller is its own mount, or shares one with others ("cpu,cpuacct" on
most distros, separate "cpu" and "cpuacct" on others); mountinfo says which,
so a co-mounted directory is created, joined and removed once.  The files:

* memory (memory.rst): memory.limit_in_bytes, memory.memsw.limit_in_bytes
  (only with swap accounting), memory.soft_limit_in_bytes (the reservation),
  memory.swappiness, usage/max_usage_in_bytes, memory.oom_control (written: 1
  turns the OOM killer off for the group; read: its ``oom_kill`` counter), and
  cgroup.event_control to get OOM events on an eventfd (:mod:`.oom`).  memsw
  must stay >= the memory limit at every moment, so the write order depends on
  the direction (runc does the same).
* cpu (scheduler/sched-design-CFS, sched-bwc.rst): cpu.shares, cpu.cfs_period_us,
  cpu.cfs_quota_us; cpuacct.rst: cpuacct.usage(_user/_sys), cpuacct.stat.
* cpuset (cpusets.rst): a new cpuset starts with empty cpus and mems and no
  task can join it, so both are copied down from the parent on create.
* pids (pids.rst): pids.max, pids.current.
* freezer (freezer-subsystem.rst): freezer.state goes FREEZING -> FROZEN; we
  wait for FROZEN.  A frozen task does not die from SIGKILL until thawed.
* blkio (blkio-controller.rst): io_service_bytes, CFQ/BFQ or throttle layer.
* devices (devices.rst): devices.deny / devices.allow, one rule per write, in
  the OCI list's order after a deny-all (:mod:`.devices`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path

from ..errors import CgroupError, CgroupUnavailable
from . import fs
from .base import Cgroup, Resources, Stats, wait_until
from .devices import DeviceRule, DeviceRuleSet
from .oom import EventfdOomNotifier, OomNotifier
from .limits import plan_v1
from .parse import blkio_service_bytes, flat_keyed

CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
               "hugetlb", "net_cls", "net_prio", "rdma")

#: v1 shows "no limit" as PAGE_COUNTER_MAX pages in bytes (9223372036854771712).
UNLIMITED = 1 << 62

#: Where stats look for I/O bytes, best first: CFQ's recursive counter (gone
#: since Linux 5.0), the throttle layer's (always counts), BFQ's.
BLKIO_FILES = ("blkio.io_service_bytes_recursive", "blkio.throttle.io_service_bytes_recursive",
               "blkio.throttle.io_service_bytes", "blkio.bfq.io_service_bytes_recursive")

NO_SWAP_WARNING = ("Your kernel does not support swap limit capabilities or the cgroup is not "
                   "mounted. Memory limited without swap.")


def controller_dirs(root: Path, mountinfo: str = "/proc/self/mountinfo") -> dict[str, Path]:
    """controller -> mount directory for the v1 controllers below ``root``.

    Read from mountinfo (the super options list the controllers of each mount).
    A tree mountinfo does not know (a test's fake) is read from its directory
    names instead: "cpu,cpuacct" serves both; symlinks such as cpu -> cpu,cpuacct
    are skipped since the real directory already counts.
    """
    found: dict[str, Path] = {}
    for m in fs.read_mountinfo(mountinfo):
        if m.fstype == "cgroup" and m.below(root):
            for option in m.super_options:
                if option in CONTROLLERS:
                    found.setdefault(option, m.mount_point)
    if found:
        return found
    try:
        entries = sorted(root.iterdir())
    except OSError:
        entries = []
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            for option in entry.name.split(","):
                if option in CONTROLLERS:
                    found.setdefault(option, entry)
    if not found:
        raise CgroupUnavailable(f"no cgroup v1 controllers are mounted below {root}",
                                hint="mount them, e.g. mount -t cgroup -o memory cgroup "
                                     "/sys/fs/cgroup/memory; or use cgroup v2")
    return found


class V1Cgroup(Cgroup):
    """A group as one directory per mounted controller."""

    version = "v1"

    def __init__(self, name: str, mounts: dict[str, Path]) -> None:
        super().__init__(name)
        self.mounts = dict(mounts)
        self._dirs = {c: m / name for c, m in self.mounts.items()}

    @property
    def paths(self) -> dict[str, Path]:
        return dict(self._dirs)

    def _unique_dirs(self) -> list[Path]:
        """Each directory once, co-mounted controllers sharing one."""
        return sorted(set(self._dirs.values()))

    def _dir(self, controller: str) -> Path | None:
        return self._dirs.get(controller)

    def _file(self, controller: str, name: str) -> Path | None:
        d = self._dirs.get(controller)
        return None if d is None else d / name

    def _need(self, controller: str, what: str) -> Path:
        d = self._dirs.get(controller)
        if d is None:
            raise CgroupUnavailable(
                f"cannot {what}: the cgroup v1 {controller} controller is not mounted",
                hint=f"mount it: mount -t cgroup -o {controller} cgroup /sys/fs/cgroup/{controller}; "
                     f"or enable it at boot with cgroup_enable={controller}; or leave this limit unset")
        return d

    # -------------------------------------------------------------- life cycle

    def create(self) -> None:
        for d in self._unique_dirs():
            if d == self._dirs.get("cpuset"):
                self._create_cpuset(d)
            else:
                fs.mkdir(d)

    #: cpuset groups whose ``cgroup.clone_children`` this process set: the kernel gives
    #: their new children the parent's cpus and mems itself (cgroups.rst 1.4).
    _cloning: set[Path] = set()

    def _create_cpuset(self, leaf: Path) -> None:
        """mkdir each level and copy empty cpus/mems from its parent (cpusets.rst 1.3).

        The copy is six file operations per container; once the leaf's parent
        clones its settings to new children, the leaf is one mkdir.
        """
        level = self.mounts["cpuset"]
        parts = Path(self.name).parts
        for i, part in enumerate(parts):
            parent, level = level, level / part
            fs.mkdir(level)
            if i == len(parts) - 1 and parent in V1Cgroup._cloning and (fs.read(level / "cpuset.mems") or "").strip():
                return      # cloned (one read: a parent made again since would not clone)
            for name in ("cpuset.cpus", "cpuset.mems"):
                mine = fs.read(level / name)
                if mine is not None and not mine.strip():
                    above = fs.read(level.parent / name)
                    if above and above.strip():
                        fs.write(level / name, above.strip())
            if i == len(parts) - 2:
                with contextlib.suppress(CgroupError, OSError):
                    fs.write(level / "cgroup.clone_children", "1")
                    V1Cgroup._cloning.add(level)

    def exists(self) -> bool:
        return any(d.is_dir() for d in self._unique_dirs())

    def destroy(self) -> None:
        first: CgroupError | None = None
        deadline = time.monotonic() + fs.RMDIR_RETRY_SECONDS
        for d in self._unique_dirs():
            try:
                fs.remove_tree(d, deadline)
            except CgroupError as exc:  # try every controller, report the first failure
                first = first or exc
        if first is not None:
            raise first

    def add(self, pid: int) -> None:
        for d in self._unique_dirs():
            fs.write(d / "cgroup.procs", pid)

    def self_join_files(self) -> list[str]:
        return [str(d / "tasks") for d in self._unique_dirs()]

    def pids(self) -> list[int]:
        # Every controller directory holds the same processes once add() ran;
        # prefer the ones a container always has.
        for controller in ("freezer", "pids", "memory", "cpu", "cpuacct", "cpuset", "blkio", "devices"):
            d = self._dirs.get(controller)
            if d is not None and d.is_dir():
                return fs.read_pids(d)
        return []

    # -------------------------------------------------------------- limits

    def _parent_cpuset(self) -> tuple[str | None, str | None]:
        parent = self._need("cpuset", "set a cpuset").parent
        return fs.read(parent / "cpuset.cpus"), fs.read(parent / "cpuset.mems")

    def _write_limits(self, r: Resources, quota: int | None, period: int | None) -> list[str]:
        planned = plan_v1(r.extra, self._dirs) if r.extra is not None else []   # refused before any write
        warnings: list[str] = []
        d = self._dirs.get("cpuset")
        if d is not None:
            if r.cpuset_cpus is not None:
                fs.write(d / "cpuset.cpus", r.cpuset_cpus)
            if r.cpuset_mems is not None:
                fs.write(d / "cpuset.mems", r.cpuset_mems)
        if r.memory is not None or r.memory_swap is not None:
            warnings += self._apply_memory(r.memory, r.memory_swap)
        if r.memory_reservation is not None:
            fs.write(self._dirs["memory"] / "memory.soft_limit_in_bytes", r.memory_reservation)
        if r.memory_swappiness is not None:
            fs.write(self._dirs["memory"] / "memory.swappiness", r.memory_swappiness)
        if r.oom_kill_disable is not None:
            # memory.oom_control reads back "oom_kill_disable 1"; writing 1 or 0 sets it
            fs.write(self._dirs["memory"] / "memory.oom_control", int(r.oom_kill_disable))
        if "cpu" in self._dirs:
            self._apply_cpu(r.cpu_shares, quota, period)
        if r.pids_limit is not None:
            value = "max" if r.pids_limit in (-1, 0) else str(r.pids_limit)
            fs.write(self._dirs["pids"] / "pids.max", value)
        for path, text in planned:
            fs.write(path, text)
        return warnings

    def _apply_memory(self, memory: int | None, swap: int | None) -> list[str]:
        d = self._dirs["memory"]
        limit, memsw = d / "memory.limit_in_bytes", d / "memory.memsw.limit_in_bytes"
        warnings = []
        if not memsw.exists():
            if swap is not None and swap != -1:
                warnings.append(NO_SWAP_WARNING)
            swap = None
        elif memory == -1 and swap is None:
            swap = -1  # memsw may never be below the memory limit
        if memory is not None and swap is not None:
            current = fs.read_int(limit)
            # Raising: memsw first, so memory never exceeds it; lowering: memory first.
            if swap == -1 or memory == -1 or current is None or memory > current:
                fs.write(memsw, swap)
                fs.write(limit, memory)
            else:
                fs.write(limit, memory)
                fs.write(memsw, swap)
        elif memory is not None:
            fs.write(limit, memory)
        elif swap is not None:
            fs.write(memsw, swap)
        return warnings

    def _apply_cpu(self, shares: int | None, quota: int | None, period: int | None) -> None:
        d = self._dirs["cpu"]
        if shares is not None:
            fs.write(d / "cpu.shares", shares)
        # A shorter period can be refused (EINVAL) while the old quota exceeds the
        # parent's ratio; then write the quota first and the period after (runc).
        pending = period
        if period is not None:
            try:
                fs.write(d / "cpu.cfs_period_us", period)
                pending = None
            except CgroupError as exc:
                if exc.errno != errno.EINVAL or quota is None:
                    raise
        if quota is not None:
            fs.write(d / "cpu.cfs_quota_us", quota)
        if pending is not None:
            fs.write(d / "cpu.cfs_period_us", pending)

    def _write_devices(self, rules: list[DeviceRule], state: DeviceRuleSet) -> list[str]:
        d = self._need("devices", "apply device rules")
        # A new group inherits its parent's list (usually allow-all); the OCI list
        # starts from deny-all as in runc, so say so unless it resets by itself.
        if not rules or not rules[0].is_reset:
            fs.write(d / "devices.deny", "a")
        for rule in rules:
            fs.write(d / ("devices.allow" if rule.allow else "devices.deny"), rule.cgroup_line())
        return []

    # -------------------------------------------------------------- stats

    def stats(self) -> Stats:
        s = Stats()
        mem = self._dirs.get("memory")
        if mem is not None:
            s.memory_current = fs.read_int(mem / "memory.usage_in_bytes") or 0
            s.memory_peak = fs.read_int(mem / "memory.max_usage_in_bytes")
            limit = fs.read_int(mem / "memory.limit_in_bytes")
            s.memory_limit = None if limit is None or limit >= UNLIMITED else limit
            s.oom_kills = self.oom_kills()
            # total_* counts the child groups too, as usage_in_bytes does.
            s.memory_inactive_file = flat_keyed(fs.read(mem / "memory.stat")).get("total_inactive_file", 0)
        self._cpu_stats(s)
        pids = self._dirs.get("pids")
        current = fs.read_int(pids / "pids.current") if pids is not None else None
        s.pids_current = current if current is not None else len(self.pids())
        s.pids_limit = fs.read_int(pids / "pids.max") if pids is not None else None
        blkio = self._dirs.get("blkio")
        if blkio is not None:
            s.io_read_bytes, s.io_write_bytes = self._io_bytes(blkio)
        return s

    @staticmethod
    def _io_bytes(blkio: Path) -> tuple[int, int]:
        for name in BLKIO_FILES:
            counts = blkio_service_bytes(fs.read(blkio / name))
            if any(counts):
                return counts
        return 0, 0

    def _cpu_stats(self, s: Stats) -> None:
        acct = self._dirs.get("cpuacct")
        if acct is None:
            return
        s.cpu_usage_ns = fs.read_int(acct / "cpuacct.usage") or 0
        user, system = fs.read_int(acct / "cpuacct.usage_user"), fs.read_int(acct / "cpuacct.usage_sys")
        if user is None or system is None:
            # Older kernels only have cpuacct.stat, in USER_HZ ticks.
            ticks = flat_keyed(fs.read(acct / "cpuacct.stat"))
            ns_per_tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
            user, system = ticks.get("user", 0) * ns_per_tick, ticks.get("system", 0) * ns_per_tick
        s.cpu_user_ns, s.cpu_system_ns = user, system

    def oom_kills(self) -> int:
        f = self._file("memory", "memory.oom_control")
        return flat_keyed(fs.read(f)).get("oom_kill", 0) if f is not None else 0

    def oom_notifier(self) -> OomNotifier:
        d = self._need("memory", "watch for OOM kills")
        self._require_group("watch for OOM kills")
        return EventfdOomNotifier(d)

    # -------------------------------------------------------------- freezer

    def _can_freeze(self) -> bool:
        return "freezer" in self._dirs

    @property
    def frozen(self) -> bool:
        f = self._file("freezer", "freezer.state")
        text = fs.read(f) if f is not None else None
        return text is not None and text.strip() == "FROZEN"

    def _state_is(self, state: str) -> bool:
        return (fs.read(self._need("freezer", "freeze") / "freezer.state") or "").strip() == state

    def freeze(self) -> None:
        state = self._need("freezer", "freeze (pause) the group") / "freezer.state"
        fs.write(state, "FROZEN")
        # Rewriting FROZEN retries the tasks that were busy (runc does the same).
        if not wait_until(lambda: self._state_is("FROZEN"), self.freeze_timeout,
                          retry=lambda: fs.write(state, "FROZEN")):
            fs.write(state, "THAWED")
            raise CgroupError(
                f"freeze cgroup {state.parent}: tasks did not stop within {self.freeze_timeout:g}s",
                path=state, hint="a task may be stuck in uninterruptible sleep, state D, "
                                 "e.g. on a slow network or FUSE file system; try again")

    def thaw(self) -> None:
        state = self._need("freezer", "thaw (unpause) the group") / "freezer.state"
        fs.write(state, "THAWED")
        if not wait_until(lambda: self._state_is("THAWED"), self.freeze_timeout):
            raise CgroupError(f"thaw cgroup {state.parent}: still not THAWED after "
                              f"{self.freeze_timeout:g}s", path=state,
                              hint="a parent group may be frozen; thaw it first")
