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

Also here: :func:`tree_diff` (and its short form :func:`tree_changes`), the
vfs driver's diff of two trees, whose output is what :func:`write_tree` takes.  The tar is written uncompressed;
``layers.write_layer_blob`` gzips and hashes it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from ...errors import LayerError
from .format import (CHUNK, OPAQUE_MARKER, OVERLAY_INDIRECT, OVERLAY_OPAQUE, PAX_XATTR,
                     WHITEOUT_PREFIX, source_date_epoch, xattr_allowed)


__all__ = ["SameDir", "TreeDiff", "stored_owner", "tree_changes", "tree_diff", "write_overlay_upper",
           "write_tree"]


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
    ``epoch=None`` takes ``SOURCE_DATE_EPOCH`` when it is set, so a build's
    RUN and COPY layers are clamped like every other layer (reproducible builds).
    """
    root = Path(root)
    if epoch is None:
        epoch = source_date_epoch()
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


#: The 0/0 device fuse-overlayfs leaves beside the ``.wh..wh..opq`` file it writes.
_FUSE_OPQ_WHITEOUT = ".wh..opq"


def write_overlay_upper(upper: Path, out: BinaryIO, *, epoch: int | None = None) -> None:
    """Write an overlayfs upper directory as an OCI layer.

    overlayfs marks a deletion with a 0/0 character device and a directory that
    hides the lower ones with the ``*.overlay.opaque`` xattr; both become OCI
    whiteouts.  See Documentation/filesystems/overlayfs.rst in the kernel.
    fuse-overlayfs (the fuse-overlayfs driver) may write the OCI spelling itself:
    a regular ``.wh..wh..opq`` in an opaque directory (and a 0/0 ``.wh..opq``
    beside it), a regular ``.wh.NAME`` where it could not mknod; those are read
    as the markers they are, so each appears once in the layer.
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
            if name.startswith(WHITEOUT_PREFIX):      # fuse-overlayfs's own markers
                if name == OPAQUE_MARKER:
                    opaque.append(prefix.rstrip("/"))
                    continue
                if name == _FUSE_OPQ_WHITEOUT and OPAQUE_MARKER in filenames:
                    continue                           # left beside the marker: not a deletion
                if stat.S_ISREG(st.st_mode):
                    deleted.append(prefix + name[len(WHITEOUT_PREFIX):])
                    continue
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


@dataclass
class TreeDiff:
    """What turns a lower tree into an upper one, in the shape a layer takes.

    ``added`` and ``modified`` are entries of the upper tree (``added``: the
    lower has nothing at that path); ``deleted`` are the lower's entries the
    upper lacks (a deleted directory alone, not its contents); ``opaque`` are
    directories that replaced the lower's entry at their path wholesale, so
    everything below them is listed and nothing the lower had there shows
    through (``hidden``: the lower's entries right below them, which ``docker
    diff`` reports as deleted).  A directory is listed only if its own
    metadata changed, or it is new: :func:`write_tree` adds the parents of
    what it writes anyway, as overlayfs's copy-up does.
    """

    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    opaque: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)

    @property
    def changed(self) -> list[str]:
        return sorted(self.added + self.modified, key=_sort_key)

    def sort(self) -> TreeDiff:
        for name in ("added", "modified", "deleted", "opaque", "hidden"):
            getattr(self, name).sort(key=_sort_key)
        return self


#: ``same_dir(rel, fd)``: whether the upper's directory at ``rel`` (open as ``fd``)
#: is the one the upper tree started with, or was made anew since.
SameDir = Callable[[str, int], bool]

_LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def tree_changes(lower: Path, upper: Path) -> tuple[list[str], list[str]]:
    """What turns ``lower`` into ``upper``: (changed or added paths, deleted paths).

    The vfs driver's diff, where no overlay records the changes for us;
    :func:`tree_diff` with content comparison and no directory identities.
    """
    diff = tree_diff(lower, upper)
    return diff.changed, diff.deleted


def tree_diff(lower: Path | Sequence[Path], upper: Path, *, by_mtime: bool = False,
              same_dir: SameDir | None = None) -> TreeDiff:
    """Compare plain trees (no whiteouts in any); see :class:`TreeDiff`.

    ``lower`` is one tree or several stacked ones, top first, as overlay
    stacks lower dirs: the topmost entry at a path decides, a non-directory
    hides what is below it, directories merge.  (A directory found in several
    has the *lowest* one's metadata: that is how the vfs driver lays an init
    layer over an image, keeping the image's own ``/etc``.)  The lower trees
    are the engine's own and are read by path.  ``upper`` may belong to a
    running container: it is walked from directory descriptors opened with
    ``O_NOFOLLOW``, so a directory swapped for a symlink is never listed
    through the link.

    ``by_mtime`` (the container drivers' rule): a regular file whose mtime
    changed is changed, without reading it -- overlayfs copies a file up on
    any write or ``touch``, and Docker's vfs driver compares mtimes too.
    Without it, a changed mtime counts only if the bytes differ.  Directory
    mtimes never count: they change whenever an entry is added or removed
    (moby/moby#9874).

    ``same_dir``: with it, a directory of ``upper`` that is not the one it
    started with, at a path where ``lower`` has an entry, is *opaque*, as the
    directory overlayfs makes after an ``rm -rf`` (or over a file) is.
    """
    lowers = [Path(lower)] if isinstance(lower, (str, os.PathLike)) else [Path(p) for p in lower]
    diff = TreeDiff()
    top = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _diff_dir(lowers, top, "", diff, by_mtime, same_dir)
    finally:
        os.close(top)
    return diff.sort()


def _open_below(dfd: int, name: str) -> int | None:
    """A listing descriptor of directory ``name`` in ``dfd``; None if it is no longer one."""
    try:
        return os.open(name, _LIST_FLAGS, dir_fd=dfd)
    except OSError:
        return None     # removed, or replaced by a symlink (ELOOP) since it was listed


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _listings(dirs: list[Path], rel: str) -> dict[Path, set[str]]:
    return {d: set(os.listdir(d / rel if rel else d)) for d in dirs}


def _lower_entry(names: dict[Path, set[str]], child: str,
                 name: str) -> tuple[Path | None, os.stat_result | None, list[Path]]:
    """What the stacked lowers show at ``child``: its path, its lstat, and the lowers in
    which it is a directory that merges (empty for a non-directory or nothing)."""
    found = [(d, st) for d, listed in names.items() if name in listed
             for st in [_lstat(d / child)] if st is not None]
    if not found:
        return None, None, []
    if not stat.S_ISDIR(found[0][1].st_mode):
        return found[0][0] / child, found[0][1], []
    run: list[tuple[Path, os.stat_result]] = []
    for d, st in found:
        if not stat.S_ISDIR(st.st_mode):
            break       # a non-directory hides everything below it
        run.append((d, st))
    return run[-1][0] / child, run[-1][1], [d for d, _ in run]


def _diff_dir(lowers: list[Path], dfd: int, rel: str, diff: TreeDiff, by_mtime: bool,
              same_dir: SameDir | None) -> None:
    """Compare the upper directory ``dfd`` at ``rel`` with the lowers that hold a directory there."""
    names = _listings(lowers, rel)
    lower_names = set().union(*names.values())
    upper_names = os.listdir(dfd)
    for name in upper_names:
        child = f"{rel}/{name}" if rel else name
        try:
            ust = os.lstat(name, dir_fd=dfd)
        except FileNotFoundError:
            continue        # removed since listed
        lpath, lst, below = _lower_entry(names, child, name) if name in lower_names else (None, None, [])
        if not stat.S_ISDIR(ust.st_mode):
            if lst is None:
                diff.added.append(child)
            elif _entry_differs(lpath, lst, dfd, name, ust, by_mtime):  # type: ignore[arg-type]
                diff.modified.append(child)
            continue
        sub = _open_below(dfd, name)
        if sub is None:
            continue
        try:
            if lst is None:
                diff.added.append(child)
                _walk_new([], sub, child, diff)
            elif same_dir is not None and not same_dir(child, sub):
                diff.modified.append(child)
                diff.opaque.append(child)
                present = set(os.listdir(sub))
                hidden = set().union(*_listings(below, child).values()) if below else set()
                diff.hidden.extend(f"{child}/{n}" for n in hidden - present)
                _walk_new([d / child for d in below], sub, child, diff)
            elif not below:
                diff.modified.append(child)     # a directory where the lower has something else
                _walk_new([], sub, child, diff)
            else:
                if _entry_differs(lpath, lst, dfd, name, ust, by_mtime):  # type: ignore[arg-type]
                    diff.modified.append(child)
                _diff_dir(below, sub, child, diff, by_mtime, same_dir)
        finally:
            os.close(sub)
    diff.deleted.extend(f"{rel}/{n}" if rel else n for n in lower_names.difference(upper_names))


def _walk_new(lower_dirs: list[Path], dfd: int, rel: str, diff: TreeDiff) -> None:
    """Everything below a new or opaque directory; ``lower_dirs`` (the lowers' directories
    at ``rel``) only decide "added" or "modified" for each entry."""
    for name in os.listdir(dfd):
        child = f"{rel}/{name}"
        in_lower = [(d / name, st) for d in lower_dirs for st in [_lstat(d / name)] if st is not None]
        (diff.modified if in_lower else diff.added).append(child)
        sub = _open_below(dfd, name)
        if sub is None:
            continue
        try:
            _walk_new([p for p, st in in_lower if stat.S_ISDIR(st.st_mode)], sub, child, diff)
        finally:
            os.close(sub)


def _entry_differs(lpath: Path, lst: os.stat_result, dfd: int, name: str, ust: os.stat_result,
                   by_mtime: bool) -> bool:
    """Whether an entry's own type, metadata, content or allowlisted xattrs changed
    (the upper's entry is ``name`` in the directory ``dfd``)."""
    if (lst.st_mode, lst.st_uid, lst.st_gid) != (ust.st_mode, ust.st_uid, ust.st_gid):
        return True
    fmt = stat.S_IFMT(ust.st_mode)
    if fmt in (stat.S_IFCHR, stat.S_IFBLK) and lst.st_rdev != ust.st_rdev:
        return True
    if fmt == stat.S_IFLNK:
        return os.readlink(lpath) != os.readlink(name, dir_fd=dfd)
    if fmt == stat.S_IFREG:
        if lst.st_size != ust.st_size:
            return True
        if lst.st_mtime_ns != ust.st_mtime_ns and (by_mtime or not _same_bytes(lpath, dfd, name)):
            return True
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    except OSError:
        return True     # replaced since it was listed: the next look decides
    try:
        return _read_xattrs(str(lpath)) != _read_xattrs(_fd_path(fd), follow=True)
    finally:
        os.close(fd)


def _same_bytes(a: Path, dfd: int, name: str) -> bool:
    try:
        ub = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    except OSError:
        return False
    with open(a, "rb", buffering=0) as fa, open(ub, "rb", buffering=0) as fb:
        while True:
            chunk = fa.read(CHUNK)
            if chunk != fb.read(CHUNK):
                return False
            if not chunk:
                return True
