"""What the endpoints share: finding a container, writing into a stream, frames, watching the client.

``pending_wait`` and ``no_pending_wait`` order a ``docker run``: its wait,
attach and start come on three connections at once, and a start must not
overtake the wait's registration with the supervisor, or a container that
exits at once would be missed.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
from typing import Any

from ...errors import ContainerNotFound
from ..http import ApiError

RAW = "application/vnd.docker.raw-stream"


def container(d: Any, ref: str) -> Any:
    try:
        return d.engine.containers.get(ref)
    except ContainerNotFound:
        raise ApiError(404, f"No such container: {ref}") from None


class Writer:
    """A file-like object over a streaming response (tar writers want ``write``)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, data: bytes) -> int:
        self.stream.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


def gone(sock: socket.socket) -> bool:
    """The client has closed its side (readable with nothing to read)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


@contextlib.contextmanager
def pending_wait(d: Any, cid: str) -> Any:
    """Count a wait request for ``cid`` until the supervisor has registered it."""
    with d.waits:
        d.pending_waits[cid] = d.pending_waits.get(cid, 0) + 1
    try:
        yield
    finally:
        with d.waits:
            d.pending_waits[cid] -= 1
            if not d.pending_waits[cid]:
                del d.pending_waits[cid]
            d.waits.notify_all()


def no_pending_wait(d: Any, cid: str, timeout: float = 2.0) -> None:
    """Hold a start back (at most ``timeout``) while a wait for the same container is being registered."""
    with d.waits:
        d.waits.wait_for(lambda: not d.pending_waits.get(cid), timeout=timeout)


