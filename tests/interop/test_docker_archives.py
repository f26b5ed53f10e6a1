"""Archives both ways with a real Docker: docker runs what we save; we load what docker saves."""

from __future__ import annotations

import os

import pytest

from sandbox import Engine

BUSYBOX = "/bin/busybox"


@pytest.fixture
def engine(tmp_path):
    if not os.path.exists(BUSYBOX):
        pytest.skip("requires busybox-static")
    engine = Engine(tmp_path / "root")
    engine.images.bootstrap("busybox")
    return engine


def test_docker_runs_what_sandbox_saved(engine, docker, tmp_path):
    archive = tmp_path / "b.tar"
    with open(archive, "wb") as f:
        engine.images.save(["busybox"], f)
    docker("load", "-i", str(archive))
    try:
        r = docker("run", "--rm", "--network", "none", "busybox", "echo", "ok")
        assert r.stdout == b"ok\n"
        ours = engine.images.get("busybox")
        assert docker("inspect", "-f", "{{.Id}}", "busybox").stdout.decode().strip() == ours.id
    finally:
        docker("rmi", "-f", "busybox", check=False)


def test_sandbox_loads_what_docker_saved(engine, docker, tmp_path):
    archive = tmp_path / "b.tar"
    with open(archive, "wb") as f:
        engine.images.save(["busybox"], f)
    docker("load", "-i", str(archive))
    # A child image with a whiteout and an opaque directory, built by Docker itself.
    dockerfile = (b"FROM busybox\nRUN rm /etc/shadow && mkdir -p /data && echo hi > /data/a\n"
                  b"RUN rm -rf /data && mkdir /data && echo new > /data/b\n")
    docker("build", "--network", "none", "-t", "child:1", "-", input=dockerfile)
    try:
        out = tmp_path / "child.tar"
        docker("save", "-o", str(out), "child:1")
        other = Engine(tmp_path / "other")
        with open(out, "rb") as f:
            (image,) = other.images.load(f)
        want = docker("inspect", "-f", "{{json .RootFS.Layers}}", "child:1").stdout
        import json
        assert image.diff_ids == json.loads(want)
        assert image.id == docker("inspect", "-f", "{{.Id}}", "child:1").stdout.decode().strip()
        flat = tmp_path / "flat"
        flat.mkdir()
        other.image_store.layers.flatten(image.chain_ids, flat)
        assert not (flat / "etc" / "shadow").exists() and (flat / "etc" / "passwd").exists()
        assert sorted(os.listdir(flat / "data")) == ["b"]
    finally:
        docker("rmi", "-f", "child:1", "busybox", check=False)
