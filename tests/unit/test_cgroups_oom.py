"""OOM notifiers against fake trees: the counting, the consuming, the end of a group.

What the kernel does is played by the test: on v1 it adds to the eventfd as
the memory controller would; on v2 it rewrites memory.events.  A regular file
cannot report POLLPRI (epoll refuses it), so the v2 tests swap in a stand-in
epoll; the real POLLPRI path runs in tests/integration/test_cgroups.py.
"""

from __future__ import annotations

import errno
import os
import select

import pytest

from sandbox.cgroups import CgroupError, CgroupUnavailable, OomNotifier, open_cgroup
from sandbox.cgroups import oom as oom_mod
from tests.unit.test_cgroups import make_v1, make_v2, put


class StandInEpoll:
    """Registers nothing; its fd is an eventfd the test can make readable."""

    def __init__(self) -> None:
        self.fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self.registered: dict[int, int] = {}
        self.closed = False

    def register(self, fd: int, mask: int) -> None:
        self.registered[fd] = mask

    def unregister(self, fd: int) -> None:
        del self.registered[fd]

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


@pytest.fixture
def epolls(monkeypatch):
    made: list[StandInEpoll] = []

    def factory() -> StandInEpoll:
        made.append(StandInEpoll())
        return made[-1]

    monkeypatch.setattr(oom_mod.select, "epoll", factory)
    return made


def readable(notifier: OomNotifier) -> bool:
    return bool(select.select([notifier], [], [], 0)[0])


# ====================================================================== v2

def test_v2_counts_oom_kills_since_the_last_read(tmp_path, epolls):
    group = make_v2(tmp_path)
    events = group / "memory.events"
    put(events, "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")     # before the notifier
    cg = open_cgroup("c1", version="v2", root=tmp_path)
    with cg.oom_notifier() as oom:
        (ep,) = epolls
        assert list(ep.registered.values()) == [select.EPOLLPRI]
        assert oom.fileno() == ep.fd and oom.read() == 0
        put(events, "low 0\nhigh 0\nmax 9\noom 3\noom_kill 3\n")
        assert oom.read() == 2 and oom.read() == 0
        put(events, "low 0\nhigh 0\nmax 12\noom 3\noom_kill 3\n")   # a max event only
        assert oom.read() == 0
        put(events, "low 0\nhigh 0\nmax 12\noom 4\noom_kill 4\n")
        assert oom.wait(0) == 1
    assert oom.closed and ep.closed
    with pytest.raises(ValueError, match="closed"):
        oom.read()
    oom.close()   # twice is fine


def test_v2_counts_oom_where_the_kernel_has_no_oom_kill_key(tmp_path, epolls):
    group = make_v2(tmp_path)
    put(group / "memory.events", "low 0\nhigh 0\nmax 0\noom 0\n")
    with open_cgroup("c1", version="v2", root=tmp_path).oom_notifier() as oom:
        put(group / "memory.events", "low 0\nhigh 0\nmax 3\noom 2\n")
        assert oom.read() == 2


def test_v2_group_removed(tmp_path, epolls, monkeypatch):
    make_v2(tmp_path)
    with open_cgroup("c1", version="v2", root=tmp_path).oom_notifier() as oom:
        def gone(fd, n, offset):
            raise OSError(errno.ENODEV, "No such device")

        monkeypatch.setattr(oom_mod.os, "pread", gone)
        assert oom.read() == 0 and oom.gone
        assert epolls[0].registered == {}      # a removed file would wake the poll for ever
        assert oom.read() == 0


def test_v2_regular_file_cannot_be_watched(tmp_path):
    make_v2(tmp_path)
    with pytest.raises(CgroupUnavailable, match="not a cgroup2 control file"):
        open_cgroup("c1", version="v2", root=tmp_path).oom_notifier()


def test_v2_without_memory_controller(tmp_path):
    make_v2(tmp_path, controllers="cpu pids")
    with pytest.raises(CgroupUnavailable, match="memory controller") as info:
        open_cgroup("c1", version="v2", root=tmp_path).oom_notifier()
    assert info.value.hint
    with pytest.raises(CgroupError, match="does not exist"):
        open_cgroup("nope", version="v2", root=tmp_path).oom_notifier()


# ====================================================================== v1

def test_v1_registers_an_eventfd_and_counts_its_signals(tmp_path):
    dirs = make_v1(tmp_path)
    cg = open_cgroup("c1", version="v1", root=tmp_path)
    with cg.oom_notifier() as oom:
        efd, control = map(int, (dirs["memory"] / "cgroup.event_control").read_text().split())
        assert efd == oom.fileno() and control >= 0
        assert not readable(oom) and oom.read() == 0
        os.eventfd_write(oom.fileno(), 2)      # the kernel: two OOM events
        assert readable(oom)
        assert oom.read() == 2 and not readable(oom) and oom.read() == 0
        os.eventfd_write(oom.fileno(), 1)      # the kernel: the group was removed
        (dirs["memory"] / "memory.oom_control").unlink()
        assert oom.read() == 0 and oom.gone
    assert oom.closed


def test_v1_a_refused_registration_leaks_no_descriptor(tmp_path, monkeypatch):
    make_v1(tmp_path)
    before = set(os.listdir("/proc/self/fd"))
    real = os.write

    def write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("cgroup.event_control"):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(CgroupError, match="cgroup.event_control: invalid argument"):
        open_cgroup("c1", version="v1", root=tmp_path).oom_notifier()
    assert set(os.listdir("/proc/self/fd")) <= before


def test_v1_without_memory_controller(tmp_path):
    make_v1(tmp_path, skip=("memory",))
    with pytest.raises(CgroupUnavailable, match="memory controller is not mounted"):
        open_cgroup("c1", version="v1", root=tmp_path).oom_notifier()
