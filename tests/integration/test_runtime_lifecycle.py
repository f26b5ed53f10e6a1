"""The runtime's life cycle: state transitions beside runc, exec, pause, namespaces
joined by path, user namespaces, a console, bad input and real faults.

Every failure test checks that nothing was left: no state directory, no cgroup
directory, no process (the session's leak check also looks for mounts).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sandbox.errors import (CommandNotFound, ContainerStartError, InvalidSpec,
                            InvalidStateTransition)
from tests.conftest import requires_root, requires_tool
from tests.integration.runtime_env import (bundles, busybox_rootfs, cgroup_dirs,  # noqa: F401
                                           reaper, read_pipe, run_captured, runtime, wait_exit)

pytestmark = requires_root


def status(cli, container_id: str) -> str:
    out = cli("state", container_id)
    return json.loads(out.stdout)["status"] if out.returncode == 0 else "gone"


def wait_status(cli, container_id: str, wanted: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while (now := status(cli, container_id)) != wanted and time.monotonic() < deadline:
        time.sleep(0.02)
    return now


def walk(cli, bundle: Path) -> list:
    """One container through every verb; what each step returned."""
    def ok(*args):
        return cli(*args).returncode == 0
    seen = [("create", ok("create", "--bundle", str(bundle), "walk")), status(cli, "walk"),
            ("start", ok("start", "walk")), status(cli, "walk"),
            ("start again", ok("start", "walk")),
            ("resume running", ok("resume", "walk")),
            ("pause", ok("pause", "walk")), status(cli, "walk"),
            ("delete paused", ok("delete", "walk")),
            ("resume", ok("resume", "walk")), status(cli, "walk"),
            ("delete running", ok("delete", "walk")),
            ("kill", ok("kill", "walk", "KILL")), wait_status(cli, "walk", "stopped"),
            ("kill stopped", ok("kill", "walk", "KILL")),
            ("start stopped", ok("start", "walk")),
            ("delete", ok("delete", "walk")), status(cli, "walk"),
            ("state gone", ok("state", "walk"))]
    return seen


@requires_tool("runc")
def test_state_transitions_match_runc(bundles, tmp_path):
    # The container's stdio is the create command's: /dev/null via the helper.
    bundle = bundles.make(["sleep", "60"])

    def runc(*args):
        return run_captured(["runc", "--root", str(tmp_path / "runc"), *args], cwd=bundle)

    theirs = walk(runc, bundle)
    runc("delete", "--force", "walk")
    ours = walk(bundles.cli, bundle)
    assert ours == theirs
    assert ours[:4] == [("create", True), "created", ("start", True), "running"]
    assert ours[-2:] == ["gone", ("state gone", False)]


def test_run_exit_code_and_signal(bundles):
    assert bundles.run(["sh", "-c", "exit 3"])[0] == 3
    bundle = bundles.make(["sleep", "60"])
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.runtime", "--root", bundles.runtime.root,
                             "run", "--bundle", str(bundle), "sig"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_status(bundles.cli, "sig", "running", timeout=10) == "running"
    assert bundles.cli("kill", "sig", "KILL").returncode == 0
    assert proc.wait(timeout=10) == 137          # 128 + SIGKILL, as runc and docker report
    assert status(bundles.cli, "sig") == "gone"  # run deletes what it created


def test_delete_force_of_a_running_container_removes_everything(bundles, runtime):
    bundle = bundles.make(["sleep", "60"])
    assert bundles.cli("create", "--bundle", str(bundle), "f1").returncode == 0
    assert bundles.cli("start", "f1").returncode == 0
    container = runtime.get("f1")
    pid, group = container.pid, container.cgroup_name
    assert cgroup_dirs(group)
    refused = bundles.cli("delete", "f1")
    assert refused.returncode == 1 and "not stopped: running" in refused.stderr
    assert bundles.cli("delete", "--force", "f1").returncode == 0
    assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid)
    assert not cgroup_dirs(group)
    assert not os.path.exists(os.path.join(runtime.root, "f1"))


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_pid_1_never_speaks_before_stage_one_has_said_its_pid(bundles, runtime, reaper, monkeypatch):
    # Stage one reports PID 1's host pid; PID 1 must not say "ready" before that, or
    # the runtime would track pid 0.  Stage one is slowed down here (the forked
    # children inherit the patch): PID 1 has to wait for the runtime's answer.
    from sandbox.runtime import init as init_mod
    real_send = init_mod.send

    def slow_pid(fd, **message):
        if "pid" in message:
            time.sleep(0.3)
        real_send(fd, **message)

    monkeypatch.setattr(init_mod, "send", slow_pid)
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        container = runtime.create("slow1", str(bundles.make(["sleep", "30"])), stdio=(devnull,) * 3)
        assert container.pid > 1 and os.path.exists(f"/proc/{container.pid}")
        container.start()
        process = dict(container.spec["process"], args=["true"])
        pid = container.exec(process, stdio=(devnull,) * 3)   # no mounts: the quick case
        assert pid > 1 and os.waitpid(pid, 0)[1] == 0
        container.delete(force=True)
        os.waitpid(container.pid, 0)   # ours to reap: this process is the subreaper
    finally:
        os.close(devnull)


def test_exec_joins_every_namespace_and_the_cgroup(bundles, runtime):
    bundle = bundles.make(["sleep", "60"])
    assert bundles.cli("create", "--bundle", str(bundle), "e1").returncode == 0
    assert bundles.cli("start", "e1").returncode == 0
    init = runtime.get("e1").pid
    out = bundles.cli("exec", "e1", "sh", "-c",
                      "for n in mnt uts ipc pid net cgroup; do stat -L -c %i /proc/self/ns/$n; done; "
                      "cat /proc/self/cgroup | grep -c :/$; echo pid=$$")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    for ns, inode in zip(("mnt", "uts", "ipc", "pid", "net", "cgroup"), lines):
        assert int(inode) == os.stat(f"/proc/{init}/ns/{ns}").st_ino, ns
    assert lines[-1] != "pid=1"
    assert bundles.cli("exec", "e1", "sh", "-c", "exit 5").returncode == 5
    missing = bundles.cli("exec", "e1", "no-such-command")
    assert missing.returncode != 0 and "executable file not found" in missing.stderr
    bundles.cli("delete", "--force", "e1")
    stopped = bundles.cli("exec", "e1", "true")
    assert stopped.returncode == 1 and "does not exist" in stopped.stderr


def test_pause_stops_a_counter_and_resume_continues_it(bundles, runtime, tmp_path):
    counter = tmp_path / "counter"
    counter.mkdir()
    # Written to a new file and renamed, so a read never sees a truncated one.
    bundle = bundles.make(["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /out/t; mv /out/t /out/n; done"],
                          mounts=[{"destination": "/out", "type": "bind", "source": str(counter)}])
    assert bundles.cli("create", "--bundle", str(bundle), "p1").returncode == 0
    assert bundles.cli("start", "p1").returncode == 0

    def value():
        for _ in range(500):
            try:
                return int((counter / "n").read_text())
            except (FileNotFoundError, ValueError):
                time.sleep(0.01)
        raise AssertionError(f"the counter never wrote; the container is {status(bundles.cli, 'p1')}")

    value()
    assert bundles.cli("pause", "p1").returncode == 0
    assert status(bundles.cli, "p1") == "paused"
    frozen = value()
    time.sleep(0.3)
    assert value() == frozen
    assert bundles.cli("resume", "p1").returncode == 0
    time.sleep(0.3)
    assert value() > frozen
    assert bundles.cli("delete", "--force", "p1").returncode == 0


def test_join_another_containers_network_namespace(bundles, runtime):
    first = bundles.make(["sleep", "60"])
    assert bundles.cli("create", "--bundle", str(first), "n1").returncode == 0
    pid = runtime.get("n1").pid

    def join(spec):
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = f"/proc/{pid}/ns/net"

    code, out = bundles.run(["stat", "-L", "-c", "%i", "/proc/self/ns/net"], edit=join)
    assert code == 0, out
    assert int(out.split()[0]) == os.stat(f"/proc/{pid}/ns/net").st_ino


def test_user_namespace_with_id_maps(bundles, busybox_rootfs):
    # The namespace's root is host uid 100000: it must be able to reach the
    # rootfs, which pytest's private temp folders (0700) would not let it.
    shared = Path(tempfile.mkdtemp(prefix="sandbox-userns-"))
    try:
        shared.chmod(0o755)
        shutil.copytree(busybox_rootfs, shared / "rootfs", symlinks=True)
        code, out = bundles.run(["sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map"],
                                rootfs=shared / "rootfs", rootless=True,
                                uid_mappings=[(0, 100000, 65536)], gid_mappings=[(0, 100000, 65536)])
    finally:
        shutil.rmtree(shared)
    assert code == 0, out
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["0"]
    assert lines[1] == lines[2] == ["0", "100000", "65536"]


def _v1_groups(pid: int) -> dict[str, str]:
    """controller -> group path of ``pid`` on the v1 hierarchies, as the host sees them."""
    groups = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(","):
            if c in ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"):
                groups[c] = path
    return groups


@pytest.mark.parametrize("userns", [False, True], ids=["moves-itself", "moved-by-the-runtime"])
def test_the_init_is_in_its_group_on_every_hierarchy(bundles, runtime, userns):
    # Without a user namespace the init writes 0 to each v1 `tasks` file itself
    # (no RCU grace period); in one, host cgroup files are not its own and the
    # runtime moves it.  Either way PID 1 must be in the group everywhere.
    from sandbox import hostinfo
    if not hostinfo.cgroup_version().startswith("v1"):
        pytest.skip("checks the v1 hierarchies")
    shared = Path(tempfile.mkdtemp(prefix="sandbox-join-"))
    try:
        shared.chmod(0o755)
        shutil.copytree(bundles.rootfs, shared / "rootfs", symlinks=True)
        options = dict(rootless=True, uid_mappings=[(0, 100000, 65536)],
                       gid_mappings=[(0, 100000, 65536)]) if userns else {}
        bundle = bundles.make(["sleep", "60"], rootfs=shared / "rootfs", **options)
        container = runtime.create("j1", str(bundle))
        container.start()
        groups = _v1_groups(container.pid)
        assert groups and all(path == "/" + container.cgroup_name for path in groups.values()), groups
        container.delete(force=True)
    finally:
        shutil.rmtree(shared)


def test_console_socket_gets_the_pty_master(bundles, runtime, tmp_path):
    bundle = bundles.make(["sh", "-c", "tty; test -t 0 && echo stdin-is-a-tty"], terminal=True)
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        container = runtime.create("t1", str(bundle), console_socket=path, stdio=(devnull,) * 3)
        conn, _ = server.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        conn.close()
        assert msg.startswith(b"/dev/pts/") and len(fds) == 1
        container.start()
        out = b""
        while True:
            try:
                chunk = os.read(fds[0], 4096)
            except OSError:      # EIO once the last slave fd closes
                break
            if not chunk:
                break
            out += chunk
        os.close(fds[0])
        assert b"/dev/pts/0" in out and b"stdin-is-a-tty" in out
    finally:
        os.close(devnull)
        server.close()


def test_library_exit_code_through_the_subreaper(bundles, runtime, reaper):
    bundle = bundles.make(["sh", "-c", "echo out; echo err >&2; exit 4"])
    rin, win = os.pipe()
    rout, wout = os.pipe()
    rerr, werr = os.pipe()
    container = runtime.create("l1", str(bundle), stdio=(rin, wout, werr))
    for fd in (rin, wout, werr):
        os.close(fd)
    container.start()
    assert wait_exit(container.pid) == 4
    os.close(win)
    assert read_pipe(rout) == "out\n" and read_pipe(rerr) == "err\n"
    assert container.status == "stopped"
    assert "setsid" in [name for name, _ in runtime.last_timings]
    container.delete()


# --------------------------------------------------------------------------- bad input

def _nothing_left(runtime, container_id: str) -> None:
    assert not os.path.exists(os.path.join(runtime.root, container_id))
    assert not cgroup_dirs(f"sandbox/{container_id}")


@pytest.mark.parametrize("edit, field", [
    (lambda s: s["process"].pop("args"), "process.args"),
    (lambda s: s["root"].pop("path"), "root.path"),
    (lambda s: s.__setitem__("root", {"path": "/no/such/rootfs"}), "root.path"),
    (lambda s: s["linux"]["namespaces"].__setitem__(
        1, {"type": "network", "path": "/proc/999999999/ns/net"}), "linux.namespaces[1].path"),
    (lambda s: s["linux"]["seccomp"]["syscalls"][0]["names"].insert(0, "mkdri"),
     "linux.seccomp.syscalls[0].names[0]"),
    (lambda s: s["process"].setdefault("rlimits", []).append(
        {"type": "RLIMIT_SPOONS", "soft": 1, "hard": 1}), "process.rlimits[0].type"),
])
def test_bad_config_names_the_field_and_leaves_nothing(bundles, runtime, edit, field):
    bundle = bundles.make(["true"], edit=edit)
    with pytest.raises(InvalidSpec) as info:
        runtime.create("bad", str(bundle))
    assert info.value.field == field
    _nothing_left(runtime, "bad")
    out = bundles.cli("create", "--bundle", str(bundle), "bad")
    assert out.returncode == 1 and field in out.stderr and "Traceback" not in out.stderr
    _nothing_left(runtime, "bad")


def test_config_that_is_not_json(bundles, runtime):
    bundle = bundles.make(["true"])
    (bundle / "config.json").write_text("{ not json")
    out = bundles.cli("create", "--bundle", str(bundle), "bad")
    assert out.returncode == 1 and "not valid JSON" in out.stderr
    _nothing_left(runtime, "bad")


def test_missing_command_fails_create_and_leaves_nothing(bundles, runtime):
    bundle = bundles.make(["no-such-command"])
    with pytest.raises(CommandNotFound) as info:
        runtime.create("nc", str(bundle))
    assert info.value.exit_code == 127 and "executable file not found in $PATH" in str(info.value)
    _nothing_left(runtime, "nc")


def test_failed_mount_names_the_step_and_leaves_nothing(bundles, runtime):
    bundle = bundles.make(["true"], edit=lambda s: s["mounts"].append(
        {"destination": "/weird", "type": "nosuchfs", "source": "none"}))
    with pytest.raises(ContainerStartError) as info:
        runtime.create("mf", str(bundle))
    assert info.value.step == "mount nosuchfs on /weird"
    _nothing_left(runtime, "mf")


def test_duplicate_id_and_invalid_transitions(bundles, runtime):
    bundle = bundles.make(["sleep", "60"])
    container = runtime.create("d1", str(bundle))
    with pytest.raises(Exception, match="exists"):
        runtime.create("d1", str(bundle))
    with pytest.raises(InvalidStateTransition):
        container.resume()
    container.delete()          # a created container may be deleted without force, as in runc
    _nothing_left(runtime, "d1")


# --------------------------------------------------------------------------- real faults

def test_init_killed_while_created(bundles, runtime):
    bundle = bundles.make(["sleep", "60"])
    container = runtime.create("k1", str(bundle))
    group = container.cgroup_name
    os.kill(container.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while container.status != "stopped" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert container.status == "stopped"
    with pytest.raises(InvalidStateTransition):
        container.start()
    container.delete()
    assert not cgroup_dirs(group)
    _nothing_left(runtime, "k1")


def test_killed_run_command_leaves_a_container_delete_force_removes(bundles, runtime):
    bundle = bundles.make(["sleep", "60"])
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.runtime", "--root", runtime.root,
                             "run", "--bundle", str(bundle), "r1"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while status(bundles.cli, "r1") != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert status(bundles.cli, "r1") == "running"
    pid = runtime.get("r1").pid
    assert bundles.cli("delete", "--force", "r1").returncode == 0
    assert _is_zombie(pid) or not os.path.exists(f"/proc/{pid}")
    _nothing_left(runtime, "r1")


def test_hooks_get_the_state_on_stdin(bundles, runtime, tmp_path, reaper):
    log = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho \"$1 $(cat)\" >> {log}\n")
    hook.chmod(0o755)

    def hooks(spec):
        spec["hooks"] = {stage: [{"path": str(hook), "args": ["hook.sh", stage]}]
                         for stage in ("createRuntime", "poststart", "poststop")}

    bundle = bundles.make(["true"], edit=hooks)
    container = runtime.create("h1", str(bundle))
    container.start()
    wait_exit(container.pid)
    container.delete()
    lines = [line.split(" ", 1) for line in log.read_text().splitlines()]
    assert [stage for stage, _ in lines] == ["createRuntime", "poststart", "poststop"]
    states = [json.loads(state) for _, state in lines]
    assert all(s["id"] == "h1" and s["bundle"] == str(bundle) for s in states)
    assert states[0]["status"] == "creating" and states[0]["pid"] > 0


def test_a_limit_the_cgroup_refuses_leaves_nothing(bundles, runtime):
    # The group is made while the init starts; its refusal must still end the init.
    from sandbox.errors import CgroupError

    def forks_of_this_process() -> set[int]:
        # The init stages are forks of this process: same command line.
        own = _cmdline(os.getpid())
        return {int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()
                and _cmdline(int(p)) == own and not _is_zombie(int(p))}

    before = forks_of_this_process()
    bundle = bundles.make(["true"], edit=lambda s: s["linux"]["resources"].__setitem__(
        "memory", {"limit": 1024}))
    with pytest.raises(CgroupError, match="(?i)memory"):
        runtime.create("lim", str(bundle))
    _nothing_left(runtime, "lim")
    assert forks_of_this_process() - before == set()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
