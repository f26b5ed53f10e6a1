"""Containers end to end: the supervisor, docker's verbs and the Python API, on real kernels parts.

Every test runs real containers (namespaces, overlayfs, cgroups) from a
busybox image bootstrapped from the host, through the supervisor of a
per-module store; the module fixture removes them all and stops the
supervisor, and the session leak check must find nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from sandbox.errors import (CommandNotFound, Conflict, ContainerError, ContainerExists,
                            ContainerNotFound, InvalidStateTransition, SandboxError, UsageError)
from tests.conftest import cgroup_controller_missing, requires_cgroup, requires_containers, rootless_mode
from tests.integration.container_env import check_diff_and_commit, engine, stop_supervisor  # noqa: F401

pytestmark = requires_containers   # as root, and as a user in rootless mode (tools/rootless_tier.py)


def wait_for(check, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {check}")


def sandbox_cli(engine, *argv, input=None, check=True):
    """The `sandbox` command as a new process (the cold path users take)."""
    env = dict(os.environ, SANDBOX_ROOT=str(engine.root))
    proc = subprocess.run([sys.executable, "-m", "sandbox", *argv], input=input, capture_output=True,
                          env=env, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"sandbox {' '.join(argv)} -> {proc.returncode}\n{proc.stderr.decode()}")
    return proc


# --------------------------------------------------------------------------- run


def test_run_returns_exit_code_and_output_apart(engine):
    r = engine.run("busybox", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.exit_code, r.output, r.stderr) == (3, b"out\n", b"err\n")
    with pytest.raises(ContainerNotFound):
        engine.containers.get(r.id)  # remove=True: gone, record and all


def test_run_is_one_request_and_a_supervisor_without_it_gets_the_two(engine, monkeypatch):
    client = engine.supervisor
    real_call, real_stream = client.call, client.stream
    ops: list[str] = []

    def call(op, *a, **k):
        ops.append(op)
        return real_call(op, *a, **k)

    def stream(op, *a, **k):
        ops.append(op)
        return real_stream(op, *a, **k)

    monkeypatch.setattr(client, "call", call)
    monkeypatch.setattr(client, "stream", stream)
    r = engine.run("busybox", ["sh", "-c", "echo one; exit 4"], name="one-request")
    assert (r.exit_code, r.output, ops) == (4, b"one\n", ["run_named"])
    with pytest.raises(ContainerNotFound):
        engine.containers.get(r.id)

    def older(op, *a, **k):
        # what a supervisor from before run_named answers: its dispatch does not know the op
        return stream("no-such-op-" + op if op == "run_named" else op, *a, **k)

    monkeypatch.setattr(client, "stream", older)
    ops.clear()
    r = engine.run("busybox", ["sh", "-c", "echo two; exit 5"], remove=False)
    assert (r.exit_code, r.output) == (5, b"two\n")
    assert ops == ["no-such-op-run_named", "create_named", "start"]
    assert engine.containers.get(r.id).attrs["State"]["ExitCode"] == 5   # kept: remove=False
    engine.containers.get(r.id).remove()


def test_a_removed_containers_files_go_when_the_supervisor_is_idle(engine):
    # `run --rm` answers once the record is renamed away; the files follow off its path.
    engine.run("busybox", ["true"])
    wait_for(lambda: not [e for e in os.listdir(engine.root / "containers") if e.startswith(".removing-")])


def _overlay_options(rootfs: str) -> set[str]:
    """The super options of the overlay mounted on ``rootfs`` (empty when none is)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == rootfs and "overlay" in fields:
            return set(fields[-1].split(","))
    return set()


def test_only_a_removed_on_exit_container_gets_a_volatile_overlay(engine):
    # --rm throws its writable layer away at the exit: no sync of it (Podman does the same);
    # any other container's layer must survive a crash, for start, commit and cp.
    kept = engine.containers.run("busybox", ["sleep", "30"], detach=True)
    doomed = engine.containers.run("busybox", ["sleep", "30"], detach=True, auto_remove=True)
    try:
        kept_opts = _overlay_options(str(engine.root / "containers" / kept.id / "rootfs"))
        doomed_opts = _overlay_options(str(engine.root / "containers" / doomed.id / "rootfs"))
        if engine.containers.get(kept.id).attrs.get("Driver") == "vfs":
            pytest.skip("the vfs driver mounts nothing")
        # newer kernels show it as fsync=volatile (overlayfs' fsync= option, Linux 6.x)
        assert kept_opts and not {"volatile", "fsync=volatile"} & kept_opts
        assert {"volatile", "fsync=volatile"} & doomed_opts
    finally:
        kept.remove(force=True)
        doomed.remove(force=True)


def test_a_half_made_shared_init_layer_goes_at_the_next_start_and_the_shared_one_stays(engine):
    # A supervisor killed while it made the shared init layer leaves its temporary directory.
    engine.run("busybox", ["true"])
    half = engine.root / ".init-layer-1-deadbeef"
    (half / "proc").mkdir(parents=True)
    stop_supervisor(engine)
    r = engine.run("busybox", ["cat", "/etc/hostname"])      # a new supervisor: recovery first
    assert r.exit_code == 0 and r.output.strip()
    assert not half.exists()
    assert (engine.root / "init-layer" / "proc").is_dir()


def test_docker_py_run_raises_container_error(engine):
    assert engine.containers.run("busybox", "echo hi", remove=True) == b"hi\n"
    with pytest.raises(ContainerError) as e:
        engine.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 7"], remove=True)
    assert e.value.exit_status == 7 and e.value.stderr == b"bad\n"


def test_container_sees_its_own_namespaces_and_hostname(engine):
    c = engine.containers.run("busybox", ["sleep", "30"], detach=True, name="ns-probe",
                              hostname="probe")
    try:
        assert c.status == "running" and c.pid > 0
        own = ("mnt", "uts", "ipc", "pid", "cgroup")
        if c.attrs["HostConfig"]["NetworkMode"] != "host":   # rootless without slirp4netns: the host's
            own += ("net",)
        for ns in own:
            assert os.readlink(f"/proc/{c.pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
        r = c.exec_run(["sh", "-c", "hostname; cat /etc/hostname; echo $$; ip -o link 2>/dev/null | wc -l"])
        lines = r.output.decode().split()
        assert r.exit_code == 0 and lines[:2] == ["probe", "probe"]
        assert lines[2] != "1"  # exec is not PID 1
        top = c.top()
        assert any("sleep" in " ".join(p) for p in top["Processes"])
    finally:
        c.remove(force=True)


def test_env_workdir_user_and_entrypoint(engine):
    r = engine.run("busybox", ["sh", "-c", "echo $A-$HOSTNAME; pwd; id -u; id -g"],
                   environment={"A": "x"}, working_dir="/tmp/new", user="nobody")
    out = r.output.decode().split()
    assert r.exit_code == 0
    assert out[0].startswith("x-") and out[1] == "/tmp/new" and out[2] == "65534"
    r = engine.run("busybox", ["-c", "echo from-entrypoint"], entrypoint="sh")
    assert r.output == b"from-entrypoint\n"


def test_command_not_found_is_127_and_leaves_nothing(engine):
    before = {c.id for c in engine.containers.list(all=True)}
    with pytest.raises(CommandNotFound) as e:
        engine.run("busybox", ["no-such-command"])
    assert e.value.exit_code == 127
    assert {c.id for c in engine.containers.list(all=True)} == before
    proc = sandbox_cli(engine, "run", "--rm", "busybox", "no-such-command", check=False)
    assert proc.returncode == 127
    assert len(proc.stderr.decode().strip().splitlines()) == 1


def test_bad_input_is_one_line_and_leaves_nothing(engine, tmp_path):
    before = {c.id for c in engine.containers.list(all=True)}
    cases = [
        (["run", "--rm", "no-such-image:1"], "Unable to find image"),
        (["run", "--rm", "--memory", "12QB", "busybox", "true"], "12QB"),
        (["run", "--rm", "--cap-add", "CAP_FOO", "busybox", "true"], "CAP_FOO"),
        (["run", "--rm", "-v", f"{tmp_path}/missing:/x", "busybox", "true"], "does not exist"),
    ]
    for argv, needle in cases:
        proc = sandbox_cli(engine, *argv, check=False)
        err = proc.stderr.decode().strip()
        assert proc.returncode == 125, (argv, err)
        assert needle in err and len(err.splitlines()) == 1, (argv, err)
    assert {c.id for c in engine.containers.list(all=True)} == before


def test_state_errors(engine):
    c = engine.containers.create("busybox", ["sleep", "30"], name="states")
    try:
        with pytest.raises(InvalidStateTransition):
            c.exec_run("true")  # not started
        c.start()
        with pytest.raises(InvalidStateTransition):
            c.start()
        with pytest.raises(InvalidStateTransition):
            c.unpause()
        with pytest.raises(Conflict):
            c.remove()
        with pytest.raises(ContainerExists):
            engine.containers.create("busybox", ["true"], name="states")
    finally:
        c.remove(force=True)
    with pytest.raises(ContainerNotFound):
        c.reload()


def test_stop_of_a_container_that_is_not_running_returns_at_once(engine):
    # As `docker stop`: nothing to do, no error (it once waited for an end that never came).
    c = engine.containers.create("busybox", ["true"], name="never-started")
    try:
        c.stop(timeout=1)
        assert sandbox_cli(engine, "stop", "never-started").stdout == b"never-started\n"
        c.start()
        assert c.wait()["StatusCode"] == 0
        c.stop()
        assert sandbox_cli(engine, "stop", "never-started").stdout == b"never-started\n"
    finally:
        c.remove(force=True)


# --------------------------------------------------------------------------- life cycle


def test_stop_reaches_a_term_trap_then_kills_after_timeout(engine):
    script = "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done"
    c = engine.containers.run("busybox", ["sh", "-c", script], detach=True)
    try:
        wait_for(lambda: b"ready" in c.logs())
        c.stop(timeout=5)
        assert c.attrs["State"]["ExitCode"] == 0 and b"got-term" in c.logs()
        # A process that ignores TERM is killed after the timeout.
        c2 = engine.containers.run("busybox", ["sh", "-c", "trap '' TERM; echo ready; sleep 60"], detach=True)
        wait_for(lambda: b"ready" in c2.logs())
        t0 = time.monotonic()
        c2.stop(timeout=1)
        assert 0.9 < time.monotonic() - t0 < 5
        assert c2.attrs["State"]["ExitCode"] == 137
        c2.remove()
    finally:
        c.remove(force=True)


def test_kill_signal_reaches_trap(engine):
    c = engine.containers.run("busybox", ["sh", "-c", "trap 'echo hup; exit 5' HUP; echo ready; "
                                          "while true; do sleep 0.1; done"], detach=True)
    try:
        wait_for(lambda: b"ready" in c.logs())
        c.kill("HUP")
        assert c.wait()["StatusCode"] == 5
        assert b"hup" in c.logs()
    finally:
        c.remove(force=True)


def test_pause_stops_a_counter_and_unpause_resumes(engine):
    c = engine.containers.run("busybox", ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; "
                                          "sleep 0.02; done"], detach=True)
    try:
        read = lambda: int(c.exec_run(["cat", "/tmp/n"]).output or b"0")  # noqa: E731
        wait_for(lambda: read() > 3)
        if rootless_mode() and cgroup_controller_missing("freezer"):
            # rootless without a delegated cgroup: one line saying what is missing, and it runs on
            with pytest.raises(SandboxError, match="delegated"):
                c.pause()
            assert c.reload().status == "running" and wait_for(lambda: read() > 6)
            return
        c.pause()
        assert c.status == "paused"
        with pytest.raises(InvalidStateTransition):
            c.exec_run("true")
        # the freeze may land between the shell's truncation of /tmp/n and its write: then it reads empty
        frozen_text = (c.dir / "upper" / "tmp" / "n").read_text()
        time.sleep(0.3)
        assert (c.dir / "upper" / "tmp" / "n").read_text() == frozen_text
        frozen = int(frozen_text or 0)
        c.unpause()
        wait_for(lambda: read() > frozen + 3)
        # stop thaws a paused container first, or it would never see its signal.
        c.pause()
        c.stop(timeout=1)
        assert c.attrs["State"]["Status"] == "exited"
    finally:
        c.remove(force=True)


def test_restart_policy_on_failure_counts(engine):
    c = engine.containers.run("busybox", ["sh", "-c", "exit 3"], detach=True,
                              restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
    try:
        wait_for(lambda: c.reload().attrs["RestartCount"] == 2 and not c.attrs["State"]["Restarting"]
                 and c.status == "exited", timeout=20)
        assert c.attrs["State"]["ExitCode"] == 3
    finally:
        c.remove(force=True)


def test_restart_and_rename_and_wait(engine):
    c = engine.containers.run("busybox", ["sleep", "30"], detach=True, name="before")
    try:
        pid = c.pid
        c.restart(timeout=0)
        assert c.status == "running" and c.pid != pid
        c.rename("after")
        assert engine.containers.get("after").id == c.id
        c.kill()
        assert c.wait()["StatusCode"] == 137
    finally:
        c.remove(force=True)


@requires_cgroup("memory")
def test_oom_kill_is_recorded(engine):
    c = engine.containers.run("busybox", ["tail", "/dev/zero"], detach=True, mem_limit="32m",
                              memswap_limit="32m")
    try:
        assert c.wait()["StatusCode"] == 137
        state = c.reload().attrs["State"]
        assert state["OOMKilled"] is True and state["ExitCode"] == 137
    finally:
        c.remove(force=True)


@requires_cgroup("memory")
def test_oom_kill_disable_makes_a_hog_wait_and_stop_still_ends_it(engine):
    """--oom-kill-disable, --memory-swappiness and --memory-reservation reach the kernel (v1), or are
    Docker's warnings (v2, which has neither file); a hog over the limit then waits, not dies."""
    from sandbox import cgroups
    if cgroups.detect() != "v1":
        pytest.skip("memory.oom_control and memory.swappiness exist on cgroup v1 only")
    c = engine.containers.run("busybox", ["sh", "-c", "a=aaaaaaaa; while true; do a=$a$a; done"], detach=True,
                              mem_limit="16m", memswap_limit="16m", oom_kill_disable=True, mem_swappiness=0,
                              mem_reservation="8m")
    try:
        assert c.attrs["HostConfig"]["OomKillDisable"] is True and c.attrs["HostConfig"]["MemorySwappiness"] == 0
        memory = cgroups.open_cgroup(c.id).paths["memory"]
        assert (memory / "memory.swappiness").read_text().strip() == "0"
        assert (memory / "memory.soft_limit_in_bytes").read_text().strip() == str(8 << 20)
        deadline = time.monotonic() + 10
        control = ""
        while "under_oom 1" not in control and time.monotonic() < deadline:
            control = (memory / "memory.oom_control").read_text()
            time.sleep(0.05)
        assert "oom_kill_disable 1" in control and "under_oom 1" in control and "oom_kill 0" in control
        assert c.reload().status == "running"          # waiting for memory, not killed
        c.stop(timeout=1)
        state = c.reload().attrs["State"]
        assert state["ExitCode"] == 137 and state["OOMKilled"] is False
    finally:
        c.remove(force=True)


@requires_cgroup("memory")
def test_a_container_reads_its_own_limits_in_sys_fs_cgroup(engine):
    # As under Docker: its own groups, read-only, in the host's cgroup version --
    # a hybrid host (v1 controllers plus an empty unified mount) is v1.
    from sandbox.cgroups import detect
    path = "/sys/fs/cgroup/memory/memory.limit_in_bytes" if detect() == "v1" else "/sys/fs/cgroup/memory.max"
    r = engine.run("busybox", ["sh", "-c", f"cat {path}; cat /proc/self/cgroup | grep -c :/$; "
                               "touch /sys/fs/cgroup/x 2>/dev/null || echo read-only"], mem_limit="32m")
    lines = r.output.decode().split()
    assert r.exit_code == 0 and lines[0] == str(32 * 2**20) and lines[-1] == "read-only", r
    assert int(lines[1]) >= 1   # the cgroup namespace: it is the root of its own groups


@requires_cgroup("pids")
def test_pids_limit_contains_a_fork_bomb(engine):
    c = engine.containers.run("busybox", ["sh", "-c", "bomb() { bomb | bomb & }; bomb; sleep 30"],
                              detach=True, pids_limit=64)
    try:
        from sandbox import cgroups
        cg = cgroups.open_cgroup(c.id)
        peak = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            peak = max(peak, cg.stats().pids_current)
            time.sleep(0.05)
        assert 0 < peak <= 64
        assert subprocess.run(["true"]).returncode == 0
    finally:
        c.remove(force=True)


# --------------------------------------------------------------------------- logs, exec, events


def test_logs_keep_streams_apart_and_tail_and_follow(engine):
    c = engine.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo o$i; echo e$i >&2; done"],
                              detach=True)
    try:
        c.wait()
        assert c.logs(stderr=False) == b"o1\no2\no3\n"
        assert c.logs(stdout=False) == b"e1\ne2\ne3\n"
        assert c.logs(stderr=False, tail=1) == b"o3\n"
        proc = sandbox_cli(engine, "logs", "-t", c.id)
        assert proc.stdout.decode().splitlines()[0].endswith("Z o1")
        assert proc.stderr.decode().splitlines()[-1].endswith("Z e3")
        f = c.dir / "container.log"
        first = json.loads(f.read_text().splitlines()[0])
        assert set(first) == {"log", "stream", "time"}
    finally:
        c.remove(force=True)


def test_exec_env_workdir_user_stdin(engine):
    c = engine.containers.run("busybox", ["sleep", "30"], detach=True, environment=["BASE=1"])
    try:
        r = c.exec_run(["sh", "-c", "echo $BASE$EXTRA; pwd; id -u"], environment={"EXTRA": "2"},
                       workdir="/etc", user="65534")
        assert r.exit_code == 0 and r.output.decode().split() == ["12", "/etc", "65534"]
        r = c.exec_run(["sh", "-c", "exit 4"])
        assert r.exit_code == 4
        proc = sandbox_cli(engine, "exec", "-i", c.id, "tr", "a-z", "A-Z", input=b"hello\n")
        assert proc.stdout == b"HELLO\n"
        # docker exec: 126 whether the command is missing or not executable (docker run: 127 / 126)
        assert sandbox_cli(engine, "exec", c.id, "no-such-command", check=False).returncode == 126
        assert sandbox_cli(engine, "exec", c.id, "/etc/passwd", check=False).returncode == 126
        # exec joins the container's cgroup
        r = c.exec_run(["cat", "/proc/self/cgroup"])
        assert r.exit_code == 0
    finally:
        c.remove(force=True)


def test_run_interactive_stdin_through_the_cli(engine):
    proc = sandbox_cli(engine, "run", "--rm", "-i", "busybox", "wc", "-l", input=b"a\nb\nc\n")
    assert proc.stdout.strip() == b"3"


def test_events_record_the_life_cycle(engine):
    c = engine.containers.run("busybox", ["true"], detach=True, name="evented")
    c.wait()
    c.remove()
    proc = sandbox_cli(engine, "events", "--since", "1h", "--until", "0s", "--filter", "container=evented",
                       "--format", "{{.Action}}")
    actions = proc.stdout.decode().split()
    assert actions[:4] == ["create", "start", "die", "destroy"]


# --------------------------------------------------------------------------- volumes, diff, commit, cp


def test_named_volume_outlives_containers(engine):
    engine.run("busybox", ["sh", "-c", "echo kept > /data/f"], volumes=["vol1:/data"])
    r = engine.run("busybox", ["cat", "/data/f"], volumes=["vol1:/data"])
    assert r.output == b"kept\n"
    with pytest.raises(Conflict):
        c = engine.containers.create("busybox", ["true"], volumes=["vol1:/data"])
        try:
            engine.volumes.get("vol1").remove()
        finally:
            c.remove()
    engine.volumes.get("vol1").remove()


def test_bind_mount_read_only(engine, tmp_path):
    (tmp_path / "in.txt").write_text("host\n")
    r = engine.run("busybox", ["sh", "-c", "cat /h/in.txt; touch /h/x 2>&1; echo $?"],
                   volumes=[f"{tmp_path}:/h:ro"])
    lines = r.output.decode().splitlines()
    assert lines[0] == "host" and lines[-1] != "0"
    assert not (tmp_path / "x").exists()


def test_bind_mount_of_a_single_file(engine, tmp_path):
    (tmp_path / "conf.ini").write_text("key=1\n")
    c = engine.containers.create("busybox", ["sh", "-c", "cat /etc/app/conf.ini; echo more >> /etc/app/conf.ini"],
                                 volumes=[f"{tmp_path / 'conf.ini'}:/etc/app/conf.ini"])
    try:
        assert engine.containers.start_attached(c.id, lambda s, d: None) == 0
        assert (tmp_path / "conf.ini").read_text() == "key=1\nmore\n"
        assert c.logs() == b"key=1\n"
        assert ("A", "/etc/app/conf.ini") not in c.changes()   # the mount point is in the init layer
    finally:
        c.remove(force=True)


def test_diff_and_commit(engine):
    check_diff_and_commit(engine, "committed")


def test_a_layer_not_unpacked_yet_is_unpacked_by_the_client(engine):
    # The supervisor resolves the image of a create by name but never unpacks
    # (too slow for its single-threaded loop): it says so and the client does.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    buf.seek(0)
    image = engine.images.import_(buf, tag="not-unpacked:v1", changes=["CMD [\"x\"]"])
    top = image.chain_ids[-1]
    layers = engine.image_store.layers
    try:
        layers.remove(top)
        assert not layers.exists(top)
        # The imported layer has no shell: the host's static busybox, bound in, reads the file.
        from sandbox.image.bootstrap import find_busybox
        r = engine.run("not-unpacked:v1", ["/busybox", "cat", "/hello.txt"],
                       volumes=[f"{find_busybox()}:/busybox:ro"])
        assert (r.exit_code, r.output) == (0, b"hi\n")
        assert layers.exists(top)
        assert not [c for c in engine.containers.list(all=True) if c.image.id == image.id]
    finally:
        engine.images.remove("not-unpacked:v1")


def test_cp_both_ways_and_export(engine, tmp_path):
    c = engine.containers.run("busybox", ["sleep", "30"], detach=True)
    try:
        (tmp_path / "up.txt").write_text("to the container\n")
        c.copy_to(str(tmp_path / "up.txt"), "/tmp/")
        assert c.exec_run(["cat", "/tmp/up.txt"]).output == b"to the container\n"
        c.exec_run(["sh", "-c", "ln -s /../../../../etc/shadow /tmp/escape"])
        c.copy_from("/etc/passwd", str(tmp_path / "passwd"))
        assert "root" in (tmp_path / "passwd").read_text()
        buf = io.BytesIO()
        c.export(buf)
        names = tarfile.open(fileobj=io.BytesIO(buf.getvalue())).getnames()
        assert "bin/busybox" in names and "tmp/up.txt" in names
    finally:
        c.remove(force=True)


# --------------------------------------------------------------------------- the CLI


def test_cp_sees_volumes_binds_tmpfs_and_etc_files_as_the_container_does(engine, tmp_path):
    # As docker cp: a path under a volume or bind mount is the volume's, /etc/hostname
    # is the container's hostname, running or stopped; a running one's tmpfs too.
    bind = tmp_path / "bind"
    bind.mkdir()
    (bind / "b.txt").write_text("from-bind\n")
    (tmp_path / "new.txt").write_text("new\n")
    args = dict(volumes=["cp-vol:/data", f"{bind}:/bind", "cp-ro:/ro:ro"], hostname="cphost")
    stopped = engine.containers.create("busybox", ["sh", "-c", "echo vol > /data/v.txt"], name="cp-stopped", **args)
    running = None
    try:
        stopped.start()
        assert stopped.wait()["StatusCode"] == 0

        def read(c, path):
            out = tmp_path / "out"
            c.copy_from(path, str(out))
            text = out.read_text()
            out.unlink()
            return text

        assert read(stopped, "/etc/hostname") == "cphost\n"
        assert read(stopped, "/data/v.txt") == "vol\n"
        assert read(stopped, "/bind/b.txt") == "from-bind\n"
        stopped.copy_to(str(tmp_path / "new.txt"), "/data/")
        running = engine.containers.run("busybox", ["sh", "-c", "echo t > /scratch/t; sleep 30"], detach=True,
                                        tmpfs={"/scratch": ""}, name="cp-running", **args)
        wait_for(lambda: running.exec_run(["test", "-f", "/scratch/t"]).exit_code == 0)
        assert read(running, "/data/new.txt") == "new\n"       # the stopped one's copy, in the volume
        assert read(running, "/scratch/t") == "t\n"
        assert read(running, "/etc/hostname") == "cphost\n"
        running.copy_to(str(tmp_path / "new.txt"), "/scratch/")
        assert running.exec_run(["cat", "/scratch/new.txt"]).output == b"new\n"
        for c in (stopped, running):
            with pytest.raises(UsageError, match="read-only mount"):
                c.copy_to(str(tmp_path / "new.txt"), "/ro/")
        assert not [line for line in open("/proc/self/mountinfo") if str(engine.root) in line
                    and "/cp-" in line]
    finally:
        for c in (stopped, running):
            if c is not None:
                c.remove(force=True, v=True)
        for v in ("cp-vol", "cp-ro"):
            engine.volumes.get(v).remove()


def test_cli_ps_inspect_and_formats(engine):
    c = engine.containers.run("busybox", ["sleep", "30"], detach=True, name="listed", labels={"lab": "1"})
    try:
        out = sandbox_cli(engine, "ps", "--filter", "label=lab=1", "--format", "{{.Names}} {{.State}}").stdout
        assert out.decode().split() == ["listed", "running"]
        out = sandbox_cli(engine, "inspect", "-f", "{{.State.Status}} {{.State.Running}}", "listed").stdout
        assert out.decode().split() == ["running", "true"]
        q = sandbox_cli(engine, "ps", "-q").stdout.decode().split()
        assert c.short_id in q
    finally:
        c.remove(force=True)
    out = sandbox_cli(engine, "ps", "-a", "-q", "--filter", "name=listed").stdout
    assert out == b""


def test_keyboard_interrupt_stops_and_removes(engine):
    import threading
    container_ids = []

    def interrupt_soon():
        wait_for(lambda: [c for c in engine.containers.list() if c.name == "interrupted"])
        container_ids.append(engine.containers.get("interrupted").id)
        os.kill(os.getpid(), signal.SIGINT)  # what Jupyter's "interrupt" does to a kernel

    t = threading.Thread(target=interrupt_soon)
    t.start()
    with pytest.raises(KeyboardInterrupt):
        engine.run("busybox", ["sleep", "60"], name="interrupted")
    t.join()
    with pytest.raises(ContainerNotFound):
        engine.containers.get(container_ids[0])


def test_cold_cli_run_talks_to_the_supervisor_alone(engine):
    # A new `sandbox run` with the supervisor up sends create_named and start over
    # the socket (sandbox/cli/quick.py): same output, codes and clean-up as ever.
    r = sandbox_cli(engine, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (3, b"out\n", b"err\n")
    r = sandbox_cli(engine, "run", "--rm", "no-such-image", "true", check=False)
    assert r.returncode == 125 and b"Unable to find image 'no-such-image' locally" in r.stderr
    r = sandbox_cli(engine, "run", "--rm", "busybox", "no-such-command", check=False)
    assert r.returncode == 127 and r.stderr.count(b"\n") == 1
    cid = sandbox_cli(engine, "run", "-d", "--name", "quick-detached", "busybox", "sleep", "30").stdout.strip()
    assert engine.containers.get("quick-detached").id == cid.decode()
    engine.containers.get(cid.decode()).remove(force=True)
    assert not [c for c in engine.containers.list(all=True)]
    # ... and loads neither the engine nor the image stack to do it.
    env = dict(os.environ, SANDBOX_ROOT=str(engine.root))
    probe = subprocess.run([sys.executable, "-c", "import sys; from sandbox.cli import main; "
                            "code = main(['run', '--rm', 'busybox', 'true']); "
                            "print(code, sorted(m for m in sys.modules if m.startswith(('sandbox.engine', "
                            "'sandbox.image', 'sandbox.runtime'))))"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert probe.stdout.split(None, 1) == ["0", "[]\n"], probe.stdout + probe.stderr


def test_cold_cli_run_interrupted_stops_and_removes(engine):
    env = dict(os.environ, SANDBOX_ROOT=str(engine.root))
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "run", "--rm", "--name", "cli-interrupted",
                             "busybox", "sleep", "60"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: [c for c in engine.containers.list() if c.name == "cli-interrupted"])
        proc.send_signal(signal.SIGINT)   # Ctrl-C in a terminal
        assert proc.wait(timeout=20) == 130
    finally:
        proc.kill()
        proc.wait()
    with pytest.raises(ContainerNotFound):
        engine.containers.get("cli-interrupted")


def test_first_cli_run_starts_the_supervisor(engine):
    stop_supervisor(engine)
    r = sandbox_cli(engine, "run", "--rm", "busybox", "echo", "hi")
    assert r.stdout == b"hi\n"
    assert engine.supervisor.call("ping")["pid"]


def test_system_supervisor_status_and_stop(engine):
    # After an upgrade the old supervisor must go; its containers stay, the next one adopts them.
    c = engine.containers.run("busybox", ["sleep", "30"], detach=True)
    try:
        pid = engine.supervisor.call("ping")["pid"]
        status = sandbox_cli(engine, "system", "supervisor", "status").stdout.decode()
        assert f"supervisor pid {pid} " in status and "1 container;" in status
        stopped = sandbox_cli(engine, "system", "supervisor", "stop").stdout.decode()
        assert stopped.startswith(f"stopped supervisor pid {pid};")
        assert "no supervisor runs" in sandbox_cli(engine, "system", "supervisor", "status").stdout.decode()
        assert "no supervisor runs" in sandbox_cli(engine, "system", "supervisor", "stop").stdout.decode()
        engine.supervisor.close()
        c.reload()
        assert c.status == "running"   # read from its record: no supervisor needed
        assert engine.containers.get(c.id).exec_run(["true"]).exit_code == 0   # adopted by a new one
        assert engine.supervisor.call("ping")["pid"] != pid
    finally:
        c.remove(force=True)


def kill_supervisor(engine):
    """SIGKILL the store's supervisor and forget our connection to it; return its pid."""
    pid = engine.supervisor.call("ping")["pid"]
    os.kill(pid, signal.SIGKILL)
    engine.supervisor.close()
    time.sleep(0.5)
    return pid


def test_detached_container_survives_supervisor_kill(engine):
    c = engine.containers.run("busybox", ["sh", "-c", "i=0; while [ $i -lt 30 ]; do echo line$i; "
                                          "i=$((i+1)); sleep 0.1; done; exit 9"], detach=True)
    try:
        wait_for(lambda: b"line2" in c.logs())
        pid = kill_supervisor(engine)
        assert os.path.exists(f"/proc/{c.pid}")  # still running without a supervisor
        # The next request starts a new supervisor, which adopts the container.
        new = engine.supervisor.call("ping")["pid"]
        assert new != pid
        assert c.wait()["StatusCode"] == 9
        lines = c.logs().decode().split()
        assert lines == [f"line{i}" for i in range(30)]
    finally:
        c.remove(force=True)


def test_tty_container_keeps_its_terminal_and_output_across_supervisor_kill(engine):
    c = engine.containers.run("busybox", ["sh", "-c", "i=0; while [ $i -lt 30 ]; do echo line$i; "
                                          "i=$((i+1)); sleep 0.1; done; tty; exit 5"],
                              detach=True, tty=True, stdin_open=True)
    try:
        wait_for(lambda: b"line2" in c.logs())
        pid = kill_supervisor(engine)
        new = engine.supervisor.call("ping")["pid"]
        assert new != pid
        assert c.wait()["StatusCode"] == 5
        out = c.logs().decode().replace("\r", "").split()
        # every line, also those written while no supervisor ran: a keeper held the terminal
        assert out[:30] == [f"line{i}" for i in range(30)] and out[30].startswith("/dev/pts/")
    finally:
        c.remove(force=True)


# --------------------------------------------------------------------------- more of docker's flags


def test_tty_gives_a_real_terminal(engine):
    r = engine.run("busybox", ["sh", "-c", "tty; stty size"], tty=True)
    lines = r.output.decode().replace("\r", "").split("\n")
    assert lines[0].startswith("/dev/pts/") and r.exit_code == 0


def test_healthcheck_turns_healthy_then_unhealthy(engine):
    c = engine.containers.run("busybox", ["sleep", "60"], detach=True,
                              healthcheck={"test": ["CMD-SHELL", "test ! -e /tmp/broken"],
                                           "interval": 200_000_000, "retries": 2})
    try:
        wait_for(lambda: c.reload().health == "healthy", timeout=10)
        c.exec_run(["touch", "/tmp/broken"])
        wait_for(lambda: c.reload().health == "unhealthy", timeout=10)
        log = c.attrs["State"]["Health"]["Log"]
        assert log[-1]["ExitCode"] == 1 and c.attrs["State"]["Health"]["FailingStreak"] >= 2
    finally:
        c.remove(force=True)


@requires_cgroup("memory", "pids")
def test_update_changes_limits_of_a_running_container(engine):
    c = engine.containers.run("busybox", ["sleep", "60"], detach=True, mem_limit="64m", pids_limit=20)
    try:
        from sandbox import cgroups
        cg = cgroups.open_cgroup(c.id)
        assert cg.stats().pids_limit == 20
        c.update(mem_limit="128m", memswap_limit="256m", pids_limit=30)
        st = cg.stats()
        assert st.pids_limit == 30 and st.memory_limit == 128 << 20
        assert c.attrs["HostConfig"]["Memory"] == 128 << 20
    finally:
        c.remove(force=True)


@requires_cgroup("cpu", "cpuset")
def test_cpu_shares_split_one_cpu_one_to_two(engine):
    busy = ["sh", "-c", "while :; do :; done"]
    a = engine.containers.run("busybox", busy, detach=True, cpu_shares=512, cpuset_cpus="0")
    b = engine.containers.run("busybox", busy, detach=True, cpu_shares=1024, cpuset_cpus="0")
    try:
        from sandbox import cgroups
        ca, cb = cgroups.open_cgroup(a.id), cgroups.open_cgroup(b.id)
        time.sleep(0.5)
        a0, b0 = ca.stats().cpu_usage_ns, cb.stats().cpu_usage_ns
        time.sleep(3)
        da, db = ca.stats().cpu_usage_ns - a0, cb.stats().cpu_usage_ns - b0
        assert abs(db / da - 2.0) < 0.2, (da, db)
    finally:
        a.remove(force=True)
        b.remove(force=True)


def test_read_only_rootfs_tmpfs_and_capabilities(engine):
    r = engine.run("busybox", ["sh", "-c", "touch /x 2>/dev/null; echo $?; touch /scratch/y && echo tmpfs-ok; "
                               "grep CapEff /proc/self/status"],
                   read_only=True, tmpfs={"/scratch": "size=1m"}, cap_drop=["ALL"], cap_add=["CHOWN"])
    lines = r.output.decode().split("\n")
    assert lines[0] != "0" and lines[1] == "tmpfs-ok"
    assert lines[2].split()[1] == "0000000000000001"  # only CAP_CHOWN


def test_host_network_and_none(engine):
    none = engine.run("busybox", ["cat", "/proc/net/dev"], network_mode="none").output.decode()
    assert "lo:" in none and "eth0" not in none
    host = engine.run("busybox", ["readlink", "/proc/self/ns/net"], network_mode="host").output.decode().strip()
    assert host == os.readlink("/proc/self/ns/net")


def test_volume_cli_and_anonymous_volumes(engine):
    assert sandbox_cli(engine, "volume", "create", "clivol").stdout.strip() == b"clivol"
    assert b"clivol" in sandbox_cli(engine, "volume", "ls", "-q").stdout
    c = engine.containers.create("busybox", ["true"], volumes=["/anon"])
    anon = [m["Name"] for m in c.attrs["Mounts"] if m["Type"] == "volume"]
    assert len(anon) == 1 and len(anon[0]) == 64
    c.remove(v=True)
    assert anon[0].encode() not in sandbox_cli(engine, "volume", "ls", "-q").stdout
    sandbox_cli(engine, "volume", "rm", "clivol")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("remove_first", ["owner", "joiner"])
def test_pid_and_ipc_of_another_container_are_joined_and_either_can_go_first(engine, remove_first):
    """--pid/--ipc container:X join X's namespaces (as Docker's); removing X first must not hang:
    its dying init waits until the supervisor reaps the joiner's killed processes."""
    a = engine.containers.run("busybox", ["sleep", "60"], detach=True)
    b = engine.containers.run("busybox", ["sleep", "61"], detach=True, pid_mode=f"container:{a.id}",
                              ipc_mode=f"container:{a.id}")
    try:
        pa, pb = (c.reload().attrs["State"]["Pid"] for c in (a, b))
        for kind in ("pid", "ipc"):
            assert os.readlink(f"/proc/{pa}/ns/{kind}") == os.readlink(f"/proc/{pb}/ns/{kind}"), kind
        assert os.readlink(f"/proc/{pa}/ns/mnt") != os.readlink(f"/proc/{pb}/ns/mnt")
        seen = b.exec_run(["ps", "-o", "args"]).output.decode()
        assert "sleep 60" in seen and "sleep 61" in seen, seen
        first, second = (a, b) if remove_first == "owner" else (b, a)
        first.remove(force=True)
        if first is a:   # the pid namespace's init is gone, and every process in it with it
            assert wait_for(lambda: not b.reload().attrs["State"]["Running"], timeout=10)
        second.remove(force=True)
    finally:
        for c in (a, b):
            with contextlib.suppress(ContainerNotFound):
                c.remove(force=True)


def test_joining_the_namespace_of_a_stopped_container_is_refused(engine):
    a = engine.containers.create("busybox", ["true"])
    try:
        with pytest.raises(InvalidStateTransition, match="non running container"):
            engine.containers.run("busybox", ["true"], pid_mode=f"container:{a.id}", remove=True)
    finally:
        a.remove(force=True)


def test_home_comes_from_the_images_passwd_as_under_docker(engine):
    """Docker (runc's init) sets HOME from /etc/passwd when the environment has none."""
    out = engine.run("busybox", ["sh", "-c", "echo $HOME"]).output.decode().split()
    home = next((line.split(":")[5] for line in engine.run("busybox", ["cat", "/etc/passwd"]).output.decode()
                 .splitlines() if line.split(":")[2:3] == ["0"]), "/")
    assert out == [home]
    assert engine.run("busybox", ["sh", "-c", "echo $HOME"], environment={"HOME": "/data"}).output.decode().split() \
        == ["/data"]
    assert engine.run("busybox", ["sh", "-c", "echo $HOME"], user="4242").output.decode().split() == ["/"]
