"""The builder's shortcuts that must not change what a build sees: opening a top-level
context entry without the kernel's resolver, and cache records that a crash may tear."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sandbox.build import context, copyfs
from sandbox.build.cache import BuildCache


def _root(tmp_path: Path) -> int:
    return os.open(tmp_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def test_a_plain_top_level_name_opens_the_entry_itself(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "files").mkdir()
    assert context.read_in_root(tmp_path, "Dockerfile") == b"FROM scratch\n"
    fd = _root(tmp_path)
    try:
        sub = context.open_in_root(fd, "files", os.O_PATH | os.O_DIRECTORY)
        assert os.readlink(context.fd_path(sub)) == str(tmp_path / "files")
        os.close(sub)
        top = context.open_in_root(fd, "", os.O_PATH)
        assert os.readlink(context.fd_path(top)) == str(tmp_path)
        os.close(top)
        with pytest.raises(FileNotFoundError):
            context.open_in_root(fd, "missing", os.O_RDONLY)
    finally:
        os.close(fd)


def test_a_top_level_symlink_is_still_followed_inside_the_context_only(tmp_path):
    """``Dockerfile -> /etc/hostname`` reads the context's etc/hostname, never the host's."""
    (tmp_path / "Dockerfile").symlink_to("/etc/hostname")
    with pytest.raises(FileNotFoundError):
        context.read_in_root(tmp_path, "Dockerfile")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hostname").write_text("inside\n")
    assert context.read_in_root(tmp_path, "Dockerfile") == b"inside\n"
    (tmp_path / "up").symlink_to("../..")
    (tmp_path / "dir").symlink_to("/etc")
    fd = _root(tmp_path)
    try:
        for name in ("up", ".."):      # climbs no higher than the context
            got = context.open_in_root(fd, name, os.O_PATH | os.O_DIRECTORY)
            assert os.readlink(context.fd_path(got)) == str(tmp_path)
            os.close(got)
        got = context.open_in_root(fd, "dir", os.O_PATH | os.O_DIRECTORY)   # ENOTDIR without the resolver
        assert os.readlink(context.fd_path(got)) == str(tmp_path / "etc")
        os.close(got)
        link = context.open_in_root(fd, "dir", os.O_PATH, follow_last=False)
        assert stat.S_ISLNK(os.fstat(link).st_mode)
        os.close(link)
    finally:
        os.close(fd)


def test_copyfs_link_limit_is_the_kernel_resolvers():
    from sandbox.kernel import resolve
    assert copyfs.MAX_LINKS == resolve.MAX_LINKS


class _Store:
    """What BuildCache uses of a store: its root, blobs and leases."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs: set[str] = set()
        self.checked: list[str] = []

    def has_blob(self, digest: str) -> bool:
        self.checked.append(digest)
        return digest in self.blobs

    def lease(self, holder: str, **_: object) -> None:
        pass


def test_a_torn_or_foreign_cache_record_is_a_miss(tmp_path):
    store = _Store(tmp_path)
    cache = BuildCache(store)
    layer = {"diff_id": "sha256:" + "1" * 64, "digest": "sha256:" + "2" * 64, "size": 1, "media_type": "x"}
    store.blobs.add(layer["digest"])
    cache.put("k1", "parent", {"config": {}, "layers": [layer], "chain_ids": []})
    assert cache.get("k1")["key"] == "k1"
    path = cache.dir / "k1.json"
    whole = path.read_bytes()
    for torn in (b"", whole[: len(whole) // 2], b"\0" * len(whole)):
        path.write_bytes(torn)
        assert cache.get("k1") is None
    path.write_bytes(json.dumps(dict(json.loads(whole), key="other")).encode())
    assert cache.get("k1") is None        # a record moved or copied under another key
    path.write_bytes(whole)
    assert cache.get("k1") is not None
    assert store.checked.count(layer["digest"]) == 1   # each blob is checked once per cache
