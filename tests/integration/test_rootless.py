"""Rootless mode, for real: an unprivileged user made by the test runs the engine in their own user namespace.

The user gets subordinate ranges in /etc/subuid and /etc/subgid (as useradd
gives a new user on Debian), runs Debian's /usr/bin/python3 with this
checkout and the venv's packages on PYTHONPATH (the venv's own interpreter
may live under a home the user cannot enter), and uses the default store,
``~/.local/share/sandbox``.  At the end the user's processes (the namespace
holder, the supervisor) are killed and the user removed with their home.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import sysconfig
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import requires_root
from tests.integration.net_env import INET_HOST, internet  # noqa: F401 - a fixture

pytestmark = requires_root

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"


class User:
    """An unprivileged user and a way to run this checkout's ``sandbox`` as them."""

    def __init__(self, name: str, busybox: str) -> None:
        self.name = name
        self.pw = pwd.getpwnam(name)
        self.home = Path(self.pw.pw_dir)
        self.busybox = busybox
        self.env = {"HOME": str(self.home), "USER": name, "LOGNAME": name, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
                    "PYTHONPATH": f"{REPO}:{sysconfig.get_paths()['purelib']}", "LANG": "C.UTF-8"}

    def run(self, *argv: str, check: bool = True, timeout: float = 120,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        def become() -> None:
            os.setgroups([])
            os.setgid(self.pw.pw_gid)
            os.setuid(self.pw.pw_uid)
        r = subprocess.run(list(argv), env=self.env, cwd=self.home, preexec_fn=become, capture_output=True,
                           text=True, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"{argv} as {self.name} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
        return r

    def sandbox(self, *args: str, **kw) -> subprocess.CompletedProcess[str]:
        return self.run(SYSTEM_PYTHON, "-m", "sandbox", *args, **kw)

    def python(self, code: str, **kw) -> subprocess.CompletedProcess[str]:
        return self.run(SYSTEM_PYTHON, "-c", textwrap.dedent(code), **kw)

    def ranges(self, path: str) -> tuple[int, int]:
        for line in Path(path).read_text().splitlines():
            name, start, count = line.split(":")
            if name == self.name:
                return int(start), int(count)
        raise AssertionError(f"{self.name} has no range in {path}")


def _python_works() -> bool:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return False
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    return r.stdout.strip() == str(sys.version_info[:2])


@contextlib.contextmanager
def _new_user(prefix: str, busybox_binary: str) -> Iterator[User]:
    """A new login user who runs this checkout; afterwards their processes killed and the user removed."""
    if not _python_works():
        pytest.skip(f"needs {SYSTEM_PYTHON} of this Python's version to run the checkout as another user")
    name = prefix + secrets.token_hex(3)
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True)
    u = User(name, busybox_binary)
    try:
        yield u
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        deadline = time.monotonic() + 10
        while subprocess.run(["pgrep", "-u", name], capture_output=True).returncode == 0 \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
        for d in ("rootless", "slirp"):  # the holder's pid file; slirp4netns's short socket directory
            shutil.rmtree(f"/tmp/sandbox-{d}-{u.pw.pw_uid}", ignore_errors=True)


@pytest.fixture(scope="module")
def user(busybox_binary):
    with _new_user("sbrl", busybox_binary) as u:
        if not any(line.startswith(u.name + ":") for line in Path("/etc/subuid").read_text().splitlines()):
            subprocess.run(["usermod", "--add-subuids", "400000-465535", "--add-subgids", "400000-465535", u.name],
                           check=True)
        u.sandbox("bootstrap", "busybox", "--binary", busybox_binary) if _bootstrap_takes_binary(u) else \
            u.sandbox("bootstrap", "busybox")
        yield u


@pytest.fixture
def one_uid_user(busybox_binary):
    """A user without subordinate ranges: rootless mode maps their own uid alone."""
    with _new_user("sbone", busybox_binary) as u:
        for path, flag in (("/etc/subuid", "--del-subuids"), ("/etc/subgid", "--del-subgids")):
            for line in Path(path).read_text().splitlines():
                if line.startswith(u.name + ":"):
                    _, start, count = line.split(":")
                    subprocess.run(["usermod", flag, f"{start}-{int(start) + int(count) - 1}", u.name], check=True)
        yield u


def test_with_one_uid_mapped_a_container_still_runs(one_uid_user):
    """No /etc/subuid line: only the user's uid is mapped, so gid 5 (tty) is not there for /dev/pts."""
    u = one_uid_user
    u.sandbox("bootstrap", "busybox", "--binary", u.busybox)
    assert "one uid is mapped" in u.sandbox("info").stdout
    out = u.sandbox("run", "--rm", "busybox", "sh", "-c", "id -u; cat /proc/self/uid_map; ls -d /dev/pts").stdout
    lines = out.splitlines()
    assert lines[0] == "0" and lines[1].split() == ["0", str(u.pw.pw_uid), "1"] and lines[-1] == "/dev/pts", out
    u.sandbox("system", "supervisor", "stop", check=False)


def _bootstrap_takes_binary(u: User) -> bool:
    return "--binary" in u.sandbox("bootstrap", "--help").stdout


def _holder(u: User) -> int:
    pid_file = Path(f"/tmp/sandbox-rootless-{u.pw.pw_uid}/rootless.pid")
    return int(pid_file.read_text().split()[0])


def test_info_says_rootless_with_the_users_ranges(user):
    out = user.sandbox("info").stdout
    assert "Privilege Mode: rootless" in out, out
    assert f"Sandbox Root Dir: {user.home}/.local/share/sandbox" in out, out
    info = json.loads(user.sandbox("info", "--format", "{{json .}}").stdout)
    assert info["PrivilegeMode"] == "rootless" and info["PrivilegeModeReason"] == ""


def test_a_container_runs_as_root_of_the_users_namespace(user):
    out = user.sandbox("run", "--rm", "busybox", "sh", "-c", "id -u; cat /proc/self/uid_map").stdout.split("\n")
    sub, count = user.ranges("/etc/subuid")
    assert out[0] == "0"
    assert out[1].split() == ["0", str(user.pw.pw_uid), "1"]
    assert out[2].split() == ["1", str(sub), str(count)]


def test_files_of_uid_n_are_the_users_nth_subordinate_uid_on_disk(user):
    user.sandbox("run", "-d", "--name", "owner", "busybox", "sleep", "60")
    try:
        user.sandbox("exec", "owner", "sh", "-c", "echo hi > /mine; echo hi > /theirs; chown 1000:1000 /theirs")
        upper = Path(json.loads(user.sandbox("inspect", "owner").stdout)[0]["GraphDriver"]["Data"]["UpperDir"])
        sub, _ = user.ranges("/etc/subuid")
        assert (upper / "mine").stat().st_uid == user.pw.pw_uid
        assert (upper / "theirs").stat().st_uid == sub + 999
        assert "A /theirs" in user.sandbox("diff", "owner").stdout
        user.sandbox("commit", "owner", "owned:1")
        listing = user.sandbox("run", "--rm", "owned:1", "ls", "-n", "/theirs").stdout.split()
        assert listing[2:4] == ["1000", "1000"]
    finally:
        user.sandbox("rm", "-f", "owner")
        user.sandbox("rmi", "owned:1", check=False)


def test_exec_logs_stop_and_rm_leave_no_mount_in_the_namespace(user):
    user.sandbox("run", "-d", "--name", "life", "busybox", "sh", "-c", "echo started; sleep 60")
    user.sandbox("exec", "life", "true")
    deadline = time.monotonic() + 5
    while "started" not in user.sandbox("logs", "life").stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    assert user.sandbox("logs", "life").stdout == "started\n"
    user.sandbox("stop", "-t", "1", "life")
    state = json.loads(user.sandbox("inspect", "life").stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137
    user.sandbox("rm", "life")
    mounts = Path(f"/proc/{_holder(user)}/mountinfo").read_text()
    assert "/containers/" not in mounts, mounts


def test_a_build_with_run_and_copy_and_its_cache(user):
    ctx = user.home / "ctx"
    user.run("mkdir", "-p", str(ctx))
    user.run("sh", "-c", f"echo data > {ctx}/data.txt; printf 'FROM busybox\\nCOPY data.txt /data.txt\\n"
                         f"RUN echo built > /built && chown 1234 /built\\nCMD [\"cat\", \"/data.txt\", \"/built\"]\\n'"
                         f" > {ctx}/Dockerfile")
    first = user.sandbox("build", "-t", "rlbuild", str(ctx))
    assert "MISS" in first.stdout
    again = user.sandbox("build", "-t", "rlbuild", str(ctx)).stdout
    assert "MISS" not in again, again
    assert user.sandbox("run", "--rm", "rlbuild").stdout == "data\nbuilt\n"
    assert user.sandbox("run", "--rm", "rlbuild", "stat", "-c", "%u", "/built").stdout.strip() == "1234"
    user.sandbox("rmi", "rlbuild")


def test_limits_without_a_delegated_cgroup_run_with_a_one_line_warning(user):
    from sandbox import hostinfo
    if hostinfo.cgroup_version() == "v2":
        pytest.skip("a v2 host may delegate a cgroup to the user")
    r = user.sandbox("run", "--rm", "--memory", "64m", "busybox", "echo", "ran")
    assert r.stdout == "ran\n"
    warnings = [line for line in r.stderr.splitlines() if line.startswith("WARNING:")]
    assert len(warnings) == 1 and "--memory" in warnings[0] and "Delegate=yes" in warnings[0], r.stderr


@contextlib.contextmanager
def tun_mode(mode: int):
    """/dev/net/tun with ``mode`` for the test (Debian makes it 0666; this VM 0600), then as it was."""
    path = "/dev/net/tun"
    if not os.path.exists(path):
        pytest.skip("no /dev/net/tun")
    old = stat.S_IMODE(os.stat(path).st_mode)
    os.chmod(path, mode)
    try:
        yield
    finally:
        os.chmod(path, old)


def test_without_slirp_the_hosts_network_is_the_default_none_on_request_and_bridges_refused(user):
    with tun_mode(0o600):   # slirp4netns cannot open it: the host's network is the default
        host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.count("\n")
        inside = user.sandbox("run", "--rm", "busybox", "ip", "-o", "link").stdout.count("\n")
        assert inside == host_links
        assert user.sandbox("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"
                            ).stdout.count("\n") == 1
        refused = user.sandbox("network", "create", "nope", check=False)
        assert refused.returncode != 0 and "networks need root" in refused.stderr
        refused = user.sandbox("run", "--rm", "--network", "bridge", "busybox", "true", check=False)
        assert refused.returncode != 0 and "needs root" in refused.stderr and "slirp4netns" in refused.stderr


@pytest.mark.skipif(shutil.which("slirp4netns") is None, reason="needs slirp4netns (apt install slirp4netns)")
def test_slirp4netns_gives_a_namespace_of_its_own_a_way_out_and_published_ports(user, internet):
    import urllib.request
    with tun_mode(0o666):
        out = user.sandbox("run", "--rm", "busybox", "sh", "-c",
                           "ip -4 -o addr show tap0; ip route; cat /etc/resolv.conf; "
                           f"wget -q -O- {internet.url}").stdout
        assert "10.0.2.100/24" in out and "default via 10.0.2.2" in out and "nameserver 10.0.2.3" in out, out
        assert out.rstrip().endswith(INET_HOST), out   # outbound, through slirp: the server saw the host
        user.sandbox("run", "-d", "--name", "web", "-p", "127.0.0.1::80", "busybox", "sh", "-c",
                     "mkdir -p /www && echo served-from-inside > /www/index.html && httpd -f -p 80 -h /www")
        try:
            info = json.loads(user.sandbox("inspect", "web").stdout)[0]
            assert info["HostConfig"]["NetworkMode"] == "slirp4netns"
            port = info["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
            deadline, body = time.monotonic() + 10, b""
            while time.monotonic() < deadline and not body:
                with contextlib.suppress(OSError):
                    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                time.sleep(0.1)
            assert body == b"served-from-inside\n"
        finally:
            user.sandbox("rm", "-f", "web")
        deadline = time.monotonic() + 5   # told to end with its container (SIGTERM), then reaped
        while time.monotonic() < deadline:
            left = subprocess.run(["pgrep", "-u", user.name, "-x", "slirp4netns"], capture_output=True, text=True)
            if not left.stdout:
                break
            time.sleep(0.05)
        assert left.stdout == "", f"slirp4netns left running: {left.stdout}"


def test_the_wrapper_runs_a_command_inside_and_a_threaded_process_outside_is_told_how(user):
    assert user.run(SYSTEM_PYTHON, "-m", "sandbox.rootless", "--", "id", "-u").stdout.strip() == "0"
    user.sandbox("system", "supervisor", "stop")
    r = user.python("""
        import io, threading, time
        threading.Thread(target=time.sleep, args=(3,), daemon=True).start()
        from sandbox import Engine, SandboxError
        engine = Engine()
        # containers work: the supervisor it starts joins the namespace by itself
        print(engine.containers.run("busybox", "echo ran", remove=True).decode(), end="")
        try:
            engine.build(None, dockerfile_text="FROM busybox\\nRUN true\\n")
        except SandboxError as e:
            print("refused:", e)
    """)
    assert r.stdout.startswith("ran\nrefused: cannot build here: this process has threads"), r.stdout
    assert "sandbox.rootless" in r.stdout, r.stdout


def test_a_plain_script_joins_by_itself(user):
    r = user.python("""
        from sandbox import Engine
        print(Engine().containers.run("busybox", "echo from-a-script", remove=True).decode(), end="")
    """)
    assert r.stdout == "from-a-script\n"


def test_a_notebook_in_the_rootless_kernel_builds_and_runs(user):
    user.run(SYSTEM_PYTHON, "-m", "sandbox.rootless", "--install-kernel")
    r = user.python("""
        import nbformat
        from nbclient import NotebookClient
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(s) for s in [
            "%load_ext sandbox",
            "%%dockerfile -q -t nbimg\\nFROM busybox\\nRUN echo from-the-build > /f\\nCMD [\\"cat\\", \\"/f\\"]",
            "%docker run --rm nbimg",
            "import os; print(os.getuid())",
            "%docker rmi nbimg",
        ]]
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
        for cell in nb.cells[1:]:
            print("|".join(o.get("text", "").strip() for o in cell.outputs))
    """, timeout=180)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("built nbimg"), r.stdout
    assert lines[1:3] == ["from-the-build", "0"], r.stdout  # nothing else: no warning without limits


def test_under_no_new_privs_the_users_own_id_is_mapped_with_a_warning(user):
    """newuidmap is setuid: under no_new_privs (TLJH's NoNewPrivileges, Kubernetes'
    allowPrivilegeEscalation: false) it cannot map the ranges; one uid is mapped instead."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv (util-linux)")
    user.sandbox("system", "supervisor", "stop", check=False)
    os.kill(_holder(user), 9)   # the next command makes a new holder, under no_new_privs
    try:
        r = user.run(setpriv, "--no-new-privs", SYSTEM_PYTHON, "-m", "sandbox", "run", "--rm", "busybox",
                     "cat", "/proc/self/uid_map")
        assert r.stdout.split() == ["0", str(user.pw.pw_uid), "1"], r.stdout
        assert "newuidmap refused to map uids" in r.stderr and "only your own uid is mapped" in r.stderr
    finally:
        user.sandbox("system", "supervisor", "stop", check=False)
        with contextlib.suppress(OSError, ValueError):
            os.kill(_holder(user), 9)   # later commands get a holder with the ranges again
