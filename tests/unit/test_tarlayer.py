"""Layer tars: deterministic writing, safe applying, whiteouts, diffs, compression."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import BlobCorrupt, LayerError, UnsafeLayerEntry
from sandbox.image.tarlayer import applying, checking, reading, writing
from sandbox.image.tarlayer import (
    OPAQUE_MARKER,
    apply_layer,
    open_layer,
    source_date_epoch,
    tree_changes,
    unpack_layer,
    write_overlay_upper,
    write_tree,
)

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="requires root (mknod, chown, trusted.* xattrs)")
EPOCH = 1_700_000_000
#: vfs_cap_data revision 2 with CAP_NET_BIND_SERVICE (10) permitted and effective.
CAP_NET_BIND = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)


# --------------------------------------------------------------------------- helpers


def _info(name: str, type_: bytes, mode: int = 0o644, **attrs: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = type_, mode, attrs.pop("mtime", EPOCH)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def reg(name: str, data: bytes = b"", mode: int = 0o644, **attrs: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = _info(name, tarfile.REGTYPE, mode, **attrs)
    info.size = len(data)
    return info, data


def dir_(name: str, mode: int = 0o755, **attrs: Any) -> tarfile.TarInfo:
    return _info(name, tarfile.DIRTYPE, mode, **attrs)


def sym(name: str, target: str) -> tarfile.TarInfo:
    return _info(name, tarfile.SYMTYPE, 0o777, linkname=target)


def hardlink(name: str, target: str) -> tarfile.TarInfo:
    return _info(name, tarfile.LNKTYPE, 0o644, linkname=target)


def tar_bytes(*entries: Any) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            if isinstance(entry, tuple):
                tar.addfile(entry[0], io.BytesIO(entry[1]))
            else:
                tar.addfile(entry)
    return buf.getvalue()


def tree_bytes(root: Path, **kwargs: Any) -> bytes:
    out = io.BytesIO()
    write_tree(root, out, **kwargs)
    return out.getvalue()


def tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.name + ("/" if m.isdir() else "") for m in tar.getmembers()]


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything about every entry under root, to prove nothing changed."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            content: Any = None
            if stat.S_ISREG(st.st_mode):
                content = Path(path).read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            out[os.path.relpath(path, root)] = (
                st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_nlink, st.st_rdev, content)
    return out


class NonSeekable(io.RawIOBase):
    """A pipe-like reader: no seek, no tell, short reads."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        chunk = self._data.read(min(len(buf), 3000))
        buf[:len(chunk)] = chunk
        return len(chunk)


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    """A target with some content and an 'outside' directory beside it."""
    target = tmp_path / "target"
    outside = tmp_path / "outside"
    (target / "etc").mkdir(parents=True)
    (target / "etc" / "hostname").write_text("box\n")
    outside.mkdir()
    (outside / "secret").write_text("s3cret\n")
    return target, outside


# --------------------------------------------------------------------------- round trip


def _build_rich_tree(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "bin" / "tool", 0o4755)
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.link(root / "etc" / "passwd", root / "etc" / "passwd-")
    os.symlink("../etc/passwd", root / "bin" / "pw")
    os.symlink("/does/not/exist", root / "dangling")
    os.mkfifo(root / "fifo", 0o640)
    (root / "empty").mkdir(mode=0o700)
    os.chmod(root / "empty", 0o1777)
    os.setxattr(root / "etc" / "passwd", "user.note", b"\xff\x00binary")
    os.utime(root / "etc" / "passwd", ns=(EPOCH * 10**9, EPOCH * 10**9))
    if IS_ROOT:
        os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.setxattr(root / "bin" / "tool", "security.capability", CAP_NET_BIND)
        os.chown(root / "etc" / "passwd", 1234, 5678)
        os.chown(root / "bin" / "pw", 1234, 5678, follow_symlinks=False)
        os.chmod(root / "bin" / "tool", 0o4755)  # chown cleared setuid
        os.setxattr(root / "bin" / "tool", "security.capability", CAP_NET_BIND)
    for sub in ("bin", "etc", "empty"):
        os.utime(root / sub, (EPOCH - 100, EPOCH - 100))


def test_round_trip_keeps_every_kind_of_entry(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _build_rich_tree(src)
    data = tree_bytes(src)
    size = apply_layer(io.BytesIO(data), dst)
    assert size == sum(os.lstat(p).st_size for p in [src / "bin" / "tool", src / "etc" / "passwd"])
    before, after = snapshot(src), snapshot(dst)
    assert after.keys() == before.keys()
    for rel in before:
        mode, uid, gid, mtime, nlink, rdev, content = before[rel]
        assert after[rel][:3] == (mode, uid, gid), rel
        assert after[rel][3] // 10**9 == mtime // 10**9, rel  # whole seconds
        assert after[rel][4:] == (nlink, rdev, content), rel
    assert os.stat(dst / "etc" / "passwd").st_ino == os.stat(dst / "etc" / "passwd-").st_ino
    assert os.getxattr(dst / "etc" / "passwd", "user.note") == b"\xff\x00binary"
    assert stat.S_IMODE(os.stat(dst / "bin" / "tool").st_mode) == 0o4755
    assert stat.S_ISFIFO(os.lstat(dst / "fifo").st_mode)
    # the applied tree writes the very same layer again
    assert tree_bytes(dst) == data


@needs_root
def test_round_trip_root_only_entries(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _build_rich_tree(src)
    apply_layer(io.BytesIO(tree_bytes(src)), dst)
    st = os.lstat(dst / "null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert os.getxattr(dst / "bin" / "tool", "security.capability") == CAP_NET_BIND
    assert stat.S_IMODE(os.stat(dst / "bin" / "tool").st_mode) == 0o4755
    assert (os.stat(dst / "etc" / "passwd").st_uid, os.stat(dst / "etc" / "passwd").st_gid) == (1234, 5678)
    assert os.lstat(dst / "bin" / "pw").st_uid == 1234


@needs_root
def test_numeric_owners_win_over_names(tmp_path: Path) -> None:
    layer = tar_bytes(reg("f", b"x", uid=1234, gid=5678, uname="root", gname="root"),
                      dir_("d", uid=42, gid=43, uname="nobody"))
    apply_layer(io.BytesIO(layer), tmp_path / "t")
    st = os.stat(tmp_path / "t" / "f")
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert (os.stat(tmp_path / "t" / "d").st_uid, os.stat(tmp_path / "t" / "d").st_gid) == (42, 43)


def test_tar_headers_are_normalised(tmp_path: Path) -> None:
    (tmp_path / "src" / "d").mkdir(parents=True)
    (tmp_path / "src" / "d" / "f").write_text("x")
    os.setxattr(tmp_path / "src" / "d" / "f", "user.overlay.origin", b"no")
    os.setxattr(tmp_path / "src" / "d" / "f", "user.keep", b"yes")
    data = tree_bytes(tmp_path / "src")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["d", "d/f"]
    assert all(m.uname == "" and m.gname == "" for m in members)
    assert members[1].pax_headers == {"SCHILY.xattr.user.keep": "yes"}
    assert b"atime" not in data and b"ctime" not in data
    assert b"d/\x00" in data  # directory names end with a slash


def test_mtimes_are_set_after_children_and_clamped(tmp_path: Path) -> None:
    layer = tar_bytes(dir_("d", mtime=1000), reg("d/a", b"1", mtime=2000), dir_("d/e", mtime=3000),
                      reg("d/e/f", b"2", mtime=4000), sym("d/s", "a"))
    apply_layer(io.BytesIO(layer), tmp_path / "t")
    assert os.stat(tmp_path / "t" / "d").st_mtime == 1000
    assert os.stat(tmp_path / "t" / "d" / "e").st_mtime == 3000
    assert os.stat(tmp_path / "t" / "d" / "a").st_mtime == 2000
    assert os.lstat(tmp_path / "t" / "d" / "s").st_mtime == EPOCH
    data = tree_bytes(tmp_path / "t", epoch=2500)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert {m.name: m.mtime for m in tar} == {
            "d": 1000, "d/a": 2000, "d/e": 2500, "d/e/f": 2500, "d/s": 2500}


def test_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert source_date_epoch() == EPOCH
    for bad in ("", "soon", "-5", "1.5"):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", bad)
        assert source_date_epoch() is None
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert source_date_epoch() is None


# --------------------------------------------------------------------------- determinism


def _build_for_determinism(root: Path, order: int, mtime: int) -> None:
    files = {"a/b/c.txt": b"c", "a/z.txt": b"z", "a-b": b"dash", "m/n/o/p": b"deep", "A": b"upper"}
    names = sorted(files, reverse=bool(order))
    for rel in names:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(files[rel])
    first, second = ("a/z.txt", "m/link") if order else ("m/link", "a/z.txt")
    if order:
        os.link(root / first, root / second)
    else:
        (root / "m" / "link").write_bytes(b"z")
        os.unlink(root / "a" / "z.txt")
        os.link(root / "m" / "link", root / "a" / "z.txt")
    os.symlink("b/c.txt", root / "a" / "sym")
    os.setxattr(root / "a-b", "user.one", b"1")
    os.setxattr(root / "a-b", "user.two", b"2")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755 if name in dirnames else 0o640)
            os.utime(path, (mtime, mtime), follow_symlinks=False)


def test_same_tree_gives_identical_bytes(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    old = os.umask(0o022)
    try:
        one.mkdir()
        _build_for_determinism(one, 0, EPOCH + 5)
        os.umask(0o077)
        two.mkdir()
        _build_for_determinism(two, 1, EPOCH + 86400)
    finally:
        os.umask(old)
    data_one = tree_bytes(one, epoch=EPOCH)
    data_two = tree_bytes(two, epoch=EPOCH)
    assert hashlib.sha256(data_one).hexdigest() == hashlib.sha256(data_two).hexdigest()
    assert tar_names(data_one) == ["A", "a/", "a/b/", "a/b/c.txt", "a/sym", "a/z.txt", "a-b",
                                   "m/", "m/link", "m/n/", "m/n/o/", "m/n/o/p"]
    with tarfile.open(fileobj=io.BytesIO(data_one)) as tar:
        link = tar.getmember("m/link")
    assert link.islnk() and link.linkname == "a/z.txt"


def test_paths_deleted_and_opaque_order(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr" / "lib" / "x").mkdir(parents=True)
    (root / "usr" / "lib" / "x" / "f").write_text("f")
    (root / "usr" / "lib" / "!bang").write_text("b")
    (root / "usr" / "other").write_text("o")
    data = tree_bytes(root, paths=["usr/lib/x/f", "usr/lib/!bang", "usr/lib"],
                      deleted=["usr/gone", "toplevel"], opaque=["usr/lib"], epoch=EPOCH)
    names = tar_names(data)
    assert names == sorted(names, key=lambda n: writing._sort_key(n.rstrip("/")))
    assert names.index("usr/lib/.wh..wh..opq") == names.index("usr/lib/") + 1
    assert set(names) == {"usr/", "usr/.wh.gone", "usr/lib/", "usr/lib/.wh..wh..opq",
                          "usr/lib/!bang", "usr/lib/x/", "usr/lib/x/f", ".wh.toplevel"}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        marker = tar.getmember("usr/.wh.gone")
    assert (marker.isreg(), marker.size, marker.mode, marker.uid, marker.mtime) == (True, 0, 0, 0, EPOCH)


# --------------------------------------------------------------------------- whiteouts


def _merge_target(tmp_path: Path) -> Path:
    target = tmp_path / "t"
    (target / "etc").mkdir(parents=True)
    (target / "etc" / "keep").write_text("k")
    (target / "etc" / "gone").write_text("g")
    (target / "dir" / "sub").mkdir(parents=True)
    (target / "dir" / "sub" / "f").write_text("f")
    (target / "d" / "old2").mkdir(parents=True)
    (target / "d" / "old1").write_text("1")
    (target / "d" / "old2" / "f").write_text("2")
    return target


def test_merge_whiteouts_remove_lower_files(tmp_path: Path) -> None:
    target = _merge_target(tmp_path)
    layer = tar_bytes(dir_("etc"), reg("etc/.wh.gone"), reg(".wh.dir"), reg("new", b"n"),
                      reg("etc/.wh.missing"))
    apply_layer(io.BytesIO(layer), target)
    assert sorted(os.listdir(target)) == ["d", "etc", "new"]
    assert os.listdir(target / "etc") == ["keep"]


@pytest.mark.parametrize("marker_first", [True, False])
def test_merge_opaque_keeps_only_this_layer(tmp_path: Path, marker_first: bool) -> None:
    target = _merge_target(tmp_path)
    marker = reg(f"d/{OPAQUE_MARKER}")
    siblings = [reg("d/new", b"new"), reg("d/old2/g", b"g")]
    entries = [dir_("d"), marker, *siblings] if marker_first else [dir_("d"), *siblings, marker]
    apply_layer(io.BytesIO(tar_bytes(*entries)), target)
    assert sorted(os.listdir(target / "d")) == ["new", "old2"]
    assert os.listdir(target / "d" / "old2") == ["g"]
    assert (target / "etc" / "gone").exists()


def test_merge_whiteout_after_same_layer_entry_keeps_it(tmp_path: Path) -> None:
    target = _merge_target(tmp_path)
    apply_layer(io.BytesIO(tar_bytes(reg("etc/gone", b"new"), reg("etc/.wh.gone"))), target)
    assert (target / "etc" / "gone").read_bytes() == b"new"


@needs_root
def test_overlay_mode_makes_overlay_whiteouts(tmp_path: Path) -> None:
    layer = tar_bytes(dir_("a"), reg("a/.wh.x"), reg(".wh.top"), dir_("o"), reg("o/f", b"f"),
                      reg(f"o/{OPAQUE_MARKER}"), reg(f"p/{OPAQUE_MARKER}"))
    target = tmp_path / "layer"
    apply_layer(io.BytesIO(layer), target, mode="overlay")
    for dev in (target / "a" / "x", target / "top"):
        st = os.lstat(dev)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
        assert stat.S_IMODE(st.st_mode) == 0 and (st.st_uid, st.st_gid) == (0, 0)
    assert os.getxattr(target / "o", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(target / "p", "trusted.overlay.opaque") == b"y"
    assert (target / "o" / "f").read_bytes() == b"f"
    assert not (target / "a" / ".wh.x").exists()


@needs_root
def test_overlay_xattrs_in_tar_are_ignored(tmp_path: Path) -> None:
    info, data = reg("f", b"x")
    info.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.ok": "1",
                        "SCHILY.xattr.security.selinux": "system_u:object_r:bin_t:s0"}
    apply_layer(io.BytesIO(tar_bytes((info, data))), tmp_path / "t")
    assert os.listxattr(tmp_path / "t" / "f") == ["user.ok"]


@needs_root
def test_write_overlay_upper_turns_overlay_marks_into_whiteouts(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    (upper / "d" / "f").write_text("f")
    os.setxattr(upper / "d", "trusted.overlay.opaque", b"y")
    (upper / "d2").mkdir()
    os.setxattr(upper / "d2", "trusted.overlay.impure", b"y")
    os.mknod(upper / "gone", stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(upper / "d2" / "gone2", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "file").write_text("x")
    out = io.BytesIO()
    write_overlay_upper(upper, out, epoch=EPOCH)
    data = out.getvalue()
    assert tar_names(data) == [".wh.gone", "d/", "d/.wh..wh..opq", "d/f", "d2/", "d2/.wh.gone2", "file"]
    assert b"trusted.overlay" not in data
    # and back again: merge removes, overlay mode recreates the marks
    lower = tmp_path / "lower"
    (lower / "d" / "old").mkdir(parents=True)
    (lower / "gone").write_text("g")
    apply_layer(io.BytesIO(data), lower)
    assert not (lower / "gone").exists() and os.listdir(lower / "d") == ["f"]
    again = tmp_path / "again"
    apply_layer(io.BytesIO(data), again, mode="overlay")
    assert os.lstat(again / "d2" / "gone2").st_rdev == 0
    assert os.getxattr(again / "d", "trusted.overlay.opaque") == b"y"


# --------------------------------------------------------------------------- tree_changes


def test_tree_changes(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for rel, data in {"same": "s", "mod": "m", "touched": "t", "gone": "g", "gonedir/a/b": "b",
                      "typechg": "t", "dir/unchanged": "u", "dir/childmod": "c", "perm": "p"}.items():
        (lower / rel).parent.mkdir(parents=True, exist_ok=True)
        (lower / rel).write_text(data)
    (lower / "todir").write_text("x")
    os.symlink("same", lower / "link")
    shutil.copytree(lower, upper, symlinks=True)
    (upper / "mod").write_text("M")
    os.utime(upper / "touched", (EPOCH, EPOCH))
    shutil.rmtree(upper / "gonedir")
    os.unlink(upper / "gone")
    os.unlink(upper / "typechg")
    os.symlink("same", upper / "typechg")
    os.unlink(upper / "todir")
    (upper / "todir" / "sub").mkdir(parents=True)
    (upper / "todir" / "sub" / "f").write_text("f")
    (upper / "dir" / "childmod").write_text("changed")
    (upper / "dir" / "added").write_text("new")
    os.chmod(upper / "perm", 0o600)
    os.unlink(upper / "link")
    os.symlink("mod", upper / "link")
    os.setxattr(upper / "same", "user.tag", b"1")
    changed, deleted = tree_changes(lower, upper)
    assert changed == ["dir/added", "dir/childmod", "link", "mod", "perm", "same", "todir",
                       "todir/sub", "todir/sub/f", "typechg"]
    assert deleted == ["gone", "gonedir"]


def test_tree_changes_feed_write_tree(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "a" / "b").mkdir(parents=True)
    (lower / "a" / "b" / "old").write_text("o")
    shutil.copytree(lower, upper, symlinks=True)
    (upper / "a" / "b" / "new").write_text("n")
    os.unlink(upper / "a" / "b" / "old")
    changed, deleted = tree_changes(lower, upper)
    data = tree_bytes(upper, paths=changed, deleted=deleted, epoch=EPOCH)
    assert tar_names(data) == ["a/", "a/b/", "a/b/.wh.old", "a/b/new"]
    flat = tmp_path / "flat"
    shutil.copytree(lower, flat, symlinks=True)
    apply_layer(io.BytesIO(data), flat)
    assert os.listdir(flat / "a" / "b") == ["new"]


# --------------------------------------------------------------------------- safety


def _assert_refused(world: tuple[Path, Path], layer: bytes, mode: str = "merge") -> UnsafeLayerEntry:
    target = world[0]
    everything = target.parent
    before = snapshot(everything)
    with pytest.raises(UnsafeLayerEntry) as info:
        apply_layer(io.BytesIO(layer), target, mode=mode)
    assert snapshot(everything) == before
    assert not os.path.exists("/abs")
    return info.value


@pytest.mark.parametrize("name", ["../evil", "/abs/evil", "a/../../evil", "a/\x00/../../evil"])
def test_refuses_escaping_names(world: tuple[Path, Path], name: str) -> None:
    info, data = reg(name, b"evil")
    info.pax_headers = {"path": name}  # a ustar name field would stop at the NUL
    err = _assert_refused(world, tar_bytes(reg("ok", b"fine"), dir_("a"), (info, data)))
    assert err.name == name


def test_refuses_write_through_symlink_made_by_the_tar(world: tuple[Path, Path]) -> None:
    _, outside = world
    for link_target in (str(outside), "../outside", "/tmp"):
        _assert_refused(world, tar_bytes(reg("ok", b"ok"), sym("link", link_target),
                                         reg("link/evil", b"evil")))


def test_refuses_write_through_existing_symlink(world: tuple[Path, Path]) -> None:
    target, outside = world
    os.symlink(outside, target / "pre")
    err = _assert_refused(world, tar_bytes(reg("ok", b"ok"), reg("pre/evil", b"evil")))
    assert "symlink" in err.reason
    _assert_refused(world, tar_bytes(reg("pre/.wh.secret")))
    _assert_refused(world, tar_bytes(reg(f"pre/{OPAQUE_MARKER}")))


@pytest.mark.parametrize("linkname", ["../outside/secret", "/etc/passwd", "a/../../x"])
def test_refuses_hard_links_out(world: tuple[Path, Path], linkname: str) -> None:
    _assert_refused(world, tar_bytes(reg("ok", b"ok"), hardlink("hl", linkname)))


def test_refuses_hard_links_through_symlinks(world: tuple[Path, Path]) -> None:
    target, outside = world
    os.symlink(outside, target / "sl")
    _assert_refused(world, tar_bytes(reg("ok", b"ok"), hardlink("hl", "sl/secret")))
    _assert_refused(world, tar_bytes(sym("new", str(outside)), hardlink("hl", "new/secret")))


def test_refuses_hard_link_to_directory(world: tuple[Path, Path]) -> None:
    _assert_refused(world, tar_bytes(reg("ok", b"ok"), hardlink("hl", "etc")))


def test_refuses_in_overlay_mode_too(world: tuple[Path, Path]) -> None:
    _assert_refused(world, tar_bytes(sym("l", "/"), reg("l/.wh.etc")), mode="overlay")


def test_file_over_symlink_replaces_the_link(world: tuple[Path, Path]) -> None:
    target, outside = world
    os.symlink(outside / "secret", target / "f")
    os.symlink(outside, target / "dirlink")
    apply_layer(io.BytesIO(tar_bytes(reg("f", b"mine"), dir_("dirlink"))), target)
    assert (outside / "secret").read_text() == "s3cret\n"
    assert not os.path.islink(target / "f") and (target / "f").read_bytes() == b"mine"
    assert not os.path.islink(target / "dirlink") and os.listdir(target / "dirlink") == []
    assert sorted(os.listdir(outside)) == ["secret"]


def test_replacing_entries(tmp_path: Path) -> None:
    target = tmp_path / "t"
    (target / "keepdir").mkdir(parents=True)
    (target / "keepdir" / "child").write_text("c")
    (target / "dir2file" / "x").mkdir(parents=True)
    (target / "file2dir").write_text("f")
    layer = tar_bytes(dir_("keepdir", mode=0o700), reg("dir2file", b"now a file"),
                      dir_("file2dir"), reg("file2dir/in", b"i"))
    apply_layer(io.BytesIO(layer), target)
    assert (target / "keepdir" / "child").exists()
    assert stat.S_IMODE(os.stat(target / "keepdir").st_mode) == 0o700
    assert (target / "dir2file").read_bytes() == b"now a file"
    assert (target / "file2dir" / "in").read_bytes() == b"i"


def test_missing_parents_are_created(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        apply_layer(io.BytesIO(tar_bytes(reg("x/y/z", b"z"))), tmp_path / "t")
    finally:
        os.umask(old)
    for d in ("x", "x/y"):
        st = os.stat(tmp_path / "t" / d)
        assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_uid == os.geteuid()


def test_check_only_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    size = apply_layer(io.BytesIO(tar_bytes(reg("a", b"12345"), reg("b/c", b"678"))), target,
                       check_only=True)
    assert size == 8 and os.listdir(target) == []


def test_devices_need_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    layer = tar_bytes(reg("a", b"a"), _info("dev/null", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3))
    with pytest.raises(LayerError, match="needs root"):
        apply_layer(io.BytesIO(layer), tmp_path / "t")
    assert not (tmp_path / "t").exists()


# --------------------------------------------------------------------------- input formats


def test_corrupt_input_is_a_layer_error(tmp_path: Path) -> None:
    target = tmp_path / "t"
    good = tar_bytes(reg("a", b"a" * 5000), reg("b", b"b" * 5000))
    cases = {
        "random": os.urandom(4096),
        "empty": b"",
        "truncated": good[:512 + 3000],
        "truncated-last": good[:512 * 2 + 5120 + 100],
        "truncated-gzip": gzip.compress(good, mtime=0)[:-20],
        "garbage-gzip": b"\x1f\x8b" + os.urandom(300),
    }
    for label, data in cases.items():
        with pytest.raises(LayerError, match="not a valid") as info:
            apply_layer(io.BytesIO(data), target)
        assert "rebuild" in str(info.value), label
        assert not target.exists() or os.listdir(target) == [], label


@pytest.mark.parametrize("kind", ["plain", "gzip", "zstd"])
@pytest.mark.parametrize("seekable", [True, False])
def test_compressions_and_streams(tmp_path: Path, kind: str, seekable: bool) -> None:
    plain = tar_bytes(dir_("d"), reg("d/f", os.urandom(3 * 1024 * 1024)))
    if kind == "gzip":
        data = gzip.compress(plain, mtime=0)
    elif kind == "zstd":
        if not shutil.which("zstd"):
            pytest.skip("requires the zstd command")
        data = subprocess.run(["zstd", "-q", "-c"], input=plain, check=True, capture_output=True).stdout
    else:
        data = plain
    assert open_layer(NonSeekable(data) if not seekable else io.BytesIO(data)).read() == plain
    source: Any = io.BytesIO(data) if seekable else io.BufferedReader(NonSeekable(data))
    assert apply_layer(source, tmp_path / "t") == 3 * 1024 * 1024
    path = tmp_path / "layer.bin"
    path.write_bytes(data)
    assert apply_layer(path, tmp_path / "t2") == 3 * 1024 * 1024
    assert (tmp_path / "t" / "d" / "f").read_bytes() == (tmp_path / "t2" / "d" / "f").read_bytes()


def test_zstd_without_a_decoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)
    monkeypatch.setattr(reading.shutil, "which", lambda name: None)
    with pytest.raises(LayerError, match="zstd"):
        apply_layer(io.BytesIO(b"\x28\xb5\x2f\xfd" + b"\x00" * 100), tmp_path / "t")


def test_corrupt_zstd(tmp_path: Path) -> None:
    if not shutil.which("zstd"):
        pytest.skip("requires the zstd command")
    with pytest.raises(LayerError):
        apply_layer(io.BytesIO(b"\x28\xb5\x2f\xfd" + os.urandom(200)), tmp_path / "t")


def test_names_long_non_utf8_and_dot_slash(tmp_path: Path) -> None:
    src = tmp_path / "src"
    long_dir = src / ("d" * 120) / ("e" * 120)
    long_dir.mkdir(parents=True)
    (long_dir / "f").write_text("long")
    odd = os.fsdecode(b"caf\xe9-\xff")
    (src / odd).write_text("latin-1 name")
    os.symlink("x" * 200, src / "longlink")
    dst = tmp_path / "dst"
    apply_layer(io.BytesIO(tree_bytes(src)), dst)
    assert snapshot(dst).keys() == snapshot(src).keys()
    assert os.readlink(dst / "longlink") == "x" * 200
    layer = tar_bytes(dir_("./"), dir_("./etc"), reg("./etc/motd", b"hi"), reg(".//etc/./issue", b"i"))
    apply_layer(io.BytesIO(layer), tmp_path / "dots")
    assert sorted(os.listdir(tmp_path / "dots" / "etc")) == ["issue", "motd"]


def test_directory_replaced_midway_is_not_written_through(tmp_path: Path) -> None:
    """The parent-fd cache must never write into a directory that was removed."""
    target = tmp_path / "t"
    layer = tar_bytes(dir_("a"), reg("a/one", b"1"), reg("a", b"now a file"), dir_("b"),
                      reg("b/x", b"x"), sym("b", "a"), dir_("b"), reg("b/y", b"y"))
    apply_layer(io.BytesIO(layer), target)
    assert (target / "a").read_bytes() == b"now a file"
    assert os.listdir(target / "b") == ["y"] and not os.path.islink(target / "b")


def test_symlink_replaced_by_dir_in_same_tar_is_safe(world: tuple[Path, Path]) -> None:
    target, outside = world
    apply_layer(io.BytesIO(tar_bytes(sym("a", str(outside)), dir_("a"), reg("a/x", b"x"))), target)
    assert (target / "a" / "x").read_bytes() == b"x"
    assert sorted(os.listdir(outside)) == ["secret"]


def test_root_opaque_hides_everything_below(tmp_path: Path) -> None:
    target = _merge_target(tmp_path)
    apply_layer(io.BytesIO(tar_bytes(reg("new", b"n"), reg(OPAQUE_MARKER))), target)
    assert os.listdir(target) == ["new"]


def test_zstd_reader_process_is_reaped(tmp_path: Path) -> None:
    if not shutil.which("zstd"):
        pytest.skip("requires the zstd command")
    plain = tar_bytes(sym("l", "/"), reg("l/evil", b"e"), reg("big", os.urandom(4 << 20)))
    data = subprocess.run(["zstd", "-q", "-c"], input=plain, check=True, capture_output=True).stdout
    children_before = set(os.listdir("/proc/self/task"))
    with pytest.raises(UnsafeLayerEntry):
        apply_layer(io.BytesIO(data), tmp_path / "t")
    assert not (tmp_path / "t").exists()
    out = subprocess.run(["ps", "-o", "pid=,stat=,comm=", "--ppid", str(os.getpid())],
                         check=False, capture_output=True, text=True).stdout
    assert "zstd" not in out
    assert set(os.listdir("/proc/self/task")) == children_before


def test_hard_link_to_a_file_removed_with_its_directory_is_refused(tmp_path: Path) -> None:
    layer = tar_bytes(dir_("d"), reg("d/f", b"f"), reg("d", b"file now"), dir_("d"),
                      hardlink("hl", "d/f"))
    with pytest.raises(LayerError, match="does not exist"):
        apply_layer(io.BytesIO(layer), tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_impossible_numbers_are_refused_before_writing(tmp_path: Path) -> None:
    bad_owner, data = reg("b", b"b", uid=2**40)
    bad_time, _ = reg("c", b"", mtime=10**30)
    bad_xattr, _ = reg("d", b"")
    bad_xattr.pax_headers = {"SCHILY.xattr.user.a\x00b": "v"}
    for bad in (bad_owner, bad_time, bad_xattr):
        with pytest.raises(LayerError, match="invalid"):
            apply_layer(io.BytesIO(tar_bytes(reg("a", b"a"), (bad, data[:bad.size]))), tmp_path / "t")
        assert not (tmp_path / "t").exists()


# --------------------------------------------------------------------------- review regressions


def _gzip_polyglot(inner: bytes) -> bytes:
    """A valid tar (one empty file, then end blocks) whose bytes are also a gzip of ``inner``.

    The gzip header's FEXTRA field spans the tar header and its end blocks, and
    the deflate stream of ``inner`` follows them, where tarfile stops reading.
    """
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflate.compress(inner) + deflate.flush()
    trailer = struct.pack("<II", zlib.crc32(inner), len(inner) & 0xFFFFFFFF)
    header = bytearray(512)
    header[0:12] = b"\x1f\x8b\x08\x04" + bytes(4) + b"\x00\x03" + struct.pack("<H", 3 * 512 - 12)
    for offset, field in ((100, b"0000644\0"), (108, b"0000000\0"), (116, b"0000000\0"),
                          (124, b"00000000000\0"), (136, b"00000000000\0"), (156, b"0"),
                          (257, b"ustar\x0000"), (148, b" " * 8)):
        header[offset:offset + len(field)] = field
    header[148:156] = b"%06o\0 " % sum(header)
    data = bytes(header) + bytes(1024) + body + trailer
    assert gzip.decompress(data) == inner
    return data


def _polyglot_layer() -> tuple[bytes, list[str]]:
    """A gzip layer whose uncompressed bytes are the polyglot; and the names of its tar T1."""
    evil = tar_bytes(reg("planted", b"never checked"), sym("esc", "/etc"), reg("esc/pwned", b"x"))
    poly = _gzip_polyglot(evil)
    with tarfile.open(fileobj=io.BytesIO(poly), mode="r:") as tar:
        names = tar.getnames()
    assert names == [os.fsdecode(b"\x1f\x8b\x08\x04")]
    return gzip.compress(poly, mtime=0), names


@pytest.mark.parametrize("mode", ["merge", "overlay"])
@pytest.mark.parametrize("seekable", [True, False])
def test_gzip_polyglot_is_applied_as_checked(tmp_path: Path, mode: str, seekable: bool) -> None:
    """The spool holds uncompressed bytes; gunzipping it again would apply another tar."""
    blob, checked = _polyglot_layer()
    target = tmp_path / "t"
    source: Any = io.BytesIO(blob) if seekable else io.BufferedReader(NonSeekable(blob))
    try:
        apply_layer(source, target, mode=mode)
    except LayerError:
        assert not target.exists() or os.listdir(target) == []
    else:
        assert os.listdir(target) == checked
    assert not os.path.lexists(target / "planted") and not os.path.lexists(target / "esc")
    assert not os.path.exists("/etc/pwned")


def test_write_pass_refuses_members_the_check_did_not_see(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Second guard: were the spool decompressed again, the first differing member stops it."""
    blob, _ = _polyglot_layer()
    real_init = reading.LayerTar.__init__

    def sniff_always(self: Any, raw: Any, tee: Any = None, *, plain: bool = False) -> None:
        real_init(self, raw, tee)  # the old bug: the write pass sniffs the spool anew

    monkeypatch.setattr(reading.LayerTar, "__init__", sniff_always)
    target = tmp_path / "t"
    with pytest.raises(LayerError, match="changed between its check and its application"):
        apply_layer(io.BytesIO(blob), target)
    assert os.listdir(target) == []


def test_write_pass_stops_before_the_first_unchecked_member(tmp_path: Path) -> None:
    target = tmp_path / "t"
    checked = tar_bytes(reg("same", b"1"), reg("ok", b"2"))
    other = tar_bytes(reg("same", b"1"), reg("evil", b"2"), reg("more", b"3"))
    plan, _ = applying._check_layer(io.BytesIO(checked), target, "merge", None)
    with pytest.raises(LayerError, match="changed between"):
        applying._write_layer(io.BytesIO(other), target, "merge", plan)
    assert os.listdir(target) == ["same"]
    plan, _ = applying._check_layer(io.BytesIO(other), target, "merge", None)
    with pytest.raises(LayerError, match="changed between"):  # fewer members than checked
        applying._write_layer(io.BytesIO(checked[:1024]), target, "merge", plan)


def _lower(tmp_path: Path) -> Path:
    target = tmp_path / "t"
    (target / "d").mkdir(parents=True)
    (target / "f").write_text("lower")
    (target / "d" / "g").write_text("lower")
    return target


@pytest.mark.parametrize("entries", [
    [reg(".wh.f"), hardlink("h", "f")],
    [hardlink("h", "f"), reg(".wh.f")],
    [reg(".wh.d"), hardlink("h", "d/g")],
    [reg(".wh.d"), dir_("d"), hardlink("h", "d/g")],
    [reg(f"d/{OPAQUE_MARKER}"), reg("d/new", b"n"), hardlink("h", "d/g")],
    [reg("d/new", b"n"), hardlink("h", "d/g"), reg(f"d/{OPAQUE_MARKER}")],
    [reg("d/new", b"n"), hardlink("d/h", "d/g"), reg(f"d/{OPAQUE_MARKER}")],
    [reg("new", b"n"), hardlink("h", "d/g"), reg(OPAQUE_MARKER)],
], ids=["wh-first", "wh-after", "wh-parent", "wh-parent-redone", "opq-first", "opq-after",
        "opq-link-inside", "opq-root"])
def test_hard_link_to_a_whited_out_file_is_refused_before_writing(tmp_path: Path,
                                                                  entries: list[Any]) -> None:
    target = _lower(tmp_path)
    before = snapshot(target)
    with pytest.raises(LayerError, match="does not exist"):
        apply_layer(io.BytesIO(tar_bytes(*entries)), target)
    assert snapshot(target) == before


def test_hard_link_to_a_file_this_layer_rewrote_after_its_whiteout(tmp_path: Path) -> None:
    target = _lower(tmp_path)
    layer = tar_bytes(reg(".wh.f"), reg("f", b"new"), reg(f"d/{OPAQUE_MARKER}"), reg("d/g", b"G"),
                      hardlink("h", "f"), hardlink("h2", "d/g"), hardlink("h3", "d/g"))
    apply_layer(io.BytesIO(layer), target)
    assert (target / "h").read_bytes() == b"new" and (target / "h2").read_bytes() == b"G"
    assert os.stat(target / "f").st_ino == os.stat(target / "h").st_ino


def test_hard_link_to_a_lower_file_replaced_later_keeps_the_old_content(tmp_path: Path) -> None:
    target = _lower(tmp_path)
    apply_layer(io.BytesIO(tar_bytes(hardlink("h", "f"), reg("f", b"new"))), target)
    assert (target / "h").read_text() == "lower" and (target / "f").read_bytes() == b"new"


#: vfs_cap_data revision 1 (12 bytes): refused by setxattr(2) since Linux 4.14.
CAP_V1 = struct.pack("<III", 0x01000000, 1 << 10, 0)


@pytest.mark.parametrize("name, value", [
    ("user." + "n" * 300, "v"),
    ("user.big", "v" * 70000),
    ("security.capability", "garbage"),
    ("security.capability", ""),
    ("security.capability", CAP_NET_BIND[:16].decode("latin-1")),
    ("security.capability", CAP_V1.decode("latin-1")),
], ids=["long-name", "big-value", "cap-garbage", "cap-empty", "cap-short", "cap-v1"])
def test_xattrs_setxattr_would_refuse_are_refused_before_writing(tmp_path: Path, name: str,
                                                                  value: str) -> None:
    info, data = reg("second", b"2")
    raw = value.encode("latin-1") if name == "security.capability" else value.encode()
    info.pax_headers = {f"SCHILY.xattr.{name}": raw.decode("utf-8", "surrogateescape")}
    with pytest.raises(LayerError, match=r"'second'.*xattr") as err:
        apply_layer(io.BytesIO(tar_bytes(reg("first", b"1"), (info, data))), tmp_path / "t")
    assert name[:20] in str(err.value)
    assert not (tmp_path / "t").exists()


def test_xattrs_at_the_limits_and_not_allowlisted_pass(tmp_path: Path) -> None:
    v3 = struct.pack("<IIIIII", 0x03000000, 1 << 10, 0, 0, 0, 0)
    info, data = reg("f", b"x")
    info.pax_headers = {"SCHILY.xattr.user." + "n" * 250: "v",
                        "SCHILY.xattr.security.selinux" + "x" * 300: "ignored",
                        "SCHILY.xattr.security.capability": v3.decode("utf-8", "surrogateescape")}
    assert apply_layer(io.BytesIO(tar_bytes((info, data))), tmp_path / "t", check_only=True) == 1
    assert checking._xattr_problem("security.capability", CAP_NET_BIND) is None  # revision 2
    assert checking._xattr_problem("user.x", b"v" * 65536) is None


@pytest.mark.parametrize("epoch", [None, EPOCH])
def test_implicit_parents_are_the_same_on_every_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       epoch: int | None) -> None:
    if epoch is None:
        monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    else:
        monkeypatch.setenv("SOURCE_DATE_EPOCH", str(epoch))
    layer = tar_bytes(reg("usr/bin/tool", b"hi", mtime=100), reg("opt/x/y", b"y"),
                      dir_("opt", mode=0o700, mtime=1234))
    old = os.umask(0o077)
    try:
        apply_layer(io.BytesIO(layer), tmp_path / "one")
        apply_layer(io.BytesIO(layer), tmp_path / "two")
    finally:
        os.umask(old)
    for d in ("usr", "usr/bin", "opt/x"):
        st = os.stat(tmp_path / "one" / d)
        assert (stat.S_IMODE(st.st_mode), st.st_mtime) == (0o755, epoch or 0), d
        if IS_ROOT:
            assert (st.st_uid, st.st_gid) == (0, 0), d
    listed = os.stat(tmp_path / "one" / "opt")  # a later entry for the directory wins
    assert (stat.S_IMODE(listed.st_mode), listed.st_mtime) == (0o700, 1234)
    assert tree_bytes(tmp_path / "one") == tree_bytes(tmp_path / "two")


def test_without_root_the_users_files_are_stored_as_root(monkeypatch):
    """Rootless: the invoking user stands for root in a layer; other owners stay as they are."""
    import sandbox.image.tarlayer.writing as tl
    monkeypatch.setattr(tl.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(tl.os, "getegid", lambda: 1000)
    assert tl.stored_owner(1000, 1000) == (0, 0)
    assert tl.stored_owner(1001, 50) == (1001, 50)
    monkeypatch.setattr(tl.os, "geteuid", lambda: 0)
    assert tl.stored_owner(1000, 1000) == (1000, 1000)


# --------------------------------------------------------------------------- one-pass unpack


def _digests(blob: bytes) -> tuple[str, str]:
    """(blob digest, diff_id) of a plain, gzip or zstd layer."""
    plain = open_layer(io.BytesIO(blob)).read()
    return ("sha256:" + hashlib.sha256(blob).hexdigest(), "sha256:" + hashlib.sha256(plain).hexdigest())


def _unpack(blob: bytes, target: Path, *, digest: str | None = None, diff_id: str | None = None) -> int:
    real_digest, real_diff_id = _digests(blob) if digest is None or diff_id is None else ("", "")
    return unpack_layer(io.BytesIO(blob), target, digest=digest or real_digest,
                        diff_id=diff_id or real_diff_id)


def _layers_for_equivalence(tmp_path: Path) -> dict[str, bytes]:
    rich = tmp_path / "rich"
    _build_rich_tree(rich)
    return {
        "rich": tree_bytes(rich),
        "rich-gzip": gzip.compress(tree_bytes(rich), mtime=0),
        "whiteouts": tar_bytes(dir_("d"), reg(f"d/{OPAQUE_MARKER}"), reg("d/.wh.gone"), reg(".wh.top"),
                               reg("d/kept", b"k")),
        "replacing": tar_bytes(dir_("a"), reg("a/one", b"1"), reg("a", b"now a file"), dir_("b"),
                               reg("b/x", b"x"), sym("b", "a"), dir_("b"), reg("b/y", b"y")),
        "links": tar_bytes(reg("f", b"data"), hardlink("h", "f"), hardlink("h2", "h"),
                           reg("f", b"new"), hardlink("h3", "f")),
        "implicit": tar_bytes(reg("usr/bin/tool", b"hi", mtime=100), reg("opt/x/y", b"y"),
                              dir_("opt", mode=0o700, mtime=1234)),
        "dots": tar_bytes(dir_("./"), dir_("./etc"), reg("./etc/motd", b"hi"), reg(".//etc/./issue", b"i")),
    }


def _without_whiteout_times(tree: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    """overlay whiteouts (0/0 devices) carry the time they were made; nothing reads it."""
    return {k: v[:3] + v[4:] if stat.S_ISCHR(v[0]) and v[5] == 0 else v for k, v in tree.items()}


def test_unpack_gives_what_apply_gives(tmp_path: Path) -> None:
    """The one pass makes the same tree, byte for byte and inode for inode, as check-then-write."""
    for label, blob in _layers_for_equivalence(tmp_path).items():
        applied, unpacked = tmp_path / f"applied-{label}", tmp_path / f"unpacked-{label}"
        size = apply_layer(io.BytesIO(blob), applied, mode="overlay")
        assert _unpack(blob, unpacked) == size, label
        assert _without_whiteout_times(snapshot(unpacked)) == _without_whiteout_times(snapshot(applied)), label


def _unsafe_layers(outside: Path) -> dict[str, bytes]:
    escaping, data = reg("a/../../evil", b"evil")
    escaping.pax_headers = {"path": "a/../../evil"}
    bad_owner, _ = reg("b", b"b", uid=2**40)
    bad_xattr, _ = reg("x", b"")
    bad_xattr.pax_headers = {"SCHILY.xattr.security.capability": "garbage"}
    return {
        "dotdot": tar_bytes(reg("ok", b"fine"), dir_("a"), (escaping, data)),
        "absolute": tar_bytes(reg("ok", b"ok"), reg("/abs/evil", b"evil")),
        "through-symlink": tar_bytes(reg("ok", b"ok"), sym("link", str(outside)), reg("link/evil", b"evil")),
        "relative-symlink": tar_bytes(sym("link", "../outside"), reg("link/evil", b"evil")),
        "whiteout-through-symlink": tar_bytes(sym("l", "/"), reg("l/.wh.etc")),
        "hardlink-out": tar_bytes(reg("ok", b"ok"), hardlink("hl", "../outside/secret")),
        "hardlink-absolute": tar_bytes(reg("ok", b"ok"), hardlink("hl", "/etc/passwd")),
        "hardlink-through-symlink": tar_bytes(sym("new", str(outside)), hardlink("hl", "new/secret")),
        "hardlink-to-dir": tar_bytes(dir_("d"), hardlink("hl", "d")),
        "hardlink-to-removed": tar_bytes(dir_("d"), reg("d/f", b"f"), reg("d", b"file now"), dir_("d"),
                                         hardlink("hl", "d/f")),
        "hardlink-to-nothing": tar_bytes(hardlink("hl", "missing")),
        "impossible-owner": tar_bytes(reg("a", b"a"), (bad_owner, b"b")),
        "bad-capability": tar_bytes(reg("a", b"a"), (bad_xattr, b"")),
    }


def test_unpack_refuses_what_apply_refuses(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s3cret\n")
    before = snapshot(outside)
    for label, blob in _unsafe_layers(outside).items():
        with pytest.raises(LayerError) as applied:
            apply_layer(io.BytesIO(blob), tmp_path / f"applied-{label}", mode="overlay")
        with pytest.raises(LayerError) as unpacked:
            _unpack(blob, tmp_path / f"unpacked-{label}")
        assert type(unpacked.value) is type(applied.value), label
        assert str(unpacked.value) == str(applied.value), label
        assert snapshot(outside) == before, label
    assert not os.path.exists("/abs") and not os.path.exists("/etc/.wh.etc")


def test_unpack_devices_need_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    layer = tar_bytes(reg("a", b"a"), _info("dev/null", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3))
    with pytest.raises(LayerError, match="needs root"):
        _unpack(layer, tmp_path / "t")


def test_unpack_verifies_the_diff_id_and_the_digest(tmp_path: Path) -> None:
    blob = gzip.compress(tar_bytes(reg("a", b"a" * 5000), reg("b", b"b")), mtime=0)
    digest, diff_id = _digests(blob)
    wrong = "sha256:" + "0" * 64
    with pytest.raises(BlobCorrupt) as err:
        _unpack(blob, tmp_path / "diff-id", digest=digest, diff_id=wrong)
    assert err.value.digest == wrong and err.value.actual == diff_id
    with pytest.raises(BlobCorrupt) as err:
        _unpack(blob, tmp_path / "digest", digest=wrong, diff_id=diff_id)
    assert err.value.digest == wrong and err.value.actual == digest
    assert _unpack(blob, tmp_path / "right", digest=digest, diff_id=diff_id) == 5001


def test_a_damaged_blob_is_blamed_before_the_entry_it_broke(tmp_path: Path) -> None:
    """Checking first reported a corrupt blob as corrupt; so does the one pass."""
    evil = tar_bytes(reg("ok", b"o" * 3000), sym("l", "/etc"), reg("l/pwned", b"x"))
    digest, diff_id = _digests(evil)
    wrong = "sha256:" + "1" * 64
    with pytest.raises(BlobCorrupt) as err:  # right blob, wrong diff_id, unsafe entry
        _unpack(evil, tmp_path / "a", digest=digest, diff_id=wrong)
    assert err.value.digest == wrong and isinstance(err.value.__cause__, UnsafeLayerEntry)
    with pytest.raises(BlobCorrupt) as err:  # wrong blob digest wins over both
        _unpack(evil, tmp_path / "b", digest=wrong, diff_id=wrong)
    assert err.value.digest == wrong and err.value.actual == digest
    broken = bytearray(gzip.compress(tar_bytes(reg("a", os.urandom(20000))), mtime=0))
    broken[len(broken) // 2] ^= 0xFF  # the deflate stream or its CRC no longer holds
    with pytest.raises(BlobCorrupt) as err:
        _unpack(bytes(broken), tmp_path / "c", digest="sha256:" + hashlib.sha256(b"orig").hexdigest(),
                diff_id=wrong)
    assert err.value.actual == "sha256:" + hashlib.sha256(bytes(broken)).hexdigest()
    with pytest.raises(UnsafeLayerEntry):  # everything matches: the entry itself is the problem
        _unpack(evil, tmp_path / "d")
    assert not os.path.exists("/etc/pwned")


@pytest.mark.parametrize("seekable", [True, False])
def test_unpack_applies_the_polyglot_it_hashed(tmp_path: Path, seekable: bool) -> None:
    blob, checked = _polyglot_layer()
    source: Any = io.BytesIO(blob) if seekable else io.BufferedReader(NonSeekable(blob))
    digest, diff_id = _digests(blob)
    unpack_layer(source, tmp_path / "t", digest=digest, diff_id=diff_id)
    assert os.listdir(tmp_path / "t") == checked
    assert not os.path.exists("/etc/pwned")


@pytest.mark.parametrize("kind", ["plain", "gzip", "zstd"])
def test_unpack_reads_every_compression_once(tmp_path: Path, kind: str) -> None:
    plain = tar_bytes(dir_("d"), reg("d/f", os.urandom(3 * 1024 * 1024)))
    if kind == "zstd":
        if not shutil.which("zstd"):
            pytest.skip("requires the zstd command")
        blob = subprocess.run(["zstd", "-q", "-c"], input=plain, check=True, capture_output=True).stdout
    else:
        blob = gzip.compress(plain, mtime=0) if kind == "gzip" else plain
    reads: list[int] = []

    class Counting(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            data = super().read(n)
            reads.append(len(data))
            return data

    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    diff_id = "sha256:" + hashlib.sha256(plain).hexdigest()
    assert unpack_layer(Counting(blob), tmp_path / "t", digest=digest, diff_id=diff_id) == 3 * 1024 * 1024
    assert sum(reads) == len(blob)


def test_unpack_wants_a_new_directory(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "old").write_text("x")
    with pytest.raises(ValueError, match="empty"):
        _unpack(tar_bytes(reg("a", b"a")), tmp_path / "t")


def test_a_refused_layer_leaves_no_layer_directory(tmp_path: Path) -> None:
    """Through the store: nothing under layers/ and no link when unpacking fails, for any reason."""
    from sandbox.image.layers import LayerStore, write_layer_blob
    from sandbox.image.store import Store

    store = Store(tmp_path / "root")
    layers = LayerStore(store)
    unsafe = write_layer_blob(store, lambda out: out.write(
        tar_bytes(reg("ok", b"o" * 4000), sym("l", "/etc"), reg("l/pwned", b"x"))))
    good = write_layer_blob(store, lambda out: out.write(tar_bytes(reg("f", b"f" * 4000))))
    chain = "sha256:" + "2" * 64
    with pytest.raises(UnsafeLayerEntry):
        layers.unpack(chain, None, unsafe.diff_id, unsafe.digest)
    with pytest.raises(BlobCorrupt):
        layers.unpack(chain, None, unsafe.diff_id, good.digest)  # the config names another diff_id
    data = bytearray(store.blob_path(good.digest).read_bytes())
    data[len(data) // 2] ^= 0x01
    os.chmod(store.blob_path(good.digest), 0o644)
    store.blob_path(good.digest).write_bytes(bytes(data))  # a flipped byte on disk
    with pytest.raises(BlobCorrupt) as err:
        layers.unpack(chain, None, good.diff_id, good.digest)
    assert err.value.digest == good.digest
    assert os.listdir(store.layers_dir) == [] and os.listdir(store.links_dir) == []
    assert not os.path.exists("/etc/pwned")


def test_unpack_of_an_undecodable_blob_is_a_layer_error(tmp_path: Path) -> None:
    """The blob is what its digest says, but it is no tar: the error says so, not 'corrupt digest'."""
    good = tar_bytes(reg("a", b"a" * 5000), reg("b", b"b" * 5000))
    cases = {
        "random": os.urandom(4096),
        "truncated": good[:512 + 3000],
        "truncated-gzip": gzip.compress(good, mtime=0)[:-20],
        "garbage-gzip": b"\x1f\x8b" + os.urandom(300),
        "gzip-then-garbage": gzip.compress(good, mtime=0) + b"junk",
    }
    for label, data in cases.items():
        plain = data if not data.startswith(b"\x1f\x8b") else b""
        with pytest.raises(LayerError, match="not a valid") as info:
            unpack_layer(io.BytesIO(data), tmp_path / label, digest="sha256:" + hashlib.sha256(data).hexdigest(),
                         diff_id="sha256:" + hashlib.sha256(plain).hexdigest())
        assert not isinstance(info.value, BlobCorrupt), label
        assert "rebuild" in str(info.value), label


@pytest.mark.parametrize("backend", ["isal", "gzip"])
def test_gunzip_reads_and_fails_alike_with_or_without_isal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           backend: str) -> None:
    """ISA-L's inflate is optional: the same layers unpack, and a damaged stream fails as zlib's does
    (``zlib.error``, ``EOFError``, ``BadGzipFile``), so callers that read an opened layer outside
    ``read_errors`` (``diff_id_of`` under ``archive.loading``) still catch what they expect."""
    from sandbox.image import streams
    if backend == "gzip":
        monkeypatch.setattr(streams, "_isal_gzip", lambda: None)
    elif streams._isal_gzip() is None:
        pytest.skip("python-isal is not installed")
    plain = tar_bytes(dir_("d"), reg("d/f", os.urandom(300_000) + bytes(300_000)))
    data = gzip.compress(plain[:1000], mtime=0) + gzip.compress(plain[1000:], mtime=0) + bytes(64)
    assert open_layer(NonSeekable(data)).read() == plain     # two members, trailing zeros
    unpack_layer(io.BytesIO(data), tmp_path / "t", digest="sha256:" + hashlib.sha256(data).hexdigest(),
                 diff_id="sha256:" + hashlib.sha256(plain).hexdigest())
    assert (tmp_path / "t" / "d" / "f").read_bytes() == plain[1024:1024 + 600_000]
    good = gzip.compress(plain, mtime=0)
    flat = gzip.compress(tar_bytes(reg("x", b"x" * 100_000)), mtime=0)
    damaged = {"truncated": (good[:-20], EOFError),
               "crc": (good[:-8] + bytes(b ^ 1 for b in good[-8:-4]) + good[-4:], gzip.BadGzipFile),
               "deflate": (flat[:12] + bytes([flat[12] ^ 0xFF]) + flat[13:], zlib.error)}
    for label, (bad, error) in damaged.items():
        with pytest.raises(error):
            open_layer(io.BytesIO(bad)).read()
        with pytest.raises(LayerError, match="not a valid"):
            apply_layer(io.BytesIO(bad), tmp_path / label)
