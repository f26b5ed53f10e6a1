"""The vfs storage driver end to end: containers and builds on full copies, no overlay mount.

The module's store is forced to vfs with ``SANDBOX_STORAGE_DRIVER=vfs`` (as
root, where overlay would work too).  The claims: a vfs container runs, execs
and logs like any other; its rootfs is its own directory (no mount, no link
into the image); ``diff``, ``commit``, ``export`` and ``cp`` read it; the same
change gives the same ``diff`` lines and the same layer entries as on overlay;
a build gives the same layers and cache behaviour on both drivers; ``rm``
leaves nothing; ``inspect`` and ``info`` say vfs.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from sandbox import Engine
from sandbox.containers import setup
from sandbox.image import vfs
from tests import leaks
from tests.integration.container_env import check_diff_and_commit, clean_engine
from tests.conftest import requires_containers, rootless_mode

pytestmark = requires_containers   # root, or rootless (tools/rootless_tier.py)

ENV = "SANDBOX_STORAGE_DRIVER"

#: One change of every kind a layer can hold, as a busybox shell script.
CHANGES = " && ".join([
    "mkdir /newdir", "echo hi > /newdir/f", "ln /newdir/f /newdir/g",  # a new directory, a hard link
    "rm /bin/true",                                  # a whiteout (of one of busybox's hard links)
    "echo x >> /etc/passwd",                         # new content
    "touch /etc/group",                              # a new mtime only: overlay copies it up
    "chmod 700 /home", "chown 1:1 /root",            # a directory's own metadata
    "ln -s /etc/passwd /link", "mkfifo /tmp/fifo",
    "rm -rf /usr", "mkdir /usr", "echo n > /usr/new",                   # removed, made again: opaque
    "rm /etc/shadow", "mkdir /etc/shadow", "echo s > /etc/shadow/f",    # a file became a directory
    "rm -rf /var/www", "echo w > /var/www",          # a directory became a file
    "rm -rf /var/spool",                             # a deleted directory: one whiteout
])


@pytest.fixture(scope="module")
def engine(tmp_path_factory, busybox_binary):
    patch = pytest.MonkeyPatch()
    patch.setenv(ENV, "vfs")   # for the supervisor this module's first client starts, too
    root = tmp_path_factory.mktemp("vfs") / "root"
    eng = Engine(root)
    eng.images.bootstrap("busybox", binary=busybox_binary)
    try:
        yield eng
    finally:
        left = clean_engine(eng)
        patch.undo()
        assert not left, f"mounts left below the store: {left}"


def wait_for(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {check}")


def sandbox_cli(root, *argv, env=None):
    full = dict(os.environ, SANDBOX_ROOT=str(root), **(env or {}))
    return subprocess.run([sys.executable, "-m", "sandbox", *argv], capture_output=True, text=True,
                          env=full, timeout=60)


def base_tree(engine, image="busybox"):
    return engine.image_store.layers.base_path(engine.images.get(image).chain_ids[-1])


def layer_entries(engine, image):
    """The top layer of ``image``, entry by entry, without times: what must match across drivers."""
    img = engine.images.get(image)
    data = engine.store.read_blob(img.layers[-1].digest, "layer")
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for m in tar:
            content = hashlib.sha256(tar.extractfile(m).read()).hexdigest()[:16] if m.isreg() else ""
            out.append((m.name, m.type, oct(m.mode), m.uid, m.gid, m.size, m.linkname, content,
                        sorted((k, v) for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr."))))
    return out


# --------------------------------------------------------------------------- containers


def test_a_vfs_container_runs_execs_and_logs_on_its_own_copy(engine):
    c = engine.containers.run("busybox", ["sh", "-c", "echo started; echo changed >> /etc/passwd; sleep 30"],
                              detach=True)
    try:
        wait_for(lambda: b"started" in c.logs())
        c.reload()
        assert c.attrs["Driver"] == "vfs" and c.attrs["GraphDriver"]["Name"] == "vfs"
        rootfs = Path(c.dir) / "rootfs"
        assert not setup.is_mounted(rootfs)            # a plain directory, nothing mounted on the host
        assert not (Path(c.dir) / "upper").exists()
        r = c.exec_run(["sh", "-c", "tail -1 /etc/passwd; cat /etc/hostname"])
        assert (r.exit_code, r.output) == (0, b"changed\n" + c.id[:12].encode() + b"\n")
        # a copy, not links: the write stayed in the container and the image's tree is untouched
        base = base_tree(engine)
        assert b"changed" not in (base / "etc" / "passwd").read_bytes()
        assert os.stat(rootfs / "bin" / "busybox").st_ino != os.stat(base / "bin" / "busybox").st_ino
        assert os.stat(rootfs / "bin" / "sh").st_ino == os.stat(rootfs / "bin" / "busybox").st_ino
        assert c.logs() == b"started\n"
    finally:
        c.remove(force=True)


def test_a_container_keeps_the_driver_it_was_made_with(engine, monkeypatch):
    c = engine.containers.create("busybox", ["sh", "-c", "cat /etc/hostname"])
    try:
        monkeypatch.setenv(ENV, "overlay")
        c.start()
        assert c.wait()["StatusCode"] == 0 and c.logs() == c.id[:12].encode() + b"\n"
        c.reload()
        assert c.attrs["Driver"] == "vfs" and not setup.is_mounted(Path(c.dir) / "rootfs")
        other = engine.containers.create("busybox", ["true"])
        try:
            assert other.attrs["Driver"] == "overlay"    # what is made now follows the variable
        finally:
            other.remove(force=True)
    finally:
        c.remove(force=True)


def test_diff_and_commit(engine):
    check_diff_and_commit(engine, "vfs-committed")


def test_the_same_change_gives_the_same_diff_and_layer_as_overlay(engine, monkeypatch):
    made = {}
    try:
        for driver in ("overlay", "vfs"):
            monkeypatch.setenv(ENV, driver)
            c = made[driver] = engine.containers.run("busybox", ["sh", "-c", CHANGES], detach=True)
            assert c.wait()["StatusCode"] == 0, c.logs(stderr=True)
            c.reload()
            assert c.attrs["Driver"] == driver
            c.commit(f"same-change-{driver}")
        assert made["vfs"].changes() == made["overlay"].changes()
        opaque = [e[0] for e in layer_entries(engine, "same-change-vfs") if e[0].endswith(".wh..wh..opq")]
        assert opaque == ["etc/shadow/.wh..wh..opq", "usr/.wh..wh..opq"]
        assert layer_entries(engine, "same-change-vfs") == layer_entries(engine, "same-change-overlay")
        # and the two images are one file system
        for driver in ("overlay", "vfs"):
            r = engine.run(f"same-change-{driver}", ["sh", "-c", "ls /usr; ls /etc/shadow; cat /var/www; "
                                                                  "ls /var; ls /bin/true"])
            assert r.output == b"new\nf\nw\nwww\n", (driver, r.output)
    finally:
        for c in made.values():
            c.remove(force=True)
        for driver in made:
            engine.images.remove(f"same-change-{driver}", force=True)


def test_export_and_cp_both_ways_running_and_stopped(engine, tmp_path):
    c = engine.containers.run("busybox", ["sleep", "30"], detach=True, volumes=["/data"])
    try:
        (tmp_path / "up.txt").write_text("to the container\n")
        c.copy_to(str(tmp_path / "up.txt"), "/tmp/")
        assert c.exec_run(["cat", "/tmp/up.txt"]).output == b"to the container\n"
        c.exec_run(["sh", "-c", "echo in the volume > /data/v; ln -s /../../../../etc/shadow /tmp/escape"])
        c.copy_from("/etc/passwd", str(tmp_path / "passwd"))
        assert (tmp_path / "passwd").read_text().startswith("root:")
        buf = io.BytesIO()
        c.export(buf)
        names = tarfile.open(fileobj=io.BytesIO(buf.getvalue())).getnames()
        assert "bin/busybox" in names and "tmp/up.txt" in names
        c.stop(timeout=1)
        # stopped: its own directory, with its volume and /etc files bound where it sees them
        (tmp_path / "later.txt").write_text("while stopped\n")
        c.copy_to(str(tmp_path / "later.txt"), "/tmp/")
        c.copy_from("/data/v", str(tmp_path / "v"))
        assert (tmp_path / "v").read_text() == "in the volume\n"
        c.copy_from("/tmp/escape", str(tmp_path / "escape"))
        assert os.readlink(tmp_path / "escape") == "/../../../../etc/shadow"   # a link, never followed
        assert not leaks.mounts_below(str(engine.root))
        assert ("A", "/tmp/later.txt") in c.changes()
        c.start()
        assert c.exec_run(["cat", "/tmp/later.txt"]).output == b"while stopped\n"
    finally:
        c.remove(force=True, v=True)


def test_rm_leaves_nothing_but_the_shared_base_tree(engine):
    c = engine.containers.run("busybox", ["sh", "-c", "echo x > /x"], detach=True)
    c.wait()
    cdir = Path(c.dir)
    assert (cdir / "rootfs" / "bin" / "busybox").is_file()
    c.remove()
    wait_for(lambda: not any(n.endswith(cdir.name) for n in os.listdir(cdir.parent)))
    assert not leaks.mounts_below(str(engine.root))
    assert (base_tree(engine) / "bin" / "busybox").is_file()       # other containers' source stays
    r = engine.run("busybox", ["ls", "/x"])                        # and a new copy starts clean
    assert r.exit_code != 0


def test_a_first_run_makes_the_base_tree_in_the_client(engine):
    image = engine.images.get("busybox")
    layers = engine.image_store.layers
    tree = layers.base_path(image.chain_ids[-1])
    from sandbox.image.store import remove_tree
    remove_tree(tree)
    r = sandbox_cli(engine.root, "run", "--rm", "busybox", "cat", "/etc/group", env={ENV: "vfs"})
    assert (r.returncode, r.stdout.splitlines()[0]) == (0, "root:x:0:"), r.stderr
    assert layers.has_base_tree(image.chain_ids[-1])


def test_inspect_and_info_say_vfs(engine):
    r = sandbox_cli(engine.root, "info", env={ENV: "vfs"})
    assert " Storage Driver: vfs\n" in r.stdout, r.stdout + r.stderr
    r = sandbox_cli(engine.root, "--storage-driver", "overlay", "info", env={ENV: "vfs"})
    assert " Storage Driver: overlay\n" in r.stdout, r.stdout + r.stderr
    r = sandbox_cli(engine.root, "info", env={ENV: "zfs"})
    assert r.returncode == 125 and "unknown storage driver 'zfs'" in r.stderr
    c = engine.containers.create("busybox", ["true"], name="vfs-inspected")
    try:
        r = sandbox_cli(engine.root, "inspect", "-f", "{{.Driver}} {{.GraphDriver.Name}}", "vfs-inspected")
        assert r.stdout == "vfs vfs\n", r.stderr
    finally:
        c.remove()


# --------------------------------------------------------------------------- builds


DOCKERFILE = """FROM busybox
RUN rm /etc/shadow
COPY hello.txt /app/hello.txt
RUN mkdir /data && echo payload > /data/file && chmod 600 /data/file
WORKDIR /work
COPY hello.txt /work/
"""


def _build_both_ways(root: Path, driver: str, busybox: str, ctx: Path, monkeypatch) -> dict:
    monkeypatch.setenv(ENV, driver)
    eng = Engine(root)
    try:
        eng.images.bootstrap("busybox", binary=busybox)
        (ctx / "hello.txt").write_text("hello\n")
        first: list = []
        image = eng.build(ctx, tags=["built"], on_event=first.append)
        entries = [layer_entries_of(eng, image, i) for i in range(len(eng.images.get("busybox").layers),
                                                                  len(image.layers))]
        again: list = []
        eng.build(ctx, tags=["built"], on_event=again.append)
        (ctx / "hello.txt").write_text("hello again\n")
        changed: list = []
        eng.build(ctx, tags=["built"], on_event=changed.append)
        steps = [[(e.step, e.cache, e.reason) for e in run if e.kind == "step" and e.cache]
                 for run in (first, again, changed)]
        output = eng.run("built", ["sh", "-c", "cat /app/hello.txt /data/file; ls /etc/shadow"]).output
        return {"entries": entries, "steps": steps, "output": output}
    finally:
        assert not clean_engine(eng)


def layer_entries_of(engine, image, index):
    data = engine.store.read_blob(image.layers[index].digest, "layer")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        return [(m.name, m.type, oct(m.mode), m.uid, m.gid, m.size, m.linkname,
                 hashlib.sha256(tar.extractfile(m).read()).hexdigest()[:16] if m.isreg() else "")
                for m in tar]


def test_a_build_gives_the_same_layers_and_cache_on_both_drivers(tmp_path, busybox_binary, monkeypatch):
    results = {}
    for driver in ("overlay", "vfs"):
        ctx = tmp_path / f"ctx-{driver}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(DOCKERFILE)
        results[driver] = _build_both_ways(tmp_path / f"store-{driver}", driver, busybox_binary, ctx, monkeypatch)
    vfs_run, overlay_run = results["vfs"], results["overlay"]
    assert vfs_run["entries"] == overlay_run["entries"]
    names = [[e[0] for e in layer] for layer in vfs_run["entries"]]
    assert names == [["etc", "etc/.wh.shadow"], ["app", "app/hello.txt"], ["data", "data/file"],
                     ["work"], ["work", "work/hello.txt"]]
    assert vfs_run["steps"] == overlay_run["steps"]
    assert all(cache == "HIT" for _, cache, _ in vfs_run["steps"][1])
    changed = vfs_run["steps"][2]
    assert [c for _, c, _ in changed] == ["HIT", "MISS", "MISS", "MISS", "MISS"]
    assert "hello.txt" in changed[1][2]
    assert vfs_run["output"] == overlay_run["output"] == b"hello again\npayload\n"


def test_copy_tree_copies_without_linking_to_the_source(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"x" * 100_000)
    os.link(src / "d" / "f", src / "g")
    os.symlink("/etc/shadow", src / "link")
    os.mkfifo(src / "fifo")
    os.chmod(src / "d", 0o750)
    os.chown(src / "g", 7, 8)
    os.setxattr(src / "d" / "f", "user.tag", b"1")
    if not rootless_mode():   # trusted.* needs CAP_SYS_ADMIN in the host's user namespace
        os.setxattr(src / "d" / "f", "trusted.private", b"2")   # not a layer's: not copied
    os.utime(src / "d", ns=(1, 1_000_000_123))
    stats = vfs.copy_tree(src, dst)
    assert stats.bytes == 100_000 and set(stats.dirs) == {"", "d"}
    st = os.stat(dst / "d" / "f")
    assert st.st_ino == os.stat(dst / "g").st_ino != os.stat(src / "g").st_ino
    assert (st.st_uid, st.st_gid, st.st_nlink) == (7, 8, 2)
    assert os.getxattr(dst / "d" / "f", "user.tag") == b"1"
    assert "trusted.private" not in os.listxattr(dst / "d" / "f")
    assert os.readlink(dst / "link") == "/etc/shadow"
    assert os.stat(dst / "d").st_mtime_ns == 1_000_000_123 and os.stat(dst / "d").st_mode & 0o777 == 0o750
    assert stat_is_fifo(dst / "fifo")
    (dst / "g").write_text("changed")
    assert (src / "g").read_bytes() == b"x" * 100_000


def stat_is_fifo(path):
    import stat
    return stat.S_ISFIFO(os.lstat(path).st_mode)
