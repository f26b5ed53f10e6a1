"""``fsutil.spread_subdirs``: the chattr ``+T`` mark that puts each layer directory in a roomy block group.

It only changes where ext4 places inodes, so what can be checked is that the
flag is set where the file system takes it, left alone where it does not, and
that ``load`` marks the store's ``layers/`` directory.
"""

from __future__ import annotations

import fcntl
import io
import os
import sys
import tarfile
from pathlib import Path

import pytest

from sandbox.image import archive, fsutil
from sandbox.image.images import ImageStore
from sandbox.image.store import Store


def topdir_flag(path: Path) -> bool | None:
    """Whether ``path`` carries FS_TOPDIR_FL; None where the file system has no such flags."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        raw = fcntl.ioctl(fd, fsutil._FS_IOC_GETFLAGS, bytes(8))
    except OSError:
        return None
    finally:
        os.close(fd)
    return bool(int.from_bytes(raw[:4], sys.byteorder) & fsutil._FS_TOPDIR_FL)


def test_marks_a_directory_once_and_keeps_its_other_flags(tmp_path):
    d = tmp_path / "layers"
    d.mkdir()
    before = topdir_flag(d)
    marked = fsutil.spread_subdirs(d)
    if before is None or not marked:
        pytest.skip("this file system has no chattr flags (tmpfs, overlay)")
    assert topdir_flag(d) is True
    assert fsutil.spread_subdirs(d) is True   # idempotent
    # Subdirectories and files below work as ever.
    (d / "a" / "diff").mkdir(parents=True)
    (d / "a" / "diff" / "f").write_bytes(b"x")
    assert (d / "a" / "diff" / "f").read_bytes() == b"x"


def test_a_missing_path_or_a_file_is_left_alone(tmp_path):
    assert fsutil.spread_subdirs(tmp_path / "missing") is False
    f = tmp_path / "file"
    f.write_bytes(b"")
    assert fsutil.spread_subdirs(f) is False


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="requires /dev/shm (a tmpfs)")
def test_a_file_system_without_the_flag_is_no_error(tmp_path):
    import tempfile
    with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
        assert fsutil.spread_subdirs(Path(d)) in (True, False)   # tmpfs: False; never raises


def tiny_rootfs() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tf:
        info = tarfile.TarInfo("etc/hostname")
        info.size, info.mtime = 5, 1700000000
        tf.addfile(info, io.BytesIO(b"tiny\n"))
    return out.getvalue()


def test_load_marks_the_layers_directory(tmp_path):
    src = ImageStore(Store(tmp_path / "src"))
    archive.import_rootfs(src, io.BytesIO(tiny_rootfs()), tag="tiny:1.0")
    saved = io.BytesIO()
    archive.save(src, ["tiny:1.0"], saved)
    data = saved.getvalue()
    dst = ImageStore(Store(tmp_path / "dst"))
    if topdir_flag(dst.store.layers_dir) is None or not fsutil.spread_subdirs(tmp_path):
        pytest.skip("this file system has no chattr flags (tmpfs, overlay)")
    assert topdir_flag(dst.store.layers_dir) is False
    archive.load(dst, io.BytesIO(data))
    assert topdir_flag(dst.store.layers_dir) is True
    assert dst.get("tiny:1.0").tags == ["tiny:1.0"]
