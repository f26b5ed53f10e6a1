"""``--runtime runc``: the supervisor drives runc's command line, everything else unchanged.

The same life cycle as with our runtime: output and exit codes (127 for a
missing command), a terminal, detached containers through pause, exec, a
TERM trap on stop, start again, a supervisor killed with SIGKILL and a new one
adopting the container, OOM kills recorded, and nothing left in runc's state
or the cgroup tree.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from sandbox.errors import CommandNotFound, SandboxError, SupervisorError
from tests.conftest import cgroup_controller_missing, requires_cgroup, rootless_mode
from tests.integration.container_env import engine  # noqa: F401  (module fixture)

pytestmark = pytest.mark.skipif(shutil.which("runc") is None, reason="needs runc (apt install runc)")


def _runc_list(engine) -> list:  # noqa: F811
    out = subprocess.run(["runc", "--root", str(engine.root / "run" / "runc"), "list", "--format", "json"],
                         capture_output=True, text=True)
    return json.loads(out.stdout or "null") or []


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except SupervisorError:
            pass   # the killed supervisor's last connection; the next call starts a new one
        time.sleep(0.05)
    return False


def test_run_output_exit_codes_and_terminal(engine):  # noqa: F811
    r = engine.run("busybox", ["sh", "-c", "echo out; echo err >&2; exit 3"], runtime="runc")
    assert (r.exit_code, r.output, r.stderr) == (3, b"out\n", b"err\n")
    with pytest.raises(CommandNotFound):
        engine.run("busybox", ["no-such-command"], runtime="runc")
    tty = engine.run("busybox", ["tty"], runtime="runc", tty=True)
    assert tty.exit_code == 0 and tty.output.strip().startswith(b"/dev/pts/")
    assert _runc_list(engine) == [] and not engine.containers.list(all=True)


def test_detached_life_cycle_and_supervisor_kill(engine):  # noqa: F811
    script = 'trap "echo bye; exit 0" TERM; echo ready; i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done'
    c = engine.containers.run("busybox", ["sh", "-c", script], detach=True, runtime="runc", name="viarunc")
    try:
        assert c.attrs["HostConfig"]["Runtime"] == "runc"
        assert _wait_for(lambda: b"ready" in c.logs())
        assert [x["id"] for x in _runc_list(engine)] == [c.id]
        n = len(c.logs().splitlines())
        if rootless_mode() and cgroup_controller_missing("freezer"):
            # rootless without a delegated cgroup: runc made no group; our one line, and it runs on
            with pytest.raises(SandboxError, match="delegated"):
                c.pause()
            assert c.reload().status == "running"
        else:
            c.pause()
            assert c.reload().attrs["State"]["Paused"]
            n = len(c.logs().splitlines())
            time.sleep(0.5)
            assert len(c.logs().splitlines()) == n
            c.unpause()
            assert c.stats().summary()["pids"] >= 1
        assert _wait_for(lambda: len(c.logs().splitlines()) > n + 2)
        assert c.exec_run(["cat", "/proc/1/comm"]).output == b"sh\n"
        c.stop(timeout=5)
        c.reload()
        assert c.attrs["State"]["ExitCode"] == 0 and c.logs().splitlines()[-1] == b"bye"
        c.start()
        assert _wait_for(lambda: c.logs().count(b"ready") == 2)
        # kill -9 the supervisor: the container keeps running, a new supervisor adopts it
        old = engine.supervisor.call("ping")["pid"]
        os.kill(old, signal.SIGKILL)
        engine.supervisor.close()
        assert _wait_for(lambda: engine.supervisor.call("ping")["pid"] != old, 15)
        before = len(c.logs().splitlines())
        assert _wait_for(lambda: len(c.logs().splitlines()) > before + 2)
        assert c.reload().status == "running"
        c.kill()
        assert c.wait(timeout=10)["StatusCode"] == 137
    finally:
        c.remove(force=True)
    assert _runc_list(engine) == []


@requires_cgroup("memory")
def test_oom_kill_is_recorded(engine):  # noqa: F811
    c = engine.containers.create("busybox", ["tail", "/dev/zero"], runtime="runc", mem_limit="32m")
    try:
        code = engine.containers.start_attached(c.id, lambda s, d: None)
        state = c.reload().attrs["State"]
        assert code == 137 and state["OOMKilled"] is True and state["ExitCode"] == 137
    finally:
        c.remove(force=True)
    assert not os.path.exists(f"/sys/fs/cgroup/memory/sandbox/{c.id}")


def test_rootless_runc_runs_without_a_cgroup_or_in_the_delegated_one(engine):  # noqa: F811
    """Rootless, runc gets --rootless and a spec it can run: its group made below the delegated one
    (limits applied), else none, with the engine's one line about limits; /sys is the host's, bound."""
    if not rootless_mode():
        pytest.skip("rootless mode only (the rootless tier: python tools/rootless_tier.py)")
    c = engine.containers.create("busybox", ["sh", "-c", "cat /proc/self/cgroup; grep ' /sys ' /proc/self/mounts"],
                                 runtime="runc", network_mode="host", pids_limit=50)
    try:
        out = []
        code = engine.containers.start_attached(c.id, lambda s, d: out.append(d))
        text = b"".join(out).decode()
        assert code == 0, text
        spec = json.loads((c.dir / "bundle" / "config.json").read_text())
        warnings = c.reload().attrs["Sandbox"].get("Warnings") or []
        if cgroup_controller_missing("pids"):
            assert "cgroupsPath" not in spec["linux"] and "resources" not in spec["linux"]
            assert any("limits not applied (--pids-limit)" in w for w in warnings), warnings
        else:
            assert spec["linux"]["cgroupsPath"].endswith(f"/sandbox/{c.id}")
            assert f"/sandbox/{c.id}" in text, text
        sys_line = next(line.split() for line in text.splitlines() if line.split()[1:2] == ["/sys"])
        assert "ro" in sys_line[3].split(","), sys_line     # the host's /sys, bound read-only
    finally:
        c.remove(force=True)
    assert _runc_list(engine) == []
