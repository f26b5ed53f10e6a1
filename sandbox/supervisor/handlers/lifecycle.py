"""Starting, stopping, signalling and removing containers.

``stop`` and ``restart`` answer at once and end their stream when the
container has stopped (a client follows it), so the single-threaded loop
never waits for a container's stop timeout.
"""

from __future__ import annotations

import signal
from typing import Any

from ...errors import SandboxError
from ...runtime.procs import parse_signal
from .. import protocol
from ..box import Box
from ..conn import STREAMING, Conn, Stream
from ..core import Core


def op_start(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    box = core.box(msg["id"])
    stream = None
    if msg.get("attach"):
        stream = Stream(conn, msg.get("stdout", True), msg.get("stderr", True))
        box.streams.append(stream)
        if msg.get("stdin_attach"):
            conn.target = box
    try:
        box.start()
    except SandboxError:
        if stream is not None:
            box.streams.remove(stream)
            conn.target = None
        if box.rec["HostConfig"].get("AutoRemove"):
            box.remove(force=True, volumes=True)
        raise
    result = {"Id": box.id, "Warnings": box.rec["Sandbox"].get("Warnings") or [],
              "Tty": bool(box.rec["Config"].get("Tty"))}
    if stream is None:
        return result
    conn.reply(result)
    return STREAMING


def op_stop(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    box = core.box(msg["id"])
    if box.restart_timer is not None:
        box.restart_timer.cancel()
        box.restart_timer = None
        box.rec["Sandbox"]["ManualStop"] = True
        box.state.update(Restarting=False, Status="exited")
        box.save()
    if not box.running:
        # Still a stream (clients follow it to its end), one that ends at once.
        conn.reply({"Id": box.id, "WasRunning": False})
        conn.end_stream({"exit": int(box.state.get("ExitCode") or 0)})
        return STREAMING
    box.stop(msg.get("timeout"), msg.get("signal"))
    box.waiters.append((conn, "not-running"))
    conn.reply({"Id": box.id, "WasRunning": True})
    return STREAMING


def op_kill(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    box = core.box(msg["id"])
    signum = parse_signal(msg.get("signal") or "KILL")
    if signum == signal.SIGKILL:
        box.rec["Sandbox"]["ManualStop"] = bool(msg.get("manual", False))
    box.kill(signum)
    return {"Id": box.id}


def op_pause(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    box = core.box(msg["id"])
    box.pause()
    return {"Id": box.id}


def op_unpause(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    box = core.box(msg["id"])
    box.unpause()
    return {"Id": box.id}


class _Restarter:
    """A waiter that starts the container again once it stopped (``docker restart``)."""

    def __init__(self, box: Box, conn: Conn) -> None:
        self.box, self.conn = box, conn

    def end_stream(self, obj: dict[str, Any]) -> None:
        try:
            self.box.start()
            self.box.event("restart")
            self.conn.end_stream({"exit": 0})
        except SandboxError as e:
            self.conn.end_stream({"exit": 1, "error": protocol.error_payload(e)})


def op_restart(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    box = core.box(msg["id"])
    if not box.running:
        box.start()
        box.event("restart")
        return {"Id": box.id}
    box.stop(msg.get("timeout"))
    box.waiters.append((_Restarter(box, conn), "not-running"))
    conn.reply({"Id": box.id})
    return STREAMING


def op_remove(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    box = core.box(msg["id"])
    box.remove(force=bool(msg.get("force")), volumes=bool(msg.get("volumes")))
    return {"Id": box.id}


HANDLERS = {"start": op_start, "stop": op_stop, "kill": op_kill, "pause": op_pause,
            "unpause": op_unpause, "restart": op_restart, "remove": op_remove}
