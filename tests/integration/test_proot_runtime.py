"""``--runtime proot``: containers without namespaces, for real (proot from Debian), as root here.

The same runtime serves every container where unshare(2) is refused (Binder);
here it is asked for by name, so it can be checked on a root store beside
the namespaced runtime: the image's files, exit codes Docker's way (143 for
stop, 137 for kill), exec, a terminal, volumes and tmpfs, the user, the
working directory and the environment, rlimits, logs, ``--rm``, a refused
pause, and a container adopted by the next supervisor after ``kill -9``.
"""

from __future__ import annotations

import shutil
import time

import pytest

from sandbox.errors import SandboxError
from tests.conftest import requires_root
from tests.integration.container_env import engine  # noqa: F401
from tests.integration.test_supervisor_kill import kill_supervisor

pytestmark = [requires_root, pytest.mark.skipif(shutil.which("proot") is None,
                                                reason="needs proot (apt install proot)")]


def run(engine, command, **kw):
    return engine.containers.run("busybox", command, runtime="proot", remove=True, **kw)


def test_the_images_files_the_user_the_cwd_and_the_environment(engine):
    out = run(engine, ["sh", "-c", "cat /etc/os-release 2>/dev/null | head -1; ls /bin/busybox; id -u; pwd; echo $GREETING"],
              working_dir="/tmp", environment={"GREETING": "hello"}).decode().splitlines()
    assert out[-4:] == ["/bin/busybox", "0", "/tmp", "hello"], out
    assert run(engine, ["id", "-u"], user="1000").decode().strip() == "1000"


def test_exit_codes_as_docker_reports_them(engine):
    c = engine.containers.run("busybox", "sh -c 'exit 3'", runtime="proot", detach=True)
    try:
        assert c.wait()["StatusCode"] == 3
    finally:
        c.remove()
    c = engine.containers.run("busybox", "sleep 30", runtime="proot", detach=True)
    try:
        c.stop(timeout=1)
        assert c.reload().attrs["State"]["ExitCode"] == 143
        c.start()
        c.kill()
        c.wait()
        assert c.reload().attrs["State"]["ExitCode"] == 137
    finally:
        c.remove(force=True)


def test_exec_logs_and_a_refused_pause(engine):
    c = engine.containers.run("busybox", "sh -c 'echo started; sleep 30'", runtime="proot", detach=True)
    try:
        code, out = c.exec_run("sh -c 'echo from-exec; exit 4'")
        assert (code, out) == (4, b"from-exec\n")
        deadline = time.monotonic() + 5
        while b"started" not in c.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.logs() == b"started\n"
        with pytest.raises(SandboxError, match="pause needs a cgroup freezer"):
            c.pause()
    finally:
        c.remove(force=True)


def test_volumes_tmpfs_and_the_hosts_files(engine, tmp_path):
    (tmp_path / "shared.txt").write_text("from the host\n")
    out = run(engine, ["sh", "-c", "cat /data/shared.txt; echo made > /scratch/f; cat /scratch/f; cat /etc/hostname"],
              volumes={str(tmp_path): {"bind": "/data", "mode": "rw"}}, tmpfs={"/scratch": ""},
              hostname="prooted").decode().splitlines()
    assert out == ["from the host", "made", "prooted"], out


def test_rlimits_reach_the_process(engine):
    out = run(engine, ["sh", "-c", "ulimit -n"], ulimits=[{"Name": "nofile", "Soft": 64, "Hard": 64}])
    assert out.decode().strip() == "64"


def test_a_terminal(engine):
    result = engine.run("busybox", ["sh", "-c", "tty"], runtime="proot", tty=True)
    assert result.exit_code == 0 and result.output.decode().strip().startswith("/dev/pts/")


def test_the_next_supervisor_adopts_a_running_proot_container(engine):
    c = engine.containers.run("busybox", "sh -c 'sleep 2; exit 6'", runtime="proot", detach=True)
    try:
        kill_supervisor(engine)
        assert c.wait(timeout=20)["StatusCode"] == 6
    finally:
        c.remove(force=True)
