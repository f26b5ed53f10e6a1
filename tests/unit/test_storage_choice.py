"""Choosing the storage driver: the forced names, the order, the overlay probe's cache, and
when mount_overlay hands the overlay layout to fuse-overlayfs.  No real mount: the probe,
the kernel's mount and the fuse-overlayfs program are replaced."""

from __future__ import annotations

import errno
import json
import subprocess
from pathlib import Path

import pytest

from sandbox import kernel
from sandbox.errors import KernelError, UsageError
from sandbox.image import layers, vfs


@pytest.fixture
def store_tmp(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    return scratch


def test_forced_names():
    assert vfs.forced_driver("overlay2") == "overlay"
    assert vfs.forced_driver("fuse") == "fuse-overlayfs"
    assert vfs.forced_driver(" Fuse-OverlayFS ") == "fuse-overlayfs"
    assert vfs.forced_driver("") is None
    with pytest.raises(UsageError):
        vfs.forced_driver("btrfs")


def test_the_order_is_overlay_then_fuse_overlayfs_then_vfs(store_tmp, monkeypatch):
    monkeypatch.delenv(vfs.DRIVER_ENV, raising=False)
    monkeypatch.setattr(vfs, "overlay_works", lambda scratch: True)
    assert vfs.storage_driver(store_tmp) == "overlay"
    monkeypatch.setattr(vfs, "overlay_works", lambda scratch: False)
    monkeypatch.setattr(vfs, "fuse_overlayfs", lambda: "/usr/bin/fuse-overlayfs")
    assert vfs.storage_driver(store_tmp) == "fuse-overlayfs"
    monkeypatch.setattr(vfs, "fuse_overlayfs", lambda: None)
    assert vfs.storage_driver(store_tmp) == "vfs"
    with pytest.raises(UsageError, match="cannot mount here"):
        vfs.storage_driver(store_tmp, "fuse-overlayfs")


def test_the_probe_is_kept_in_the_run_dir_and_asked_again_when_its_key_changes(store_tmp, monkeypatch):
    probes = []
    monkeypatch.setattr(vfs.os, "geteuid", lambda: 0)
    monkeypatch.setattr(vfs, "_probe_overlay", lambda scratch: probes.append(scratch) or True)
    works = vfs.overlay_works.__wrapped__     # past the per-process cache
    assert works(str(store_tmp)) is True and works(str(store_tmp)) is True
    assert len(probes) == 1
    saved = json.loads((store_tmp.parent / "run" / vfs.PROBE_FILE).read_text())
    assert saved == {"key": vfs._probe_key(str(store_tmp)), "overlay": True}
    assert list(store_tmp.iterdir()) == []    # nothing left in the store's tmp dir
    key = vfs._probe_key
    monkeypatch.setattr(vfs, "_probe_key", lambda scratch: key(scratch) + "|another kernel")
    works(str(store_tmp))
    assert len(probes) == 2
    (store_tmp.parent / "run" / vfs.PROBE_FILE).write_text("{not json")
    works(str(store_tmp))
    assert len(probes) == 3


def test_the_probe_key_names_kernel_boot_user_namespace_and_file_system(store_tmp):
    key = vfs._probe_key(str(store_tmp))
    assert Path("/proc/sys/kernel/random/boot_id").read_text().strip() in key
    assert str(store_tmp.stat().st_dev) in key.split("|")


def _refuse(err):
    def mount(*args, **kw):
        raise KernelError("mount", str(args[1]), err)
    return mount


def test_a_refused_kernel_mount_goes_to_fuse_overlayfs(tmp_path, monkeypatch):
    monkeypatch.delenv(vfs.DRIVER_ENV, raising=False)
    used = []
    monkeypatch.setattr(kernel, "mount", _refuse(errno.EPERM))
    monkeypatch.setattr(vfs, "fuse_overlayfs", lambda: "/usr/bin/fuse-overlayfs")
    monkeypatch.setattr(layers, "_mount_fuse_overlay", lambda *a: used.append(a))
    layers.mount_overlay(tmp_path, "lowerdir=/a,upperdir=/u,workdir=/w")
    assert used == [(tmp_path, "lowerdir=/a,upperdir=/u,workdir=/w", 0)]
    # volatile refused (a kernel before 5.10): back to the caller, which mounts without it
    monkeypatch.setattr(kernel, "mount", _refuse(errno.EINVAL))
    with pytest.raises(KernelError):
        layers.mount_overlay(tmp_path, "lowerdir=/a,upperdir=/u,workdir=/w,volatile")
    # no fuse-overlayfs: the kernel's refusal is the error
    monkeypatch.setattr(kernel, "mount", _refuse(errno.EPERM))
    monkeypatch.setattr(vfs, "fuse_overlayfs", lambda: None)
    with pytest.raises(KernelError):
        layers.mount_overlay(tmp_path, "lowerdir=/a,upperdir=/u,workdir=/w")
    assert len(used) == 1


def test_the_forced_driver_mounts_with_fuse_overlayfs_and_its_options(tmp_path, monkeypatch):
    monkeypatch.setenv(vfs.DRIVER_ENV, "fuse-overlayfs")
    monkeypatch.setattr(kernel, "mount", _refuse(errno.EBUSY))    # never asked
    monkeypatch.setattr(vfs, "fuse_overlayfs", lambda: "/usr/bin/fuse-overlayfs")
    monkeypatch.setattr(layers, "_in_user_namespace", lambda: True)
    runs = []
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: runs.append(argv) or
                        subprocess.CompletedProcess(argv, 0))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w").mkdir()
    layers.mount_overlay(tmp_path / "m", "lowerdir=A:B,upperdir=/u,workdir=w,volatile", kernel.MS_RDONLY)
    assert runs == [["/usr/bin/fuse-overlayfs", "-o",
                     f"lowerdir={tmp_path}/A:{tmp_path}/B,upperdir=/u,workdir={tmp_path}/w,volatile,"
                     "allow_other,ro", str(tmp_path / "m")]]
    assert (tmp_path / "w" / layers.FUSE_MARK).exists()
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: subprocess.CompletedProcess(argv, 1))
    with pytest.raises(KernelError, match="fuse-overlayfs"):
        layers.mount_overlay(tmp_path / "m", "lowerdir=/a,upperdir=/u,workdir=w")


def test_an_upper_dir_fuse_overlayfs_wrote_stays_with_it(tmp_path, monkeypatch):
    """Mounted again by a process that does not force the driver, writable or as a read-only view."""
    monkeypatch.delenv(vfs.DRIVER_ENV, raising=False)
    cdir = tmp_path / "container"
    for d in ("upper", "work"):
        (cdir / d).mkdir(parents=True)
    writable = f"lowerdir=/l1:/l2,upperdir={cdir}/upper,workdir={cdir}/work"
    view = f"lowerdir={cdir}/upper:/l1:/l2"
    assert not layers._written_by_fuse(writable) and not layers._written_by_fuse(view)
    (cdir / "work" / layers.FUSE_MARK).touch()
    assert layers._written_by_fuse(writable) and layers._written_by_fuse(view)
    assert not layers._written_by_fuse("lowerdir=/l1:/l2")     # image layers alone: no upper dir
    used = []
    monkeypatch.setattr(kernel, "mount", _refuse(errno.EBUSY))    # never asked
    monkeypatch.setattr(layers, "_mount_fuse_overlay", lambda *a: used.append(a))
    layers.mount_overlay(tmp_path / "m", view, kernel.MS_RDONLY)
    assert used == [(tmp_path / "m", view, kernel.MS_RDONLY)]
