"""HTTP/1.1 for the Docker Engine API, on h11: requests in, JSON, streams and hijacked sockets out.

h11 parses and frames (chunked bodies both ways, keep-alive, the protocol
switch of ``Upgrade: tcp``); this module is the small blocking layer over
it that one connection thread uses:

* :class:`Exchange` reads the next request of a connection (head at once,
  body on demand, so a build's context streams instead of filling memory);
* a handler answers with :meth:`Exchange.json`, :meth:`Exchange.empty`,
  :meth:`Exchange.stream` (headers sent at once, then chunks -- ``wait``
  and ``events`` need the headers before the body exists), or
  :meth:`Exchange.hijack`, which ends HTTP on this connection and hands the
  raw socket over (``attach``, ``exec start``): a ``101 UPGRADED`` when the
  client asked to upgrade, a plain 200 head otherwise, as Docker does.

:class:`ApiError` is an HTTP error with Docker's ``{"message": ...}`` body.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import h11

#: Largest request head, and largest JSON body we read into memory.
MAX_HEAD = 64 * 1024
MAX_JSON = 16 * 1024 * 1024
RECV = 65536


class ApiError(Exception):
    """An answer other than success: an HTTP status and Docker's ``{"message": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ClientGone(Exception):
    """The client closed the connection (a disconnect mid-build, mid-pull, mid-attach)."""


class Exchange:
    """One request and its response on a connection (a connection serves several in turn)."""

    def __init__(self, conn: Connection, request: h11.Request) -> None:
        self.conn = conn
        self.method = request.method.decode()
        target = request.target.decode("latin-1")
        parts = urlsplit(target)
        self.path = unquote(parts.path)
        self.query: dict[str, list[str]] = parse_qs(parts.query, keep_blank_values=True)
        self.headers: dict[str, str] = {}
        for name, value in request.headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text
        self.version: str | None = None     # the API version in the path, when it has one
        self.answered = False
        self._body_done = False

    # ------------------------------------------------------------------ the request

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter: Docker accepts 1/0, true/false, True/False (and an empty value)."""
        value = self.arg(name)
        if value is None:
            return default
        if value.lower() in ("1", "true", "yes", ""):
            return True
        if value.lower() in ("0", "false", "no"):
            return False
        raise ApiError(400, f"invalid boolean value {value!r} for query parameter {name!r}")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except ValueError:
            raise ApiError(400, f"invalid value {value!r} for query parameter {name!r}: not a number") from None

    def json_arg(self, name: str) -> Any:
        value = self.arg(name)
        if not value:
            return None
        try:
            return json.loads(value)
        except ValueError as e:
            raise ApiError(400, f"invalid JSON in query parameter {name!r}: {e}") from None

    def body_chunks(self) -> Iterator[bytes]:
        """The request body as it arrives (chunked or not)."""
        while not self._body_done:
            event = self.conn.next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._body_done = True
            elif isinstance(event, h11.ConnectionClosed):
                raise ClientGone("the client closed the connection during the request body")
            else:
                raise ApiError(400, f"unexpected {type(event).__name__} in the request body")

    def body(self, limit: int = MAX_JSON) -> bytes:
        out = bytearray()
        for chunk in self.body_chunks():
            out += chunk
            if len(out) > limit:
                self.drain()
                raise ApiError(413, f"request body too large (more than {limit} bytes)")
        return bytes(out)

    def json_body(self, default: Any = None) -> Any:
        data = self.body()
        if not data.strip():
            return default
        try:
            return json.loads(data)
        except ValueError as e:
            raise ApiError(400, f"invalid JSON in the request body: {e}") from None

    def drain(self) -> None:
        """Read what is left of the body (so the connection can serve the next request)."""
        for _ in self.body_chunks():
            pass

    # ------------------------------------------------------------------ the response

    def _head(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.conn.send(h11.Response(status_code=status, headers=self.conn.common_headers() + headers))
        self.answered = True

    def send(self, status: int, body: bytes, content_type: str = "application/json",
             headers: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        if not self._body_done:
            self.drain()
        self._head(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers])
        if body and self.method != "HEAD":
            self.conn.send(h11.Data(data=body))
        self.conn.send(h11.EndOfMessage())

    def json(self, obj: Any, status: int = 200, headers: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        self.send(status, (json.dumps(obj) + "\n").encode(), headers=headers)

    def empty(self, status: int = 204, headers: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        if not self._body_done:
            self.drain()
        self._head(status, list(headers) + ([("Content-Length", "0")] if status != 204 else []))
        self.conn.send(h11.EndOfMessage())

    def error(self, status: int, message: str) -> None:
        self.json({"message": message}, status=status)

    def stream(self, status: int = 200, content_type: str = "application/json",
               headers: list[tuple[str, str]] = ()) -> Stream:  # type: ignore[assignment]
        """Send the head now (chunked); write the body as it comes with the returned stream."""
        if not self._body_done:
            self.drain()
        self._head(status, [("Content-Type", content_type), ("Transfer-Encoding", "chunked"), *headers])
        return Stream(self.conn)

    def hijack(self, content_type: str) -> tuple[socket.socket, bytes]:
        """End HTTP here: the raw socket and any bytes the client already sent after its request."""
        if not self._body_done:
            self.drain()
        upgrade = "upgrade" in self.headers.get("connection", "").lower()
        self.answered = True
        if upgrade:
            self.conn.send(h11.InformationalResponse(status_code=101, reason=b"UPGRADED", headers=[
                ("Content-Type", content_type), ("Connection", "Upgrade"), ("Upgrade", "tcp")]))
        else:
            # No Upgrade asked: Docker answers 200 and then the raw stream, framed by the close.
            self.conn.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type.encode() +
                                   b"\r\nApi-Version: 1.41\r\nConnection: close\r\n\r\n")
        trailing, _ = self.conn.h11.trailing_data
        self.conn.hijacked = True
        return self.conn.sock, bytes(trailing)


class Stream:
    """The body of a streaming response: JSON lines, log frames, tar bytes."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.ended = False

    def write(self, data: bytes) -> None:
        if data:
            self.conn.send(h11.Data(data=data))

    def json(self, obj: Any) -> None:
        self.write((json.dumps(obj) + "\r\n").encode())

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.conn.send(h11.EndOfMessage())


class Connection:
    """A client connection: h11's state machine over a blocking socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.hijacked = False
        self.api_version = "1.41"

    def common_headers(self) -> list[tuple[str, str]]:
        from .. import __version__
        return [("Api-Version", self.api_version), ("Docker-Experimental", "false"), ("Ostype", "linux"),
                ("Server", f"Docker/{__version__} (linux; sandbox kit)")]

    def send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            try:
                self.sock.sendall(data)
            except OSError as e:
                raise ClientGone(f"the client went away: {e}") from None

    def next_event(self) -> Any:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as e:
                raise ApiError(e.error_status_hint or 400, f"malformed HTTP request: {e}") from None
            if event is not h11.NEED_DATA:
                return event
            try:
                data = self.sock.recv(RECV)
            except OSError:
                data = b""
            self.h11.receive_data(data)

    def next_exchange(self) -> Exchange | None:
        """The next request, or None when the client is done (closed, or the connection cannot go on)."""
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        elif self.h11.our_state is not h11.IDLE:
            return None
        event = self.next_event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):
            return None
        return Exchange(self, event)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
