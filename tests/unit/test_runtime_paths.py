"""secure_join keeps every path inside the rootfs, whatever the image's symlinks say."""

from __future__ import annotations

import errno
import os

import pytest

from sandbox.runtime.paths import secure_join


def test_plain_and_missing_components(tmp_path):
    (tmp_path / "etc").mkdir()
    assert secure_join(str(tmp_path), "/etc/hosts") == str(tmp_path / "etc" / "hosts")
    assert secure_join(str(tmp_path), "/../../etc") == str(tmp_path / "etc")


def test_absolute_symlink_resolves_inside(tmp_path):
    os.symlink("/etc", tmp_path / "link")
    assert secure_join(str(tmp_path), "/link/passwd") == str(tmp_path / "etc" / "passwd")


def test_relative_symlink_cannot_climb_out(tmp_path):
    (tmp_path / "a").mkdir()
    os.symlink("../../../../../tmp", tmp_path / "a" / "up")
    assert secure_join(str(tmp_path), "/a/up/x") == str(tmp_path / "tmp" / "x")


def test_proc_self_root_is_just_a_path(tmp_path):
    os.symlink("/proc/self/root/etc", tmp_path / "escape")
    assert secure_join(str(tmp_path), "/escape") == str(tmp_path / "proc" / "self" / "root" / "etc")


def test_loops_give_eloop(tmp_path):
    os.symlink("/b", tmp_path / "a")
    os.symlink("/a", tmp_path / "b")
    with pytest.raises(OSError) as info:
        secure_join(str(tmp_path), "/a")
    assert info.value.errno == errno.ELOOP
