"""Container streams: attach (a hijacked socket), wait (headers at once), logs and stats.

Output without a terminal is multiplexed as Docker does: each chunk behind
an 8-byte header (stream 1 or 2, three zero bytes, the length big-endian);
with a terminal it is raw.  ``attach`` forwards what the client sends to the
container's stdin, and a half-close of the client's side closes it; when
the container exits the socket is closed.  Every long stream watches for the
client leaving and stops its work then, so an abandoned ``wait`` or
``logs -f`` does not hold a thread for ever.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

from ...containers.resume import wait_again
from ...errors import ContainerNotFound, SandboxError, SupervisorLost, UsageError
from ..http import ApiError, ClientGone, Exchange
from ..router import Router
from .common import RAW, container, frame, gone, pending_wait

class _Watch:
    """``is_set()`` becomes true once the client has gone (for loops that poll)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def is_set(self) -> bool:
        return gone(self.sock)


def _close_when_gone(client: socket.socket, stream_holder: dict[str, Any], done: threading.Event) -> None:
    """Close the supervisor stream once the client leaves (a thread's whole job)."""
    while not done.wait(0.2):
        if gone(client):
            sup = stream_holder.get("stream")
            if sup is not None:
                with contextlib.suppress(OSError):
                    sup.sock.shutdown(socket.SHUT_RDWR)
            return


def attach(d: Any, ex: Exchange, id: str) -> None:
    """Registered with the supervisor before the ``101``: the client starts the container on seeing it."""
    c = container(d, id)
    tty = bool(c.attrs["Config"].get("Tty"))
    want_in, want_out, want_err = ex.flag("stdin"), ex.flag("stdout"), ex.flag("stderr")
    logs, live = ex.flag("logs"), ex.flag("stream")
    if want_in and not c.attrs["Config"].get("OpenStdin"):
        want_in = False            # Docker attaches nothing to a container whose stdin is closed
    lock = threading.Lock()
    hijacked = threading.Event()
    box: dict[str, Any] = {}

    def send(stream: int, data: bytes) -> None:
        if (stream == 1 and not want_out) or (stream == 2 and not want_err):
            return
        hijacked.wait()                # output that comes before the socket is ours waits for it
        with lock:
            box["sock"].sendall(data if tty else frame(stream, data))

    attachment = _LiveAttach(c, send, want_in, want_out, want_err) if live else None
    if attachment is not None:
        attachment.register()          # may raise: then the client gets an HTTP error, not a stream
    sock, trailing = ex.hijack(RAW)
    box["sock"] = sock
    hijacked.set()
    try:
        if logs:
            for rec in c.log_records(stdout=want_out, stderr=want_err):
                send(1 if rec.stream == "stdout" else 2, rec.data)
        if attachment is not None:
            attachment.serve(sock, trailing)
    except (OSError, SandboxError):
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


class _LiveAttach:
    """The supervisor's attach stream of one client, run in a thread."""

    def __init__(self, c: Any, send: Any, want_in: bool, want_out: bool, want_err: bool) -> None:
        self.c, self.send = c, send
        self.want_in, self.want_out, self.want_err = want_in, want_out, want_err
        self.holder: dict[str, Any] = {}
        self.registered = threading.Event()
        self.done = threading.Event()

    def _run(self) -> None:
        def on_reply(result: Any, stream: Any) -> None:
            self.holder["stream"] = stream
            self.registered.set()
        try:
            self.c._client.stream("attach", self.send, on_reply=on_reply, id=self.c.id, stdout=self.want_out,
                                  stderr=self.want_err, stdin_attach=self.want_in, wait_start=True)
        except (SandboxError, OSError) as e:
            self.holder["error"] = e
        finally:
            self.registered.set()
            self.done.set()

    def register(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()
        self.registered.wait()
        if "error" in self.holder and "stream" not in self.holder:
            err = self.holder["error"]
            raise err if isinstance(err, SandboxError) else ApiError(500, str(err))

    def serve(self, sock: socket.socket, trailing: bytes) -> None:
        stream = self.holder.get("stream")
        # Without stdin the docker CLI half-closes its side at once, so an end of what the client
        # sends is no sign it left; a write that fails is, and ends the stream.
        if stream is not None and self.want_in:
            threading.Thread(target=_pump, args=(sock, trailing, stream), daemon=True).start()
        self.done.wait()


def _pump(sock: socket.socket, trailing: bytes, stream: Any) -> None:
    """The client's bytes to the container's stdin; a half-close ends the stdin, the output goes on."""
    try:
        if trailing:
            stream.send_stdin(trailing)
        while True:
            data = sock.recv(65536)
            if not data:
                stream.send_stdin(b"")
                return
            stream.send_stdin(data)
    except OSError:
        return


def wait(d: Any, ex: Exchange, id: str) -> None:
    """Register with the supervisor first, then send the headers, then the result when it comes.

    ``docker run`` sends this beside ``attach`` and ``start`` on other
    connections; :func:`pending_wait` lets ``start`` hold back until the
    waiter is registered, so a container that exits at once is not missed.
    """
    condition = ex.arg("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise ApiError(400, f"invalid condition: {condition!r} (not-running, next-exit or removed)")
    holder: dict[str, Any] = {}
    registered = threading.Event()
    done = threading.Event()

    def on_reply(result: Any, stream: Any) -> None:
        holder["stream"] = stream
        registered.set()

    def run() -> None:
        client = d.engine.containers.client
        try:
            try:
                holder["final"] = client.stream("wait", None, on_reply=on_reply, id=id, condition=condition)
            except SupervisorLost:
                # killed under us: the next supervisor adopts the container, or
                # knows how it ended (its exit keeper held the code)
                holder["final"] = wait_again(client, id, condition)
        except SandboxError as e:
            holder["error"] = e
        finally:
            registered.set()
            done.set()

    with pending_wait(d, id):
        threading.Thread(target=run, daemon=True).start()
        registered.wait()
    if "error" in holder and "stream" not in holder:
        err = holder["error"]
        if isinstance(err, ContainerNotFound):
            raise ApiError(404, f"No such container: {id}")
        raise err
    out = ex.stream()                          # the headers now, the result when the container is done
    threading.Thread(target=_close_when_gone, args=(ex.conn.sock, holder, done), daemon=True).start()
    done.wait()
    if "error" in holder:
        out.json({"StatusCode": -1, "Error": {"Message": str(holder["error"])}})
        out.end()
        return
    final = holder.get("final") or {}
    result = final.get("result") or {"StatusCode": final.get("exit", 0), "Error": None}
    out.json({"Error": result.get("Error"), "StatusCode": int(result.get("StatusCode") or 0)})
    out.end()


def logs(d: Any, ex: Exchange, id: str) -> None:
    from ...containers.logs import format_record, parse_time
    c = container(d, id)
    stdout, stderr = ex.flag("stdout"), ex.flag("stderr")
    if not stdout and not stderr:
        raise ApiError(400, "Bad parameters: you must choose at least one stream")
    tty = bool(c.attrs["Config"].get("Tty"))
    tail = ex.arg("tail") or "all"
    kwargs: dict[str, Any] = {"stdout": stdout, "stderr": stderr,
                              "tail": None if tail == "all" else int(tail) if tail.lstrip("-").isdigit() else None}
    for name in ("since", "until"):
        value = ex.arg(name)
        if value and value != "0":
            kwargs[name] = float(value) if value.replace(".", "", 1).isdigit() else parse_time(value)
    follow = ex.flag("follow")
    timestamps = ex.flag("timestamps")
    try:
        records = c.log_records(follow=follow, **kwargs) if not follow else \
            _follow(c, ex.conn.sock, kwargs)
    except UsageError as e:
        raise ApiError(501 if "does not support reading" in str(e) else 400, str(e)) from None
    out = ex.stream(content_type=RAW)
    for rec in records:
        data = format_record(rec, timestamps=timestamps)
        out.write(data if tty else frame(1 if rec.stream == "stdout" else 2, data))
    out.end()


def _follow(c: Any, sock: socket.socket, kwargs: dict[str, Any]) -> Any:
    from ...containers import logs as logs_mod
    c.collection._engine.ensure_supervisor()
    return logs_mod.follow_logs(c.dir / "container.log", is_running=c._is_running, stop=_Watch(sock), **kwargs)


def stats(d: Any, ex: Exchange, id: str) -> None:
    from ...containers.inspect import stats_snapshot
    from ..shapes import docker_stats
    c = container(d, id)
    stream = ex.flag("stream", True)
    one_shot = ex.flag("one-shot")
    if not stream:
        first = stats_snapshot(c.reload().attrs)
        if one_shot:
            ex.json(docker_stats(first, None))
            return
        time.sleep(1.0)                          # a second sample, so the CPU % has a delta (Docker does this)
        ex.json(docker_stats(stats_snapshot(c.reload().attrs, first), first))
        return
    out = ex.stream()
    previous = None
    try:
        while True:
            snap = stats_snapshot(c.reload().attrs, previous)
            out.json(docker_stats(snap, previous))
            previous = snap
            if not c.attrs["State"].get("Running") or gone(ex.conn.sock):
                break
            time.sleep(1.0)
    except (ClientGone, SandboxError):
        return
    out.end()


def register(r: Router) -> None:
    r.add("POST", "/containers/{id}/attach", attach)
    r.add("POST", "/containers/{id}/wait", wait)
    r.add("GET", "/containers/{id}/logs", logs)
    r.add("GET", "/containers/{id}/stats", stats)
