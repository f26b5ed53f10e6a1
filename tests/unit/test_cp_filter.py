"""``docker cp`` out of a container on a Python without tarfile's filters (Debian 12's 3.11.2).

Python 3.11.4 added ``extractall(filter="tar")``; before it, copy_out_path
checks each member itself with the same refusals, so the kit run by Debian's
own interpreter (the rootless tier, a TLJH user environment) is as safe.
"""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from sandbox.containers.fsops import _tar_filter
from sandbox.errors import ArchiveError


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode = kind, link, mode
    return ti


@pytest.mark.parametrize("ti", [member("../escape"), member("a/../../escape"), member("/../../escape")])
def test_what_would_leave_the_destination_is_refused(tmp_path, ti):
    with pytest.raises(ArchiveError, match="refusing"):
        _tar_filter(ti, str(tmp_path))


def test_names_are_made_relative_and_high_bits_cleared(tmp_path):
    ti = _tar_filter(member("/abs/file", mode=0o6777), str(tmp_path))
    assert ti.name == "abs/file" and ti.mode == 0o755
    # links are kept as they are, as the "tar" filter keeps them (a container's /etc/mtab -> /proc/...)
    assert _tar_filter(member("link", tarfile.SYMTYPE, "/etc/passwd"), str(tmp_path)).linkname == "/etc/passwd"


@pytest.mark.skipif(not hasattr(tarfile, "tar_filter"), reason="compares with tarfile's own filter (3.11.4+)")
@pytest.mark.parametrize("ti", [member("/abs/file", mode=0o6777), member("link", tarfile.SYMTYPE, "/etc/passwd"),
                                member("d/x", mode=0o777), member("hard", tarfile.LNKTYPE, "../outside")])
def test_the_same_as_tarfiles_tar_filter(tmp_path, ti):
    theirs = tarfile.tar_filter(ti, str(tmp_path))
    ours = _tar_filter(ti.replace(), str(tmp_path))
    assert (ours.name, ours.mode, ours.linkname) == (theirs.name, theirs.mode, theirs.linkname)


def test_a_symlink_extracted_earlier_is_followed_when_checking_later_members(tmp_path):
    os.symlink("/", tmp_path / "up")             # as if an earlier member had made it
    with pytest.raises(ArchiveError):
        _tar_filter(member("up/etc/x"), str(tmp_path))


def test_the_fallback_extracts_an_ordinary_archive(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"hi\n"
        ti = tarfile.TarInfo("dir/f.txt")
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        tar.extractall(tmp_path, members=(_tar_filter(m, str(tmp_path)) for m in tar.getmembers()))
    assert (tmp_path / "dir" / "f.txt").read_bytes() == b"hi\n"
