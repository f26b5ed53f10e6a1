"""Nothing lost when the supervisor dies: exit codes, OOM kills and ``--rm`` survive ``kill -9``.

Each test kills the store's supervisor for real while a container runs, lets
the container end while no supervisor runs (or while a client waits), and
checks what the next supervisor reports.  The exit keeper
(sandbox/supervisor/keeper.py) is what holds the codes in between.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from sandbox.errors import ContainerNotFound
from tests.conftest import requires_cgroup, requires_containers
from tests.integration.container_env import engine  # noqa: F401

pytestmark = requires_containers   # root, or rootless (tools/rootless_tier.py)


def kill_supervisor(engine) -> int:
    pid = engine.supervisor.call("ping")["pid"]
    os.kill(pid, signal.SIGKILL)
    engine.supervisor.close()
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.01)
    return pid


def gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.02)
    return False


def test_an_exit_while_no_supervisor_runs_keeps_its_code(engine):
    c = engine.containers.run("busybox", ["sh", "-c", "sleep 0.5; exit 7"],
                              detach=True)
    try:
        init = c.pid
        kill_supervisor(engine)
        assert gone(init)                       # it ended with no supervisor to see it
        c.reload()                              # a stale "running" brings a supervisor up first
        assert (c.status, c.attrs["State"]["ExitCode"], c.attrs["State"]["Error"]) == ("exited", 7, "")
        assert c.wait()["StatusCode"] == 7
    finally:
        c.remove(force=True)


def test_a_waiter_and_rm_across_the_kill(engine):
    c = engine.containers.run("busybox", ["sh", "-c", "sleep 1; exit 7"], detach=True, auto_remove=True)
    got = {}
    waiter = threading.Thread(target=lambda: got.update(c.wait()))
    waiter.start()
    time.sleep(0.3)                             # the wait is on its stream
    kill_supervisor(engine)
    waiter.join(30)
    assert got.get("StatusCode") == 7           # it waited again, on the next supervisor
    with pytest.raises(ContainerNotFound):
        engine.containers.get(c.id)             # and --rm was honoured


def test_an_attached_cli_run_goes_on_after_the_kill(engine):
    env = dict(os.environ, SANDBOX_ROOT=str(engine.root))
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "run", "--rm", "busybox", "sh", "-c",
                             "echo one; sleep 1.5; echo two; exit 7"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"one\n"
    kill_supervisor(engine)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 7, err
    assert out == b"two\n"                      # nothing shown twice, nothing missed
    assert b"a new one takes over" in err
    assert not [c for c in engine.containers.list(all=True) if c.attrs["Config"]["Cmd"][-1].endswith("exit 7")]


@requires_cgroup("memory")
def test_an_oom_kill_while_no_supervisor_runs(engine):
    c = engine.containers.run("busybox", ["sh", "-c", "sleep 0.5; x=$(head -c 60000000 /dev/zero | tr '\\0' a)"],
                              detach=True, mem_limit="8m", memswap_limit="8m")
    try:
        init = c.pid
        kill_supervisor(engine)
        assert gone(init)
        c.reload()
        assert (c.attrs["State"]["ExitCode"], c.attrs["State"]["OOMKilled"]) == (137, True)
    finally:
        c.remove(force=True)


def test_the_keeper_is_the_supervisors_parent_and_leaves_with_it(engine):
    info = engine.supervisor.call("ping")
    keeper = info["keeper"]
    with open(f"/proc/{info['pid']}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == keeper
    with open(f"/proc/{keeper}/status") as f:
        rss_kib = int(next(line for line in f if line.startswith("VmRSS:")).split()[1])
    assert rss_kib < 16 * 1024                  # one small process per store, not per container
    engine.supervisor.stop()                    # no container runs: the keeper goes too
    deadline = time.monotonic() + 5             # it leaves once it has seen the supervisor go
    while os.path.exists(f"/proc/{keeper}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{keeper}"), _stat_line(keeper)


def _stat_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f"the keeper is still there: {f.read().strip()}"
    except OSError:
        return ""


def test_without_a_keeper_the_code_is_unknown_and_says_so(engine):
    c = engine.containers.run("busybox", ["sh", "-c", "sleep 0.5; exit 7"], detach=True)
    try:
        keeper = engine.supervisor.call("ping")["keeper"]
        init = c.pid
        os.kill(keeper, signal.SIGKILL)         # PID 1 (or a subreaper above us) reaps the orphans now
        kill_supervisor(engine)
        assert gone(init)
        c.reload()
        assert c.attrs["State"]["ExitCode"] == 255 or c.attrs["State"]["ExitCode"] == 7
        if c.attrs["State"]["ExitCode"] == 255:
            assert "exit code is unknown" in c.attrs["State"]["Error"]
    finally:
        c.remove(force=True)
