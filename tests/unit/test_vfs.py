"""The vfs driver's pieces on plain directories: choosing, copying, diffing, the layer it writes.

No root and no mount: a vfs container's root is a directory tree, and
everything here is trees compared and written as tars.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from sandbox.cli import _verb_of, build_parser
from sandbox.errors import UsageError
from sandbox.image import vfs
from sandbox.image.tarlayer import apply_layer, tree_diff


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith("/"):
            path.mkdir(exist_ok=True)
        else:
            path.write_text(text)


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


@pytest.fixture
def container(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(base, init, rootfs): an image tree, an init layer over it, and a vfs rootfs made of both."""
    base, init = tmp_path / "base", tmp_path / "c" / "init"
    _tree(base, {"etc/passwd": "root\n", "etc/hosts": "image's\n", "usr/bin/tool": "t", "usr/lib/x": "x",
                 "var/www/": "", "opt/file": "f", "home/": ""})
    _tree(init, {"etc/hosts": "", "etc/hostname": "", "proc/": "", "dev/pts/": ""})
    os.utime(base / "etc" / "passwd", (1000, 1000))
    vfs.make_rootfs(base, init, tmp_path / "c" / "rootfs")
    return base, init, tmp_path / "c" / "rootfs"


def test_the_driver_is_forced_by_the_variable_or_the_option(monkeypatch):
    monkeypatch.delenv(vfs.DRIVER_ENV, raising=False)
    assert vfs.forced_driver() is None
    monkeypatch.setenv(vfs.DRIVER_ENV, "VFS")
    assert vfs.forced_driver() == "vfs" and vfs.storage_driver(Path("/nonexistent")) == "vfs"
    assert vfs.forced_driver("overlay2") == "overlay"
    with pytest.raises(UsageError, match="unknown storage driver 'zfs'"):
        vfs.forced_driver("zfs")
    args = build_parser(only="info").parse_args(["--storage-driver", "vfs", "--root", "/r", "info"])
    assert (args.storage_driver, args.root, args.verb) == ("vfs", "/r", "info")
    assert _verb_of(["--storage-driver", "vfs", "run", "busybox"]) == "run"
    assert _verb_of(["--storage-driver=vfs", "--root=/r", "ps"]) == "ps"


def test_a_fresh_rootfs_has_no_changes_and_keeps_the_images_directories(container):
    base, init, rootfs = container
    diff = vfs.rootfs_diff(base, init, rootfs)
    assert (diff.changed, diff.deleted, diff.opaque) == ([], [], [])
    assert (rootfs / "etc" / "hosts").read_text() == ""            # the init layer's file wins
    assert (rootfs / "etc" / "passwd").read_text() == "root\n"
    assert os.stat(rootfs / "etc").st_ino != os.stat(base / "etc").st_ino
    assert (rootfs.parent / vfs.DIRS_FILE).is_file()


def test_rootfs_diff_sees_what_overlay_would_record(container):
    base, init, rootfs = container
    (rootfs / "etc" / "passwd").write_text("root\nstudent\n")
    os.utime(rootfs / "opt" / "file", (5, 5))                          # only touched: still a change
    shutil.rmtree(rootfs / "usr")                                      # removed and made again: opaque
    (rootfs / "usr").mkdir()
    (rootfs / "usr" / "new").write_text("n")
    shutil.rmtree(rootfs / "var" / "www")                              # a directory became a file
    (rootfs / "var" / "www").write_text("w")
    os.unlink(rootfs / "etc" / "hostname")                             # even an init file can go
    os.chmod(rootfs / "home", 0o700)
    diff = vfs.rootfs_diff(base, init, rootfs)
    assert diff.changed == ["etc/passwd", "home", "opt/file", "usr", "usr/new", "var/www"]
    assert (diff.deleted, diff.opaque) == (["etc/hostname"], ["usr"])
    assert vfs.diff_lines(diff, base) == [
        ("C", "/etc"), ("D", "/etc/hostname"), ("C", "/etc/passwd"), ("C", "/home"), ("C", "/opt"),
        ("C", "/opt/file"), ("C", "/usr"), ("D", "/usr/bin"), ("D", "/usr/lib"), ("A", "/usr/new"),
        ("C", "/var"), ("C", "/var/www")]
    out = io.BytesIO()
    vfs.write_diff(rootfs, diff, out)
    assert _names(out.getvalue()) == ["etc", "etc/.wh.hostname", "etc/passwd", "home", "opt", "opt/file",
                                      "usr", "usr/.wh..wh..opq", "usr/new", "var", "var/www"]
    # applied onto the image, the layer gives the container's tree back
    flat = rootfs.parent / "flat"
    vfs.copy_tree(base, flat)
    apply_layer(io.BytesIO(out.getvalue()), flat)
    assert sorted(os.listdir(flat / "usr")) == ["new"] and (flat / "var" / "www").read_text() == "w"


def test_a_directory_made_again_is_told_apart_by_its_generation_not_its_inode(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _tree(lower, {"d/old": "o"})
    copied = vfs.copy_tree(lower, upper)
    shutil.rmtree(upper / "d")
    (upper / "d").mkdir()          # ext4 and xfs often hand out the same inode number again
    diff = tree_diff(lower, upper, by_mtime=True, same_dir=vfs.same_dir_check(copied.dirs))
    assert (diff.opaque, diff.hidden, diff.deleted) == (["d"], ["d/old"], [])
    plain = tree_diff(lower, upper)           # without identities: the old file is simply gone
    assert (plain.opaque, plain.deleted) == ([], ["d/old"])


def test_stacked_lowers_merge_directories_and_a_file_hides_what_is_below(tmp_path):
    top, bottom, upper = tmp_path / "top", tmp_path / "bottom", tmp_path / "upper"
    _tree(bottom, {"etc/a": "a", "x/inside": "i"})
    _tree(top, {"etc/b": "b", "x": "now a file"})
    _tree(upper, {"etc/a": "a", "etc/b": "b", "x": "now a file"})
    for rel in ("etc/a", "etc/b", "x"):
        src = (top if (top / rel).exists() else bottom) / rel
        os.utime(upper / rel, ns=(os.stat(src).st_mtime_ns,) * 2)
    diff = tree_diff([top, bottom], upper, by_mtime=True)
    assert (diff.changed, diff.deleted) == ([], [])


def test_copy_tree_merge_replaces_what_is_in_the_way_and_keeps_directories(tmp_path):
    dst, over = tmp_path / "dst", tmp_path / "over"
    _tree(dst, {"etc/keep": "k", "dev": "a file in the way", "etc/hosts/": ""})
    os.chmod(dst / "etc", 0o750)
    _tree(over, {"etc/hosts": "", "dev/pts/": ""})
    stats = vfs.copy_tree(over, dst, merge=True)
    assert (dst / "etc" / "keep").read_text() == "k" and (dst / "etc" / "hosts").is_file()
    assert (dst / "dev" / "pts").is_dir() and os.stat(dst / "etc").st_mode & 0o777 == 0o750
    assert set(stats.dirs) == {"", "dev", "dev/pts"}


def test_an_opaque_directory_over_a_file_applies(tmp_path):
    # overlay's mkdir over the whiteout of a file: the layer has an opaque marker where the
    # lower holds a file, which the directory entry then replaces
    target = tmp_path / "t"
    _tree(target, {"etc/shadow": "secret"})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind in (("etc", tarfile.DIRTYPE), ("etc/shadow", tarfile.DIRTYPE),
                           ("etc/shadow/.wh..wh..opq", tarfile.REGTYPE), ("etc/shadow/f", tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, 0o755
            tar.addfile(info, io.BytesIO(b""))
    apply_layer(io.BytesIO(buf.getvalue()), target)
    assert os.listdir(target / "etc" / "shadow") == ["f"]
