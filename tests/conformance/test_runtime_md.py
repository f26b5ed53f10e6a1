"""runtime.md: the state, the lifecycle and the operations, beside runc.

Each test names the requirement it checks in its docstring (paraphrased from
runtime.md of runtime-spec v1.1).
"""

from __future__ import annotations

import json
import time

from tests.conftest import requires_root
from tests.conformance.conftest import same

pytestmark = requires_root


def wait_status(rt, cid, wanted, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        state = rt.state(cid)
        now = state["status"] if state else "gone"
        if now == wanted or time.monotonic() > deadline:
            return now
        time.sleep(0.02)


# ------------------------------------------------------------------ State

def test_state_has_every_required_field_in_each_status(both):
    """State: ociVersion, id, status, bundle are REQUIRED; pid is REQUIRED when created or running."""
    seen = {}
    for rt, bundle, cid in both.each(both.spec(["sleep", "30"])):
        rt("create", "--bundle", str(bundle), cid, cwd=bundle)
        created = rt.state(cid)
        rt("start", cid)
        running = rt.state(cid)
        rt("kill", cid, "KILL")
        wait_status(rt, cid, "stopped")
        stopped = rt.state(cid)
        for st, status in ((created, "created"), (running, "running"), (stopped, "stopped")):
            assert st is not None and st["status"] == status
            assert {"ociVersion", "id", "status", "bundle"} <= set(st), st
            assert st["id"] == cid and st["bundle"] == str(bundle)
        assert created["pid"] > 0 and running["pid"] == created["pid"]
        seen[rt.name] = sorted(set(created)), stopped.get("pid", 0)
        rt("delete", cid)
    if "runc" in seen:
        assert seen["sandbox"] == seen["runc"]       # runc's extra keys too (rootfs, created, owner)


def test_state_of_an_unknown_container_is_an_error(both):
    """Query state: it MUST generate an error if the container does not exist."""
    for rt in both.runtimes:
        r = rt("state", "no-such-container")
        assert r.code != 0 and r.out == ""


# ------------------------------------------------------------------ Operations

def test_create_refuses_an_id_in_use(both):
    """create: the runtime MUST generate an error if the ID is not unique."""
    for rt, bundle, cid in both.each(both.spec(["sleep", "30"])):
        assert rt("create", "--bundle", str(bundle), cid, cwd=bundle).code == 0
        again = rt("create", "--bundle", str(bundle), cid, cwd=bundle)
        assert again.code != 0
        assert rt.state(cid)["status"] == "created"       # the first one is untouched
        rt("delete", "--force", cid)


def test_the_program_does_not_run_before_start(both, tmp_path):
    """create: the user-specified program MUST NOT be run at this time (only at start)."""
    spec = both.spec(["sh", "-c", "echo ran > /out/marker"])
    for rt, bundle, cid in both.each(spec):
        out = tmp_path / f"out-{rt.name}"
        out.mkdir()
        s = json.loads((bundle / "config.json").read_text())
        s["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                            "options": ["rbind", "rw"]})
        (bundle / "config.json").write_text(json.dumps(s))
        rt("create", "--bundle", str(bundle), cid, cwd=bundle)
        time.sleep(0.3)
        assert not (out / "marker").exists()
        rt("start", cid)
        wait_status(rt, cid, "stopped")
        assert (out / "marker").read_text() == "ran\n"
        rt("delete", cid)


def test_start_of_a_container_that_is_not_created_is_an_error(both):
    """start: MUST generate an error if the container is not in the created state."""
    for rt, bundle, cid in both.each(both.spec(["sleep", "30"])):
        rt("create", "--bundle", str(bundle), cid, cwd=bundle)
        assert rt("start", cid).code == 0
        assert rt("start", cid).code != 0                  # running
        rt("kill", cid, "KILL")
        wait_status(rt, cid, "stopped")
        assert rt("start", cid).code != 0                  # stopped
        rt("delete", cid)


def test_kill_sends_the_signal_and_refuses_a_stopped_container(both):
    """kill: MUST send the signal to the process; MUST error unless created or running."""
    results = {}
    for rt, bundle, cid in both.each(both.spec(["sh", "-c", "trap 'exit 3' USR1; while :; do sleep 0.1; done"])):
        rt("create", "--bundle", str(bundle), cid, cwd=bundle)
        rt("start", cid)
        time.sleep(0.3)
        assert rt("kill", cid, "USR1").code == 0
        assert wait_status(rt, cid, "stopped") == "stopped"
        results[rt.name] = rt("kill", cid, "KILL").code != 0
        rt("delete", cid)
    assert results["sandbox"] is True
    if "runc" in results:
        assert results["sandbox"] == results["runc"]


def test_delete_refuses_a_running_container_and_force_deletes_it(both):
    """delete: MUST generate an error if the container is not stopped (runc's --force kills first)."""
    for rt, bundle, cid in both.each(both.spec(["sleep", "30"])):
        rt("create", "--bundle", str(bundle), cid, cwd=bundle)
        rt("start", cid)
        assert rt("delete", cid).code != 0
        assert rt.state(cid)["status"] == "running"
        assert rt("delete", "--force", cid).code == 0
        assert rt.state(cid) is None


def test_delete_of_a_created_container(both):
    """delete of a created container: runc deletes it (its init never ran the program)."""
    codes = {}
    for rt, bundle, cid in both.each(both.spec(["sleep", "30"])):
        rt("create", "--bundle", str(bundle), cid, cwd=bundle)
        codes[rt.name] = rt("delete", cid).code
        rt("delete", "--force", cid)
        assert rt.state(cid) is None
    if "runc" in codes:
        assert codes["sandbox"] == codes["runc"]


def test_run_reports_the_exit_code(both):
    """The container's process exit code is what `run` exits with (runc's behaviour)."""
    assert same(both.run(both.spec(["sh", "-c", "echo out; exit 7"]))) == (7, "out\n")


# ------------------------------------------------------------------ Hooks (config.md "POSIX-platform Hooks")

def _hook(path, script, tmp):
    f = tmp / path
    f.write_text("#!/bin/sh\n" + script)
    f.chmod(0o755)
    return str(f)


def test_hooks_run_in_order_with_the_state_on_stdin(both, tmp_path):
    """Hooks: prestart, createRuntime, poststart, poststop, each given the state on stdin."""
    results = {}
    for rt, bundle, cid in both.each(both.spec(["true"])):
        log = tmp_path / f"hooks-{rt.name}.log"
        hooks = {stage: [{"path": _hook(f"{stage}-{rt.name}.sh",
                                        f'read -r state; echo "{stage} $state" >> {log}\n', tmp_path)}]
                 for stage in ("prestart", "createRuntime", "poststart", "poststop")}
        s = json.loads((bundle / "config.json").read_text())
        s["hooks"] = hooks
        (bundle / "config.json").write_text(json.dumps(s))
        assert rt("run", "--bundle", str(bundle), cid, cwd=bundle).code == 0
        rt("delete", "--force", cid)
        lines = log.read_text().splitlines()
        order = [line.split(" ", 1)[0] for line in lines]
        states = [json.loads(line.split(" ", 1)[1]) for line in lines]
        assert all(st["id"] == cid and st["bundle"] == str(bundle) for st in states)
        results[rt.name] = (order, [st["status"] for st in states])
    assert results["sandbox"] == (["prestart", "createRuntime", "poststart", "poststop"],
                                  ["creating", "creating", "running", "stopped"])
    if "runc" in results:                          # see KNOWN_DIFFERENCES
        assert results["runc"] == (results["sandbox"][0], ["creating", "creating", "created", "stopped"])


def test_a_failing_prestart_hook_fails_create_and_leaves_nothing(both, tmp_path):
    """If a prestart hook fails the runtime MUST generate an error and stop and delete the container."""
    spec = both.spec(["sleep", "30"])
    spec["hooks"] = {"prestart": [{"path": _hook("fail.sh", "exit 3\n", tmp_path)}]}
    for rt, bundle, cid in both.each(spec):
        r = rt("create", "--bundle", str(bundle), cid, cwd=bundle)
        assert r.code != 0
        assert rt.state(cid) is None


def test_a_failing_poststart_hook_is_a_warning_and_the_container_runs(both, tmp_path):
    """poststart/poststop failures: the runtime MUST log a warning and the lifecycle continues."""
    spec = both.spec(["sh", "-c", "exit 4"])
    spec["hooks"] = {"poststart": [{"path": _hook("fail.sh", "exit 3\n", tmp_path)}],
                     "poststop": [{"path": _hook("fail2.sh", "exit 5\n", tmp_path)}]}
    for rt, bundle, cid in both.each(spec):
        rt("create", "--bundle", str(bundle), cid, cwd=bundle)
        started = rt("start", cid)
        if rt.name == "runc":                            # see KNOWN_DIFFERENCES
            assert started.code != 0 and rt.state(cid) is None
            continue
        assert started.code == 0 and "poststart" in started.err   # the warning
        assert wait_status(rt, cid, "stopped") == "stopped"
        deleted = rt("delete", cid)
        assert deleted.code == 0 and "poststop" in deleted.err    # deleted all the same, with a warning
        assert rt.state(cid) is None
