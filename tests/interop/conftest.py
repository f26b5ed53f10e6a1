"""The interop tier: a private Docker daemon, started for the session and stopped after.

It runs with its own data root, exec root and socket, no bridge and no
iptables rules, so it leaves nothing behind on the machine and does not touch
a Docker the machine may already run.  Skips with a reason when dockerd is not
installed (Debian: apt install docker.io) or we are not root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.api_env import stop_process


class Docker:
    def __init__(self, host: str) -> None:
        self.host = host

    def __call__(self, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
        r = subprocess.run(["docker", "-H", self.host, *args], capture_output=True, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {r.stderr.decode()}")
        return r


@pytest.fixture(scope="session")
def docker():
    if os.geteuid() != 0:
        pytest.skip("requires root to run a private dockerd")
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.skip("requires Docker (apt install docker.io)")
    base = Path(tempfile.mkdtemp(prefix="sbx-dockerd-"))
    sock = base / "docker.sock"
    log = open(base / "dockerd.log", "wb")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
         "--pidfile", str(base / "dockerd.pid"), "-H", f"unix://{sock}", "--bridge", "none",
         "--iptables=false", "--ip6tables=false", "--default-ulimit", "nofile=1024:1024"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = Docker(f"unix://{sock}")
    try:
        for _ in range(100):
            if client("info", check=False).returncode == 0:
                break
            if proc.poll() is not None:
                pytest.skip(f"dockerd did not start: {(base / 'dockerd.log').read_text()[-500:]}")
            time.sleep(0.2)
        else:
            pytest.skip("dockerd did not answer within 20 s")
        yield client
    finally:
        stop_process(proc, 30)
        log.close()
        subprocess.run(["umount", "-R", "-l", str(base / "data")], capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(base / "exec")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def registry(tmp_path_factory):
    """A fresh docker-registry on 127.0.0.1 (see tests/registry_env.py)."""
    if shutil.which("docker-registry") is None:
        pytest.skip("requires docker-registry (apt install docker-registry)")
    from tests.registry_env import Registry
    reg = Registry(tmp_path_factory.mktemp("registry"))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def busybox_both(tmp_path_factory, docker):
    """A store of ours with busybox, the same image loaded into the private dockerd."""
    if not os.path.exists("/bin/busybox"):
        pytest.skip("requires busybox-static")
    from sandbox import Engine
    base = tmp_path_factory.mktemp("interop")
    engine = Engine(base / "root")
    engine.images.bootstrap("busybox")
    archive = base / "busybox.tar"
    with open(archive, "wb") as f:
        engine.images.save(["busybox"], f)
    docker("load", "-i", str(archive))
    yield engine, base
    for c in engine.containers.list(all=True):
        c.remove(force=True)
    engine.supervisor.call("shutdown")
    docker("rmi", "-f", "busybox", check=False)
