"""The wire format between clients and the supervisor.

One ``SOCK_SEQPACKET`` unix socket: the kernel keeps message boundaries and
carries file descriptors (SCM_RIGHTS) with the message they belong to, so
there is no framing code and no partial read to get wrong.  A packet is:

    ``{...}``        a JSON object: a request, a reply, or an end-of-stream
    ``\\x01`` bytes   container output on stdout   (client <- supervisor)
    ``\\x02`` bytes   container output on stderr   (client <- supervisor)
    ``\\x00`` bytes   input for the container's stdin; empty means EOF (client -> supervisor)

A request is ``{"op": NAME, ...arguments}``.  A reply is ``{"ok": true,
"result": ...}`` or ``{"ok": false, "error": {"type", "message", "hint", ...}}``;
a streaming request (attach, exec, wait) answers first and then sends output
packets until ``{"exit": CODE}``.  An error crosses the socket as its class
name and comes out on the client side as the same :mod:`sandbox.errors` class,
so a caller catches ``ContainerNotFound`` whether the check ran here or there.
"""

from __future__ import annotations

import array
import json
import socket
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any

from .. import errors

#: Largest packet we send or accept; output is cut into packets of at most this.
MAX_PACKET = 64 * 1024
STDOUT, STDERR, STDIN = 1, 2, 0


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def send(sock: socket.socket, obj: Any, fds: list[int] | None = None) -> None:
    data = encode(obj)
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.send(data)


def recv(sock: socket.socket, max_fds: int = 4) -> tuple[bytes, list[int]]:
    """One packet and the descriptors that came with it; ``b""`` when the peer closed."""
    data, ancdata, flags, _ = sock.recvmsg(MAX_PACKET + 1024, socket.CMSG_SPACE(max_fds * 4))
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(payload[: len(payload) - len(payload) % arr.itemsize])
            fds.extend(arr)
    return data, fds


def follow(sock: socket.socket, on_output: Any = None, on_result: Any = None) -> dict[str, Any] | None:
    """Read a stream's packets until its end: ``{"exit": ...}``, or None if the peer closed.

    Output packets go to ``on_output(stream, data)``; a late ``{"ok": true}``
    reply to ``on_result(result)``; an error, in a reply or in the end, is raised.
    """
    while True:
        try:
            data, _ = recv(sock)
        except ConnectionResetError:
            data = b""
        if not data:
            return None
        if data[:1] == b"{":
            obj: dict[str, Any] = json.loads(data)
            if "exit" in obj:
                if obj.get("error"):
                    raise_error(obj["error"])
                return obj
            if obj.get("ok") is False:
                raise_error(obj["error"])
            if obj.get("ok") is True and on_result is not None:
                on_result(obj.get("result"))
            continue
        if on_output is not None:
            on_output(data[0], bytes(data[1:]))


def error_payload(exc: BaseException) -> dict[str, Any]:
    """A SandboxError as JSON: class name, message without the hint, hint, extras."""
    if isinstance(exc, errors.SandboxError):
        out: dict[str, Any] = {"type": type(exc).__name__, "message": Exception.__str__(exc),
                               "hint": exc.hint, "exit_code": exc.exit_code}
        for attr in ("state", "step", "errno", "field"):
            if hasattr(exc, attr):
                out[attr] = getattr(exc, attr)
        return out
    return {"type": "SandboxError", "message": f"supervisor: {type(exc).__name__}: {exc}",
            "hint": "this is a bug in the supervisor; its log is supervisor.log in the store",
            "exit_code": 125}


def raise_error(payload: dict[str, Any]) -> None:
    """Rebuild the error the supervisor raised and raise it here."""
    cls = getattr(errors, str(payload.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.SandboxError)):
        cls = errors.SandboxError
    exc = cls.__new__(cls)
    Exception.__init__(exc, payload.get("message", "unknown error"))
    if payload.get("hint"):
        exc.hint = payload["hint"]
    for attr in ("state", "step", "errno", "field"):
        if attr in payload:
            setattr(exc, attr, payload[attr])
    if payload.get("exit_code") not in (None, cls.exit_code):
        exc.exit_code = payload["exit_code"]
    raise exc
