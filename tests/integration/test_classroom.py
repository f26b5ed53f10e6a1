"""A class on one machine, for real: JupyterHub spawns two students' servers, each kernel runs the kit.

What The Littlest JupyterHub runs underneath, without systemd (docs/classroom.md):
JupyterHub from PyPI (the ``classroom`` extra, in this checkout's .venv) as
root, configurable-http-proxy from npm (``make setup`` puts it in
``.venv/chp``), the DummyAuthenticator with a password, and the
LocalProcessSpawner, which starts each student's ``jupyterhub-singleuser`` as
that student, as TLJH's SystemdSpawner does.  The students are users the test
makes, with subordinate ranges in /etc/subuid and /etc/subgid, homes of mode
0700 and the rootless kernel installed by ``python -m sandbox.rootless
--install-kernel`` as each of them; they run Debian's /usr/bin/python3 with
this checkout and the venv's packages on PYTHONPATH (the venv's own
interpreter lives under /root, which they cannot enter).

Everything goes through the hub's REST API (a service token with the admin
scopes), the single-user servers' REST API and the kernels' websockets,
behind the proxy, as a browser's requests would.  Two recipes are checked:

* rootless (recipe a): each student's kernel is in their own user namespace
  with a store in their home; neither sees the other's images or
  containers, and what their containers write belongs to their own
  subordinate range on the host;
* the API daemon as root with its socket in the group ``sandbox`` (recipe b):
  a student in the group reaches it with docker-py from their kernel, sees
  and enters the other student's container and reads a root-only file of the
  host through a bind mount: no isolation between students, and the group is
  root-equivalent, as Docker's ``docker`` group is.

At the end the hub (which stops the servers and the proxy), every process of
the students, the students themselves (``userdel`` takes their subuid lines
too), the daemon with its containers and the temporary directory go, also
when a test failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import requires_root
from tests.integration.api_env import stop_process

pytestmark = requires_root

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
CHP_HINT = ("make setup (npm install --prefix .venv/chp configurable-http-proxy@5; "
            "needs Node.js >= 20 and npm)")


# ---------------------------------------------------------------- what the test needs

def _chp() -> str | None:
    """configurable-http-proxy: the one `make setup` installs, else one on PATH."""
    local = REPO / ".venv" / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
    if os.access(local, os.X_OK):
        return str(local)
    return shutil.which("configurable-http-proxy")


def _needs() -> str:
    """Why this machine cannot run the test ('' when it can)."""
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        return "needs JupyterHub (pip install -e '.[classroom]', which make setup does)"
    if _chp() is None:
        return f"needs configurable-http-proxy: {CHP_HINT}"
    if shutil.which("node") is None:
        return "needs Node.js for configurable-http-proxy (apt install nodejs)"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"needs {SYSTEM_PYTHON} to run the checkout as the students"
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
                       capture_output=True, text=True)
    if r.stdout.strip() != str(sys.version_info[:2]):
        return f"needs {SYSTEM_PYTHON} of this Python's version ({sys.version_info[:2]}) for the venv's packages"
    for tool in ("useradd", "userdel", "usermod", "newuidmap", "newgidmap"):
        if shutil.which(tool) is None:
            return f"needs {tool} (apt install passwd uidmap)"
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ranges(path: str, name: str) -> list[tuple[int, int]]:
    out = []
    for line in Path(path).read_text().splitlines():
        parts = line.split(":")
        if len(parts) == 3 and parts[0] == name:
            out.append((int(parts[1]), int(parts[2])))
    return out


def _free_range(count: int = 65536) -> int:
    """A start above every range in /etc/subuid and /etc/subgid (useradd did not give one)."""
    top = 100000
    for path in ("/etc/subuid", "/etc/subgid"):
        for line in Path(path).read_text().splitlines():
            parts = line.split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                top = max(top, int(parts[1]) + int(parts[2]))
    return top


def _drop_lines(path: str, name: str) -> None:
    """Remove ``name``'s lines from /etc/subuid or /etc/subgid (userdel does; in case it did not)."""
    p = Path(path)
    lines = p.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(name + ":")]
    if kept != lines:
        p.write_text("".join(kept))


# ---------------------------------------------------------------- the students

class Student:
    """A user made for the test, with subordinate ranges, a 0700 home and the rootless kernel."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pw = pwd.getpwnam(name)
        self.uid = self.pw.pw_uid
        self.home = Path(self.pw.pw_dir)
        self.store = self.home / ".local" / "share" / "sandbox"
        self.env = {"HOME": str(self.home), "USER": name, "LOGNAME": name, "LANG": "C.UTF-8",
                    "PATH": "/usr/local/bin:/usr/bin:/bin",
                    "PYTHONPATH": f"{REPO}:{sysconfig.get_paths()['purelib']}"}

    def run(self, *argv: str, groups: bool = True, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``argv`` as the student (with their supplementary groups, or none)."""
        def become() -> None:
            if groups:
                os.initgroups(self.name, self.pw.pw_gid)
            else:
                os.setgroups([])
            os.setgid(self.pw.pw_gid)
            os.setuid(self.uid)
        r = subprocess.run(list(argv), env=self.env, cwd=self.home, preexec_fn=become, capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{argv} as {self.name} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
        return r

    def subuid(self) -> tuple[int, int]:
        return _ranges("/etc/subuid", self.name)[0]


def _make_student(prefix: str) -> Student:
    name = prefix + secrets.token_hex(3)
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
    try:
        if not _ranges("/etc/subuid", name) or not _ranges("/etc/subgid", name):
            start = _free_range()   # useradd gives ranges on Debian; where it did not, the recipe's usermod
            subprocess.run(["usermod", "--add-subuids", f"{start}-{start + 65535}",
                            "--add-subgids", f"{start}-{start + 65535}", name], check=True)
        s = Student(name)
        os.chmod(s.home, 0o700)   # the recipe: no student reads another's home (Debian's default is 0755)
        s.run(SYSTEM_PYTHON, "-m", "sandbox.rootless", "--install-kernel")
        return s
    except BaseException:
        _remove_student(name)
        raise


def _remove_student(name: str) -> None:
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    deadline = time.monotonic() + 10
    while subprocess.run(["pgrep", "-u", name], capture_output=True).returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    subprocess.run(["userdel", "--remove", "--force", name], capture_output=True)
    for path in ("/etc/subuid", "/etc/subgid"):
        _drop_lines(path, name)
    for d in ("rootless", "slirp"):   # the holder's pid file; slirp4netns's socket directory
        shutil.rmtree(f"/tmp/sandbox-{d}-{uid}", ignore_errors=True)


# ---------------------------------------------------------------- the hub

HUB_CONFIG = """
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{dir}/cookie_secret"
c.JupyterHub.pid_file = "{dir}/jupyterhub.pid"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = "{dir}/proxy.pid"
c.ConfigurableHTTPProxy.should_start = True

# A password for everybody: fine for a test, not for a class (docs/classroom.md).
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allowed_users = set({students!r})

# What TLJH's SystemdSpawner does, without systemd: each server runs as its student.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [{python!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.env_keep = ["LANG"]
c.Spawner.environment = {{"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": {pythonpath!r}}}
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90

# The test drives the hub as a service with the admin scopes.
c.JupyterHub.services = [{{"name": "classroom-test", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{
    "name": "classroom-test",
    "scopes": ["admin:users", "admin:servers", "access:servers", "list:users", "read:users", "read:servers"],
    "services": ["classroom-test"],
}}]
"""


class Hub:
    def __init__(self, workdir: Path, chp: str, students: list[Student]) -> None:
        self.dir = workdir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(32)
        self.log = workdir / "hub.log"
        self.students = students
        pythonpath = f"{REPO}:{sysconfig.get_paths()['purelib']}"
        (workdir / "jupyterhub_config.py").write_text(HUB_CONFIG.format(
            port=self.port, hub_port=_free_port(), proxy_api_port=_free_port(), dir=workdir, chp=chp,
            password=secrets.token_hex(8), students=[s.name for s in students], python=SYSTEM_PYTHON,
            pythonpath=pythonpath, token=self.token))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "SANDBOX_ROOT")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", "jupyterhub_config.py"],
                                         cwd=self.dir, env=env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the hub exited {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                if self.api("GET", "/hub/api/")["version"]:
                    return
            time.sleep(0.2)
        raise AssertionError(f"the hub did not answer in {timeout} s:\n{self.tail()}")

    def tail(self, n: int = 60) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        return ""

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        """A request through the proxy with the service's token; the JSON answer (None when empty)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def start_server(self, name: str, timeout: float = 90) -> dict[str, Any]:
        try:
            self.api("POST", f"/hub/api/users/{name}/server")
        except urllib.error.HTTPError as e:
            raise AssertionError(f"starting {name}'s server: {e} {e.read()!r}\n{self.tail()}") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.api("GET", f"/hub/api/users/{name}")["servers"].get("", {})
            if server.get("ready"):
                return server
            time.sleep(0.25)
        raise AssertionError(f"{name}'s server was not ready in {timeout} s:\n{self.tail()}")

    def stop(self) -> None:
        """SIGTERM: the hub stops the servers and the proxy it started; then anything left is killed."""
        stop_process(self.proc, 30, group=True)
        pid_file = self.dir / "proxy.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().strip())
            if "configurable-http-proxy" in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGKILL)


class Kernel:
    """A kernel started through a student's server (REST), run over its websocket, behind the proxy."""

    def __init__(self, hub: Hub, student: Student) -> None:
        self.hub = hub
        self.student = student
        self.base = f"/user/{student.name}/api/kernels"
        self.id = hub.api("POST", self.base, {"name": "python3"})["id"]
        self.session = uuid.uuid4().hex
        self.loop = asyncio.new_event_loop()
        self.ws = self.loop.run_until_complete(self._connect())

    async def _connect(self) -> Any:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect
        url = self.hub.url.replace("http://", "ws://") + f"{self.base}/{self.id}/channels?session_id={self.session}"
        return await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {self.hub.token}"},
                                                   connect_timeout=30))

    def run(self, code: str, timeout: float = 180) -> str:
        """Execute ``code``; its text output (streams, results, displays). An error in the cell fails the test."""
        return self.loop.run_until_complete(asyncio.wait_for(self._run(textwrap.dedent(code).strip()), timeout))

    async def _run(self, code: str) -> str:
        msg_id = uuid.uuid4().hex
        await self.ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "session": self.session, "username": self.student.name,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        out: list[str] = []
        reply = idle = None
        while reply is None or idle is None:
            raw = await self.ws.read_message()
            if raw is None:
                raise AssertionError(f"the kernel's websocket closed while running:\n{code}\n{self.hub.tail()}")
            if isinstance(raw, bytes):   # a binary frame (buffers): not ours
                continue
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind in ("execute_result", "display_data", "update_display_data"):
                out.append(content.get("data", {}).get("text/plain", "") + "\n")
            elif kind == "error":
                out.append("\n".join(content["traceback"]))
            elif kind == "execute_reply":
                reply = content
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        text = "".join(out)
        print(f"--- {self.student.name}:\n{code}\n>>>\n{text}")   # shown by pytest when a test fails
        if reply["status"] != "ok":
            raise AssertionError(f"{self.student.name}'s cell failed:\n{code}\n---\n{text}")
        return text

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
        with contextlib.suppress(Exception):
            self.hub.api("DELETE", f"{self.base}/{self.id}")
        self.loop.close()


# ---------------------------------------------------------------- fixtures

class Classroom:
    def __init__(self, hub: Hub, students: list[Student], daemon_socket: Path, secret: Path) -> None:
        self.hub = hub
        self.a, self.b = students
        self.kernels = {s.name: Kernel(hub, s) for s in students}
        self.socket = daemon_socket
        self.secret = secret

    def kernel(self, s: Student) -> Kernel:
        return self.kernels[s.name]


@pytest.fixture(scope="module")
def classroom(busybox_binary):
    why = _needs()
    if why:
        pytest.skip(why)
    from sandbox import Engine
    from tests.integration.container_env import clean_engine

    work = Path(tempfile.mkdtemp(prefix="sbclass-"))
    os.chmod(work, 0o711)                 # the students reach run/docker.sock, nothing else
    private = work / "private"            # the daemon's store and a root-only file: 0700 root
    private.mkdir(mode=0o700)
    run = work / "run"
    run.mkdir(mode=0o755)
    hub_dir = work / "hub"
    hub_dir.mkdir(mode=0o700)
    secret = private / "secret"
    secret.write_text("root-only\n")
    os.chmod(secret, 0o600)

    made_group = False
    students: list[Student] = []
    hub: Hub | None = None
    daemon: subprocess.Popen[bytes] | None = None
    engine = None
    classroom = None
    try:
        try:
            grp.getgrnam("sandbox")
        except KeyError:                   # make setup makes it; a machine without may get it for the test
            subprocess.run(["groupadd", "--system", "sandbox"], check=True)
            made_group = True
        for prefix in ("sbhuba", "sbhubb"):
            students.append(_make_student(prefix))
        for s in students:                 # recipe b: the students may use the root daemon's socket
            subprocess.run(["usermod", "--append", "--groups", "sandbox", s.name], check=True)

        # Recipe b: the API daemon as root, its socket 0660 in the group sandbox.
        engine = Engine(private / "store")
        engine.images.bootstrap("busybox", binary=busybox_binary)
        sock = run / "docker.sock"
        log = private / "daemon.log"
        with open(log, "ab") as f:
            daemon = subprocess.Popen([sys.executable, "-m", "sandbox", "daemon", "-H", f"unix://{sock}",
                                       "--group", "sandbox"], env=dict(os.environ, SANDBOX_ROOT=str(engine.root)),
                                      stdout=f, stderr=f, start_new_session=True)
        deadline = time.monotonic() + 30
        while "serving the Docker Engine API" not in log.read_text() and time.monotonic() < deadline:
            assert daemon.poll() is None, log.read_text()
            time.sleep(0.05)
        assert sock.exists(), log.read_text()

        hub = Hub(hub_dir, _chp() or "", students)
        hub.start()
        for s in students:
            hub.start_server(s.name)
        classroom = Classroom(hub, students, sock, secret)
        yield classroom
    finally:
        if classroom is not None:
            for k in classroom.kernels.values():
                k.close()
        if hub is not None:
            hub.stop()
        for s in students:
            _remove_student(s.name)
        if daemon is not None and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        left = clean_engine(engine) if engine is not None else []
        if made_group:
            subprocess.run(["groupdel", "sandbox"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
        assert not left, f"mounts left below the daemon's store: {left}"


# ---------------------------------------------------------------- recipe a: rootless, a store each

def _student_cells(s: Student) -> dict[str, str]:
    return {
        "load": "%load_ext sandbox",
        "bootstrap": "%sandbox bootstrap busybox",
        "build": f"""
            %%dockerfile -q -t classwork:{s.name}
            FROM busybox
            RUN echo made-by-{s.name} > /owner && chown 1000:1000 /owner
            CMD ["cat", "/owner"]
            """,
        "run": f"%docker run --rm classwork:{s.name}",
        "detached": f"%docker run -d --name {s.name}-sleeper busybox sleep 600",
        "write": f"""
            import os
            os.makedirs(os.path.expanduser("~/out"), exist_ok=True)
            %docker run --rm -v {s.home}/out:/out busybox sh -c "echo r > /out/by-root; echo u > /out/by-1000; chown 1000:1000 /out/by-1000"
            """,
        "user1000": "%docker run --rm -u 1000 classwork:" + s.name,
        "state": """
            import json, os
            from sandbox import Engine, default_root
            e = Engine()
            print(json.dumps({"root": str(default_root()), "uid_inside": os.getuid(),
                              "uid_map": open("/proc/self/uid_map").read().split(),
                              "images": sorted(t for i in e.images.list() for t in i.tags),
                              "containers": sorted(c.name for c in e.containers.list(all=True))}))
            """,
    }


def test_each_student_gets_rootless_mode_and_a_store_of_their_own(classroom):
    for s in (classroom.a, classroom.b):
        k = classroom.kernel(s)
        cells = _student_cells(s)
        assert "sandbox: rootless mode" in k.run(cells["load"])
        k.run(cells["bootstrap"])
        assert k.run(cells["build"]).startswith(f"built classwork:{s.name}")
        assert k.run(cells["run"]).strip() == f"made-by-{s.name}"
        assert k.run(cells["user1000"]).strip() == f"made-by-{s.name}"   # a 0700 home still serves uid 1000
        k.run(cells["detached"])
        k.run(cells["write"])
    for s in (classroom.a, classroom.b):
        state = json.loads(classroom.kernel(s).run(_student_cells(s)["state"]).strip().splitlines()[-1])
        sub, count = s.subuid()
        assert state["root"] == str(s.store)                      # ~/.local/share/sandbox
        assert state["uid_inside"] == 0                           # root in their own user namespace...
        assert state["uid_map"] == ["0", str(s.uid), "1", "1", str(sub), str(count)]   # ...which is them
        assert f"classwork:{s.name}" in state["images"] and "busybox:latest" in state["images"]
        assert state["containers"] == [f"{s.name}-sleeper"]
        st = s.store.stat()
        assert st.st_uid == s.uid and stat.S_IMODE(s.home.stat().st_mode) == 0o700


def test_students_do_not_see_each_others_images_containers_or_store(classroom):
    a, b = classroom.a, classroom.b
    for me, other in ((a, b), (b, a)):
        state = json.loads(classroom.kernel(me).run(_student_cells(me)["state"]).strip().splitlines()[-1])
        assert f"classwork:{other.name}" not in state["images"]
        assert f"{other.name}-sleeper" not in state["containers"]
        # "root" in the kernel is root of their own namespace only: the other's home, store and
        # supervisor socket stay closed (their uid is not mapped there; DAC applies as to the student).
        out = classroom.kernel(me).run(f"""
            import os, socket
            for what, try_it in [
                    ("home", lambda: os.listdir({str(other.home)!r})),
                    ("store", lambda: os.listdir({str(other.store)!r})),
                    ("supervisor", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).connect(
                        {str(other.store / "supervisor.sock")!r}))]:
                try:
                    try_it()
                    print(what, "open")
                except PermissionError:
                    print(what, "refused")
            """)
        assert out.split() == ["home", "refused", "store", "refused", "supervisor", "refused"], out


def test_files_a_students_containers_write_belong_to_their_subordinate_range(classroom):
    a, b = classroom.a, classroom.b
    assert set(range(*_span(a))).isdisjoint(range(*_span(b))), "the students' subordinate ranges overlap"
    for s in (a, b):
        sub, _ = s.subuid()
        assert (s.home / "out" / "by-root").stat().st_uid == s.uid         # root in the container is the student
        assert (s.home / "out" / "by-1000").stat().st_uid == sub + 999     # uid 1000 is their 1000th subuid
        assert (s.home / "out" / "by-1000").stat().st_gid == _ranges("/etc/subgid", s.name)[0][0] + 999


def _span(s: Student) -> tuple[int, int]:
    sub, count = s.subuid()
    return sub, sub + count


# ---------------------------------------------------------------- recipe b: the root daemon and its group

def test_in_the_group_sandbox_a_student_controls_the_others_containers_and_the_host(classroom):
    a, b = classroom.a, classroom.b
    client = f"import docker; d = docker.DockerClient(base_url='unix://{classroom.socket}')"
    # b starts a container through the root daemon, from their rootless kernel
    out = classroom.kernel(b).run(f"""
        {client}
        c = d.containers.run("busybox", ["sh", "-c", "echo b-was-here > /note; sleep 600"], name="{b.name}-daemon",
                             detach=True, network_mode="none")
        print(d.info()["SecurityOptions"], c.status)
        """)
    assert "name=rootless" not in out   # the daemon is root's: a root-mode engine
    # a, in the group too, sees b's container, reads inside it, and removes it
    out = classroom.kernel(a).run(f"""
        {client}
        print(sorted(c.name for c in d.containers.list()))
        import time
        c, deadline = d.containers.get("{b.name}-daemon"), time.monotonic() + 10
        while (note := c.exec_run("cat /note").output.decode().strip()) != "b-was-here" and time.monotonic() < deadline:
            time.sleep(0.1)   # until b's container has written it
        print(note)
        """)
    assert f"'{b.name}-daemon'" in out and "b-was-here" in out, out
    # the group is root-equivalent: a bind mount of a root-only file, which a cannot open themselves
    out = classroom.kernel(a).run(f"""
        {client}
        try:
            open({str(classroom.secret)!r}).read()
        except PermissionError:
            print("open: refused")
        print(d.containers.run("busybox", ["cat", "/host/secret"], remove=True, network_mode="none",
                               volumes={{{str(classroom.secret.parent)!r}: {{"bind": "/host", "mode": "ro"}}}}
                               ).decode().strip())
        d.containers.get("{b.name}-daemon").remove(force=True)
        print(sorted(c.name for c in d.containers.list(all=True)))
        """)
    assert out.split("\n")[:3] == ["open: refused", "root-only", "[]"], out
    # outside the group, the socket refuses: membership is the whole of the daemon's access control
    r = a.run(SYSTEM_PYTHON, "-c", f"import socket; socket.socket(socket.AF_UNIX).connect({str(classroom.socket)!r})",
              groups=False, check=False)
    assert r.returncode != 0 and "PermissionError" in r.stderr, r.stderr
    st = classroom.socket.stat()
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == grp.getgrnam("sandbox").gr_gid
