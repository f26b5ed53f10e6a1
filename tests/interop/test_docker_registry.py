"""Through a real registry with a real Docker: each side runs what the other pushed."""

from __future__ import annotations

import os

import pytest

from sandbox import Engine

BUSYBOX = "/bin/busybox"


@pytest.fixture
def engine(tmp_path, monkeypatch):
    if not os.path.exists(BUSYBOX):
        pytest.skip("requires busybox-static")
    monkeypatch.setenv("SANDBOX_CONFIG", str(tmp_path / "config"))
    engine = Engine(tmp_path / "root")
    engine.images.bootstrap("busybox")
    return engine


def test_docker_pulls_and_runs_what_sandbox_pushed(engine, docker, registry):
    name = f"{registry.host}/class/busybox:v1"
    engine.images.tag("busybox", name)
    digest = engine.images.push(name)
    try:
        docker("pull", name)
        assert docker("run", "--rm", "--network", "none", name, "echo", "ok").stdout == b"ok\n"
        repo_digests = docker("inspect", "-f", "{{json .RepoDigests}}", name).stdout.decode()
        assert digest in repo_digests
    finally:
        docker("rmi", "-f", name, check=False)


def test_sandbox_pulls_what_docker_pushed(engine, docker, registry, tmp_path):
    archive = tmp_path / "b.tar"
    with open(archive, "wb") as f:
        engine.images.save(["busybox"], f)
    docker("load", "-i", str(archive))
    name = f"{registry.host}/from-docker/child:1"
    docker("build", "--network", "none", "-t", name, "-",
           input=b"FROM busybox\nRUN echo built-by-docker > /etc/motd\n")
    try:
        docker("push", name)
        other = Engine(tmp_path / "other")
        image = other.images.pull(name)
        want = docker("inspect", "-f", "{{.Id}}", name).stdout.decode().strip()
        assert image.id == want
        top = other.image_store.layers.get(image.chain_ids[-1]).path
        assert (top / "etc" / "motd").read_text() == "built-by-docker\n"
        assert image.manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    finally:
        docker("rmi", "-f", name, "busybox", check=False)
