"""Reading layers: the uncompressed tar stream of a plain, gzip or zstd layer, read forward.

A layer may arrive as a file, a pipe or a download, labelled with a media type
that is often wrong, so the compression is sniffed (:mod:`..streams`).  zstd is
read through the ``zstandard`` module when it is installed, else through one
``zstd -dc`` process (:class:`_CommandReader`).  :class:`LayerTar` yields the
members of a layer once and in order, optionally copying the uncompressed
bytes into a spool so a second pass need not decompress again.  Whatever a
broken stream makes tarfile, gzip, zlib or zstd raise becomes a ``LayerError``
(:func:`read_errors`).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import tarfile
import threading
import zlib
from collections.abc import Iterator
from typing import IO, Any, BinaryIO, cast

from ...errors import LayerError
from .. import streams
from .format import CHUNK, CORRUPT_HINT

__all__ = ["LayerTar", "open_layer", "read_errors"]

#: Decoder errors met while reading a layer; zstandard's is added when it is imported.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.TarError, EOFError, zlib.error, OSError, ValueError)


def open_layer(fileobj: BinaryIO) -> BinaryIO:
    """The uncompressed tar stream of a plain, gzip or zstd layer.

    Sniffs the magic bytes rather than trusting a media type, since docker-archive
    and many registries label gzip'ed layers as plain tar.  Never seeks back on a
    pipe: the sniffed bytes are put in front of the rest.  A plain, seekable
    input is returned as it is.
    """
    with read_errors():
        head, stream = streams.sniff(fileobj)
    kind = streams.compression(head)
    if kind == "gzip":
        return cast(BinaryIO, streams.gunzip(stream))
    if kind == "zstd":
        return _open_zstd(stream)
    return cast(BinaryIO, stream)


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
                             hint=CORRUPT_HINT)
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
def read_errors() -> Iterator[None]:
    """Turn whatever a broken archive makes tarfile, gzip or zlib raise into a LayerError."""
    try:
        yield
    except LayerError:
        raise
    except _DECODE_ERRORS as e:
        raise LayerError(f"layer is not a valid tar archive: {e}", hint=CORRUPT_HINT) from e


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
            data = streams.read_upto(self._inner, size)
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


class LayerTar:
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

    def __enter__(self) -> LayerTar:
        self._layer = self._raw if self._plain else open_layer(self._raw)
        try:
            stream: Any = self._layer
            if self._tee is not None and (stream is not self._raw or not streams.seekable(stream)):
                stream, self.teed = _Tee(stream, self._tee), True
            self._stream: Any = stream if streams.seekable(stream) else cast(Any, _ForwardOnly(stream))
            with read_errors():
                self._tar = tarfile.TarFile(fileobj=self._stream, mode="r",
                                            encoding="utf-8", errors="surrogateescape")
        except BaseException:
            self.__exit__()
            raise
        return self

    def members(self) -> Iterator[tarfile.TarInfo]:
        while True:
            with read_errors():
                member = self._tar.next()
            if member is None:
                return
            # we never look back: keep no list of every header (getmembers() would read all)
            cast(Any, self._tar).members.clear()
            member.tarfile = self._tar
            yield member

    def drain(self) -> None:
        """Read to the end, so the spool holds the whole layer."""
        with read_errors():
            while self._stream.read(CHUNK):
                pass

    def __exit__(self, *exc: object) -> None:
        if self._layer is not None and self._layer is not self._raw:
            self._layer.close()
