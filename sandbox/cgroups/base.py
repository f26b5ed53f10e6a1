"""The interface both cgroup versions implement, and docker's resource semantics.

:class:`Resources` speaks docker's flags (``--memory``, ``--memory-swap``,
``--memory-reservation``, ``--cpu-shares``, ``--cpus``, ``--cpu-quota``,
``--cpu-period``, ``--cpuset-cpus``, ``--cpuset-mems``, ``--pids-limit``) and
refuses what docker refuses, with docker's wording, before anything is
written.  The conversions to v2 (shares to weight, memory+swap to swap) are
runc's, so a class sees the same numbers in ``/sys/fs/cgroup`` as under Docker.
:meth:`Cgroup.apply_devices` takes OCI device rules (:mod:`.devices`) and
:meth:`Cgroup.oom_notifier` gives a pollable OOM event source (:mod:`.oom`).
"""

from __future__ import annotations

import abc
import contextlib
import errno as E
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import CgroupError, InvalidResources
from . import fs
from .devices import DeviceRule, DeviceRuleSet, parse_device_rules
from .limits import ExtraLimits
from .oom import OomNotifier
from .parse import cpu_list

MIN_MEMORY = 6 * 1024 * 1024          # docker's linuxMinMemory
MIN_SHARES, MAX_SHARES = 2, 262144    # the kernel's range for cpu.shares
DEFAULT_PERIOD = 100_000              # us, the CFS default and docker's --cpus period
MIN_QUOTA = MIN_PERIOD = 1000         # us
MAX_PERIOD = 1_000_000                # us

#: Seconds to wait for a freeze to settle (a task in uninterruptible sleep
#: cannot be frozen until it wakes; runc waits and retries the same way).
FREEZE_TIMEOUT = 5.0
#: Seconds kill() waits for the group to empty after SIGKILL.
KILL_WAIT = 2.0


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) to cpu.weight (1..10000), runc's formula.

    ``1 + ((shares - 2) * 9999) // 262142`` keeps both ends (2 -> 1,
    262144 -> 10000); docker's default 1024 becomes 39, not the v2 default 100.
    """
    return 1 + ((shares - 2) * 9999) // 262142


def cpus_to_quota(cpus: float, period: int = DEFAULT_PERIOD) -> int:
    """docker --cpus to a CFS quota for ``period`` (0.5 -> 50000 of 100000 us).

    Goes through nano-CPUs as docker does, so 0.1 + 0.2 style float noise never
    shows up in cpu.max.
    """
    return round(cpus * 1e9) * period // 1_000_000_000


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass
class Resources:
    """Limits for one group; None leaves a setting as it is (``docker update``).

    memory       bytes; -1 removes the limit; at least 6 MB otherwise
    memory_swap  memory + swap in bytes, as docker's --memory-swap; -1 unlimited swap
    memory_reservation  soft limit in bytes (v1 memory.soft_limit_in_bytes, v2
                 memory.low, as runc); -1 removes it
    cpu_shares   relative CPU weight, 2..262144 (docker's default is 1024)
    cpu_quota    us of CPU per period; -1 removes the quota
    cpu_period   us, 1000..1000000 (default 100000)
    cpus         docker --cpus: becomes quota/period with a 100000 us period
    cpuset_cpus  "0-2,4";  cpuset_mems  "0"
    pids_limit   maximum tasks; -1 or 0 means unlimited
    memory_swappiness  0..100, v1's memory.swappiness (v2 has none: a warning); -1 is "not set"
    oom_kill_disable   True: the kernel's OOM killer leaves the group alone (v1's
                 memory.oom_control; v2 has no such switch: a warning); a process
                 over the limit then waits for memory instead of being killed
    extra        the OCI fields beyond Docker's flags (block I/O, huge pages, network
                 classes, RDMA, real-time CPU, ...): :class:`~sandbox.cgroups.limits.ExtraLimits`

    Docker's 0 ("not set") is accepted as None for memory, memory_swap,
    memory_reservation, cpu_shares, cpu_quota, cpu_period and cpus.
    """

    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpus: float | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    memory_swappiness: int | None = None
    oom_kill_disable: bool | None = None
    extra: ExtraLimits | None = None

    def __post_init__(self) -> None:
        for name in ("memory", "memory_swap", "memory_reservation", "cpu_shares", "cpu_quota",
                     "cpu_period", "cpus"):
            if getattr(self, name) == 0:
                setattr(self, name, None)
        if self.memory_swappiness == -1:      # docker's "use the parent's"
            self.memory_swappiness = None

    def requested(self) -> bool:
        """True when any limit is set (a group is then required, not optional)."""
        return any(getattr(self, f.name) is not None for f in fields(self) if f.name != "extra") or \
            (self.extra is not None and self.extra.requested())

    def validate(self) -> None:
        """Raise InvalidResources for any value docker would refuse."""
        self._validate_memory()
        self._validate_cpu()
        for name, text in (("cpuset-cpus", self.cpuset_cpus), ("cpuset-mems", self.cpuset_mems)):
            if text is not None:
                try:
                    cpu_list(text)
                except ValueError:
                    raise InvalidResources(f"Invalid value {text} for {name}",
                                           hint="use a list such as 0-2,4") from None
        if self.extra is not None:
            self.extra.validate()
        if self.memory_swappiness is not None and not 0 <= self.memory_swappiness <= 100:
            raise InvalidResources(f"Invalid value: {self.memory_swappiness}, valid memory swappiness "
                                   "range is 0-100", hint="0 avoids swapping, 100 swaps eagerly; -1 leaves "
                                                          "the parent's value")
        if self.pids_limit is not None and self.pids_limit < -1:
            raise InvalidResources(f"Invalid pids limit {self.pids_limit}",
                                   hint="use a positive number, or -1 for unlimited")

    def _validate_memory(self) -> None:
        memory, swap = self.memory, self.memory_swap
        if memory is not None and memory != -1 and memory < MIN_MEMORY:
            raise InvalidResources("Minimum memory limit allowed is 6MB",
                                   hint=f"asked for {memory} bytes; use --memory 6m or more")
        if swap is not None and swap != -1:
            if swap < 0:
                raise InvalidResources(f"Invalid memory-swap {swap}",
                                       hint="use a size, or -1 for unlimited swap")
            if memory is None:
                raise InvalidResources("You should always set the Memory limit when using "
                                       "Memoryswap limit, see usage")
            if memory != -1 and swap < memory:
                raise InvalidResources("Minimum memoryswap limit should be larger than memory "
                                       "limit, see usage",
                                       hint="--memory-swap is memory plus swap, not swap alone")
        reservation = self.memory_reservation
        if reservation is not None and reservation != -1:
            if reservation < MIN_MEMORY:
                raise InvalidResources("Minimum memory reservation allowed is 6MB",
                                       hint=f"asked for {reservation} bytes")
            if memory is not None and memory != -1 and memory < reservation:
                raise InvalidResources("Minimum memory limit can not be less than memory "
                                       "reservation limit, see usage")

    def _validate_cpu(self) -> None:
        if self.cpu_shares is not None and not MIN_SHARES <= self.cpu_shares <= MAX_SHARES:
            raise InvalidResources(f"Invalid cpu-shares {self.cpu_shares}",
                                   hint=f"use {MIN_SHARES}..{MAX_SHARES}; the default is 1024")
        if self.cpus is not None:
            if self.cpu_quota is not None or self.cpu_period is not None:
                raise InvalidResources("Conflicting options: Nano CPUs and CPU Period/Quota "
                                       "cannot both be set", hint="use either --cpus or "
                                       "--cpu-quota/--cpu-period")
            ncpu = _available_cpus()
            if not 0.01 <= self.cpus <= ncpu:
                raise InvalidResources(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are "
                                       f"only {ncpu} CPUs available")
        if self.cpu_quota is not None and self.cpu_quota != -1 and self.cpu_quota < MIN_QUOTA:
            raise InvalidResources("CPU cfs quota can not be less than 1ms (i.e. 1000)")
        if self.cpu_period is not None and not MIN_PERIOD <= self.cpu_period <= MAX_PERIOD:
            raise InvalidResources("CPU cfs period can not be less than 1ms (i.e. 1000) or "
                                   "larger than 1 second (i.e. 1000000)")

    def quota_period(self) -> tuple[int | None, int | None]:
        """(quota, period) in us with --cpus turned into both; -1 quota is unlimited."""
        if self.cpus is not None:
            return cpus_to_quota(self.cpus), DEFAULT_PERIOD
        return self.cpu_quota, self.cpu_period

    def swap_only(self) -> int | None:
        """v2's memory.swap.max: docker's memory+swap minus memory (-1 unlimited)."""
        if self.memory_swap is None:
            return None
        if self.memory_swap == -1 or self.memory is None or self.memory == -1:
            return -1
        return self.memory_swap - self.memory

    def check_cpuset(self, available_cpus: str | None, available_mems: str | None) -> None:
        """Docker's "Requested CPUs are not available" check against the parent's sets."""
        for what, asked, have in (("CPUs", self.cpuset_cpus, available_cpus),
                                  ("memory nodes", self.cpuset_mems, available_mems)):
            if asked is None or not have or not have.strip():
                continue
            if not cpu_list(asked) <= cpu_list(have):
                raise InvalidResources(f"Requested {what} are not available - requested "
                                       f"{asked}, available: {have.strip()}")


@dataclass
class Stats:
    """One sample of a group's usage; 0 or None where the host has no such counter.

    memory_current  bytes charged now (page cache included, as the kernel counts)
    memory_peak     the high-water mark (None when the kernel has none)
    memory_limit    None when unlimited
    memory_inactive_file  reclaimable page cache (memory.stat); ``docker stats`` shows
                    memory_current minus this as "MEM USAGE"
    cpu_*_ns        CPU time consumed since the group was created
    pids_current    tasks in the group (processes when there is no pids controller)
    oom_kills       tasks the OOM killer has killed in the group
    io_*_bytes      block I/O that reached a device
    timestamp       time.time() of the sample
    """

    memory_current: int = 0
    memory_peak: int | None = None
    memory_limit: int | None = None
    memory_inactive_file: int = 0
    cpu_usage_ns: int = 0
    cpu_user_ns: int = 0
    cpu_system_ns: int = 0
    pids_current: int = 0
    pids_limit: int | None = None
    oom_kills: int = 0
    io_read_bytes: int = 0
    io_write_bytes: int = 0
    timestamp: float = field(default_factory=time.time)


def wait_until(check: Callable[[], bool], timeout: float, retry: Callable[[], None] | None = None) -> bool:
    """Poll ``check`` with a short backoff until true or ``timeout``; True if it became true."""
    deadline, delay = time.monotonic() + timeout, 0.001
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
        if retry is not None:
            retry()
    return True


class Cgroup(abc.ABC):
    """A control group on one hierarchy version.  Nothing happens until create().

    ``name`` is the group's path below the hierarchy root ("sandbox/3f2a").
    """

    version: str = ""
    #: Seconds freeze() and thaw() wait for the kernel to report the new state.
    freeze_timeout: float = FREEZE_TIMEOUT

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    @property
    @abc.abstractmethod
    def paths(self) -> dict[str, Path]:
        """Directory of the group per controller (v2: one entry, "unified")."""

    @abc.abstractmethod
    def create(self) -> None:
        """Make the group (and its parents) so processes can join; idempotent."""

    def apply(self, resources: Resources) -> list[str]:
        """Write the limits that are not None; returns warnings (docker prints them).

        Works on a live group (``docker update``).  Everything is checked first
        (values, the group, each needed controller), so a refusal writes nothing:
        InvalidResources for a bad value, CgroupUnavailable for a missing controller.
        """
        r = resources
        r.validate()
        self._require_group("apply limits")
        quota, period = r.quota_period()
        if r.memory is not None or r.memory_swap is not None or r.memory_reservation is not None \
                or r.memory_swappiness is not None or r.oom_kill_disable is not None:
            self._need("memory", "set a memory limit")
        if r.cpu_shares is not None or quota is not None or period is not None:
            self._need("cpu", "set CPU shares or quota")
        if r.cpuset_cpus is not None or r.cpuset_mems is not None:
            self._need("cpuset", "set a cpuset")
            r.check_cpuset(*self._parent_cpuset())
        if r.pids_limit is not None:
            self._need("pids", "set a pids limit")
        return self._write_limits(r, quota, period)

    def apply_devices(self, rules: Iterable[Mapping[str, Any] | DeviceRule] | None) -> list[str]:
        """Set which device nodes the group's processes may open or create.

        ``rules`` is OCI's ``linux.resources.devices``, applied in order from
        deny-all (runc's semantics; see :mod:`.devices`).  The whole list is
        checked first: a malformed rule raises InvalidResources naming its
        field, a rule the kernel would silently ignore is refused too, and
        nothing is written.  v1 writes devices.deny/devices.allow (on a live
        group the list is rewritten from deny-all, so an open(2) racing the
        call can fail); v2 attaches an eBPF program in place of the old one.
        Returns warnings (none so far), like apply().
        """
        checked = parse_device_rules(rules)
        state = DeviceRuleSet.from_rules(checked)
        self._require_group("apply device rules")
        return self._write_devices(checked, state)

    @abc.abstractmethod
    def _write_devices(self, rules: list[DeviceRule], state: DeviceRuleSet) -> list[str]:
        """Make the kernel enforce the checked ``rules`` (whose meaning is ``state``)."""

    @abc.abstractmethod
    def oom_notifier(self) -> OomNotifier:
        """A pollable source of this group's OOM events (see :mod:`.oom`).

        Raises CgroupUnavailable when the memory controller is missing, and
        CgroupError when the group does not exist.
        """

    def _require_group(self, action: str) -> None:
        if not self.exists():
            raise CgroupError(f"cannot {action}: cgroup {self.name} does not exist",
                              hint="call create() first")

    @abc.abstractmethod
    def _need(self, controller: str, what: str) -> object:
        """Raise CgroupUnavailable unless ``controller`` can be used by this group."""

    @abc.abstractmethod
    def _parent_cpuset(self) -> tuple[str | None, str | None]:
        """The CPUs and memory nodes the parent allows (a cpuset must stay within them)."""

    @abc.abstractmethod
    def _write_limits(self, r: Resources, quota: int | None, period: int | None) -> list[str]:
        """Write the checked limits into the control files; return warnings."""

    @abc.abstractmethod
    def add(self, pid: int) -> None:
        """Move the process ``pid`` (all its threads) into the group."""

    def self_join_files(self) -> list[str]:
        """Files a single-threaded process writes ``0`` to, to move itself in; [] if none.

        Moving another process (``add``) write-locks the kernel's global
        threadgroup rwsem, which waits for an RCU grace period (~10 ms on
        this VM) each time the lock has been idle.  A thread that moves only
        itself skips that lock (cgroup_procs_write_start: ``pid == 0`` and not
        the whole thread group), which on v1 means writing ``0`` to ``tasks``.
        A new container's init is a single thread, so it joins this way.
        v2's domain groups refuse single-thread moves, hence the empty default.
        """
        return []

    @abc.abstractmethod
    def pids(self) -> list[int]:
        """Processes in the group, sorted; empty when the group does not exist."""

    @abc.abstractmethod
    def stats(self) -> Stats:
        """A sample of usage counters."""

    @abc.abstractmethod
    def freeze(self) -> None:
        """Stop every task in the group and wait until the kernel says frozen."""

    @abc.abstractmethod
    def thaw(self) -> None:
        """Let the group's tasks run again."""

    @property
    @abc.abstractmethod
    def frozen(self) -> bool:
        """True when the kernel reports the group completely frozen."""

    @abc.abstractmethod
    def oom_kills(self) -> int:
        """How many tasks the OOM killer killed in this group."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """True when the group's directory exists (on any controller, for v1)."""

    @abc.abstractmethod
    def destroy(self) -> None:
        """Remove the group and its child groups; raises CgroupError with the pids
        still inside if it cannot.  A group that does not exist is fine."""

    # -------------------------------------------------------------- kill

    def _kill_file(self) -> Path | None:
        """v2's cgroup.kill when the kernel has it (5.14+), else None."""
        return None

    def _can_freeze(self) -> bool:
        return True

    def kill(self, wait: float = KILL_WAIT) -> None:
        """SIGKILL every process in the group and wait up to ``wait`` s for it to empty.

        With cgroup.kill the kernel does it atomically.  Otherwise the group is
        frozen first so nothing can fork while the pids are signalled one by one
        (runc's signalAllProcesses).  A frozen v1 task only dies once thawed, so
        the group is thawed after signalling -- also when it was paused before.
        """
        kill_file = self._kill_file()
        was_frozen = self.frozen
        if kill_file is not None:
            fs.write(kill_file, 1)
        else:
            froze = False
            if not was_frozen and self._can_freeze():
                with contextlib.suppress(CgroupError):
                    self.freeze()
                    froze = True
            self._signal_each()
            was_frozen = was_frozen or froze
        if was_frozen:
            self.thaw()
        wait_until(lambda: not self.pids(), wait)

    def _signal_each(self) -> None:
        """SIGKILL listed pids until a pass finds nothing new (catches forks in flight)."""
        done: set[int] = set()
        for _ in range(100):
            new = set(self.pids()) - done
            if not new:
                return
            for pid in new:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError as exc:
                    if exc.errno != E.ESRCH:
                        raise CgroupError(f"kill pid {pid} in cgroup {self.name}: "
                                          f"{os.strerror(exc.errno or 0).lower()}",
                                          errno=exc.errno) from exc
            done |= new
