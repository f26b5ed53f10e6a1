"""COPY and ADD on a mounted root file system, with Docker's rules for where files land.

The builder mounts the image so far as an overlay with an empty upper
directory, calls these functions on the merged view, unmounts, and the upper
directory *is* the new layer (overlay copies up exactly the directories a
real ``COPY`` changes, as Docker's own commit of its build container does).

Rules (the Dockerfile reference, and Docker's classic builder where it is
vague):

* a directory source copies its *contents*, not itself;
* a file lands at ``dest`` unless ``dest`` ends in ``/`` or is an existing
  directory, in which case it lands inside it under its own name;
* several sources need a ``dest`` that ends in ``/``;
* missing parent directories are made (0755) and, like everything copied,
  owned by ``--chown`` (default 0:0: owners from the context never leak in);
  ``--chmod`` sets the mode of everything copied;
* modification times are kept; symlinks are copied as symlinks; what
  ``dest`` points to inside the image is resolved *inside* the image, never
  on the host.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
from collections.abc import Iterable

from ..errors import BuildError
from ..runtime.paths import secure_join


def resolve_in(root: str, path: str) -> str:
    """``path`` (absolute, inside the image) on the host, symlinks followed inside ``root``."""
    return secure_join(root, path)


def make_parents(root: str, path: str, uid: int, gid: int) -> str:
    """Create the missing directories of absolute ``path`` (itself included); return it on the host."""
    parts = [p for p in path.split("/") if p]
    current = "/"
    for part in parts:
        current = current.rstrip("/") + "/" + part
        full = resolve_in(root, current)
        if os.path.isdir(full):
            continue
        if os.path.lexists(full):
            _remove(full)
        # A symlink on the way may point deep into directories that do not exist yet
        # (resolved inside the image: ``full`` is always below ``root``): make them all.
        missing = []
        here = full
        while not os.path.lexists(here):
            missing.append(here)
            here = os.path.dirname(here)
        for d in reversed(missing):
            os.mkdir(d, 0o755)
            os.lchown(d, uid, gid)
            os.chmod(d, 0o755)
    return resolve_in(root, path) if parts else root


def _remove(full: str) -> None:
    if os.path.isdir(full) and not os.path.islink(full):
        shutil.rmtree(full)
    else:
        os.unlink(full)


def copy_file(src: str, dst: str, uid: int, gid: int, chmod: int | None) -> None:
    """One entry (file, symlink, empty dir marker, fifo) from ``src`` to ``dst``."""
    st = os.lstat(src)
    if os.path.lexists(dst) and not (stat.S_ISDIR(st.st_mode) and os.path.isdir(dst)
                                     and not os.path.islink(dst)):
        _remove(dst)
    mode = chmod if chmod is not None else stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
        os.lchown(dst, uid, gid)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        return
    if stat.S_ISDIR(st.st_mode):
        if not os.path.isdir(dst):
            os.mkdir(dst, 0o700)
        os.lchown(dst, uid, gid)
        os.chmod(dst, mode)
        return
    if stat.S_ISREG(st.st_mode):
        with open(src, "rb") as fin:
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
                os.fchown(fout.fileno(), uid, gid)
                os.fchmod(fout.fileno(), mode)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
        return
    if stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst, mode)
        os.lchown(dst, uid, gid)
        return
    # sockets and device nodes in a build context are skipped, as Docker's tar would fail on sockets


def copy_tree(root: str, src_dir: str, entries: Iterable[tuple[str, str, bool]], src_rel: str, dest: str,
              uid: int, gid: int, chmod: int | None) -> int:
    """Copy the visible ``entries`` (rel, full, is_dir) below ``src_rel`` into the image's ``dest``.

    Every parent is resolved inside ``root`` again for each entry: a symlink
    the image has at some ``dest/x`` (even ``x -> /etc``) is followed inside
    the image, never on the host, also when ``x`` itself is not copied (a
    ``.dockerignore`` exception can bring back ``x/file`` without ``x``).
    """
    dest = "/" + dest.strip("/")
    dst_dir = resolve_in(root, dest)
    if not os.path.isdir(dst_dir):
        make_parents(root, posixpath.dirname(dest), uid, gid)
        dst_dir = resolve_in(root, dest)
        copy_file(src_dir, dst_dir, uid, gid, chmod)
    dirs: list[tuple[str, str]] = []
    count = 0
    prefix = src_rel + "/" if src_rel else ""
    parents: dict[str, str] = {}   # resolved once per directory: entries come parents first
    for rel, full, is_dir in entries:
        sub = rel[len(prefix):] if prefix and rel.startswith(prefix) else rel
        parent_in_image = posixpath.join(dest, posixpath.dirname(sub))
        parent = parents.get(parent_in_image)
        if parent is None:
            parent = parents[parent_in_image] = make_parents(root, parent_in_image, uid, gid)
        target = os.path.join(parent, posixpath.basename(sub))
        copy_file(full, target, uid, gid, chmod)
        if is_dir:
            dirs.append((full, target))
        count += 1
    for full, target in reversed(dirs):
        st = os.lstat(full)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    return count


def write_content(dst: str, content: bytes, uid: int, gid: int, mode: int) -> None:
    """A heredoc or a downloaded file: written fresh at ``dst``."""
    if os.path.lexists(dst):
        _remove(dst)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
        os.fchown(f.fileno(), uid, gid)
        os.fchmod(f.fileno(), mode)


def destination(root: str, dest: str, name: str, into_dir: bool) -> str:
    """Where one file source named ``name`` lands for ``dest``."""
    full = resolve_in(root, dest)
    if into_dir or dest.endswith("/") or os.path.isdir(full):
        return os.path.join(full, name)
    return full


def check_many(sources: int, dest: str, keyword: str) -> None:
    if sources > 1 and not dest.endswith("/"):
        raise BuildError(f"When using {keyword} with more than one source file, the destination "
                         f"must be a directory and end with a /: {dest}",
                         hint=f"write {dest}/ as the destination")


def is_archive(path: str) -> bool:
    """A local tar (plain, gzip, bzip2 or xz compressed) that ADD unpacks; anything else is copied."""
    import bz2
    import gzip
    import lzma
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
        opener = (gzip.open if magic.startswith(b"\x1f\x8b") else bz2.open if magic.startswith(b"BZh")
                  else lzma.open if magic.startswith(b"\xfd7zXZ") else None)
        if opener is None:
            with open(path, "rb") as f:
                head = f.read(512)
        else:
            with opener(path, "rb") as f:  # type: ignore[operator]
                head = f.read(512)
    except (OSError, EOFError, lzma.LZMAError, ValueError):
        return False
    return len(head) >= 262 and head[257:262] == b"ustar"
