"""A container never makes the host read or write a host path.

Each place where a path the container (or its image) controls meets the host
gets a probe: a symlink to a host file, a ``..`` that climbs, and, for the
places a running container can race, a loop inside the container that swaps
a directory for a symlink to the host while the engine works.  The host side
holds a secret (``HOST SECRET``) and an empty directory; a probe passes when
the secret never comes out and the directory stays empty.
"""

from __future__ import annotations

import io
import os
import tarfile
import time

import pytest

from sandbox.errors import NotFound, SandboxError
from tests.conftest import requires_containers
from tests.integration.container_env import engine  # noqa: F401

pytestmark = requires_containers   # root, or rootless (tools/rootless_tier.py)
SECRET = b"HOST SECRET"


@pytest.fixture
def host(tmp_path):
    """A host directory with a secret in it, and an empty one that must stay empty."""
    (tmp_path / "secret" / "etc").mkdir(parents=True)
    (tmp_path / "secret" / "etc" / "shadow").write_bytes(SECRET + b"\n")
    (tmp_path / "secret" / "hostonly-marker").write_bytes(SECRET)
    (tmp_path / "empty").mkdir()
    return tmp_path


@pytest.fixture
def box(engine):
    c = engine.containers.run("busybox", ["sleep", "300"], detach=True)
    yield c
    c.remove(force=True)


def sh(c, script: str) -> str:
    r = c.exec_run(["sh", "-c", script])
    assert r.exit_code == 0, r.output
    return r.output.decode()


def test_cp_follow_link_gives_the_containers_file(box, host, tmp_path):
    sh(box, f"echo container-shadow > /etc/shadow; ln -s /etc/shadow /tmp/x; "
            f"ln -s {host}/secret/etc/shadow /tmp/hostlink; ln -s /etc /tmp/etcdir")
    for state in ("running", "stopped"):
        out = tmp_path / f"out-{state}"
        box.copy_from("/tmp/x", str(out), follow_link=True)
        assert out.read_bytes() == b"container-shadow\n" and not out.is_symlink()
        linked = tmp_path / f"link-{state}"
        box.copy_from("/tmp/x", str(linked))                   # without -L: the link itself
        assert os.readlink(linked) == "/etc/shadow"
        with pytest.raises(NotFound):                          # the host path is not in the container
            box.copy_from("/tmp/hostlink", str(tmp_path / f"no-{state}"), follow_link=True)
        through = tmp_path / f"through-{state}"
        box.copy_from("/tmp/etcdir/shadow", str(through))      # a symlinked directory: in the container
        assert through.read_bytes() == b"container-shadow\n"
        climbed = tmp_path / f"climbed-{state}"
        box.copy_from("/../../../../../etc/shadow", str(climbed))
        assert climbed.read_bytes() == b"container-shadow\n"
        box.stop(timeout=0)


def test_cp_into_a_container_through_links_stays_inside(box, host):
    sh(box, f"ln -s {host}/empty /tmp/hostdir; ln -s /etc /tmp/etcdir; mkdir -p {host}/empty")
    payload = host / "payload"
    payload.write_text("from the host\n")
    box.copy_to(str(payload), "/tmp/hostdir/")                 # the container's own {host}/empty
    box.copy_to(str(payload), "/tmp/etcdir/")
    box.copy_to(str(payload), "/../../../tmp/")
    assert sh(box, f"cat {host}/empty/payload /etc/payload /tmp/payload") == "from the host\n" * 3
    assert list((host / "empty").iterdir()) == []
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        link = tarfile.TarInfo("up")
        link.type, link.linkname = tarfile.SYMTYPE, str(host / "empty")
        tar.addfile(link)
        f = tarfile.TarInfo("up/planted")
        f.size = 4
        tar.addfile(f, io.BytesIO(b"evil"))
    with pytest.raises(SandboxError):
        box.put_archive("/tmp", io.BytesIO(evil.getvalue()))   # an archive through its own link
    assert list((host / "empty").iterdir()) == []


def swapping(target: str, host_dir: str) -> str:
    """A loop that turns ``target`` into a real directory and into a link to the host, over and over."""
    return (f"mkdir -p /real/etc; echo in-container > /real/etc/shadow; "
            f"while :; do rm -rf {target}; ln -s {host_dir} {target}; rm -f {target}; "
            f"cp -a /real {target}; done")


def test_cp_while_the_container_swaps_a_link_in(engine, host, tmp_path):
    c = engine.containers.run("busybox", ["sh", "-c", swapping("/tmp/sw", str(host / "secret"))],
                              detach=True)
    try:
        seen = set()
        deadline = time.monotonic() + 3
        i = 0
        while time.monotonic() < deadline:
            i += 1
            out = tmp_path / f"o{i}"
            try:
                c.copy_from("/tmp/sw/etc/shadow", str(out), follow_link=True)
                seen.add(out.read_bytes())
            except (SandboxError, OSError):
                pass                                           # not there at that instant: fine
            try:
                c.copy_to(str(host / "secret" / "hostonly-marker"), "/tmp/sw/etc/")
            except (SandboxError, OSError):
                pass
        assert i > 10 and not any(SECRET in s for s in seen)
        assert b"in-container\n" in seen                      # the copies did happen
        assert sorted(os.listdir(host / "secret")) == ["etc", "hostonly-marker"]
        assert os.listdir(host / "secret" / "etc") == ["shadow"]  # nothing written on the host
    finally:
        c.remove(force=True)


def test_export_diff_and_commit_while_the_container_swaps_a_link_in(engine, host):
    c = engine.containers.run("busybox", ["sh", "-c", swapping("/sw", str(host / "secret"))],
                              detach=True)
    images = []
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            buf = io.BytesIO()
            try:
                c.export(buf)
            except SandboxError:
                pass                                           # refused mid-swap: never followed
            assert SECRET not in buf.getvalue()
            names = " ".join(path for _, path in c.changes())
            assert "hostonly-marker" not in names              # the host directory's names never show
            try:
                images.append(c.commit(repository="swapcommit", pause=False))
            except SandboxError:
                pass
        assert images                                          # some commits went through
        for image in images:
            buf = io.BytesIO()
            engine.images.save([image.id], buf)
            assert SECRET not in buf.getvalue()
    finally:
        c.remove(force=True)
        for image in images:
            try:
                engine.images.remove(image.id, force=True)
            except SandboxError:
                pass


def test_a_volume_target_that_is_a_link_to_the_host_mounts_inside(engine, host, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN ln -s {host}/empty /data\n")
    engine.build(ctx, tags=["linkvol"])
    src = tmp_path / "bindsrc"
    src.mkdir()
    (src / "file").write_text("bound\n")
    try:
        # The init layer makes /data a mount point over the image's link (Docker would
        # mount at the link's target inside the container); either way, inside.
        r = engine.run("linkvol", ["sh", "-c", f"cat /data/file || cat {host}/empty/file"],
                       volumes={str(src): {"bind": "/data", "mode": "ro"}})
        assert r.exit_code == 0 and r.output == b"bound\n"
        assert list((host / "empty").iterdir()) == []          # nothing mounted or made on the host
        with open("/proc/self/mountinfo") as f:
            assert str(host / "empty") not in f.read()
    finally:
        engine.images.remove("linkvol", force=True)
