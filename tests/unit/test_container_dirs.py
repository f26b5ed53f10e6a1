"""A container directory's layout: the init layer, shared where every container's is the same."""

from __future__ import annotations

import os
from pathlib import Path

from sandbox.containers import setup


def _cdir(root: Path, name: str) -> Path:
    return root / "containers" / (name * 64)[:64]


def test_overlay_containers_without_volumes_link_one_shared_init_layer(tmp_path):
    a, b = _cdir(tmp_path, "a"), _cdir(tmp_path, "b")
    setup.make_dirs(a, [])
    setup.make_dirs(b, [])
    shared = tmp_path / setup.SHARED_INIT
    for cdir in (a, b):
        assert (cdir / "init").is_symlink()
        assert (cdir / "init").resolve() == shared.resolve()
        assert {p.name for p in cdir.iterdir()} == {"init", "upper", "work", "rootfs", "bundle",
                                                     "stdout.fifo", "stderr.fifo"}
    # what the runtime mounts over, as a private init layer holds it
    for rel in setup.INIT_DIRS:
        assert (shared / rel).is_dir()
    for rel in setup.INIT_FILES:
        assert (shared / rel).is_file() and (shared / rel).stat().st_size == 0
    assert os.readlink(shared / "etc" / "mtab") == "/proc/mounts"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temporary left


def test_volume_targets_and_vfs_get_a_private_init_layer(tmp_path):
    vol = _cdir(tmp_path, "c")
    setup.make_dirs(vol, ["/data", "/etc/app.conf"], ["/etc/app.conf"])
    assert not (vol / "init").is_symlink()
    assert (vol / "init" / "data").is_dir() and (vol / "init" / "etc" / "app.conf").is_file()
    vfs = _cdir(tmp_path, "d")
    setup.make_dirs(vfs, [], driver="vfs")      # the vfs copy and its diff read the init layer in place
    assert not (vfs / "init").is_symlink() and (vfs / "init" / "proc").is_dir()
    assert not (vfs / "upper").exists()
    assert not (tmp_path / setup.SHARED_INIT).exists()


def test_removing_a_container_directory_leaves_the_shared_layer(tmp_path):
    import shutil
    a = _cdir(tmp_path, "e")
    setup.make_dirs(a, [])
    shutil.rmtree(a)     # what removal does: rmtree never follows the link
    assert (tmp_path / setup.SHARED_INIT / "proc").is_dir()
