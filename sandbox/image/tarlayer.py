"""Layer tars: written deterministically, read without ever writing outside.

Writing (``write_tree``, ``write_overlay_upper``).  The same tree gives the same
bytes on every machine, so the same input gives the same diff_id ("the matrix
from hell" made testable):

* entries sorted by path components (parents before children, an opaque
  marker right after its directory), never in directory-listing order;
* numeric owners only (``uname``/``gname`` empty), ``mode & 0o7777``;
* mtimes as whole seconds, clamped to ``SOURCE_DATE_EPOCH`` when it is given;
  no atime/ctime records;
* xattrs only from :data:`XATTR_ALLOWLIST`, stored as ``SCHILY.xattr.NAME`` PAX
  records in sorted order (bytes kept with ``surrogateescape``);
* a second path of an inode already written becomes a hard link to the first
  path in sorted order, whatever order the files were created in.

Reading (``apply_layer``).  A layer is untrusted input (CVE-2019-14271,
CVE-2018-15664 and the many "tar slip" bugs).  Every entry is checked in a
first pass that writes nothing: absolute names, ``..`` components, NUL bytes,
a path through a symlink (one made by the same tar or already in the target)
and hard links out of the target are refused with :class:`UnsafeLayerEntry`.
Only then does a second pass write, and it walks every path one component at a
time with ``O_NOFOLLOW`` from a descriptor of the target, creating everything
relative to its parent's descriptor, so even a race cannot lead it outside.

Whiteouts follow the OCI image spec, layer "Representing Changes":
https://github.com/opencontainers/image-spec/blob/main/layer.md#whiteouts
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import logging
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from ..errors import LayerError, UnsafeLayerEntry

__all__ = [
    "OPAQUE_MARKER",
    "WHITEOUT_PREFIX",
    "XATTR_ALLOWLIST",
    "apply_layer",
    "open_layer",
    "source_date_epoch",
    "tree_changes",
    "write_overlay_upper",
    "write_tree",
]

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
#: xattrs a layer keeps: file capabilities and the user namespace.  Overlay's
#: own xattrs (trusted.overlay.*, user.overlay.*) describe one mount's upper dir
#: and must never travel in a tar; security.selinux is a host labelling matter.
XATTR_ALLOWLIST: tuple[str, ...] = ("security.capability", "user.")
_XATTR_DENYLIST: tuple[str, ...] = ("user.overlay.",)
_OVERLAY_OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque")
#: overlay features whose upper dir does not hold the whole change on its own.
_OVERLAY_INDIRECT = ("trusted.overlay.redirect", "trusted.overlay.metacopy",
                     "user.overlay.redirect", "user.overlay.metacopy")

CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_PAX_XATTR = "SCHILY.xattr."
_CORRUPT_HINT = "the layer is truncated or corrupt; rebuild the image or pull it again"
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Decoder errors met while reading a layer; zstandard's is added when it is imported.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.TarError, EOFError, zlib.error, OSError, ValueError)


def source_date_epoch() -> int | None:
    """``SOURCE_DATE_EPOCH`` as an int, or None when unset or not a valid time.

    https://reproducible-builds.org/specs/source-date-epoch/
    """
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    try:
        epoch = int(value)
    except ValueError:
        return None
    return epoch if epoch >= 0 else None


def _xattr_allowed(name: str) -> bool:
    if name.startswith(_XATTR_DENYLIST):
        return False
    return any(name == p or (p.endswith(".") and name.startswith(p)) for p in XATTR_ALLOWLIST)


def _read_xattrs(path: str) -> dict[str, bytes]:
    """The allowlisted xattrs of ``path`` (never followed if it is a symlink)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM, errno.EACCES):
            return {}
        raise
    out: dict[str, bytes] = {}
    for name in sorted(n for n in names if _xattr_allowed(n)):
        with contextlib.suppress(OSError):  # removed since listed (ENODATA)
            out[name] = os.getxattr(path, name, follow_symlinks=False)
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
    """Every path under ``root`` (symlinked directories are entries, not descended)."""
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(root / rel if rel else root) as it:
            for entry in it:
                child = f"{rel}/{entry.name}" if rel else entry.name
                yield child
                if entry.is_dir(follow_symlinks=False):
                    stack.append(child)


def _write_items(root: Path, items: list[tuple[str, str]], out: BinaryIO,
                 epoch: int | None) -> None:
    sink: Any = out
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as tar:
        cast(Any, tar).copybufsize = CHUNK  # copy file contents in 1 MiB pieces, not 16 KiB
        first_link: dict[tuple[int, int], str] = {}
        for rel, kind in items:
            if kind == "marker":
                tar.addfile(_marker_info(rel, epoch))
                continue
            try:
                _add_path(tar, root, rel, first_link, epoch)
            except OSError as e:
                raise LayerError(f"cannot add {rel} from {root} to a layer: {e.strerror or e}") from e


def _marker_info(rel: str, epoch: int | None) -> tarfile.TarInfo:
    """A whiteout or opaque marker: an empty regular file owned by 0:0, mode 0."""
    info = tarfile.TarInfo(rel)
    info.mode = 0
    info.mtime = epoch if epoch is not None else 0
    return info


def _add_path(tar: tarfile.TarFile, root: Path, rel: str,
              first_link: dict[tuple[int, int], str], epoch: int | None) -> None:
    full = os.path.join(root, rel)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        raise LayerError(f"cannot add {rel} to a layer: it is not in {root}") from None
    info = _tarinfo(rel, st, full, epoch)
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
    fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        tar.addfile(info, f)


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


def _tarinfo(rel: str, st: os.stat_result, full: str, epoch: int | None) -> tarfile.TarInfo | None:
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
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
    elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
        info.type = tarfile.CHRTYPE if fmt == stat.S_IFCHR else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif fmt == stat.S_IFIFO:
        info.type = tarfile.FIFOTYPE
    else:
        return None
    info.pax_headers = {f"{_PAX_XATTR}{name}": value.decode("utf-8", "surrogateescape")
                        for name, value in _read_xattrs(full).items()}
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
    for rel in _walk_tree(upper):
        full = os.path.join(upper, rel)
        st = os.lstat(full)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            deleted.append(rel)
            continue
        paths.append(rel)
        if stat.S_ISLNK(st.st_mode):
            continue
        names = _list_all_xattrs(full)
        if names.intersection(_OVERLAY_INDIRECT):
            raise LayerError(f"cannot write {full} as a layer: overlay stored it as a redirect or "
                             "metacopy", hint="mount overlay with redirect_dir=off,metacopy=off")
        if stat.S_ISDIR(st.st_mode) and any(
                n in names and os.getxattr(full, n, follow_symlinks=False) == b"y"
                for n in _OVERLAY_OPAQUE):
            opaque.append(rel)
    write_tree(upper, out, paths=paths, deleted=deleted, opaque=opaque, epoch=epoch)


def _list_all_xattrs(path: str) -> set[str]:
    try:
        return set(os.listxattr(path, follow_symlinks=False))
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


# --------------------------------------------------------------------------- decompressing


def open_layer(fileobj: BinaryIO) -> BinaryIO:
    """The uncompressed tar stream of a plain, gzip or zstd layer.

    Sniffs the magic bytes rather than trusting a media type, since docker-archive
    and many registries label gzip'ed layers as plain tar.  Never seeks back on a
    pipe: the sniffed bytes are put in front of the rest.  A plain, seekable
    input is returned as it is.
    """
    head, stream = _sniff(fileobj)
    if head.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if head == _ZSTD_MAGIC:
        return _open_zstd(stream)
    return stream


def _seekable(f: IO[bytes]) -> bool:
    try:
        return bool(f.seekable()) and f.tell() >= 0
    except (AttributeError, OSError, ValueError):
        return False


def _read_upto(f: IO[bytes], n: int) -> bytes:
    """Up to ``n`` bytes, fewer only at the end: tarfile takes a short read for truncation."""
    first = f.read(n)
    if len(first) in (0, n):
        return first
    parts, have = [first], len(first)
    while have < n:
        chunk = f.read(n - have)
        if not chunk:
            break
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)


def _sniff(fileobj: BinaryIO) -> tuple[bytes, BinaryIO]:
    with _reading():
        if _seekable(fileobj):
            start = fileobj.tell()
            head = _read_upto(fileobj, 4)
            fileobj.seek(start)
            return head, fileobj
        head = _read_upto(fileobj, 4)
    return head, io.BufferedReader(_Prefixed(head, fileobj), CHUNK)


class _Prefixed(io.RawIOBase):
    """``prefix`` followed by the rest of ``inner``; closing it leaves ``inner`` open."""

    def __init__(self, prefix: bytes, inner: IO[bytes]) -> None:
        super().__init__()
        self._prefix = prefix
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self._prefix:
            n = min(len(buf), len(self._prefix))
            buf[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._inner.read(len(buf))
        buf[:len(data)] = data
        return len(data)


def _open_zstd(stream: BinaryIO) -> BinaryIO:
    """zstd through the ``zstandard`` module when installed, else one ``zstd -dc`` process."""
    global _DECODE_ERRORS
    try:
        import zstandard
    except ImportError:
        zstandard = None
    if zstandard is not None:
        _DECODE_ERRORS = tuple({*_DECODE_ERRORS, zstandard.ZstdError})
        dctx = zstandard.ZstdDecompressor()
        try:
            reader: BinaryIO = dctx.stream_reader(stream, read_size=CHUNK, read_across_frames=True,
                                                  closefd=False)
            return reader
        except TypeError:  # zstandard < 0.15
            reader = dctx.stream_reader(stream, read_size=CHUNK)
            return reader
    if shutil.which("zstd"):
        return io.BufferedReader(_CommandReader(["zstd", "-dcq"], stream), CHUNK)
    raise LayerError("cannot read a zstd-compressed layer: neither the python module zstandard "
                     "nor the zstd command is installed",
                     hint="install one of them: 'apt-get install zstd' or 'pip install zstandard'")


class _CommandReader(io.RawIOBase):
    """The stdout of a decompressor fed ``source`` by a thread; checks its exit status."""

    def __init__(self, argv: list[str], source: IO[bytes]) -> None:
        super().__init__()
        self._argv = argv
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE)
        except OSError as e:
            raise LayerError(f"cannot run {argv[0]} to decompress a layer: {e.strerror}") from e
        self._feeder = threading.Thread(target=self._feed, args=(source,), daemon=True)
        self._feeder.start()

    def _feed(self, source: IO[bytes]) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            while chunk := source.read(CHUNK):
                stdin.write(chunk)
        except (OSError, ValueError):
            pass  # the decompressor exited (bad input) or the reader was closed early
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        assert self._proc.stdout is not None
        n = cast(io.BufferedReader, self._proc.stdout).readinto(buf)
        if not n and len(buf) and self._proc.wait() != 0:
            assert self._proc.stderr is not None
            err = self._proc.stderr.read().decode(errors="replace").strip()
            raise LayerError(f"layer is not a valid zstd stream: {err or 'zstd failed'}",
                             hint=_CORRUPT_HINT)
        return n or 0

    def close(self) -> None:
        if not self.closed:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._feeder.join()
            for pipe in (self._proc.stdout, self._proc.stderr):
                if pipe is not None:
                    pipe.close()
        super().close()


@contextlib.contextmanager
def _reading() -> Iterator[None]:
    """Turn whatever a broken archive makes tarfile, gzip or zlib raise into a LayerError."""
    try:
        yield
    except LayerError:
        raise
    except _DECODE_ERRORS as e:
        raise LayerError(f"layer is not a valid tar archive: {e}", hint=_CORRUPT_HINT) from e


class _ForwardOnly:
    """tell() and forward-only seek() over a stream.

    tarfile's random-access reader ("r:") only ever seeks forward when members
    are read in order, and it is several times faster than its stream reader
    ("r|"), which copies its whole buffer on every small read.
    """

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data = self._inner.read()
        else:
            data = _read_upto(self._inner, size)
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            pos += self._pos
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or pos < self._pos:
            raise io.UnsupportedOperation("a layer stream cannot seek backwards")
        while pos > self._pos and self.read(min(CHUNK, pos - self._pos)):
            pass
        return self._pos

    def close(self) -> None:
        self._inner.close()


class _Tee:
    """Copy what is read from ``inner`` into ``spool``."""

    def __init__(self, inner: IO[bytes], spool: IO[bytes]) -> None:
        self._inner = inner
        self._spool = spool

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self._spool.write(data)
        return data

    def close(self) -> None:
        self._inner.close()


class _LayerTar:
    """The members of a (compressed) layer, read once and forward.

    With ``tee``, a compressed or unseekable layer is also copied, uncompressed,
    into ``tee`` (``teed`` says so), so that the write pass reads a plain file
    instead of decompressing everything a second time.

    ``plain`` says ``raw`` is already uncompressed and must not be sniffed: the
    write pass reads what the check pass decompressed, and sniffing that again
    would gunzip a polyglot (a tar whose first bytes also make a gzip header) a
    second time, so the write pass would apply another tar than was checked.
    """

    def __init__(self, raw: BinaryIO, tee: IO[bytes] | None = None, *,
                 plain: bool = False) -> None:
        self._raw = raw
        self._tee = tee
        self._plain = plain
        self._layer: BinaryIO | None = None
        self.teed = False

    def __enter__(self) -> _LayerTar:
        self._layer = self._raw if self._plain else open_layer(self._raw)
        try:
            stream: Any = self._layer
            if self._tee is not None and (stream is not self._raw or not _seekable(stream)):
                stream, self.teed = _Tee(stream, self._tee), True
            self._stream: Any = stream if _seekable(stream) else cast(Any, _ForwardOnly(stream))
            with _reading():
                self._tar = tarfile.TarFile(fileobj=self._stream, mode="r",
                                            encoding="utf-8", errors="surrogateescape")
        except BaseException:
            self.__exit__()
            raise
        return self

    def members(self) -> Iterator[tarfile.TarInfo]:
        while True:
            with _reading():
                member = self._tar.next()
            if member is None:
                return
            # we never look back: keep no list of every header (getmembers() would read all)
            cast(Any, self._tar).members.clear()
            member.tarfile = self._tar
            yield member

    def drain(self) -> None:
        """Read to the end, so the spool holds the whole layer."""
        with _reading():
            while self._stream.read(CHUNK):
                pass

    def __exit__(self, *exc: object) -> None:
        if self._layer is not None and self._layer is not self._raw:
            self._layer.close()


# --------------------------------------------------------------------------- applying


@dataclass
class _Entry:
    """One tar member: a real entry, a whiteout (comps = the victim) or an opaque marker."""

    member: tarfile.TarInfo
    comps: list[str]
    action: str  # "entry" | "whiteout" | "opaque"

    @property
    def name(self) -> str:
        return self.member.name

    @property
    def path(self) -> str:
        return "/".join(self.comps)


def _split_name(name: str, entry: str, what: str = "its name") -> list[str]:
    """The components of a tar path, refusing anything that could leave the target."""
    if "\x00" in name:
        raise UnsafeLayerEntry(entry, f"{what} contains a NUL byte")
    if name.startswith("/"):
        raise UnsafeLayerEntry(entry, f"{what} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayerEntry(entry, f"{what} contains a '..' component")
    return parts


def _classify(member: tarfile.TarInfo) -> _Entry | None:
    comps = _split_name(member.name, member.name)
    if not comps:
        return None  # the root itself: its metadata belongs to the engine, not the layer
    base = comps[-1]
    if base == OPAQUE_MARKER:
        return _Entry(member, comps[:-1], "opaque")
    if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
        return None  # other aufs metadata (.wh..wh.plnk, ...): never content
    if base.startswith(WHITEOUT_PREFIX):
        victim = base[len(WHITEOUT_PREFIX):]
        if victim in ("", ".", ".."):
            raise UnsafeLayerEntry(member.name, "a whiteout must name a file")
        return _Entry(member, comps[:-1] + [victim], "whiteout")
    return _Entry(member, comps, "entry")


def _member_kind(member: tarfile.TarInfo) -> str:
    """What an entry makes, as the checker tracks it: dir, symlink or other."""
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.isreg() or member.islnk() or member.isdev():
        return "other"
    raise LayerError(f"cannot apply layer entry {member.name!r}: unsupported tar entry type "
                     f"{member.type!r}", hint=_CORRUPT_HINT)


def _disk_kind(target: Path, rel: str) -> str | None:
    try:
        st = os.lstat(os.path.join(target, rel))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise LayerError(f"cannot check {rel} in {target}: {e.strerror}") from e
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "symlink" if stat.S_ISLNK(st.st_mode) else "other"


@dataclass
class _Plan:
    """What the check pass learned: the removals to make and the bytes to write."""

    whiteouts: set[str] = field(default_factory=set)
    opaques: set[str] = field(default_factory=set)
    size: int = 0
    #: (offset, name, type) of every member checked, in order: the write pass
    #: must meet exactly these, or it would write something never checked.
    members: list[tuple[int, str, bytes]] = field(default_factory=list)


class _Checker:
    """The first pass: simulate the layer on top of ``target`` and refuse unsafe entries.

    It is conservative: whatever it lets through, the write pass can do without
    meeting a symlink or a missing hard-link target half way.
    """

    def __init__(self, target: Path, mode: str) -> None:
        self.target = target
        self.mode = mode
        self.kinds: dict[str, str] = {}  # what this layer has made so far, by path
        self.plan = _Plan()
        self.is_root = os.geteuid() == 0
        #: (entry name, target path) of hard links to files found in the target, not
        #: made by this layer: checked in finish(), once every whiteout is known.
        self.disk_links: list[tuple[str, str]] = []

    def check(self, entry: _Entry) -> None:
        if entry.action == "opaque":
            self._check_dirs(entry.name, entry.comps)
            self.plan.opaques.add(entry.path)
            return
        self._check_dirs(entry.name, entry.comps[:-1])
        if entry.action == "whiteout":
            self.plan.whiteouts.add(entry.path)
            if self.mode == "overlay":
                self._set_kind(entry.path, "other")
            return
        member = entry.member
        kind = _member_kind(member)
        _check_fields(entry)
        if member.islnk():
            self._check_hardlink(entry)
        elif member.issym() and "\x00" in member.linkname:
            raise UnsafeLayerEntry(entry.name, "its symlink target contains a NUL byte")
        elif (member.ischr() or member.isblk()) and not self.is_root:
            raise _needs_root(entry.name)
        if member.isreg():
            self.plan.size += member.size
        self._set_kind(entry.path, kind)

    def _set_kind(self, path: str, kind: str) -> None:
        """Record what ``path`` is now; a directory replaced by a non-directory takes its
        children with it (the write pass removes it recursively)."""
        if self.kinds.get(path) == "dir" and kind != "dir":
            below = path + "/"
            for stale in [p for p in self.kinds if p.startswith(below)]:
                del self.kinds[stale]
        self.kinds[path] = kind

    def _check_dirs(self, name: str, comps: list[str]) -> bool:
        """Every prefix of ``comps`` is, or will be made, a real directory.

        Returns whether the target's own content below still counts (false once
        a prefix is missing on disk or replaced by this layer).
        """
        on_disk = True
        for i in range(1, len(comps) + 1):
            prefix = "/".join(comps[:i])
            disk = _disk_kind(self.target, prefix) if on_disk else None
            kind = self.kinds.get(prefix) or disk or "dir"
            if kind == "symlink":
                raise UnsafeLayerEntry(name, f"{prefix!r} is a symlink; nothing is written through one")
            if kind != "dir":
                raise LayerError(f"cannot apply layer entry {name!r}: {prefix!r} is not a directory",
                                 hint=_CORRUPT_HINT)
            if disk != "dir":
                on_disk = False
                self.kinds.setdefault(prefix, "dir")  # the write pass will mkdir it
        return on_disk

    def _check_hardlink(self, entry: _Entry) -> None:
        link = _split_name(entry.member.linkname, entry.name, "its hard link target")
        if not link:
            raise UnsafeLayerEntry(entry.name, "a hard link may not point at the root")
        on_disk = self._check_dirs(entry.name, link[:-1])
        path = "/".join(link)
        kind = self.kinds.get(path)
        if kind is None and on_disk:
            kind = _disk_kind(self.target, path)
            if kind is not None and self.mode == "merge":
                self.disk_links.append((entry.name, path))
        if kind is None:
            raise _missing_link_target(entry.name, entry.member.linkname)
        if kind == "dir":
            raise UnsafeLayerEntry(entry.name, "a hard link may not point at a directory")

    def finish(self) -> None:
        """Refuse hard links to target files that this layer's own whiteouts remove.

        The write pass removes what a whiteout or opaque marker hides at the first
        entry under it, wherever the marker stands in the tar, so such a file may
        be gone by the time the link is made.  Only a file this layer wrote before
        the link (then in ``kinds``, never recorded here) is sure to be there.
        """
        for name, path in self.disk_links:
            if self._hidden(path):
                raise _missing_link_target(name, path, "this layer's whiteouts remove it")

    def _hidden(self, path: str) -> bool:
        """Whether a whiteout of ``path`` or an ancestor, or an opaque ancestor, hides it."""
        comps = path.split("/")
        prefixes = ["/".join(comps[:i]) for i in range(len(comps) + 1)]
        return any(p in self.plan.whiteouts for p in prefixes[1:]) or \
            any(p in self.plan.opaques for p in prefixes[:-1])


def _missing_link_target(name: str, linkname: str, why: str = "") -> LayerError:
    return LayerError(f"cannot apply layer entry {name!r}: its hard link target {linkname!r} "
                      f"does not exist{f' ({why})' if why else ''}", hint=_CORRUPT_HINT)


_MAX_ID = 2**32 - 2  # (uid_t)-1 means "no change" to chown
_MAX_TIME = 2**62 // 1_000_000_000  # utimensat's nanoseconds must fit in 64 bits


def _check_fields(entry: _Entry) -> None:
    """Numbers and xattr names the write pass could not use would fail half way."""
    m = entry.member
    problems = [what for what, ok in (
        ("owner", 0 <= m.uid <= _MAX_ID and 0 <= m.gid <= _MAX_ID),
        ("mtime", -_MAX_TIME < m.mtime < _MAX_TIME),
        ("device number", 0 <= m.devmajor < 2**32 and 0 <= m.devminor < 2**32),
        ("xattr name", not any("\x00" in k or k == _PAX_XATTR for k in m.pax_headers
                               if k.startswith(_PAX_XATTR))),
    ) if not ok]
    if problems:
        raise LayerError(f"cannot apply layer entry {entry.name!r}: invalid {', '.join(problems)}",
                         hint=_CORRUPT_HINT)
    _check_xattrs(entry)


_XATTR_NAME_MAX = 255  # linux/limits.h: longer names fail with ERANGE
_XATTR_SIZE_MAX = 65536  # longer values fail with E2BIG
#: vfs_cap_data revisions the kernel accepts (security/commoncap.c validheader()),
#: by the high byte of magic_etc, with the size each needs.  Revision 1 (12 bytes)
#: is refused with EINVAL by every kernel since 4.14, so it is refused here too.
_CAP_SIZES = {0x02000000: 20, 0x03000000: 24}


def _check_xattrs(entry: _Entry) -> None:
    """Refuse now the xattrs setxattr(2) would refuse half way through the write pass."""
    for key, text in entry.member.pax_headers.items():
        name = key[len(_PAX_XATTR):]
        if not key.startswith(_PAX_XATTR) or not _xattr_allowed(name):
            continue  # never set, so never a failure
        why = _xattr_problem(name, text.encode("utf-8", "surrogateescape"))
        if why:
            raise LayerError(f"cannot apply layer entry {entry.name!r}: invalid xattr "
                             f"{name[:64]!r}: {why}", hint=_CORRUPT_HINT)


def _xattr_problem(name: str, value: bytes) -> str | None:
    if len(os.fsencode(name)) > _XATTR_NAME_MAX:
        return f"its name is longer than {_XATTR_NAME_MAX} bytes"
    if len(value) > _XATTR_SIZE_MAX:
        return f"its value is longer than {_XATTR_SIZE_MAX} bytes"
    if name == "security.capability":
        magic = int.from_bytes(value[:4], "little") & 0xFF000000
        if len(value) < 4 or _CAP_SIZES.get(magic) != len(value):
            return "not a valid vfs_cap_data (revision 2 or 3)"
    return None


def _needs_root(name: str) -> LayerError:
    return LayerError(f"cannot create device node {name!r}: creating device nodes needs root",
                      hint="run as root, or use an image without device files in its layers")


@contextlib.contextmanager
def _fs_errors(name: str) -> Iterator[None]:
    """An OSError while writing names the entry; the errno stays in __cause__."""
    try:
        yield
    except OSError as e:
        hint = "is this running without root?" if e.errno in (errno.EPERM, errno.EACCES) else None
        raise LayerError(f"cannot apply layer entry {name!r}: {e.strerror or e}", hint=hint) from e
    except (ValueError, OverflowError) as e:  # a number or name the check pass did not foresee
        raise LayerError(f"cannot apply layer entry {name!r}: {e}", hint=_CORRUPT_HINT) from e


def _proc(fd: int) -> str:
    """A path for an O_PATH descriptor: chmod/chown/setxattr on it reach that inode only."""
    return f"/proc/self/fd/{fd}"


def _mtime_ns(member: tarfile.TarInfo) -> int:
    return int(member.mtime * 1_000_000_000) if isinstance(member.mtime, float) \
        else int(member.mtime) * 1_000_000_000


def _set_xattrs(where: int | str, member: tarfile.TarInfo, is_root: bool) -> None:
    """Set the allowlisted SCHILY.xattr records (never overlay's own xattrs)."""
    for key in sorted(member.pax_headers):
        name = key[len(_PAX_XATTR):]
        if not key.startswith(_PAX_XATTR) or not _xattr_allowed(name):
            continue
        value = member.pax_headers[key].encode("utf-8", "surrogateescape")
        try:
            os.setxattr(where, name, value)
        except OSError as e:
            skip = e.errno == errno.ENOTSUP or (
                not is_root and e.errno in (errno.EPERM, errno.EACCES))
            if not skip:
                raise
            log.debug("xattr %s of %s not set: %s", name, member.name, e.strerror)


def _remove_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd``, a directory recursively; symlinks are never followed."""
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
    elif sys.version_info >= (3, 11):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:  # rmtree's fd-based walk, entered through the parent's descriptor
        shutil.rmtree(os.path.join(_proc(dir_fd), name))


class _Applier:
    """The write pass: every path is walked from ``root_fd`` with O_NOFOLLOW."""

    def __init__(self, root_fd: int, mode: str, plan: _Plan) -> None:
        self.root_fd = root_fd
        self.mode = mode
        merge = mode == "merge"
        self.pending_whiteouts = set(plan.whiteouts) if merge else set()
        self.pending_opaques = set(plan.opaques) if merge else set()
        self.dirs: dict[str, tarfile.TarInfo] = {}
        self.size = 0
        self.is_root = os.geteuid() == 0
        epoch = source_date_epoch()
        self.implicit_mtime = epoch if epoch is not None else 0
        #: The last parent directory's fd: entries come grouped by directory, and
        #: walking every path from the root again would cost several opens each.
        self._cached: tuple[tuple[str, ...], int] | None = None

    def close(self) -> None:
        self._forget(())

    def _forget(self, comps: list[str] | tuple[str, ...]) -> None:
        """Drop the cached fd if it is ``comps`` or below: that directory is being removed."""
        if self._cached is not None and self._cached[0][:len(comps)] == tuple(comps):
            os.close(self._cached[1])
            self._cached = None

    def _parent(self, comps: list[str]) -> int:
        """The (cached, borrowed) fd of an entry's parent directory, made if missing."""
        if self._cached is not None and self._cached[0] == tuple(comps):
            return self._cached[1]
        fd = self._open_dir(comps, create=True)
        assert fd is not None
        self._forget(())
        self._cached = (tuple(comps), fd)
        return fd

    def apply(self, entry: _Entry) -> None:
        with _fs_errors(entry.name):
            if self.mode == "merge":
                self._settle(entry.comps)
            if entry.action == "entry":
                self._write(entry)
            elif self.mode == "overlay" and entry.action == "whiteout":
                self._overlay_whiteout(entry)
            elif self.mode == "overlay":
                self._overlay_opaque(entry)

    def _settle(self, comps: list[str]) -> None:
        """Make the removals of this layer's whiteouts before it first touches a path.

        Whiteouts and opaque markers hide only lower layers' files (OCI layer
        spec), so removing at the first touch of a path, before this layer
        writes anything there, makes the result independent of tar order.
        """
        for i in range(len(comps) + 1):
            prefix = "/".join(comps[:i])
            if i and prefix in self.pending_whiteouts:
                self.pending_whiteouts.discard(prefix)
                self._remove(comps[:i])
            if prefix in self.pending_opaques:
                self.pending_opaques.discard(prefix)
                self._clear_dir(comps[:i])

    def _remove(self, comps: list[str]) -> None:
        self._forget(comps)
        pfd = self._open_dir(comps[:-1], create=False)
        if pfd is not None:
            try:
                _remove_at(pfd, comps[-1])
            finally:
                os.close(pfd)

    def _clear_dir(self, comps: list[str]) -> None:
        self._forget(comps)
        pfd = self._open_dir(comps, create=False)
        if pfd is None:
            return
        try:
            dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
        finally:
            os.close(pfd)
        try:
            for child in os.listdir(dfd):
                _remove_at(dfd, child)
        finally:
            os.close(dfd)

    def _open_dir(self, comps: list[str], *, create: bool) -> int | None:
        """An O_PATH fd of the directory ``comps``, walked without following symlinks.

        Missing directories are made (see _make_implicit_dir) when ``create``,
        else None is returned.  The caller closes the fd.
        """
        cur = os.dup(self.root_fd)
        try:
            for i, comp in enumerate(comps):
                try:
                    nxt = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                except FileNotFoundError:
                    if not create:
                        os.close(cur)
                        return None
                    nxt = self._make_implicit_dir(cur, comp, "/".join(comps[:i + 1]))
                os.close(cur)
                cur = nxt
        except BaseException:
            os.close(cur)
            raise
        return cur

    def _make_implicit_dir(self, pfd: int, name: str, path: str) -> int:
        """A parent directory the tar does not list: 0o755, 0:0, a fixed mtime.

        Nothing about it may depend on the clock, the umask or who runs us, or
        importing the same tar twice would give two diff_ids.  Its mode and
        mtime are recorded like a listed directory's, so finish_dirs sets them
        after its children are written (an entry naming it later replaces them).
        """
        os.mkdir(name, 0o700, dir_fd=pfd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        try:
            if self.is_root:
                os.chown(_proc(fd), 0, 0)
            os.chmod(_proc(fd), 0o755)  # not left to the umask
        except BaseException:
            os.close(fd)
            raise
        info = tarfile.TarInfo(path)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, self.implicit_mtime
        self.dirs.setdefault(path, info)
        return fd

    def _write(self, entry: _Entry) -> None:
        member = entry.member
        pfd = self._parent(entry.comps[:-1])
        name = entry.comps[-1]
        if member.isdir():
            self._make_dir(pfd, name, entry)
            return
        if member.islnk() and _split_name(member.linkname, entry.name) == entry.comps:
            return  # a link to itself: the file is already there
        self._forget(entry.comps)
        _remove_at(pfd, name)
        if member.isreg():
            self._make_file(pfd, name, member)
        elif member.issym():
            self._make_symlink(pfd, name, member)
        elif member.islnk():
            self._make_hardlink(pfd, name, entry)
        else:
            self._make_node(pfd, name, member)

    def _make_dir(self, pfd: int, name: str, entry: _Entry) -> None:
        """A directory over a directory keeps its content; its mode and mtime come at the end."""
        try:
            st: os.stat_result | None = os.lstat(name, dir_fd=pfd)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            _remove_at(pfd, name)
            st = None
        if st is None:
            os.mkdir(name, 0o700, dir_fd=pfd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        try:
            if self.is_root:
                os.chown(_proc(fd), entry.member.uid, entry.member.gid)
            _set_xattrs(_proc(fd), entry.member, self.is_root)
        finally:
            os.close(fd)
        self.dirs.pop(entry.path, None)
        self.dirs[entry.path] = entry.member

    def _make_file(self, pfd: int, name: str, member: tarfile.TarInfo) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=pfd)
        try:
            self.size += _copy_member(member, fd)
            # Order matters: a write clears setuid and capabilities, chown clears
            # setuid/setgid and security.capability; so content, owner, mode, xattrs.
            if self.is_root:
                os.chown(fd, member.uid, member.gid)
            os.chmod(fd, member.mode & 0o7777)
            _set_xattrs(fd, member, self.is_root)
            ns = _mtime_ns(member)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def _make_symlink(self, pfd: int, name: str, member: tarfile.TarInfo) -> None:
        """The target text is stored as it is; symlinks have no mode of their own."""
        os.symlink(member.linkname, name, dir_fd=pfd)
        if self.is_root:
            os.chown(name, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        ns = _mtime_ns(member)
        os.utime(name, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def _make_hardlink(self, pfd: int, name: str, entry: _Entry) -> None:
        link = _split_name(entry.member.linkname, entry.name, "its hard link target")
        sfd = self._open_dir(link[:-1], create=False)
        if sfd is None:
            raise LayerError(f"cannot apply layer entry {entry.name!r}: its hard link target "
                             f"{entry.member.linkname!r} does not exist", hint=_CORRUPT_HINT)
        try:
            os.link(link[-1], name, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(sfd)

    def _make_node(self, pfd: int, name: str, member: tarfile.TarInfo) -> None:
        if member.isfifo():
            os.mkfifo(name, 0o600, dir_fd=pfd)
        else:
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            try:
                os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor),
                         dir_fd=pfd)
            except PermissionError:
                raise _needs_root(member.name) from None
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            if self.is_root:
                os.chown(_proc(fd), member.uid, member.gid)
            os.chmod(_proc(fd), member.mode & 0o7777)
            _set_xattrs(_proc(fd), member, self.is_root)
            ns = _mtime_ns(member)
            os.utime(_proc(fd), ns=(ns, ns))
        finally:
            os.close(fd)

    def _overlay_whiteout(self, entry: _Entry) -> None:
        """overlayfs's own whiteout: a 0/0 character device, mode 0, owned by 0:0."""
        pfd = self._parent(entry.comps[:-1])
        self._forget(entry.comps)
        _remove_at(pfd, entry.comps[-1])
        try:
            os.mknod(entry.comps[-1], stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
        except PermissionError:
            raise _needs_root(entry.name) from None

    def _overlay_opaque(self, entry: _Entry) -> None:
        """trusted.overlay.opaque=y; user.overlay.opaque for rootless (userxattr) mounts."""
        fd = self._open_dir(entry.comps, create=True)
        assert fd is not None
        try:
            try:
                os.setxattr(_proc(fd), _OVERLAY_OPAQUE[0], b"y")
            except PermissionError:
                os.setxattr(_proc(fd), _OVERLAY_OPAQUE[1], b"y")
        finally:
            os.close(fd)

    def finish_dirs(self) -> None:
        """Directory modes and mtimes last: writing a child changes its parent's mtime,
        and a read-only directory must not stop us from filling it."""
        for path in sorted(self.dirs, key=lambda p: p.count("/"), reverse=True):
            member = self.dirs[path]
            with _fs_errors(member.name):
                try:
                    fd = self._open_dir(path.split("/"), create=False)
                except NotADirectoryError:
                    continue  # replaced by a non-directory later in the tar
                if fd is None:
                    continue
                try:
                    os.chmod(_proc(fd), member.mode & 0o7777)
                    ns = _mtime_ns(member)
                    os.utime(_proc(fd), ns=(ns, ns))
                finally:
                    os.close(fd)


def _copy_member(member: tarfile.TarInfo, fd: int) -> int:
    """Stream one member's content into ``fd`` in CHUNK pieces; returns the bytes written."""
    tar = member.tarfile
    assert tar is not None
    with _reading():
        src = tar.extractfile(member)
    assert src is not None
    remaining = member.size
    while remaining:
        with _reading():
            chunk = src.read(min(CHUNK, remaining))
        if not chunk:
            raise LayerError(f"layer is not a valid tar archive: {member.name!r} is truncated",
                             hint=_CORRUPT_HINT)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]
        remaining -= len(chunk)
    return member.size


def apply_layer(stream: BinaryIO | str | Path, target: Path, *, mode: str = "merge",
                check_only: bool = False) -> int:
    """Apply a layer tar (plain, gzip or zstd) onto ``target``; returns the bytes of file content.

    ``mode="merge"`` flattens onto a rootfs: whiteouts remove what lower layers
    put in ``target``.  ``mode="overlay"`` unpacks one layer into its own
    directory for overlayfs: whiteouts become 0/0 devices and opaque xattrs.
    Every entry is checked before anything is written, so an unsafe or broken
    layer leaves ``target`` untouched.  ``check_only`` stops after the check.

    The layer is read twice.  A plain, seekable one is simply read again; any
    other is copied uncompressed to an unnamed temp file during the check.
    """
    if mode not in ("merge", "overlay"):
        raise ValueError(f"apply_layer mode must be 'merge' or 'overlay', not {mode!r}")
    target = Path(target)
    with contextlib.ExitStack() as stack:
        raw = _open_source(stream, stack)
        start = raw.tell() if _seekable(raw) else None
        spool = None if check_only else stack.enter_context(_spool_file(target))
        plan, teed = _check_layer(raw, target, mode, spool)
        if check_only:
            return plan.size
        if teed:
            assert spool is not None
            spool.seek(0)
            return _write_layer(spool, target, mode, plan)  # type: ignore[arg-type]
        assert start is not None  # only a plain, seekable layer is not spooled
        raw.seek(start)
        return _write_layer(raw, target, mode, plan)
    raise AssertionError("unreachable")  # for mypy: an ExitStack may swallow exceptions


def _open_source(stream: BinaryIO | str | os.PathLike[str], stack: contextlib.ExitStack) -> BinaryIO:
    if not isinstance(stream, (str, os.PathLike)):
        return stream
    try:
        return stack.enter_context(open(stream, "rb"))
    except OSError as e:
        raise LayerError(f"cannot open layer {os.fspath(stream)}: {e.strerror}") from e


def _spool_file(target: Path) -> IO[bytes]:
    """An unnamed temp file on the target's file system, which must hold the layer anyway
    (/tmp may be a small tmpfs).  With O_TMPFILE no name ever appears beside the target."""
    where = target.parent
    while not where.is_dir() and where != where.parent:
        where = where.parent
    try:
        return tempfile.TemporaryFile(dir=where)
    except OSError:
        return tempfile.TemporaryFile()


def _check_layer(raw: BinaryIO, target: Path, mode: str,
                 spool: IO[bytes] | None) -> tuple[_Plan, bool]:
    checker = _Checker(target, mode)
    with _LayerTar(raw, spool) as layer:
        for member in layer.members():
            checker.plan.members.append(_fingerprint(member))
            entry = _classify(member)
            if entry is not None:
                checker.check(entry)
        if layer.teed:
            layer.drain()
    checker.finish()
    return checker.plan, layer.teed


def _fingerprint(member: tarfile.TarInfo) -> tuple[int, str, bytes]:
    return member.offset, member.name, member.type


def _same_member(plan: _Plan, index: int, member: tarfile.TarInfo | None) -> None:
    """Refuse to go on when the write pass reads another archive than the check pass did.

    Both passes read the same uncompressed bytes, so this never fires unless
    something (a second decompression, a changed file) makes them differ; it is
    the guard that keeps the write pass from applying entries never checked.
    """
    expected = plan.members[index] if index < len(plan.members) else None
    found = _fingerprint(member) if member is not None else None
    if expected != found:
        raise LayerError(f"layer changed between its check and its application: member "
                         f"{index} is {found!r}, the check saw {expected!r}", hint=_CORRUPT_HINT)


def _write_layer(raw: BinaryIO, target: Path, mode: str, plan: _Plan) -> int:
    with _fs_errors(str(target)):
        target.mkdir(parents=True, exist_ok=True)
        root_fd = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    applier = _Applier(root_fd, mode, plan)
    try:
        # plain: ``raw`` is the spool (already uncompressed) or a plain seekable layer
        with _LayerTar(raw, plain=True) as layer:
            index = -1
            for index, member in enumerate(layer.members()):
                _same_member(plan, index, member)
                entry = _classify(member)
                if entry is not None:
                    applier.apply(entry)
            _same_member(plan, index + 1, None)
        applier.finish_dirs()
        return applier.size
    finally:
        applier.close()
        os.close(root_fd)
