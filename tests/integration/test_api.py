"""The Docker Engine API daemon, driven by Docker's own clients: the docker CLI, docker-py, docker-compose.

Every check is on state (exit codes, files inside containers, inspect fields,
what a registry holds), through the real clients pointed at ``sandbox
daemon`` with ``DOCKER_HOST``.  The raw-request tests feed the HTTP layer
what a broken or hostile client would, and check the daemon answers with a
4xx and keeps serving.
"""

from __future__ import annotations

import io
import json
import os
import pty
import select
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.api_env import DaemonProcess, daemon, need_docker_cli  # noqa: F401

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="the daemon's containers need root")]


@pytest.fixture(autouse=True)
def _cli(request):
    if "daemon" in request.fixturenames:
        need_docker_cli()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def in_pty(d: DaemonProcess, argv: list[str], typed: bytes, wait: float = 1.5) -> tuple[int, str]:
    """Run the docker CLI on a terminal, type ``typed``, collect what it shows; (exit code, output)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve("/usr/bin/docker", ["docker", *argv], d.env())
    out = b""

    def read_for(seconds: float) -> None:
        nonlocal out
        end = time.time() + seconds
        while time.time() < end:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    return
    read_for(wait)
    os.write(fd, typed)
    read_for(wait)
    deadline = time.time() + 20
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            read_for(0.1)
            os.close(fd)
            return os.waitstatus_to_exitcode(status), out.decode(errors="replace").replace("\r", "")
        read_for(0.1)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the docker CLI did not end: " + out.decode(errors="replace"))


# --------------------------------------------------------------------------- the docker CLI

def test_version_and_ping_speak_api_1_41(daemon):
    out = json.loads(daemon.docker("version", "--format", "{{json .}}").stdout)
    assert out["Server"]["ApiVersion"] == "1.41" and out["Client"]["ApiVersion"] == "1.41"
    head = daemon.raw(b"HEAD /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"api-version: 1.41" in head.lower()
    assert b"builder-version: 1" in head.lower()


def test_run_rm_exit_codes_and_output(daemon):
    p = daemon.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (p.stdout, p.stderr) == (b"out\n", b"err\n")
    assert daemon.docker("run", "--rm", "busybox", "sh", "-c", "exit 7", check=False).returncode == 7
    assert daemon.docker("run", "--rm", "busybox", "no-such-command", check=False).returncode == 127
    left = daemon.docker("ps", "-aq", "--filter", "status=exited").stdout.split()
    assert not left          # --rm: nothing stays


def test_run_it_through_a_terminal(daemon):
    code, out = in_pty(daemon, ["run", "-it", "--rm", "busybox", "sh"], b"echo in-$((6*7)); tty; exit 4\r")
    assert code == 4 and "in-42" in out and "/dev/pts/0" in out


def test_detached_logs_follow_stop_rm(daemon):
    cid = daemon.docker("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
                        "trap 'echo bye; exit 0' TERM; i=0; while true; do i=$((i+1)); echo t$i; sleep 0.1; done"
                        ).stdout.decode().strip()
    follower = subprocess.Popen(["/usr/bin/docker", "logs", "-f", "ticker"], stdout=subprocess.PIPE,
                                env=daemon.env())
    time.sleep(0.8)
    daemon.docker("stop", "-t", "5", "ticker")
    out, _ = follower.communicate(timeout=20)
    assert out.startswith(b"t1\n") and out.rstrip().endswith(b"bye")     # followed to the end
    state = json.loads(daemon.docker("inspect", cid).stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0
    daemon.docker("rm", "ticker")
    assert b"No such object" in daemon.docker("inspect", cid, check=False).stderr


def test_build_tags_and_a_failing_run_exits_with_its_code(daemon, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo built > /built\nCOPY note.txt /\n"
                                         "CMD [\"cat\", \"/built\", \"/note.txt\"]\n")
    (tmp_path / "note.txt").write_text("a note\n")
    iid = tmp_path / "iid"
    daemon.docker("build", "-t", "api-built:1", "--iidfile", str(iid), str(tmp_path))
    assert daemon.docker("run", "--rm", "api-built:1").stdout == b"built\na note\n"
    image = json.loads(daemon.docker("image", "inspect", "api-built:1").stdout)[0]
    assert iid.read_text().strip() == image["Id"]
    again = daemon.docker("build", "-t", "api-built:1", str(tmp_path)).stdout.decode()
    assert "Using cache" in again
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN exit 5\n")
    bad = daemon.docker("build", "-t", "api-bad", str(tmp_path), check=False)
    assert bad.returncode == 5 and b"returned a non-zero code: 5" in bad.stderr
    assert daemon.docker("image", "inspect", "api-bad", check=False).returncode != 0   # nothing tagged
    daemon.docker("rmi", "api-built:1")


def test_ps_images_inspect_exec_cp_diff_commit(daemon, tmp_path):
    daemon.docker("run", "-d", "--name", "box1", "-l", "course=api", "busybox", "sleep", "300")
    ps = daemon.docker("ps", "--filter", "label=course=api", "--format", "{{.Names}} {{.Status}}").stdout.decode()
    assert ps.startswith("box1 Up")
    images = daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.decode().split()
    assert "busybox:latest" in images
    assert daemon.docker("inspect", "-f", "{{.State.Running}} {{.Config.Image}}", "box1").stdout == b"true busybox\n"
    ex = daemon.docker("exec", "box1", "sh", "-c", "echo in-exec; exit 3", check=False)
    assert ex.returncode == 3 and ex.stdout == b"in-exec\n"
    code, out = in_pty(daemon, ["exec", "-it", "box1", "sh"], b"tty; exit 2\r")
    assert code == 2 and "/dev/pts/" in out
    (tmp_path / "in.txt").write_text("copied in\n")
    daemon.docker("cp", str(tmp_path / "in.txt"), "box1:/tmp/")
    assert daemon.docker("exec", "box1", "cat", "/tmp/in.txt").stdout == b"copied in\n"
    daemon.docker("exec", "box1", "sh", "-c", "mkdir -p /out && echo one > /out/a && echo two > /out/b")
    daemon.docker("cp", "box1:/out", str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path / "out")) == ["a", "b"] and (tmp_path / "out" / "b").read_text() == "two\n"
    diff = daemon.docker("diff", "box1").stdout.decode().splitlines()
    assert "A /tmp/in.txt" in diff and "A /out/a" in diff
    daemon.docker("commit", "box1", "api-committed:1")
    assert daemon.docker("run", "--rm", "api-committed:1", "cat", "/out/b").stdout == b"two\n"
    stats = daemon.docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "box1").stdout.decode()
    assert stats.split() == ["box1", "1"]
    top = daemon.docker("top", "box1").stdout.decode()
    assert "sleep 300" in top
    daemon.docker("rm", "-f", "box1")
    daemon.docker("rmi", "api-committed:1")


def test_events_within_a_window(daemon):
    since = int(time.time()) - 1
    daemon.docker("run", "--rm", "--name", "evented", "busybox", "true")
    until = int(time.time()) + 1
    out = daemon.docker("events", "--since", str(since), "--until", str(until), "--filter", "container=evented",
                        "--format", "{{.Action}}").stdout.decode().split()
    assert out[:1] == ["create"] and "start" in out and "die" in out and "destroy" in out


def test_networks_volumes_and_a_published_port(daemon):
    daemon.docker("network", "create", "--subnet", "10.233.1.0/24", "apinet")
    daemon.docker("volume", "create", "apivol")
    port = free_port()
    daemon.docker("run", "-d", "--name", "apiweb", "--network", "apinet", "--network-alias", "www",
                  "-p", f"{port}:80", "-v", "apivol:/www", "busybox", "sh", "-c",
                  "echo api-page > /www/index.html && exec httpd -f -p 80 -h /www")
    try:
        deadline = time.time() + 5
        while True:
            try:
                assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read() == b"api-page\n"
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        out = daemon.docker("run", "--rm", "--network", "apinet", "busybox", "wget", "-q", "-O-", "http://www/")
        assert out.stdout == b"api-page\n"
        net = json.loads(daemon.docker("network", "inspect", "apinet").stdout)[0]
        assert net["IPAM"]["Config"][0]["Subnet"] == "10.233.1.0/24"
        assert any(c["Name"] == "apiweb" for c in net["Containers"].values())
        vols = daemon.docker("volume", "ls", "-q").stdout.decode().split()
        assert "apivol" in vols
        assert daemon.docker("port", "apiweb").stdout.decode().strip() == f"80/tcp -> 0.0.0.0:{port}"
        df = daemon.docker("system", "df").stdout.decode()
        assert "Images" in df and "Local Volumes" in df
    finally:
        daemon.docker("rm", "-f", "apiweb")
    daemon.docker("network", "rm", "apinet")
    daemon.docker("volume", "rm", "apivol")
    assert "apinet" not in daemon.docker("network", "ls").stdout.decode()


def test_pull_and_push_through_a_local_registry(daemon, registry):
    target = f"{registry.host}/class/busybox:api"
    daemon.docker("tag", "busybox", target)
    pushed = daemon.docker("push", target).stdout.decode()
    assert "digest: sha256:" in pushed
    daemon.docker("rmi", target)
    daemon.docker("pull", target)
    assert daemon.docker("run", "--rm", target, "echo", "pulled").stdout == b"pulled\n"
    tags = json.loads(urllib.request.urlopen(f"{registry.url}/v2/class/busybox/tags/list").read())
    assert "api" in tags["tags"]
    daemon.docker("rmi", target)


# --------------------------------------------------------------------------- docker-py

@pytest.fixture
def client(daemon):
    docker = pytest.importorskip("docker")
    c = docker.DockerClient(base_url=daemon.host, version="1.41")
    yield c
    c.close()


def test_docker_py(client, daemon, registry, tmp_path):
    # containers.run with an automatic pull: the image is only in the registry
    remote = f"{registry.host}/py/busybox:1"
    daemon.docker("tag", "busybox", remote)
    daemon.docker("push", remote)
    daemon.docker("rmi", remote)
    assert client.containers.run(remote, ["echo", "from-py"], remove=True) == b"from-py\n"
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo py > /py\n")
    image, logs = client.images.build(path=str(tmp_path), tag="py-built:1")
    assert any("Successfully built" in (entry.get("stream") or "") for entry in logs)
    c = client.containers.run("py-built:1", ["sleep", "300"], detach=True, name="pybox")
    try:
        code, out = c.exec_run(["cat", "/py"])
        assert (code, out) == (0, b"py\n")
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            info = tarfile.TarInfo("put.txt")
            info.size = 4
            tar.addfile(info, io.BytesIO(b"put\n"))
        assert c.put_archive("/tmp", data.getvalue())
        stream, stat = c.get_archive("/tmp/put.txt")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile("put.txt")
            assert member is not None and member.read() == b"put\n"
        assert stat["name"] == "put.txt" and stat["size"] == 4
        net = client.networks.create("pynet")
        net.connect(c, aliases=["pyalias"])
        c.reload()
        assert "pynet" in c.attrs["NetworkSettings"]["Networks"]
        out = client.containers.run("busybox", ["nslookup", "pyalias"], network="pynet", remove=True)
        assert b"Name:" in out
        net.disconnect(c)
        net.remove()
        vol = client.volumes.create("pyvol", labels={"k": "v"})
        assert client.volumes.get("pyvol").attrs["Labels"] == {"k": "v"}
        vol.remove()
        c.stop(timeout=1)
        assert c.wait()["StatusCode"] in (0, 137, 143)
    finally:
        c.remove(force=True)
        client.images.remove("py-built:1")
        client.images.remove(remote)


# --------------------------------------------------------------------------- docker-compose

COMPOSE = """\
version: "3.8"
services:
  web:
    build: ./web
    networks:
      appnet:
        aliases: [frontend]
    ports:
      - "{port}:8080"
    volumes:
      - data:/data
  client:
    image: busybox
    command: sh -c "until wget -q -O- http://frontend:8080/ > /data/seen; do sleep 0.2; done; sleep 300"
    networks: [appnet]
    volumes:
      - data:/data
    depends_on: [web]
networks:
  appnet: {{}}
volumes:
  data: {{}}
"""


def test_docker_compose_up_and_down(daemon, tmp_path):
    if shutil.which("docker-compose") is None:
        pytest.skip("requires docker-compose (apt install docker-compose)")
    port = free_port()
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "Dockerfile").write_text(
        "FROM busybox\nRUN mkdir -p /www && echo compose-web > /www/index.html\n"
        "CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n")
    (tmp_path / "docker-compose.yml").write_text(COMPOSE.format(port=port))
    env = daemon.env()

    def compose(*argv: str) -> subprocess.CompletedProcess[bytes]:
        p = subprocess.run(["docker-compose", "-p", "apitest", *argv], cwd=tmp_path, env=env,
                           capture_output=True, timeout=180)
        assert p.returncode == 0, p.stderr.decode()
        return p
    compose("up", "-d")
    try:
        deadline = time.time() + 10
        while True:
            try:
                assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read() == b"compose-web\n"
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        seen = b""
        while time.time() < deadline and seen != b"compose-web\n":
            seen = compose("exec", "-T", "client", "cat", "/data/seen").stdout if \
                subprocess.run(["docker-compose", "-p", "apitest", "exec", "-T", "client", "test", "-s",
                                "/data/seen"], cwd=tmp_path, env=env).returncode == 0 else b""
            time.sleep(0.2)
        assert seen == b"compose-web\n"            # the client found the web service by its alias
        ps = compose("ps").stdout.decode()
        assert ps.count("apitest_web_1") == 1 and ps.count("apitest_client_1") == 1 and "Up" in ps
        compose("logs", "--tail", "5", "client")
    finally:
        compose("down", "-v")
    assert daemon.docker("ps", "-aq", "--filter", "label=com.docker.compose.project=apitest").stdout == b""
    assert b"apitest_appnet" not in daemon.docker("network", "ls").stdout
    assert b"apitest_data" not in daemon.docker("volume", "ls").stdout


# --------------------------------------------------------------------------- bad input and faults

def test_bad_requests_get_4xx_and_the_daemon_keeps_serving(daemon):
    def status(raw: bytes) -> int:
        answer = daemon.raw(raw)
        return int(answer.split(b" ", 2)[1])

    assert status(b"GET /v1.41/no/such/thing HTTP/1.1\r\nHost: x\r\n\r\n") == 404
    assert status(b"DELETE /v1.41/info HTTP/1.1\r\nHost: x\r\n\r\n") == 405
    too_new = daemon.raw(b"GET /v1.99/info HTTP/1.1\r\nHost: x\r\n\r\n")
    assert too_new.startswith(b"HTTP/1.1 400") and b"too new" in too_new
    assert status(b"POST /v1.41/containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 9\r\n\r\n{not json") == 400
    huge = 17 * 1024 * 1024
    assert status(b"POST /v1.41/containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                  str(huge).encode() + b"\r\n\r\n" + b" " * huge) == 413
    assert status(b"GET /v1.41/containers/nope/json HTTP/1.1\r\nHost: x\r\n\r\n") == 404
    body = daemon.raw(b"GET /v1.41/containers/nope/json HTTP/1.1\r\nHost: x\r\n\r\n").partition(b"\r\n\r\n")[2]
    assert json.loads(body)["message"].startswith("No such container")
    assert status(b"GET /v1.41/swarm HTTP/1.1\r\nHost: x\r\n\r\n") == 503
    assert status(b"GARBAGE\r\n\r\n") == 400
    # a chunked body cut short: the client goes away; the daemon still answers the next one
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(daemon.socket))
        s.sendall(b"POST /v1.41/build HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
    assert daemon.docker("info", "--format", "{{.ServerVersion}}").returncode == 0


def test_a_build_context_cannot_escape_and_a_disconnect_tags_nothing(daemon, tmp_path):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        df = b"FROM busybox\nCMD true\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(df)
        tar.addfile(info, io.BytesIO(df))
        evil = tarfile.TarInfo("../../escaped")
        evil.size = 1
        tar.addfile(evil, io.BytesIO(b"x"))
    body = data.getvalue()
    answer = daemon.raw(b"POST /v1.41/build?t=evil HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 400") and b"build context" in answer
    assert daemon.docker("image", "inspect", "evil", check=False).returncode != 0
    # a client that leaves in the middle of a RUN: the build stops and tags nothing
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN sleep 30\n")
    proc = subprocess.Popen(["/usr/bin/docker", "build", "-t", "interrupted", str(tmp_path)], env=daemon.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    while b"Step 2/2" not in proc.stdout.readline():
        pass
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    deadline = time.time() + 15
    while time.time() < deadline and daemon.docker("ps", "-aq").stdout.strip():
        time.sleep(0.2)
    assert daemon.docker("ps", "-aq").stdout.strip() == b""      # the RUN's container is gone
    assert daemon.docker("image", "inspect", "interrupted", check=False).returncode != 0


def test_archive_put_through_a_symlink_stays_inside(daemon, tmp_path):
    outside = tmp_path / "host-dir"
    outside.mkdir()
    daemon.docker("run", "-d", "--name", "linker", "busybox", "sh", "-c",
                  f"ln -s {outside} /tmp/link && sleep 300")
    try:
        time.sleep(0.3)
        (tmp_path / "payload").write_text("payload\n")
        daemon.docker("cp", str(tmp_path / "payload"), "linker:/tmp/link/", check=False)
        assert not (outside / "payload").exists()            # the host directory was never written
    finally:
        daemon.docker("rm", "-f", "linker")


def test_kill_9_of_the_daemon_loses_nothing(daemon):
    daemon.docker("run", "-d", "--name", "survivor", "busybox", "sleep", "300")
    daemon.kill9()
    daemon.start()
    assert daemon.docker("inspect", "-f", "{{.State.Running}}", "survivor").stdout == b"true\n"
    daemon.docker("rm", "-f", "survivor")


# --------------------------------------------------------------------------- who may connect

def test_the_socket_is_0660_with_its_group(daemon):
    import grp
    st = os.stat(daemon.socket)
    assert oct(st.st_mode & 0o777) == "0o660"
    try:
        assert st.st_gid == grp.getgrnam("sandbox").gr_gid
    except KeyError:
        pytest.skip("no group sandbox on this machine (make setup makes it)")


def test_tcp_needs_loopback_or_tls(tmp_path):
    from sandbox.api.server import listen
    from sandbox.errors import UsageError
    with pytest.raises(UsageError, match="without TLS"):
        listen("tcp://0.0.0.0:2375", group=None, tls=None)


def test_tls_refuses_a_client_without_a_certificate(tmp_path, busybox_binary):
    if shutil.which("openssl") is None:
        pytest.skip("requires openssl")
    need_docker_cli()
    from sandbox import Engine
    from tests.integration.container_env import clean_engine
    certs = tmp_path / "certs"
    certs.mkdir()

    def ssl_(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=certs, check=True, capture_output=True)
    ssl_("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "1",
         "-subj", "/CN=test-ca")
    for name, cn in (("server", "127.0.0.1"), ("client", "client")):
        ssl_("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem", "-out", f"{name}.csr",
             "-subj", f"/CN={cn}")
        (certs / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\n" if name == "server"
                                           else "extendedKeyUsage=clientAuth\n")
        ssl_("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext")
    root = tmp_path / "root"
    Engine(root).images.bootstrap("busybox", binary=busybox_binary)
    port = free_port()
    d = DaemonProcess(root, f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
                      "--tlscert", str(certs / "server.pem"), "--tlskey", str(certs / "server-key.pem")).start()
    try:
        env = dict(os.environ, DOCKER_HOST=f"tcp://127.0.0.1:{port}")
        refused = subprocess.run(["/usr/bin/docker", "--tls", "--tlscacert", str(certs / "ca.pem"), "info"],
                                 env=env, capture_output=True, timeout=30)
        assert refused.returncode != 0
        ok = subprocess.run(["/usr/bin/docker", "--tlsverify", "--tlscacert", str(certs / "ca.pem"), "--tlscert",
                             str(certs / "client.pem"), "--tlskey", str(certs / "client-key.pem"), "version",
                             "--format", "{{.Server.APIVersion}}"], env=env, capture_output=True, timeout=30)
        assert ok.returncode == 0 and ok.stdout.strip() == b"1.41", ok.stderr
    finally:
        d.stop()
        clean_engine(Engine(root))



def test_a_member_of_the_group_uses_the_daemon_without_root(tmp_path, busybox_binary):
    """Like Docker's `docker` group: a user in `sandbox` drives the engine through the socket (as good as root)."""
    import grp
    import tempfile
    need_docker_cli()
    try:
        grp.getgrnam("sandbox")
    except KeyError:
        pytest.skip("no group sandbox (make setup makes it)")
    if shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.skip("requires useradd and runuser")
    from sandbox import Engine
    from tests.integration.container_env import clean_engine
    user = f"sbxapi{os.getpid() % 10000}"
    subprocess.run(["useradd", "--no-create-home", "--groups", "sandbox", user], check=True)
    sockdir = Path(tempfile.mkdtemp(prefix="sbx-api-"))
    sockdir.chmod(0o755)
    root = tmp_path / "root"
    Engine(root).images.bootstrap("busybox", binary=busybox_binary)
    d = DaemonProcess(root, socket_path=sockdir / "docker.sock").start()
    try:
        def as_user(*argv: str) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run([str(shutil.which("runuser")), "-u", user, "--", "/usr/bin/docker", *argv], capture_output=True,
                                  env={"DOCKER_HOST": d.host, "PATH": "/usr/bin:/bin", "HOME": "/tmp"}, timeout=60)
        ran = as_user("run", "--rm", "busybox", "id", "-u")
        assert ran.returncode == 0 and ran.stdout == b"0\n", ran.stderr     # root inside: hence "as good as root"
        subprocess.run(["gpasswd", "-d", user, "sandbox"], check=True, capture_output=True)
        refused = as_user("ps")
        assert refused.returncode != 0 and b"permission denied" in refused.stderr.lower()
    finally:
        d.stop()
        subprocess.run(["userdel", user], check=False)
        shutil.rmtree(sockdir, ignore_errors=True)
        clean_engine(Engine(root))


def test_run_rm_of_a_command_that_ends_at_once_never_says_no_such_container(daemon):
    """A quick --rm container may be removed before the start request returns: start answers
    204 all the same (it answered 404 under load, with the run already done)."""
    for _ in range(15):
        p = daemon.docker("run", "--rm", "busybox", "true", check=False)
        assert (p.returncode, p.stderr) == (0, b""), p.stderr
