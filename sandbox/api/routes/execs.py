"""Exec: ``POST /containers/{id}/exec`` makes an exec instance, ``/exec/{id}/start`` runs it.

An exec instance lives in the daemon (Docker keeps them in its daemon too):
its config until it starts, then its pid, whether it runs and its exit code,
which ``docker exec`` reads with ``GET /exec/{id}/json`` once the stream
ends.  A detached start runs it in a thread of the daemon, so its exit code
is known all the same.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from ...errors import SandboxError, SupervisorError
from ..http import ApiError, Exchange
from ..router import Router
from .common import container
from .common import RAW, frame


@dataclass
class ExecInstance:
    id: str
    container_id: str
    config: dict[str, Any]
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    started: bool = False
    finished_at: float = 0.0
    stream: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def doc(self) -> dict[str, Any]:
        cfg = self.config
        cmd = list(cfg.get("Cmd") or [])
        return {"ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
                "ProcessConfig": {"tty": bool(cfg.get("Tty")), "entrypoint": cmd[0] if cmd else "",
                                  "arguments": cmd[1:], "privileged": bool(cfg.get("Privileged")),
                                  "user": cfg.get("User") or ""},
                "OpenStdin": bool(cfg.get("AttachStdin")), "OpenStderr": bool(cfg.get("AttachStderr")),
                "OpenStdout": bool(cfg.get("AttachStdout")), "CanRemove": False,
                "ContainerID": self.container_id, "DetachKeys": "", "Pid": self.pid}


def create(d: Any, ex: Exchange, id: str) -> None:
    c = container(d, id)
    body = ex.json_body({}) or {}
    cmd = body.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    if not cmd:
        raise ApiError(400, "No exec command specified")
    if not c.attrs["State"].get("Running"):
        raise ApiError(409, f"Container {c.id} is not running")
    if c.attrs["State"].get("Paused"):
        raise ApiError(409, f"Container {c.id} is paused, unpause the container before exec")
    inst = ExecInstance(os.urandom(32).hex(), c.id, {**body, "Cmd": cmd})
    with d.lock:
        _forget_old(d.execs)
        d.execs[inst.id] = inst
    ex.json({"Id": inst.id}, status=201)


#: finished exec instances kept for `GET /exec/ID/json` (the docker CLI asks once, right after)
KEEP_FINISHED = 256
KEEP_SECONDS = 600.0


def _forget_old(execs: dict[str, ExecInstance]) -> None:
    """Drop finished instances past the limits, so a long-lived daemon does not grow per exec."""
    import time
    done = [i for i in execs.values() if i.finished_at]
    now = time.monotonic()
    for inst in done:
        if now - inst.finished_at > KEEP_SECONDS:
            execs.pop(inst.id, None)
    done = sorted((i for i in execs.values() if i.finished_at), key=lambda i: i.finished_at)
    for inst in done[:max(0, len(done) - KEEP_FINISHED)]:
        execs.pop(inst.id, None)


def _instance(d: Any, id: str) -> ExecInstance:
    inst = d.execs.get(id)
    if inst is None:
        raise ApiError(404, f"No such exec instance: {id}")
    return inst


def _request(inst: ExecInstance, stdin: bool) -> dict[str, Any]:
    cfg = inst.config
    env = cfg.get("Env") or []
    return {"id": inst.container_id, "Cmd": list(cfg["Cmd"]), "Env": list(env), "WorkingDir": cfg.get("WorkingDir") or "",
            "User": cfg.get("User") or "", "Tty": bool(cfg.get("Tty")), "Privileged": bool(cfg.get("Privileged")),
            "stdin_attach": stdin}


def start(d: Any, ex: Exchange, id: str) -> None:
    inst = _instance(d, id)
    body = ex.json_body({}) or {}
    with inst.lock:
        if inst.started:
            raise ApiError(409, f"exec {id} has already started")
        inst.started = True
    client = d.engine.containers.client
    if body.get("Detach"):
        threading.Thread(target=_run, args=(client, inst, None, b"", False), daemon=True).start()
        ex.empty(200)
        return
    sock, trailing = ex.hijack(RAW)
    try:
        _run(client, inst, sock, trailing, bool(inst.config.get("AttachStdin")))
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def _run(client: Any, inst: ExecInstance, sock: socket.socket | None, trailing: bytes, stdin: bool) -> None:
    tty = bool(inst.config.get("Tty"))
    want_out = inst.config.get("AttachStdout", True) is not False
    want_err = inst.config.get("AttachStderr", True) is not False
    lock = threading.Lock()

    def send(stream: int, data: bytes) -> None:
        if sock is None or (stream == 1 and not want_out) or (stream == 2 and not want_err):
            return
        with lock:
            sock.sendall(data if tty else frame(stream, data))

    def pump(stream: Any) -> None:
        assert sock is not None
        try:
            if trailing:
                stream.send_stdin(trailing)
            while True:
                data = sock.recv(65536)
                stream.send_stdin(data)
                if not data:
                    return
        except OSError:
            return

    def on_reply(result: Any, stream: Any) -> None:
        inst.pid = int((result or {}).get("Pid") or 0)
        inst.running = True
        inst.stream = stream
        if stdin and sock is not None:
            threading.Thread(target=pump, args=(stream,), daemon=True).start()

    try:
        final = client.stream("exec", send, on_reply=on_reply, **_request(inst, stdin))
        inst.exit_code = int(final.get("exit", 0))
    except SupervisorError:
        # Killed under the exec (or before it answered): how it ended is unknown,
        # which Docker's exec inspect says with ExitCode null -- not with a number.
        inst.exit_code = None
    except (SandboxError, OSError):
        inst.exit_code = inst.exit_code if inst.exit_code is not None else 126
    finally:
        import time
        inst.running = False
        inst.stream = None
        inst.finished_at = time.monotonic()


def resize(d: Any, ex: Exchange, id: str) -> None:
    inst = _instance(d, id)
    h, w = ex.int_arg("h", 0), ex.int_arg("w", 0)
    if inst.stream is not None and h and w:
        with contextlib.suppress(OSError):
            inst.stream.resize(h, w)
    ex.empty(200)


def inspect(d: Any, ex: Exchange, id: str) -> None:
    ex.json(_instance(d, id).doc())


def register(r: Router) -> None:
    r.add("POST", "/containers/{id}/exec", create)
    r.add("POST", "/exec/{id}/start", start)
    r.add("POST", "/exec/{id}/resize", resize)
    r.add("GET", "/exec/{id}/json", inspect)
