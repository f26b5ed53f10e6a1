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


def test_missing_blob_gives_one_line_and_leaves_no_partial_archive(tmp_path):
    if not os.path.exists(BUSYBOX):
        pytest.skip("requires busybox-static")
    root = tmp_path / "root"
    assert sandbox(root, "bootstrap", "busybox").returncode == 0
    engine = Engine(root)
    image = engine.images.get("busybox")
    engine.store.blob_path(image.layers[0].digest).unlink()
    out = tmp_path / "b.tar"
    r = sandbox(root, "save", "busybox", "-o", str(out))
    assert r.returncode == 125
    err = r.stderr.decode()
    assert len(err.strip().splitlines()) == 1 and image.layers[0].digest in err and "rmi -f" in err
    assert not out.exists() and not list(tmp_path.glob("b.tar*"))
    assert sandbox(root, "images").returncode == 0
    assert sandbox(root, "rmi", "-f", "busybox").returncode == 0
    assert Engine(root).store.all_blobs() == []


def test_load_of_something_that_is_not_an_archive(tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(4096))
    r = sandbox(tmp_path / "root", "load", "-i", str(junk))
    assert r.returncode == 125
    assert len(r.stderr.decode().strip().splitlines()) == 1
    assert Engine(tmp_path / "root").images.list(all=True) == []


def test_import_with_changes_and_message(tmp_path):
    tree = tmp_path / "tree"
    (tree / "app").mkdir(parents=True)
    (tree / "app" / "run.sh").write_text("echo hi\n")
    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(tree), "-cf", str(tar), "."], check=True)
    root = tmp_path / "root"
    r = sandbox(root, "import", "-c", "CMD [\"/app/run.sh\"]", "-c", "ENV MODE=lab", "-c", "WORKDIR /app",
                "-m", "from a tarball", str(tar), "class/app:1")
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.decode().strip()
    info = json.loads(sandbox(root, "inspect", "class/app:1").stdout)[0]
    assert info["Id"] == image_id
    assert info["Config"]["Cmd"] == ["/app/run.sh"] and info["Config"]["WorkingDir"] == "/app"
    assert "MODE=lab" in info["Config"]["Env"] and info["Comment"] == "from a tarball"
    # from stdin, as `cat rootfs.tar | sandbox import - name`
    r = sandbox(root, "import", "-", "class/app:stdin", input=tar.read_bytes())
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(os.environ.get("SANDBOX_TEST_DEBOOTSTRAP") != "1",
                    reason="slow and needs a Debian mirror: set SANDBOX_TEST_DEBOOTSTRAP=1")
def test_bootstrap_debian(tmp_path):
    root = tmp_path / "root"
    r = sandbox(root, "bootstrap", "debian")
    assert r.returncode == 0, r.stderr
    engine = Engine(root)
    image = engine.images.get("debian:bookworm")
    diff = engine.image_store.layers.get(image.chain_ids[-1]).path
    assert (diff / "etc" / "debian_version").read_text().startswith("12")
    assert os.listdir(diff / "dev") == [] and not list((diff / "var/lib/apt/lists").glob("*_Packages"))
