"""open_in_root and open_beneath, with openat2 and with the descriptor walk used without it."""

from __future__ import annotations

import errno
import os

import pytest

from sandbox.kernel import resolve


@pytest.fixture(params=["openat2", "walk"])
def mode(request, monkeypatch):
    if request.param == "walk":
        monkeypatch.setitem(resolve._state, "missing", True)
    return request.param


@pytest.fixture
def tree(tmp_path):
    """root/ is "the container"; outside/ holds a secret that must never be reached."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "shadow").write_text("HOST SECRET")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "shadow").write_text("container shadow")
    (root / "tmp").mkdir()
    os.symlink("/etc/shadow", root / "tmp" / "abs")                 # absolute: the container's /etc
    os.symlink("../../../../../outside/shadow", root / "tmp" / "up")  # climbs: clamped at the root
    os.symlink("/etc", root / "tmp" / "etcdir")
    os.symlink("loop", root / "tmp" / "loop")
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def read(dirfd, path, **kw):
    fd = resolve.open_in_root(dirfd, path, os.O_RDONLY, **kw)
    try:
        return os.read(fd, 100).decode()
    finally:
        os.close(fd)


def test_links_and_dotdot_resolve_inside_the_root(tree, mode):
    assert read(tree, "/tmp/abs") == "container shadow"
    assert read(tree, "tmp/etcdir/shadow") == "container shadow"
    assert read(tree, "/../../etc/shadow") == "container shadow"
    with pytest.raises(FileNotFoundError):
        read(tree, "/tmp/up")            # /outside/shadow inside the root: not there


def test_a_loop_is_eloop(tree, mode):
    with pytest.raises(OSError) as info:
        read(tree, "/tmp/loop")
    assert info.value.errno == errno.ELOOP


def test_follow_last_false_still_follows_the_links_before_it(tree, mode):
    fd = resolve.open_in_root(tree, "/tmp/etcdir/shadow", os.O_PATH, follow_last=False)
    os.close(fd)


def test_follow_last_false_opens_the_link_itself(tree, mode):
    fd = resolve.open_in_root(tree, "/tmp/etcdir/../tmp/abs", os.O_PATH, follow_last=False)
    try:
        assert os.readlink("", dir_fd=fd) == "/etc/shadow"
    finally:
        os.close(fd)


def test_beneath_refuses_any_link_and_dotdot(tree, mode):
    fd = resolve.open_beneath(tree, "etc/shadow", os.O_RDONLY)
    assert os.read(fd, 100) == b"container shadow"
    os.close(fd)
    for bad, code in (("tmp/etcdir/shadow", (errno.ELOOP, errno.ENOTDIR)), ("../outside/shadow", (errno.EXDEV,))):
        with pytest.raises(OSError) as info:
            resolve.open_beneath(tree, bad, os.O_RDONLY)
        assert info.value.errno in code
