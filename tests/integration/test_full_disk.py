"""A full disk, for real: the store sits on a tiny tmpfs and an import, a load, a build, a commit
and a pull run out of space.

Each must fail with StoreFull (one line: the disk is full, and what to do),
leave nothing half-made -- no tag, no new blob or layer, nothing in ingest/
or tmp/, no ``.incomplete`` layer, no build container, no mount -- and once
the tmpfs is made bigger (``mount -o remount,size=64m``) the same operation
must work.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time

import pytest

from sandbox import Engine, SandboxError, StoreFull, kernel
from tests import leaks
from tests.integration.container_env import clean_engine

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


# ---------------------------------------------------------------- build, commit, pull

MiB = 1 << 20


@pytest.fixture
def tiny_busybox(tmp_path, busybox_binary):
    """An Engine whose store is a 7 MiB tmpfs holding busybox (3 MiB): about 4 MiB are left."""
    root = tmp_path / "tiny"
    root.mkdir()
    kernel.mount("tmpfs", root, "tmpfs", 0, "size=7m")
    try:
        engine = Engine(root)
        engine.images.bootstrap("busybox", binary=busybox_binary)
        yield engine
        left = clean_engine(engine)            # containers in a tiny store need the supervisor
        assert left == [str(root)], f"mounts left below the store: {left[1:]}"
    finally:
        for m in reversed(leaks.mounts_below(str(root))[1:]):
            subprocess.run(["umount", "-l", m], check=False)
        kernel.umount(root)


def _grow(engine: Engine) -> None:
    """Free space the way an administrator would: the tmpfs becomes bigger."""
    subprocess.run(["mount", "-o", "remount,size=64m", str(engine.root)], check=True)


def _contents(engine: Engine) -> tuple[set[str], set[str], set[str], set[str]]:
    """blobs, unpacked layers, images and leases: what a failed operation must not change."""
    store = engine.store
    return (set(os.listdir(store.blobs_dir)), set(os.listdir(store.layers_dir)),
            {i.id for i in engine.images.list(all=True)}, set(os.listdir(store.leases_dir)))


def _assert_full_and_clean(e: pytest.ExceptionInfo, engine: Engine, before: tuple) -> None:
    error = e.value
    assert isinstance(error, StoreFull), repr(error)
    text = str(error)
    assert "no space left" in text and "free some space" in text and "\n" not in text, text
    _assert_store_intact(engine)
    assert _contents(engine) == before, "a failed operation left blobs, layers, images or leases"
    assert engine.containers.list(all=True) == [], "a build container is left"
    assert leaks.mounts_below(str(engine.root)) == [str(engine.root)]


def _build(engine: Engine, ctx, tag: str):
    return engine.build(ctx, tags=[tag], network="none")


@pytest.mark.parametrize("size", [8 * MiB, 2560 * 1024], ids=["the command runs out", "its layer does not fit"])
def test_build_run_that_does_not_fit_fails_cleanly(tiny_busybox, tmp_path, size):
    engine = tiny_busybox
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN head -c {size} /dev/urandom > /big\n")
    before = _contents(engine)
    events: list = []
    with pytest.raises(SandboxError) as e:
        engine.build(ctx, tags=["big:run"], network="none", on_event=events.append)
    _assert_full_and_clean(e, engine, before)
    assert "RUN head -c" in str(e.value)                  # which step
    assert [ev for ev in events if ev.kind == "error"]    # the progress display hears of it too
    _grow(engine)
    image = _build(engine, ctx, "big:run")
    assert engine.images.get("big:run").id == image.id
    assert engine.run("big:run", ["wc", "-c", "/big"], network_mode="none").output.split()[0] == str(size).encode()


@pytest.mark.parametrize("size", [8 * MiB, 3 * MiB], ids=["the copy runs out", "its layer does not fit"])
def test_build_copy_of_a_big_context_file_fails_cleanly(tiny_busybox, tmp_path, size):
    engine = tiny_busybox
    ctx = tmp_path / "ctx"                       # the context is on the big disk, the store is not
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY big.bin /big.bin\n")
    (ctx / "big.bin").write_bytes(os.urandom(size))
    before = _contents(engine)
    with pytest.raises(SandboxError) as e:
        _build(engine, ctx, "big:copy")
    _assert_full_and_clean(e, engine, before)
    assert "COPY big.bin" in str(e.value)
    _grow(engine)
    _build(engine, ctx, "big:copy")
    assert engine.run("big:copy", ["wc", "-c", "/big.bin"], network_mode="none").output.split()[0] == str(size).encode()


def test_commit_that_does_not_fit_fails_cleanly(tiny_busybox):
    engine = tiny_busybox
    c = engine.containers.run("busybox", ["sh", "-c", "head -c 2097152 /dev/urandom > /big && sleep 60"],
                              detach=True, network_mode="none")
    upper = c.dir / "upper" / "big"
    deadline = time.monotonic() + 10
    while not (upper.exists() and upper.stat().st_size == 2 * MiB):
        assert time.monotonic() < deadline, "the container did not write its file"
        time.sleep(0.02)
    before = _contents(engine)
    with pytest.raises(SandboxError) as e:
        c.commit("big", "commit")                 # the layer blob fits, unpacking it does not
    error = e.value
    assert isinstance(error, StoreFull) and "free some space" in str(error), repr(error)
    _assert_store_intact(engine)
    assert _contents(engine) == before, "a failed commit left its blob, a layer or an image"
    c.reload()
    assert c.status == "running"                  # not left frozen by the commit's pause
    assert c.exec_run(["wc", "-c", "/big"]).output.split()[0] == b"2097152"   # nothing lost
    _grow(engine)
    image = c.commit("big", "commit")
    assert engine.images.get("big:commit").id == image.id
    assert engine.run("big:commit", ["wc", "-c", "/big"], network_mode="none").output.split()[0] == b"2097152"
    c.remove(force=True)


@pytest.mark.parametrize("size", [8 * MiB, 3 * MiB], ids=["a blob runs out", "its layer does not fit"])
def test_pull_that_does_not_fit_fails_cleanly(tiny_busybox, registry, tmp_path, monkeypatch, size):
    monkeypatch.setenv("SANDBOX_CONFIG", str(tmp_path / "config"))    # no credentials of the real user
    name = f"{registry.host}/class/big:1"
    src = Engine(tmp_path / "src")                # the registry and the source are on the big disk
    src.images.import_(io.BytesIO(_rootfs_tar(size)), tag=name)
    src.images.push(name)
    engine = tiny_busybox
    before = _contents(engine)
    with pytest.raises(SandboxError) as e:
        engine.images.pull(name)
    _assert_full_and_clean(e, engine, before)
    _grow(engine)
    pulled = engine.images.pull(name)
    assert pulled.id == src.images.get(name).id and engine.images.get(name).tags == [name]
