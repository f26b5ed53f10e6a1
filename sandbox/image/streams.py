"""Byte streams: sniffing compression without seeking back on a pipe, hashing as we read.

Layers (``tarlayer``) and image archives (``archive``) both take input that may
be plain, gzip, zstd (and, for archives, bzip2 or xz) and that may be a pipe.
Both read the first bytes to decide, then put those bytes back in front of the
rest (:class:`Prefixed`) unless the stream can seek.  One copy of that logic
lives here so the two readers cannot drift apart.  :class:`HashingReader` lets
one pass over a layer verify both its blob digest and its diff_id.
"""

from __future__ import annotations

import hashlib
import io
from typing import IO, Any

__all__ = ["CHUNK", "HashingReader", "Prefixed", "compression", "read_upto", "seekable", "sniff"]

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
#: Bytes :func:`sniff` reads: enough for the longest magic (xz's).
SNIFF_BYTES = len(XZ_MAGIC)


def compression(head: bytes) -> str | None:
    """``gzip``, ``zstd``, ``bzip2`` or ``xz`` by the magic bytes at the start, else None (plain)."""
    for name, magic in (("gzip", GZIP_MAGIC), ("zstd", ZSTD_MAGIC), ("bzip2", BZIP2_MAGIC),
                        ("xz", XZ_MAGIC)):
        if head.startswith(magic):
            return name
    return None


def seekable(f: Any) -> bool:
    """Whether ``f`` can seek and tell (a pipe, a socket or a response body cannot)."""
    try:
        return bool(f.seekable()) and f.tell() >= 0
    except (AttributeError, OSError, ValueError):
        return False


def read_upto(f: IO[bytes], n: int) -> bytes:
    """Up to ``n`` bytes, fewer only at the end: tarfile takes a short read for truncation.

    Read in pieces of at most CHUNK: tarfile reads a pax header in one call of the
    size the header claims, and a forged 1 TiB one must cost what is really there,
    not a 1 TiB buffer (a MemoryError).
    """
    first = f.read(min(n, CHUNK))
    if len(first) in (0, n):
        return first
    parts, have = [first], len(first)
    while have < n:
        chunk = f.read(min(n - have, CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)


def sniff(fileobj: Any) -> tuple[bytes, Any]:
    """The first :data:`SNIFF_BYTES` bytes, and a stream that still starts with them.

    A seekable input is seeked back and returned as it is; any other is wrapped
    so that the sniffed bytes come first.  Read errors propagate unchanged.
    """
    if seekable(fileobj):
        start = fileobj.tell()
        head = read_upto(fileobj, SNIFF_BYTES)
        fileobj.seek(start)
        return head, fileobj
    head = read_upto(fileobj, SNIFF_BYTES)
    return head, io.BufferedReader(Prefixed(head, fileobj), CHUNK)


class Prefixed(io.RawIOBase):
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


class HashingReader:
    """``inner``'s bytes, hashed (sha256) and counted as they are read."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self._inner.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()
