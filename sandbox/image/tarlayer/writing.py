"""Writing layers: a tree or an overlay upper directory as a deterministic tar.

The same tree gives the same bytes on every machine, so the same input gives
the same diff_id ("the matrix from hell" made testable):

* entries sorted by path components (parents before children, an opaque
  marker right after its directory), never in directory-listing order;
* numeric owners only (``uname``/``gname`` empty), ``mode & 0o7777``;
* mtimes as whole seconds, clamped to ``SOURCE_DATE_EPOCH`` when it is given;
  no atime/ctime records;
* xattrs only from :data:`~.format.XATTR_ALLOWLIST`, stored as
  ``SCHILY.xattr.NAME`` PAX records in sorted order (bytes kept with
  ``surrogateescape``);
* a second path of an inode already written becomes a hard link to the first
  path in sorted order, whatever order the files were created in.

Also here: :func:`tree_changes`, the vfs driver's diff of two trees, whose
output is what :func:`write_tree` takes.  The tar is written uncompressed;
``layers.write_layer_blob`` gzips and hashes it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from ...errors import LayerError
from .format import (CHUNK, OPAQUE_MARKER, OVERLAY_INDIRECT, OVERLAY_OPAQUE, PAX_XATTR,
                     WHITEOUT_PREFIX, xattr_allowed)


__all__ = ["stored_owner", "tree_changes", "write_overlay_upper", "write_tree"]


def _fd_path(fd: int) -> str:
    """The /proc path of a descriptor (as sandbox.kernel.fd_path, without loading ctypes for it)."""
    return f"/proc/self/fd/{fd}"


def _read_xattrs(path: str, *, follow: bool = False) -> dict[str, bytes]:
    """The allowlisted xattrs of ``path`` (never followed if it is a symlink, unless
    ``follow``: for ``/proc/self/fd/N``, which names the inode an fd holds)."""
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM, errno.EACCES, errno.ENODATA):
            return {}
        raise
    out: dict[str, bytes] = {}
    for name in sorted(n for n in names if xattr_allowed(n)):
        with contextlib.suppress(OSError):  # removed since listed (ENODATA)
            out[name] = os.getxattr(path, name, follow_symlinks=follow)
    return out


def _sort_key(rel: str) -> tuple[bytes, ...]:
    """Component-wise byte order: parents first, an opaque marker first among children."""
    parts = rel.split("/")
    if parts[-1] == OPAQUE_MARKER:
        parts[-1] = ""  # no real name is empty, so the marker sorts right after its dir
    return tuple(os.fsencode(p) for p in parts)


def _clean_rel(rel: str) -> str:
    """Normalise a caller's relative path; a caller bug is a ValueError, not a LayerError."""
    parts = [p for p in str(rel).split("/") if p not in ("", ".")]
    if str(rel).startswith("/") or ".." in parts:
        raise ValueError(f"layer paths must be relative and inside the tree: {rel!r}")
    return "/".join(parts)


def _with_parents(rel: str, items: dict[str, str]) -> None:
    parts = rel.split("/")
    for i in range(1, len(parts)):
        items.setdefault("/".join(parts[:i]), "path")


# --------------------------------------------------------------------------- writing


def write_tree(root: Path, out: BinaryIO, *, paths: Iterable[str] | None = None,
               deleted: Iterable[str] = (), opaque: Iterable[str] = (),
               epoch: int | None = None) -> None:
    """Write a deterministic, uncompressed PAX tar of ``root`` to ``out``.

    ``paths=None`` takes the whole tree; otherwise only the listed entries and
    their parent directories (a listed directory is not recursed into).
    ``deleted`` become ``.wh.NAME`` whiteouts and ``opaque`` directories get a
    ``.wh..wh..opq`` marker.  ``out`` may be a pipe: nothing seeks.
    """
    root = Path(root)
    items: dict[str, str] = {}
    for rel in (_walk_tree(root) if paths is None else paths):
        rel = _clean_rel(rel)
        if rel:
            items[rel] = "path"
            _with_parents(rel, items)
    for rel in deleted:
        rel = _clean_rel(rel)
        parent, _, name = rel.rpartition("/")
        items[f"{parent}/{WHITEOUT_PREFIX}{name}".lstrip("/")] = "marker"
        _with_parents(rel, items)
    for rel in opaque:
        rel = _clean_rel(rel)
        if rel:
            items[rel] = "path"
            _with_parents(rel, items)
        items[f"{rel}/{OPAQUE_MARKER}".lstrip("/")] = "marker"
    _write_items(root, sorted(items.items(), key=lambda kv: _sort_key(kv[0])), out, epoch)


def _walk_tree(root: Path) -> Iterator[str]:
    """Every path under ``root`` (symlinked directories are entries, not descended).

    Walked from directory descriptors (``os.fwalk``), so a directory a running
    container swaps for a symlink is never listed through the link.
    """
    for dirpath, dirnames, filenames, _ in os.fwalk(root, follow_symlinks=False):
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else rel + "/"
        for name in dirnames + filenames:
            yield prefix + name


class _Reader:
    """Opens the entries of one tree through real directories below its root only.

    A container may own the tree (``export`` and ``commit`` of a running one):
    every entry is reached with :func:`~sandbox.kernel.open_beneath` from a
    descriptor of the root, so a component swapped for a symlink after the
    walk listed it is refused (ELOOP), never followed to the host.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._parent: tuple[str, int] | None = None

    def close(self) -> None:
        if self._parent is not None:
            os.close(self._parent[1])
            self._parent = None
        os.close(self.root_fd)

    def parent_fd(self, rel: str) -> int:
        """A descriptor of ``rel``'s directory (the last one is kept: entries come sorted)."""
        parent = rel.rpartition("/")[0]
        if self._parent is not None and self._parent[0] == parent:
            return self._parent[1]
        from ...kernel.resolve import open_beneath    # ctypes: loaded when a tree is read
        fd = open_beneath(self.root_fd, parent, os.O_PATH | os.O_DIRECTORY) if parent \
            else os.dup(self.root_fd)
        if self._parent is not None:
            os.close(self._parent[1])
        self._parent = (parent, fd)
        return fd

    def open(self, rel: str) -> int:
        """An O_PATH descriptor of the entry itself (a symlink is not followed)."""
        return os.open(rel.rpartition("/")[2], os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC,
                       dir_fd=self.parent_fd(rel))


def _write_items(root: Path, items: list[tuple[str, str]], out: BinaryIO,
                 epoch: int | None) -> None:
    sink: Any = out
    reader = _Reader(root)
    try:
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT,
                          encoding="utf-8", errors="surrogateescape") as tar:
            cast(Any, tar).copybufsize = CHUNK  # copy file contents in 1 MiB pieces, not 16 KiB
            first_link: dict[tuple[int, int], str] = {}
            for rel, kind in items:
                if kind == "marker":
                    tar.addfile(_marker_info(rel, epoch))
                    continue
                try:
                    _add_path(tar, reader, rel, first_link, epoch)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.EXDEV):
                        raise LayerError(f"cannot add {rel} from {root} to a layer: a directory "
                                         "on its path was replaced by a symlink while it was "
                                         "read (refused: it could lead outside the tree)",
                                         hint="stop or pause the container and try again") from e
                    raise LayerError(f"cannot add {rel} from {root} to a layer: {e.strerror or e}") from e
    finally:
        reader.close()


def _marker_info(rel: str, epoch: int | None) -> tarfile.TarInfo:
    """A whiteout or opaque marker: an empty regular file owned by 0:0, mode 0."""
    info = tarfile.TarInfo(rel)
    info.mode = 0
    info.mtime = epoch if epoch is not None else 0
    return info


def _add_path(tar: tarfile.TarFile, reader: _Reader, rel: str,
              first_link: dict[tuple[int, int], str], epoch: int | None) -> None:
    try:
        fd = reader.open(rel)
    except FileNotFoundError:
        raise LayerError(f"cannot add {rel} to a layer: it is not in {reader.root}") from None
    try:
        st = os.fstat(fd)        # of the entry itself: an O_PATH|O_NOFOLLOW fd of a link is the link
        info = _tarinfo(rel, st, fd, epoch)
        if info is None:
            return  # sockets live only as long as the process that bound them
        if not info.isreg():
            tar.addfile(info)
            return
        if st.st_nlink > 1:
            first = first_link.setdefault((st.st_dev, st.st_ino), rel)
            if first != rel:
                info.type, info.linkname, info.size = tarfile.LNKTYPE, first, 0
                tar.addfile(info)
                return
        with open(_fd_path(fd), "rb") as f:    # the inode the fd holds, whatever the name is now
            tar.addfile(info, f)
    finally:
        os.close(fd)


def stored_owner(uid: int, gid: int) -> tuple[int, int]:
    """The owner a file gets in a layer.

    As root, its own.  Without root (rootless mode, Binder), files the user owns
    stand for root's: inside a rootless container root *is* that user, and a
    base image made without root must still say 0:0 like every image does.
    """
    euid = os.geteuid()
    if euid == 0:
        return uid, gid
    return (0 if uid == euid else uid), (0 if gid == os.getegid() else gid)


def _tarinfo(rel: str, st: os.stat_result, fd: int, epoch: int | None) -> tarfile.TarInfo | None:
    """The header of one entry, with nothing in it that varies between machines."""
    info = tarfile.TarInfo(rel)  # tarfile appends the "/" of a directory name itself
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = stored_owner(st.st_uid, st.st_gid)
    info.uname = info.gname = ""
    mtime = st.st_mtime_ns // 1_000_000_000
    info.mtime = min(mtime, epoch) if epoch is not None else mtime
    fmt = stat.S_IFMT(st.st_mode)
    if fmt == stat.S_IFREG:
        info.type, info.size = tarfile.REGTYPE, st.st_size
    elif fmt == stat.S_IFDIR:
        info.type = tarfile.DIRTYPE
    elif fmt == stat.S_IFLNK:
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink("", dir_fd=fd)
    elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
        info.type = tarfile.CHRTYPE if fmt == stat.S_IFCHR else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif fmt == stat.S_IFIFO:
        info.type = tarfile.FIFOTYPE
    else:
        return None
    # A symlink's own xattrs are not reachable from its O_PATH fd (and user.*
    # ones cannot exist on a link at all); every other inode's are, through /proc.
    xattrs = {} if fmt == stat.S_IFLNK else _read_xattrs(_fd_path(fd), follow=True)
    info.pax_headers = {f"{PAX_XATTR}{name}": value.decode("utf-8", "surrogateescape")
                        for name, value in xattrs.items()}
    return info


def write_overlay_upper(upper: Path, out: BinaryIO, *, epoch: int | None = None) -> None:
    """Write an overlayfs upper directory as an OCI layer.

    overlayfs marks a deletion with a 0/0 character device and a directory that
    hides the lower ones with the ``*.overlay.opaque`` xattr; both become OCI
    whiteouts.  See Documentation/filesystems/overlayfs.rst in the kernel.
    """
    upper = Path(upper)
    paths: list[str] = []
    deleted: list[str] = []
    opaque: list[str] = []
    for dirpath, dirnames, filenames, dirfd in os.fwalk(upper, follow_symlinks=False):
        rel_dir = os.path.relpath(dirpath, upper)
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for name in dirnames + filenames:
            rel = prefix + name
            try:
                st = os.lstat(name, dir_fd=dirfd)
            except FileNotFoundError:
                continue        # removed since listed (a container still running)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                deleted.append(rel)
                continue
            paths.append(rel)
            if stat.S_ISLNK(st.st_mode):
                continue
            try:
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
            except FileNotFoundError:
                paths.pop()
                continue
            try:
                names = _list_all_xattrs(_fd_path(fd))
                if names.intersection(OVERLAY_INDIRECT):
                    raise LayerError(f"cannot write {upper / rel} as a layer: overlay stored it as a "
                                     "redirect or metacopy",
                                     hint="mount overlay with redirect_dir=off,metacopy=off")
                if stat.S_ISDIR(st.st_mode) and any(
                        n in names and os.getxattr(_fd_path(fd), n) == b"y" for n in OVERLAY_OPAQUE):
                    opaque.append(rel)
            finally:
                os.close(fd)
    write_tree(upper, out, paths=paths, deleted=deleted, opaque=opaque, epoch=epoch)


def _list_all_xattrs(path: str) -> set[str]:
    """Every xattr name of ``path`` (a ``/proc/self/fd/N`` name: followed to its inode)."""
    try:
        return set(os.listxattr(path))
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM, errno.EACCES):
            return set()
        raise


# --------------------------------------------------------------------------- diffing


def tree_changes(lower: Path, upper: Path) -> tuple[list[str], list[str]]:
    """What turns ``lower`` into ``upper``: (changed or added paths, deleted paths).

    This is the vfs driver's diff, where no overlay records the changes for us.
    A directory is listed only if its own metadata changed (write_tree adds the
    parents of changed paths anyway); a deleted directory is listed alone.
    """
    changed: list[str] = []
    deleted: list[str] = []
    _diff_dir(Path(lower), Path(upper), "", changed, deleted)
    return sorted(changed, key=_sort_key), sorted(deleted, key=_sort_key)


def _diff_dir(lower: Path, upper: Path, rel: str, changed: list[str], deleted: list[str]) -> None:
    lower_names = set(os.listdir(lower / rel if rel else lower))
    upper_names = os.listdir(upper / rel if rel else upper)
    for name in upper_names:
        child = f"{rel}/{name}" if rel else name
        ust = os.lstat(upper / child)
        lst = os.lstat(lower / child) if name in lower_names else None
        if lst is None or _entry_differs(lower / child, upper / child, lst, ust):
            changed.append(child)
        if not stat.S_ISDIR(ust.st_mode):
            continue
        if lst is not None and stat.S_ISDIR(lst.st_mode):
            _diff_dir(lower, upper, child, changed, deleted)
        else:
            changed.extend(f"{child}/{p}" for p in _walk_tree(upper / child))
    for name in lower_names.difference(upper_names):
        deleted.append(f"{rel}/{name}" if rel else name)


def _entry_differs(lpath: Path, upath: Path, lst: os.stat_result, ust: os.stat_result) -> bool:
    """Whether an entry's own type, metadata, content or allowlisted xattrs changed."""
    if (lst.st_mode, lst.st_uid, lst.st_gid) != (ust.st_mode, ust.st_uid, ust.st_gid):
        return True
    fmt = stat.S_IFMT(ust.st_mode)
    if fmt in (stat.S_IFCHR, stat.S_IFBLK) and lst.st_rdev != ust.st_rdev:
        return True
    if fmt == stat.S_IFLNK:
        return os.readlink(lpath) != os.readlink(upath)
    if fmt == stat.S_IFREG:
        if lst.st_size != ust.st_size:
            return True
        if lst.st_mtime_ns != ust.st_mtime_ns and not _same_bytes(lpath, upath):
            return True
    return _read_xattrs(str(lpath)) != _read_xattrs(str(upath))


def _same_bytes(a: Path, b: Path) -> bool:
    with open(a, "rb", buffering=0) as fa, open(b, "rb", buffering=0) as fb:
        while True:
            chunk = fa.read(CHUNK)
            if chunk != fb.read(CHUNK):
                return False
            if not chunk:
                return True
