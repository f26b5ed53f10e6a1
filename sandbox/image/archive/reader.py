"""Reading an image archive: random access to its members, whatever shape it came in.

``load`` needs to read ``manifest.json`` or ``index.json`` first and then the
members they name, in any order, so the tar must be seekable and plain.  A
plain file is read in place; a compressed (gzip, zstd, bzip2, xz) or piped one
is first decompressed into an unnamed spool file (``TemporaryFile``) in the
store's ``tmp/``, so nothing is left behind even if we are killed.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import json
import lzma
import posixpath
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import IO, Any, BinaryIO, cast
from collections.abc import Iterator

from ...errors import ArchiveError, LayerError, StoreFull
from .. import streams, tarlayer
from ..store import CHUNK, Store
from .common import LOAD_HINT, cause

__all__ = ["Archive", "normalise", "open_archive"]

#: Manifests, indexes and configs are small; refuse to read a "config" of gigabytes into memory.
_MAX_JSON = 64 << 20


class Archive:
    """Random access to the members of a (seekable, uncompressed) tar, by normalised name."""

    def __init__(self, tf: tarfile.TarFile, source: str) -> None:
        self.tf = tf
        self.source = source
        self.members: dict[str, tarfile.TarInfo] = {}
        for member in tf.getmembers():
            if member.isfile() or member.issym() or member.islnk():
                self.members[normalise(member.name)] = member
        self._check_end(tf)

    def _check_end(self, tf: tarfile.TarFile) -> None:
        """Refuse an archive that ends in a header cut short or garbled.

        tarfile stops quietly at a header it cannot read after the first one, as if
        the archive ended there; Docker's reader (Go's archive/tar) calls it an
        unexpected EOF.  Where tarfile stopped there must be the end: nothing, or
        the zero block that marks it (what follows that is ignored, as by Docker).
        """
        assert tf.fileobj is not None
        tf.fileobj.seek(tf.offset)
        if tf.fileobj.read(tarfile.BLOCKSIZE).strip(b"\0"):
            raise ArchiveError(f"{self.source} is damaged: the tar header at byte {tf.offset} is cut short "
                                   "or garbled", hint="the archive was cut short or edited; save it again")

    def has(self, name: str) -> bool:
        return name in self.members

    def open(self, name: str) -> tuple[IO[bytes], int]:
        """The member's content and size; symlinks (old docker save dedups layers so) are followed."""
        member = self.members.get(name)
        for _ in range(16):
            if member is None or member.isfile():
                break
            target = member.linkname if member.islnk() else posixpath.join(posixpath.dirname(name), member.linkname)
            name = normalise(target)
            member = self.members.get(name)
        if member is None or not member.isfile():
            raise ArchiveError(f"{self.source} is incomplete: member {name} is missing",
                               hint="the archive was cut short or edited; save it again")
        f = self.tf.extractfile(member)
        assert f is not None
        return f, member.size

    def read(self, name: str, what: str) -> bytes:
        f, size = self.open(name)
        if size > _MAX_JSON:
            raise ArchiveError(f"{self.source}: {what} {name} is {size} bytes, too large to be one",
                               hint="the archive is damaged or not an image archive")
        return f.read()

    def read_json(self, name: str, what: str) -> Any:
        try:
            return json.loads(self.read(name, what))
        except ValueError as e:
            raise ArchiveError(f"{self.source}: {what} {name} is not valid JSON ({e})",
                               hint="the archive is damaged; save it again") from None


def normalise(name: str) -> str:
    name = posixpath.normpath("/" + name).lstrip("/")
    return name


@contextlib.contextmanager
def open_archive(stream: BinaryIO, store: Store, source: str) -> Iterator[Archive]:
    """Open the archive for random access, spooling (and decompressing) it into the store's tmp dir if needed.

    The spool file is unnamed (``TemporaryFile``), so nothing is left behind even if we are killed.
    """
    seekable = streams.seekable(stream)
    head, rest = streams.sniff(stream)  # a seekable stream comes back at its start
    compressed = streams.compression(head)
    with contextlib.ExitStack() as stack:
        if compressed is None and seekable:
            tar_file: IO[bytes] = rest
        else:
            tar_file = stack.enter_context(tempfile.TemporaryFile(dir=store.tmp_dir, prefix="load-"))
            _spool(rest, tar_file, compressed, source)
            tar_file.seek(0)
        try:
            tf = stack.enter_context(tarfile.open(fileobj=cast(IO[bytes], _NoOverreads(tar_file)), mode="r:"))
            archive = Archive(tf, source)
        except (tarfile.TarError, EOFError, OSError) as e:
            what = "it is empty" if not head else f"it is not a tar file ({e})"
            raise ArchiveError(f"{source} is not an image archive: {what}", hint=LOAD_HINT) from None
        yield archive


class _NoOverreads:
    """A seekable file whose ``read(n)`` never asks for more than is left in it.

    tarfile reads a pax or GNU long-name header in one ``read(size)`` of the size
    the header claims, and a buffered file allocates that much before reading: a
    forged 1 TiB header in a 1 KiB archive would be a MemoryError, not a bad archive.
    """

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        start = f.tell()
        self.end = f.seek(0, 2)
        f.seek(start)

    def read(self, n: int | None = -1) -> bytes:
        left = max(self.end - self.f.tell(), 0)
        return self.f.read(left if n is None or n < 0 else min(n, left))

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()


def _spool(src: IO[bytes], dst: IO[bytes], compressed: str | None, source: str) -> None:
    reader: Any = src
    if compressed == "gzip":
        reader = streams.gunzip(reader)
    elif compressed == "bzip2":
        reader = bz2.BZ2File(reader)
    elif compressed == "xz":
        reader = lzma.LZMAFile(reader)
    elif compressed == "zstd":
        reader = tarlayer.open_layer(reader)
    try:
        while chunk := reader.read(CHUNK):
            try:
                dst.write(chunk)
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise StoreFull(f"a spooled copy of {source}", str(Path(dst.name).parent)
                                    if isinstance(getattr(dst, "name", None), str) else "the store") from None
                raise
    except (OSError, EOFError, zlib.error, lzma.LZMAError, LayerError) as e:
        raise ArchiveError(f"{source} is not a valid {compressed} stream: {cause(e)}",
                           hint="the download or copy was probably cut short; fetch it again") from None

