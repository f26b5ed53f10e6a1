"""The ``sandbox`` command end to end: bootstrap, images, tag, inspect, history, rmi, prune.

Runs the real command in a subprocess and asserts on state (exit codes, the
store, JSON), reading printed tables only where the table is the feature.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import Engine

pytestmark = pytest.mark.integration
BUSYBOX = "/bin/busybox"
needs_busybox = pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="requires busybox-static")


def sandbox(root: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, SANDBOX_ROOT=str(root), PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return subprocess.run([sys.executable, "-m", "sandbox", *args], env=env, input=input,
                          capture_output=True)


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory):
    if not os.path.exists(BUSYBOX):
        pytest.skip("requires busybox-static")
    root = tmp_path_factory.mktemp("cli") / "root"
    r = sandbox(root, "bootstrap", "busybox")
    assert r.returncode == 0, r.stderr
    return root


def test_images_lists_busybox_with_size(bootstrapped):
    r = sandbox(bootstrapped, "images")
    assert r.returncode == 0
    header, row = r.stdout.decode().splitlines()[:2]
    assert header.split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert row.split()[:2] == ["busybox", "latest"]
    assert row.split()[-1].endswith("MB")


def test_busybox_image_has_every_applet_and_etc(bootstrapped):
    engine = Engine(bootstrapped)
    image = engine.images.get("busybox")
    assert image.config["config"]["Cmd"] == ["sh"]
    diff = engine.image_store.layers.get(image.chain_ids[-1]).path
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout.split()
    busybox_ino = (diff / "bin" / "busybox").stat().st_ino
    for applet in applets:
        assert (diff / "bin" / applet).stat().st_ino == busybox_ino, applet  # hard links
    for name in ("passwd", "group", "hosts"):
        assert (diff / "etc" / name).is_file()
    assert (diff / "etc" / "passwd").read_text().startswith("root:x:0:0:")


def test_bootstrap_is_reproducible(bootstrapped, tmp_path):
    other = tmp_path / "other"
    assert sandbox(other, "bootstrap", "busybox").returncode == 0
    assert Engine(other).images.get("busybox").id == Engine(bootstrapped).images.get("busybox").id


def test_dynamic_busybox_is_refused(tmp_path):
    r = sandbox(tmp_path / "root", "bootstrap", "busybox", "--binary", os.path.realpath(sys.executable))
    assert r.returncode == 125
    err = r.stderr.decode()
    assert "dynamically linked" in err and "busybox-static" in err
    assert err.count("\n") == 1  # one line
    assert Engine(tmp_path / "root").images.list(all=True) == []


def test_tag_inspect_history_rmi(bootstrapped):
    assert sandbox(bootstrapped, "tag", "busybox", "localhost:5000/class/bb:v1").returncode == 0
    r = sandbox(bootstrapped, "inspect", "localhost:5000/class/bb:v1")
    info = json.loads(r.stdout)[0]
    assert sorted(info["RepoTags"]) == ["busybox:latest", "localhost:5000/class/bb:v1"]
    assert info["Id"] == Engine(bootstrapped).images.get("busybox").id
    assert sandbox(bootstrapped, "inspect", "-f", "{{.Id}}", "busybox").stdout.decode().strip() == info["Id"]
    cfg = json.loads(sandbox(bootstrapped, "inspect", "-f", "{{json .Config}}", "busybox").stdout)
    assert cfg["Cmd"] == ["sh"]
    hist = sandbox(bootstrapped, "history", "busybox").stdout.decode().splitlines()
    assert hist[0].split()[:2] == ["IMAGE", "CREATED"] and len(hist) == 3
    assert "CMD" in hist[1] and "<missing>" in hist[2]
    r = sandbox(bootstrapped, "rmi", "localhost:5000/class/bb:v1")
    assert r.stdout.decode().strip() == "Untagged: localhost:5000/class/bb:v1"
    assert Engine(bootstrapped).images.get("busybox").tags == ["busybox:latest"]


def test_errors_are_one_line_with_exit_125(bootstrapped):
    for args in (["inspect", "--type", "image", "nope"], ["rmi", "nope"], ["tag", "busybox", "Bad:Name"],
                 ["images", "--bogus"], ["history", "UPPER"]):
        r = sandbox(bootstrapped, *args)
        assert r.returncode != 0, args
        assert len(r.stderr.decode().strip().splitlines()) == 1, (args, r.stderr)
    assert sandbox(bootstrapped, "tag", "busybox", "Bad:Name").returncode == 125


def test_rmi_and_prune_collect_blobs(tmp_path):
    if not os.path.exists(BUSYBOX):
        pytest.skip("requires busybox-static")
    root = tmp_path / "root"
    assert sandbox(root, "bootstrap", "busybox").returncode == 0
    engine = Engine(root)
    assert engine.store.all_blobs()
    r = sandbox(root, "rmi", "busybox")
    assert r.returncode == 0 and "Deleted: sha256:" in r.stdout.decode()
    assert engine.store.all_blobs() == []
    assert engine.image_store.layers.all() == []
    assert sandbox(root, "image", "prune", "-f").returncode == 0


def test_rmi_force_and_prune_work_on_a_damaged_store(tmp_path):
    if not os.path.exists(BUSYBOX):
        pytest.skip("requires busybox-static")
    root = tmp_path / "root"
    assert sandbox(root, "bootstrap", "busybox").returncode == 0
    engine = Engine(root)
    image = engine.images.get("busybox")
    blob = engine.store.blob_path(image.manifest_digest)
    blob.write_bytes(blob.read_bytes()[:-1] + b"X")  # a flipped byte in the manifest
    r = sandbox(root, "inspect", "busybox")
    assert r.returncode != 0 and b"corrupt" in r.stderr
    assert sandbox(root, "rmi", "-f", "busybox").returncode == 0
    assert sandbox(root, "image", "prune", "-a", "-f").returncode == 0
    assert Engine(root).store.manifests() == []
    # a truncated index.json: prune rebuilds it from its backup
    assert sandbox(root, "bootstrap", "busybox").returncode == 0
    index = root / "oci" / "index.json"
    index.write_bytes(index.read_bytes()[:20])
    r = sandbox(root, "images")
    assert r.returncode == 125 and b"image prune" in r.stderr
    assert sandbox(root, "image", "prune", "-f").returncode == 0
    assert "busybox:latest" in Engine(root).images.get("busybox").tags
