"""A running ``sandbox daemon`` for tests, and Docker's own clients pointed at it.

The daemon is started as a process (as a user starts it) on a unix socket in
the module's store; at teardown it gets SIGTERM, every container is removed
and the store's supervisor stopped.  ``docker(...)`` runs Debian's docker CLI
(``/usr/bin/docker``, the 20.10 client that speaks API 1.41; another CLI may
sit earlier on PATH) with ``DOCKER_HOST`` set; its own daemon never runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

DOCKER = "/usr/bin/docker"


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float, *, group: bool = False) -> None:
    """SIGTERM to a server a test started, then SIGKILL (to its process group with ``group``) after ``timeout``.

    The servers the tests start (this daemon, JupyterHub, JupyterLab, a
    private dockerd) shut their own children down on SIGTERM; the SIGKILL is
    for one that hangs, so a test never waits on it forever.
    """
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait()


class DaemonProcess:
    def __init__(self, root: Path, *args: str, socket_path: Path | None = None) -> None:
        self.root = root
        self.socket = socket_path or (root / "docker.sock")
        self.host = f"unix://{self.socket}"
        self.log = root / "daemon.log"
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> DaemonProcess:
        env = dict(os.environ, SANDBOX_ROOT=str(self.root))
        hosts = [a for a in self.args if a.startswith(("unix://", "tcp://"))]
        extra = [a for a in self.args if a not in hosts]
        argv = [sys.executable, "-m", "sandbox", "daemon", *sum((["-H", h] for h in hosts or [self.host]), []),
                *extra]
        with open(self.log, "ab") as log:
            offset = log.tell()
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited ({self.proc.returncode}):\n{self.log.read_text()}")
            if "serving the Docker Engine API" in self.log.read_text()[offset:]:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"the daemon did not come up:\n{self.log.read_text()}")

    def stop(self) -> None:
        stop_process(self.proc, 10)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def env(self) -> dict[str, str]:
        return dict(os.environ, DOCKER_HOST=self.host, PATH="/usr/bin:" + os.environ.get("PATH", ""),
                    DOCKER_CONFIG=str(self.root / "docker-config"))

    def docker(self, *argv: str, input: bytes | None = None, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run([DOCKER, *argv], input=input, capture_output=True, env=self.env(), timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(argv)} -> {proc.returncode}\n{proc.stderr.decode()}")
        return proc

    def raw(self, request: bytes, timeout: float = 10.0) -> bytes:
        """Send bytes on a new connection to the socket; everything the daemon answers until it closes."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.socket))
            s.sendall(request)
            out = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    out += chunk
                    if b"\r\n\r\n" in out and _complete(out):
                        break
            except socket.timeout:
                pass
            return out


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return head.startswith(b"HTTP/1.1 204") or b"transfer-encoding: chunked" in head.lower() and body.endswith(b"0\r\n\r\n")


def need_docker_cli() -> None:
    if not os.path.exists(DOCKER):
        pytest.skip("requires Debian's docker CLI at /usr/bin/docker (apt install docker.io)")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: Any, busybox_binary: Any) -> Any:
    from sandbox import Engine
    from tests.integration.container_env import clean_engine
    root = tmp_path_factory.mktemp("api") / "root"
    eng = Engine(root)
    eng.images.bootstrap("busybox", binary=busybox_binary)
    d = DaemonProcess(root).start()
    yield d
    d.stop()
    left = clean_engine(eng)
    assert not left, f"mounts left below the store: {left}"
