"""A container's file system from outside: ``diff``, ``cp`` and ``export``.

``diff`` reads overlayfs's own bookkeeping in the writable layer: a 0/0
character device is a deleted path, the ``overlay.opaque`` xattr a directory
that hides everything below it; anything else in the upper directory was
added (not in any image layer) or changed (it was).  The init layer is left
out by the caller, so mount points never show, as with ``docker diff``.

``cp`` resolves every container path with :func:`~sandbox.runtime.paths.secure_join`:
the container's files belong to whoever built the image, and a symlink such
as ``/etc/x -> /../../../etc/shadow`` must resolve inside the container, never
on the host.  Extraction goes through :func:`~sandbox.image.tarlayer.apply_layer`,
which checks every entry before it writes one.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any, BinaryIO
from collections.abc import Iterable

from ..errors import NotFound, UsageError
from ..image import tarlayer
from ..runtime.paths import secure_join

_OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque")


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: str) -> bool:
    for name in _OPAQUE:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _in_lowers(rel: str, lowers: list[Path]) -> bool:
    """Whether ``rel`` exists in the image (the first layer that decides, top first)."""
    for lower in lowers:
        full = os.path.join(lower, rel)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            # an opaque parent in this layer hides the layers below it
            parent = os.path.dirname(rel)
            while parent:
                if _opaque(os.path.join(lower, parent)):
                    return False
                parent = os.path.dirname(parent)
            continue
        return not _is_whiteout(st)
    return False


def changes(upper: Path, lowers: list[Path]) -> list[tuple[str, str]]:
    """``docker diff``: ("A" | "C" | "D", "/path"), sorted by path."""
    out: list[tuple[str, str]] = []
    lower_paths = [Path(p) for p in lowers]

    def walk(rel: str) -> None:
        here = os.path.join(upper, rel) if rel else str(upper)
        try:
            names = sorted(os.listdir(here))
        except OSError:
            return
        for name in names:
            child = f"{rel}/{name}" if rel else name
            full = os.path.join(upper, child)
            st = os.lstat(full)
            if _is_whiteout(st):
                out.append(("D", "/" + child))
                continue
            existed = _in_lowers(child, lower_paths)
            out.append(("C" if existed else "A", "/" + child))
            if stat.S_ISDIR(st.st_mode):
                if existed and _opaque(full):
                    # Everything the image had here is hidden: each such entry is deleted.
                    present = set(os.listdir(full))
                    gone: set[str] = set()
                    for lower in lower_paths:
                        with_dir = os.path.join(lower, child)
                        if os.path.isdir(with_dir) and not os.path.islink(with_dir):
                            gone.update(n for n in os.listdir(with_dir)
                                        if not _is_whiteout(os.lstat(os.path.join(with_dir, n))))
                    out.extend(("D", f"/{child}/{n}") for n in sorted(gone - present))
                walk(child)

    walk("")
    return sorted(out, key=lambda kv: kv[1])


# --------------------------------------------------------------------------- cp


def _resolve(rootfs: Path, path: str, *, follow_last: bool) -> str:
    """``path`` inside ``rootfs``; the last component's symlink is followed only if asked."""
    if not path.startswith("/"):
        path = "/" + path
    norm = os.path.normpath(path)
    if follow_last or norm == "/":
        return secure_join(str(rootfs), norm)
    parent, name = os.path.split(norm)
    return os.path.join(secure_join(str(rootfs), parent), name)


def path_stat(full: str, name: str) -> dict[str, Any]:
    st = os.lstat(full)
    return {"name": name, "size": st.st_size, "mode": st.st_mode, "mtime": st.st_mtime,
            "linkTarget": os.readlink(full) if stat.S_ISLNK(st.st_mode) else ""}


def copy_out(rootfs: Path, src: str, out: BinaryIO, *, follow_link: bool = False) -> dict[str, Any]:
    """``docker cp CONTAINER:SRC -``: a tar of ``src``; "dir/." gives the contents only."""
    contents_only = src.endswith("/.")
    full = _resolve(rootfs, src.rstrip("/") if not contents_only else src[:-2] or "/",
                    follow_last=follow_link or contents_only or src.endswith("/"))
    if not os.path.lexists(full):
        raise NotFound(f"Could not find the file {src} in container",
                       hint="check the path; `sandbox exec NAME ls` lists what is there")
    base = os.path.basename(os.path.normpath(src if not contents_only else src[:-2])) or "."
    info = path_stat(full, base)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if contents_only or (os.path.isdir(full) and not os.path.islink(full) and base == "."):
            for name in sorted(os.listdir(full)):
                tar.add(os.path.join(full, name), arcname=name, recursive=True, filter=_numeric)
        else:
            tar.add(full, arcname=base, recursive=True, filter=_numeric)
    return info


def _numeric(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.uname = ti.gname = ""
    return ti


def copy_in(rootfs: Path, tar_stream: BinaryIO, dest: str) -> None:
    """``docker cp - CONTAINER:DEST``: extract a tar into the directory ``dest``."""
    target = _resolve(rootfs, dest, follow_last=True)
    if not os.path.isdir(target):
        raise NotFound(f"Could not find the directory {dest} in container",
                       hint="the destination of an archive must be an existing directory")
    if os.statvfs(target).f_flag & os.ST_RDONLY:
        raise UsageError(f"{dest} is on a read-only mount in the container (a :ro volume or bind, "
                         "or --read-only)", hint="copy into a writable path, or mount it read-write")
    data = tar_stream.read()
    tarlayer.apply_layer(io.BytesIO(data), Path(target), mode="merge")  # type: ignore[arg-type]


def copy_in_path(rootfs: Path, host_src: str, dest: str) -> None:
    """``docker cp HOSTPATH CONTAINER:DEST`` with docker's rules for where it lands."""
    contents_only = host_src.endswith("/.")
    src = os.path.normpath(host_src[:-2] if contents_only else host_src)
    if not os.path.lexists(src):
        raise NotFound(f"could not find the file {host_src} on this machine", hint="check the path")
    target = _resolve(rootfs, dest, follow_last=True)
    buf = io.BytesIO()
    if os.path.isdir(target):
        # into an existing directory: as its basename (or its contents with "/.")
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            if contents_only:
                for name in sorted(os.listdir(src)):
                    tar.add(os.path.join(src, name), arcname=name, filter=_numeric)
            else:
                tar.add(src, arcname=os.path.basename(src), filter=_numeric)
        buf.seek(0)
        copy_in(rootfs, buf, dest)
        return
    if dest.endswith("/"):
        raise NotFound(f"Could not find the directory {dest} in container",
                       hint="create it first, or drop the trailing /")
    parent_rel, name = os.path.split(os.path.normpath(dest if dest.startswith("/") else "/" + dest))
    if os.path.isdir(src) and os.path.lexists(target) and not os.path.isdir(target):
        raise UsageError(f"cannot copy a directory onto the file {dest}")
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(src, arcname=name, filter=_numeric)
    buf.seek(0)
    copy_in(rootfs, buf, parent_rel or "/")


def copy_out_path(rootfs: Path, src: str, host_dest: str) -> None:
    """``docker cp CONTAINER:SRC HOSTPATH``."""
    buf = io.BytesIO()
    copy_out(rootfs, src, buf)
    buf.seek(0)
    contents_only = src.endswith("/.")
    dest = os.path.abspath(host_dest)
    if os.path.isdir(dest):
        out_dir, rename = dest, None
    else:
        parent = os.path.dirname(dest)
        if not os.path.isdir(parent):
            raise NotFound(f"the destination directory {parent} does not exist", hint="create it first")
        out_dir, rename = parent, os.path.basename(dest)
    with tarfile.open(fileobj=buf, mode="r") as tar:
        members = tar.getmembers()
        if rename is not None and not contents_only and members:
            top = members[0].name.split("/")[0]
            for m in members:
                parts = m.name.split("/")
                if parts[0] == top:
                    m.name = "/".join([rename] + parts[1:])
        if contents_only and rename is not None:
            os.makedirs(dest, exist_ok=True)
            out_dir = dest
        tar.extractall(out_dir, members=members, filter="tar")


def export(rootfs: Path, out: BinaryIO, *, skip: Iterable[str] = ("/proc", "/sys", "/dev")) -> None:
    """``docker export``: the whole file system as a tar (mount-point directories left empty)."""
    skipped = {s.strip("/") for s in skip}
    paths = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        rel = os.path.relpath(dirpath, rootfs)
        rel = "" if rel == "." else rel
        if rel in skipped:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            paths.append(f"{rel}/{name}" if rel else name)
    tarlayer.write_tree(Path(rootfs), out, paths=paths)
