"""One client connection to the supervisor, and the sinks that send output to it.

A :class:`Conn` knows nothing of containers: it reads packets (a request goes
to ``dispatch``, stdin and resize packets to its ``target``), queues what it
cannot send at once, and drops a client that stops reading rather than grow
without bound.  The supervisor gives it two callbacks, so this module sits
below everything that handles requests.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from typing import Any
from collections.abc import Callable

from . import protocol
from .loop import Loop

#: A handler's return value meaning "I answer (and end the stream) myself".
STREAMING = object()
MAX_QUEUED = 16 * 1024 * 1024


class Conn:
    """One client connection; ``target`` receives the stdin packets it sends."""

    def __init__(self, loop: Loop, sock: socket.socket, dispatch: Callable[[Conn, dict[str, Any]], None],
                 closed: Callable[[Conn], None]) -> None:
        self.loop, self.sock = loop, sock
        self._dispatch, self._closed = dispatch, closed
        sock.setblocking(False)
        self.fd = sock.fileno()
        self.queue: list[bytes] = []
        self.queued = 0
        self.target: Any = None
        self.closed = False
        loop.add_reader(self.fd, self.on_read)

    def on_read(self) -> None:
        try:
            data, fds = protocol.recv(self.sock)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        for fd in fds:  # no request takes descriptors yet
            os.close(fd)
        if not data:
            self.close()
            return
        if data[:1] == b"{":
            self._dispatch(self, json.loads(data))
        elif data[0] == protocol.STDIN and self.target is not None:
            self.target.write_stdin(bytes(data[1:]))
        elif data[:1] == b"R" and self.target is not None:
            size = json.loads(data[1:])
            self.target.resize(int(size["h"]), int(size["w"]))

    def send_packet(self, packet: bytes) -> None:
        if self.closed:
            return
        if not self.queue:
            try:
                self.sock.send(packet)
                return
            except BlockingIOError:
                pass
            except OSError:
                self.close()
                return
        self.queue.append(packet)
        self.queued += len(packet)
        if self.queued > MAX_QUEUED:
            # A client that stopped reading: drop it rather than grow without bound.
            self.close()
            return
        self.loop.add_writer(self.fd, self._flush)

    def _flush(self) -> None:
        while self.queue:
            try:
                self.sock.send(self.queue[0])
            except BlockingIOError:
                return
            except OSError:
                self.close()
                return
            self.queued -= len(self.queue.pop(0))
        self.loop.remove_writer(self.fd)

    def reply(self, result: Any) -> None:
        self.send_packet(protocol.encode({"ok": True, "result": result}))

    def error(self, exc: BaseException) -> None:
        self.send_packet(protocol.encode({"ok": False, "error": protocol.error_payload(exc)}))

    def send_output(self, stream: int, data: bytes) -> None:
        step = protocol.MAX_PACKET
        for i in range(0, len(data), step):
            self.send_packet(bytes([stream]) + data[i:i + step])

    def end_stream(self, obj: dict[str, Any]) -> None:
        self.target = None
        self.send_packet(protocol.encode(obj))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.forget(self.fd)
        with contextlib.suppress(OSError):
            self.sock.close()
        self._closed(self)


class Stream:
    """A client receiving output (attach, run, exec): a connection and what it wants."""

    def __init__(self, conn: Conn, stdout: bool = True, stderr: bool = True) -> None:
        self.conn, self.stdout, self.stderr = conn, stdout, stderr

    def send(self, stream: int, data: bytes) -> None:
        if (stream == protocol.STDOUT and self.stdout) or (stream == protocol.STDERR and self.stderr):
            self.conn.send_output(stream, data)


class NullSink:
    """Output nobody reads (``exec -d``)."""

    def send(self, stream: int, data: bytes) -> None:
        pass


class Collector:
    """Output kept in memory, up to ``limit`` bytes (a health check's first few KiB)."""

    def __init__(self, limit: int) -> None:
        self.data = bytearray()
        self.limit = limit

    def send(self, stream: int, data: bytes) -> None:
        if len(self.data) < self.limit:
            self.data += data[: self.limit - len(self.data)]
