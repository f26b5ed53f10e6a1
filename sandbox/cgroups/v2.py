"""cgroup v2: one directory in the unified tree (Documentation/admin-guide/cgroup-v2.rst).

A controller works in a group only when the parent lists it in
``cgroup.subtree_control`` ("Enabling and Disabling"), and only leaves may hold
processes ("No Internal Process Constraint"), so create() enables controllers
on every level above the group and never in the group itself.  In rootless
mode the levels above the user's delegated group are not theirs: create()
starts there, after moving the user's own processes out of it into a leaf
(:mod:`.delegation`).  On a v1 hybrid
host each controller is bound to its v1 mount, the unified mount offers none,
and only the core files work there: cgroup.procs, cgroup.freeze,
cgroup.events, cgroup.kill and cpu.stat.

Files used: memory.max, memory.swap.max (swap alone, not docker's memory+swap),
memory.low (the reservation), memory.current, memory.peak (Linux 5.19+),
memory.events (``oom_kill``, and polled for OOM notification, :mod:`.oom`),
cpu.weight, cpu.max ("$QUOTA $PERIOD"), cpu.stat (usec), cpuset.cpus/mems,
pids.max/current, io.stat, cgroup.freeze + cgroup.events (``frozen 1``, 5.2+)
and cgroup.kill (5.14+).  v2 has no swappiness and no switch to turn the OOM
killer off (memory.oom.group is another thing): those two limits come back as
Docker's warnings.

Device rules have no file on v2: they are an eBPF program (:mod:`.ebpf`)
attached to the group's directory with bpf(2).  That works wherever there is
a cgroup2 mount, also the controller-less one of a hybrid host.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..errors import CgroupError, CgroupUnavailable, KernelError
from . import delegation, fs
from .base import DEFAULT_PERIOD, Cgroup, Resources, Stats, shares_to_weight, wait_until
from .devices import DeviceRule, DeviceRuleSet
from .limits import plan_v2
from .oom import EventsFileNotifier, OomNotifier
from .parse import cpu_max, flat_keyed, io_stat

#: What Docker's daemon says on v2, where memory.swappiness and memory.oom_control do not exist.
NO_SWAPPINESS_WARNING = ("Your kernel does not support memory swappiness capabilities or the cgroup is "
                         "not mounted. Memory swappiness discarded.")
NO_OOM_KILL_DISABLE_WARNING = "Your kernel does not support OomKillDisable. OomKillDisable discarded."

#: Controllers the engine enables for its groups.
WANTED = ("cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma")


def unified_root(base: Path, explicit: bool = False,
                 mountinfo: str = "/proc/self/mountinfo") -> Path:
    """The cgroup2 mount at or below ``base`` (``/sys/fs/cgroup/unified`` on hybrid).

    A tree mountinfo does not know (a test's fake, ``explicit``) is used as it is.
    """
    mounts = [m.mount_point for m in fs.read_mountinfo(mountinfo)
              if m.fstype == "cgroup2" and m.below(base)]
    if base in mounts:
        return base
    if mounts:
        return min(mounts)
    if explicit or (base / "cgroup.controllers").is_file():
        return base
    raise CgroupUnavailable(f"no cgroup2 file system is mounted below {base}",
                            hint="mount one: mount -t cgroup2 none /sys/fs/cgroup/unified")


def _v1_owner(controller: str) -> Path | None:
    """The v1 mount that holds ``controller`` on a hybrid host, if any."""
    for m in fs.read_mountinfo():
        if m.fstype == "cgroup" and controller in m.super_options:
            return m.mount_point
    return None


class V2Cgroup(Cgroup):
    """A group as one directory of the unified hierarchy."""

    version = "v2"

    def __init__(self, name: str, mount: Path, delegated: str = "") -> None:
        """``delegated``: the group below ``mount`` that is this user's (rootless mode,
        :mod:`.delegation`); ``name`` is then below it, and create() and destroy()
        touch nothing above it."""
        super().__init__(name)
        self.mount = mount
        self.delegated = delegated
        self.path = mount / delegated / name

    @property
    def paths(self) -> dict[str, Path]:
        return {"unified": self.path}

    def controllers(self) -> set[str]:
        """Controllers usable in this group (its cgroup.controllers)."""
        return set((fs.read(self.path / "cgroup.controllers") or "").split())

    def _need(self, controller: str, what: str) -> None:
        if controller in self.controllers():
            return
        owner = _v1_owner(controller)
        if owner is not None:
            hint = (f"on this host the {controller} controller is bound to the cgroup v1 "
                    f"hierarchy at {owner}; use cgroup v1, or boot with "
                    f"systemd.unified_cgroup_hierarchy=1")
        else:
            hint = (f"enable it for the parent's children: echo +{controller} > "
                    f"{self.path.parent}/cgroup.subtree_control, on every level above; "
                    f"or leave this limit unset")
        raise CgroupUnavailable(
            f"cannot {what}: the cgroup v2 {controller} controller is not available in {self.path}",
            hint=hint)

    # -------------------------------------------------------------- life cycle

    def create(self) -> None:
        level = self.mount / self.delegated
        if self.delegated and self._to_enable(level):
            delegation.evacuate(level)      # "no internal processes": ours move to a leaf first
        self._enable(level)
        for part in Path(self.name).parts[:-1]:
            level = level / part
            fs.mkdir(level)
            self._enable(level)
        fs.mkdir(self.path)

    @staticmethod
    def _enable(level: Path) -> None:
        """Enable the wanted controllers for ``level``'s children, one at a time.

        A controller that cannot be enabled (bound to v1, processes in ``level``)
        is left out; apply() then names it if a limit needs it.
        """
        for controller in V2Cgroup._to_enable(level):
            try:
                fs.write(level / "cgroup.subtree_control", f"+{controller}")
            except CgroupError:
                pass

    def exists(self) -> bool:
        return self.path.is_dir()

    @staticmethod
    def _to_enable(level: Path) -> list[str]:
        """The wanted controllers ``level`` has but does not yet enable for its children."""
        available = set((fs.read(level / "cgroup.controllers") or "").split())
        enabled = set((fs.read(level / "cgroup.subtree_control") or "").split())
        return sorted(available & set(WANTED) - enabled)

    def destroy(self) -> None:
        fs.remove_tree(self.path)
        if self.delegated:
            # The user's subtree is theirs to keep tidy: the empty parents made by
            # create() ("sandbox") go too.  One that holds another group stays.
            top = self.mount / self.delegated
            for parent in self.path.parents:
                if parent == top or top not in parent.parents:
                    break
                try:
                    os.rmdir(parent)
                except OSError:
                    break

    def add(self, pid: int) -> None:
        fs.write(self.path / "cgroup.procs", pid)

    def pids(self) -> list[int]:
        return fs.read_pids(self.path)

    # -------------------------------------------------------------- limits

    def _parent_cpuset(self) -> tuple[str | None, str | None]:
        return (fs.read(self.path.parent / "cpuset.cpus.effective"),
                fs.read(self.path.parent / "cpuset.mems.effective"))

    def _write_limits(self, r: Resources, quota: int | None, period: int | None) -> list[str]:
        planned = plan_v2(r.extra, self.path, self.controllers()) if r.extra is not None else []
        warnings: list[str] = []
        if r.cpuset_cpus is not None:
            fs.write(self.path / "cpuset.cpus", r.cpuset_cpus)
        if r.cpuset_mems is not None:
            fs.write(self.path / "cpuset.mems", r.cpuset_mems)
        if r.memory is not None:
            fs.write(self.path / "memory.max", "max" if r.memory == -1 else r.memory)
        if r.memory_reservation is not None:
            fs.write(self.path / "memory.low",
                     "max" if r.memory_reservation == -1 else r.memory_reservation)
        swap = -1 if r.memory == -1 and r.memory_swap is None else r.swap_only()
        if swap is not None:
            swap_file = self.path / "memory.swap.max"
            if swap_file.exists():
                fs.write(swap_file, "max" if swap == -1 else swap)
            elif r.memory_swap is not None and r.memory_swap != -1:
                warnings.append("Your kernel does not support swap limit capabilities. "
                                "Memory limited without swap.")
        if r.memory_swappiness is not None:
            warnings.append(NO_SWAPPINESS_WARNING)
        if r.oom_kill_disable:
            warnings.append(NO_OOM_KILL_DISABLE_WARNING)
        if r.cpu_shares is not None:
            fs.write(self.path / "cpu.weight", shares_to_weight(r.cpu_shares))
        if quota is not None or period is not None:
            self._write_cpu_max(quota, period)
        if r.pids_limit is not None:
            fs.write(self.path / "pids.max", "max" if r.pids_limit in (-1, 0) else r.pids_limit)
        for path, text in planned:
            fs.write(path, text)
        return warnings

    def _write_cpu_max(self, quota: int | None, period: int | None) -> None:
        """cpu.max holds both numbers: keep the one that is not being changed."""
        old_quota, old_period = cpu_max(fs.read(self.path / "cpu.max"))
        if quota is None:
            quota = old_quota
        period = period or old_period or DEFAULT_PERIOD
        fs.write(self.path / "cpu.max", f"{'max' if quota in (None, -1) else quota} {period}")

    # -------------------------------------------------------------- stats

    def stats(self) -> Stats:
        p = self.path
        cpu = flat_keyed(fs.read(p / "cpu.stat"))
        current = fs.read_int(p / "pids.current")
        read, written = io_stat(fs.read(p / "io.stat"))
        return Stats(
            memory_current=fs.read_int(p / "memory.current") or 0,
            memory_peak=fs.read_int(p / "memory.peak"),
            memory_limit=fs.read_int(p / "memory.max"),
            memory_inactive_file=flat_keyed(fs.read(p / "memory.stat")).get("inactive_file", 0),
            cpu_usage_ns=cpu.get("usage_usec", 0) * 1000,
            cpu_user_ns=cpu.get("user_usec", 0) * 1000,
            cpu_system_ns=cpu.get("system_usec", 0) * 1000,
            pids_current=current if current is not None else len(self.pids()),
            pids_limit=fs.read_int(p / "pids.max"),
            oom_kills=self.oom_kills(),
            io_read_bytes=read,
            io_write_bytes=written,
        )

    def oom_kills(self) -> int:
        return flat_keyed(fs.read(self.path / "memory.events")).get("oom_kill", 0)

    def oom_notifier(self) -> OomNotifier:
        self._require_group("watch for OOM kills")
        self._need("memory", "watch for OOM kills")
        return EventsFileNotifier(self.path / "memory.events")

    # -------------------------------------------------------------- devices

    def _write_devices(self, rules: list[DeviceRule], state: DeviceRuleSet) -> list[str]:
        """Attach the new filter, then detach the ones it replaces (runc's order:
        there is never a moment without a filter)."""
        # Imported here: only a runtime applying device rules needs ctypes and bpf.
        from .. import kernel
        from .ebpf import LICENSE, device_filter

        code = device_filter(state).assemble()
        try:
            group = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise fs.os_error("open", self.path, exc) from exc
        try:
            old = kernel.bpf_prog_query(group, kernel.BPF_CGROUP_DEVICE)
            prog = kernel.bpf_prog_load(kernel.BPF_PROG_TYPE_CGROUP_DEVICE, code, LICENSE,
                                        "sandbox_devices")
            try:
                kernel.bpf_prog_attach(group, prog, kernel.BPF_CGROUP_DEVICE,
                                       kernel.BPF_F_ALLOW_MULTI)
            finally:
                os.close(prog)
            for prog_id in old:
                old_fd = kernel.bpf_prog_get_fd_by_id(prog_id)
                try:
                    kernel.bpf_prog_detach(group, old_fd, kernel.BPF_CGROUP_DEVICE)
                finally:
                    os.close(old_fd)
        except KernelError as exc:
            raise _device_error(self.path, exc) from exc
        finally:
            os.close(group)
        return []

    # -------------------------------------------------------------- freezer

    def _kill_file(self) -> Path | None:
        f = self.path / "cgroup.kill"
        return f if f.exists() else None

    def _can_freeze(self) -> bool:
        return (self.path / "cgroup.freeze").exists()

    @property
    def frozen(self) -> bool:
        return flat_keyed(fs.read(self.path / "cgroup.events")).get("frozen") == 1

    def _freeze_file(self, what: str) -> Path:
        f = self.path / "cgroup.freeze"
        if not f.exists() and self.path.is_dir():
            raise CgroupUnavailable(f"cannot {what} {self.path}: this kernel has no cgroup.freeze",
                                    hint="the cgroup v2 freezer needs Linux 5.2 or later")
        return f

    def freeze(self) -> None:
        f = self._freeze_file("freeze (pause)")
        fs.write(f, 1)
        if not wait_until(lambda: self.frozen, self.freeze_timeout):
            fs.write(f, 0)
            raise CgroupError(f"freeze cgroup {self.path}: tasks did not stop within "
                              f"{self.freeze_timeout:g}s", path=f,
                              hint="a task may be stuck in uninterruptible sleep, state D; try again")

    def thaw(self) -> None:
        f = self._freeze_file("thaw (unpause)")
        fs.write(f, 0)
        if not wait_until(lambda: not self.frozen, self.freeze_timeout):
            raise CgroupError(f"thaw cgroup {self.path}: still frozen after {self.freeze_timeout:g}s",
                              path=f, hint="a parent group may be frozen; thaw it first")


def _device_error(path: Path, exc: KernelError) -> CgroupError:
    """A failed bpf(2) call as a cgroup error; a kernel without cgroup BPF is "unavailable"."""
    text = f"apply device rules to cgroup {path}: {exc.args[0]}"
    if exc.errno in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return CgroupUnavailable(text, path=path, errno=exc.errno, hint=exc.hint or (
            "this kernel cannot filter devices with eBPF (needs Linux 5.1+ with "
            "CONFIG_CGROUP_BPF); leave linux.resources.devices empty"))
    return CgroupError(text, path=path, errno=exc.errno, hint=exc.hint)
