"""Spare inits (sandbox/runtime/spare.py) and the janitor (sandbox/supervisor/janitor.py), for real.

A spare is PID 1 of a new PID, network, IPC and UTS namespace, forked ahead
and parked until a create that fits takes it.  These tests drive the runtime
library with a pool, as the supervisor does, and check what the container
sees (its own PID 1, loopback up, its own mount namespace, its hostname),
that a parked spare holds none of its caller's descriptors and dies with its
caller, that a create which does not fit forks as before, and that a failed
create through a spare leaves nothing.  Through the engine: the supervisor
keeps one spare and lets it go when it stops; the janitor deletes removed
containers' files and is gone after the stop.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from sandbox import kernel
from sandbox.errors import CommandNotFound
from sandbox.runtime.config import namespace_flags
from sandbox.runtime.procs import process_start_time
from sandbox.runtime.spare import AHEAD, SparePool
from tests.conftest import requires_root
from tests.integration.runtime_env import (bundles, busybox_rootfs, cgroup_dirs,  # noqa: F401
                                           reaper, read_pipe, runtime, wait_exit)

pytestmark = requires_root


@pytest.fixture
def pool(runtime):  # noqa: F811
    runtime.spares = SparePool()
    yield runtime.spares
    runtime.spares.close()


def run_one(runtime, bundles, name: str, args: list[str], **kw) -> tuple[int, str, str]:  # noqa: F811
    """Create, start and wait for one container, its stdio on pipes: (exit code, stdout, stderr)."""
    bundle = bundles.make(args, **kw)
    rin, win = os.pipe()
    rout, wout = os.pipe()
    rerr, werr = os.pipe()
    try:
        container = runtime.create(name, str(bundle), stdio=(rin, wout, werr))
    finally:
        for fd in (rin, wout, werr):
            os.close(fd)
    container.start()
    code = wait_exit(container.pid)
    os.close(win)
    out, err = read_pipe(rout), read_pipe(rerr)
    container.delete()
    return code, out, err


def gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while process_start_time(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


LOOK = ["sh", "-c", "echo $$; hostname; ip link show lo; readlink /proc/self/ns/mnt; readlink /proc/self/ns/net"]


def test_the_second_create_takes_the_spare_the_first_made(runtime, bundles, pool, reaper):  # noqa: F811
    code, first, err = run_one(runtime, bundles, "s1", LOOK)
    assert code == 0, err
    assert (pool.made, pool.taken, pool.missed) == (1, 0, 1)
    spare = pool.spare
    assert spare is not None
    code, second, err = run_one(runtime, bundles, "s2", LOOK, hostname="spare")
    assert code == 0, err
    assert (pool.made, pool.taken) == (2, 1)          # and the next one was made meanwhile
    pid1, hostname, link, *_, mnt, net = second.split("\n")[:-1]
    assert pid1 == "1" and hostname == "spare"
    assert "LOOPBACK,UP" in link                       # brought up while it was parked
    assert mnt != os.readlink("/proc/self/ns/mnt")     # unshared when taken, not before
    assert net != os.readlink("/proc/self/ns/net") and net != first.split("\n")[-2]
    assert "setsid" in [name for name, _ in runtime.last_timings]
    assert "fork init" not in [name for name, _ in runtime.last_timings]


def test_a_parked_spare_holds_none_of_its_callers_descriptors(pool):
    r, w = os.pipe()
    try:
        pool.take(AHEAD | kernel.CLONE_NEWNS, {})
        pool.refill()
        spare = pool.spare
        assert spare is not None and spare.report()
        with open(f"/proc/{spare.pid}/comm") as f:
            assert f.read().strip() == "sandbox-spare"
        ours = {os.readlink(f"/proc/self/fd/{fd}") for fd in (r, w)}
        theirs = {os.readlink(f"/proc/{spare.pid}/fd/{name}") for name in os.listdir(f"/proc/{spare.pid}/fd")}
        assert not ours & theirs, theirs
        assert os.readlink(f"/proc/{spare.pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
        pid = spare.pid
    finally:
        os.close(r)
        os.close(w)
    pool.close()
    assert gone(pid)


def test_a_spare_exits_when_its_caller_is_killed():
    r, w = os.pipe()
    caller = os.fork()
    if caller == 0:
        try:
            os.close(r)
            spares = SparePool()
            spares.take(AHEAD, {})
            spares.refill()
            assert spares.spare is not None and spares.spare.report()
            os.write(w, f"{spares.spare.pid}\n".encode())
            time.sleep(60)
        finally:
            os._exit(1)
    os.close(w)
    try:
        pid = int(os.read(r, 64))
        assert process_start_time(pid) is not None
    finally:
        os.close(r)
        os.kill(caller, signal.SIGKILL)
        os.waitpid(caller, 0)
    assert gone(pid), "the spare outlived its caller"


def test_a_create_that_does_not_fit_forks_and_lets_the_spare_go(runtime, bundles, pool, reaper):  # noqa: F811
    assert run_one(runtime, bundles, "f1", ["true"])[0] == 0
    spare = pool.spare
    assert spare is not None and spare.report()

    def host_network(spec):
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
    code, out, err = run_one(runtime, bundles, "f2", ["readlink", "/proc/self/ns/net"], edit=host_network)
    assert code == 0, err
    assert out.strip() == os.readlink("/proc/self/ns/net")
    assert pool.missed == 2 and pool.taken == 0
    assert gone(spare.pid)
    # the next spare is made for what was asked last: no network namespace of its own
    assert pool.spare is not None and not pool.spare.flags & kernel.CLONE_NEWNET

    def own_user_namespace(spec):
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    flags, joins = namespace_flags(bundles_spec(bundles, own_user_namespace))
    assert not SparePool.fits(flags, joins)


def test_a_spec_too_big_for_one_message_goes_to_a_forked_init(runtime, bundles, pool, reaper):  # noqa: F811
    assert run_one(runtime, bundles, "b1", ["true"])[0] == 0
    spare = pool.spare
    assert spare is not None and spare.report()
    # 300 KB of environment: more than a unix socket's send buffer takes in one datagram
    # (in five variables: execve refuses a single string over 128 KiB)
    big = "x" * 60_000

    def with_big_env(spec):
        spec["process"]["env"] += [f"BIG{i}={big}" for i in range(5)]
    code, out, err = run_one(runtime, bundles, "b2", ["sh", "-c", 'echo ${#BIG0} ${#BIG4}'], edit=with_big_env)
    assert code == 0, err
    assert out.split() == [str(len(big))] * 2
    assert pool.taken == 0 and pool.missed == 2
    assert gone(spare.pid)


def bundles_spec(bundles, edit) -> dict:  # noqa: F811
    import json
    return json.loads((bundles.make(["true"], edit=edit) / "config.json").read_text())


def test_a_failed_create_through_a_spare_leaves_nothing(runtime, bundles, pool, reaper):  # noqa: F811
    assert run_one(runtime, bundles, "e1", ["true"])[0] == 0
    spare = pool.spare
    assert spare is not None and spare.report()
    with pytest.raises(CommandNotFound):
        runtime.create("e2", str(bundles.make(["no-such-command"])))
    assert pool.taken == 1
    assert gone(spare.pid)
    os.waitpid(spare.pid, 0)       # this process is the subreaper: the killed init is ours to reap
    assert not Path(runtime.root, "e2").exists()
    assert cgroup_dirs("sandbox/e2") == []


def test_the_supervisor_keeps_one_spare_and_a_janitor_and_both_go_when_it_stops(tmp_path, busybox_binary):
    from sandbox import Engine
    from tests.integration.container_env import clean_engine
    engine = Engine(tmp_path / "root")
    engine.images.bootstrap("busybox")
    try:
        for _ in range(3):
            assert engine.run("busybox", ["true"], remove=True, network="none").exit_code == 0
        ping = engine.supervisor.call("ping")
        sup = int(ping["pid"])
        # the first run forked its init and made a spare; the next two each took one
        assert ping["spares"] == {"made": 3, "taken": 2, "missed": 1, "off": ""}, ping
        children = [int(p) for p in Path(f"/proc/{sup}/task/{sup}/children").read_text().split()]
        comms = sorted(Path(f"/proc/{p}/comm").read_text().strip() for p in children)
        assert comms.count("sandbox-spare") == 1, comms
        janitors = [p for p in children if b"janitor.py" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(janitors) == 1
        deadline = time.monotonic() + 5
        while [e for e in os.listdir(engine.root / "containers") if e.startswith(".removing-")] \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not [e for e in os.listdir(engine.root / "containers") if e.startswith(".removing-")]
    finally:
        clean_engine(engine)
    for pid in children:
        assert gone(pid, timeout=0.5), f"pid {pid} outlived the supervisor's stop"


def test_a_first_stage_that_never_reports_is_killed_not_waited_for(monkeypatch):
    import socket
    from sandbox.runtime import spare as spare_mod
    monkeypatch.setattr(spare_mod, "REPORT_TIMEOUT", 0.2)
    sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    child = os.fork()
    if child == 0:               # an S1 stuck before its report
        try:
            time.sleep(60)
        finally:
            os._exit(1)
    os.close(sync_w)
    theirs.close()
    stuck = spare_mod.Spare(child, sync_r, mine, AHEAD)
    started = time.monotonic()
    assert not stuck.report() and stuck.stuck
    stuck.close()
    assert time.monotonic() - started < 5
    assert process_start_time(child) is None       # killed and reaped
