"""A full disk, for real: the store sits on a tiny tmpfs and an import, a load and a pull run out of space."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

import pytest

from sandbox import Engine, SandboxError, kernel

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="requires root (mounts a tmpfs)")]


@pytest.fixture
def tiny_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    kernel.mount("tmpfs", root, "tmpfs", 0, "size=6m")
    try:
        yield root
    finally:
        kernel.umount(root)


def _rootfs_tar(size: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = os.urandom(size)  # incompressible: the layer blob is as big as the file
        info = tarfile.TarInfo("big.bin")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _assert_store_intact(engine: Engine) -> None:
    engine.store.manifests()  # index.json parses
    assert os.listdir(engine.store.ingest_dir) == []
    assert [n for n in os.listdir(engine.store.tmp_dir) if not n.endswith(".lock")] == []
    assert not [n for n in os.listdir(engine.store.layers_dir) if ".incomplete" in n]


def test_import_that_does_not_fit_fails_cleanly(tiny_root):
    engine = Engine(tiny_root)
    with pytest.raises(SandboxError) as e:
        engine.images.import_(io.BytesIO(_rootfs_tar(8 << 20)), tag="big:1")
    assert "space" in str(e.value).lower(), str(e.value)
    assert "\n" not in str(e.value)
    assert engine.images.list(all=True) == []
    _assert_store_intact(engine)
    engine.images.import_(io.BytesIO(_rootfs_tar(64 << 10)), tag="small:1")  # still works
    assert engine.images.get("small:1").tags == ["small:1"]


def test_load_that_does_not_fit_fails_cleanly(tiny_root, tmp_path):
    src = Engine(tmp_path / "src")
    src.images.import_(io.BytesIO(_rootfs_tar(8 << 20)), tag="big:1")
    archive = tmp_path / "big.tar"
    with open(archive, "wb") as f:
        src.images.save(["big:1"], f)
    engine = Engine(tiny_root)
    r = subprocess.run([os.sys.executable, "-m", "sandbox", "load", "-i", str(archive)],
                       env=dict(os.environ, SANDBOX_ROOT=str(tiny_root)), capture_output=True, text=True)
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "space" in r.stderr.lower()
    assert engine.images.list(all=True) == []
    _assert_store_intact(engine)


def test_piped_compressed_load_that_does_not_fit_fails_cleanly(tiny_root, tmp_path):
    src = Engine(tmp_path / "src")
    src.images.import_(io.BytesIO(_rootfs_tar(8 << 20)), tag="big:1")
    buf = io.BytesIO()
    src.images.save(["big:1"], buf)
    import gzip
    r = subprocess.run([os.sys.executable, "-m", "sandbox", "load"], input=gzip.compress(buf.getvalue(), 1),
                       env=dict(os.environ, SANDBOX_ROOT=str(tiny_root)), capture_output=True)
    err = r.stderr.decode()
    assert r.returncode == 125 and len(err.strip().splitlines()) == 1, err
    assert "space" in err.lower()
    _assert_store_intact(Engine(tiny_root))
