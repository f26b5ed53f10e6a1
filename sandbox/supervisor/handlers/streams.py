"""Requests that stream: attaching to a container, waiting for it, and exec.

Each answers first (``{"ok": true, ...}``) and then sends output packets
until ``{"exit": CODE}``; the connection's ``target`` takes what the client
types (stdin packets) and terminal sizes.
"""

from __future__ import annotations

from typing import Any

from ...errors import ContainerNotFound, InvalidStateTransition
from ..conn import STREAMING, Conn, NullSink, Stream
from ..core import Core


def op_attach(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    box = core.box(msg["id"])
    if not box.running and not msg.get("wait_start"):
        raise InvalidStateTransition("You cannot attach to a stopped container, start it first",
                                     state=box.state["Status"], hint=f"`sandbox start -a {box.name}`")
    box.streams.append(Stream(conn, msg.get("stdout", True), msg.get("stderr", True)))
    if msg.get("stdin_attach"):
        conn.target = box
    conn.reply({"Id": box.id, "Tty": bool(box.rec["Config"].get("Tty"))})
    return STREAMING


def op_wait(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    condition = msg.get("condition") or "not-running"
    try:
        box = core.box(msg["id"])
    except ContainerNotFound:
        gone = core.removed_exits.get(msg["id"])
        if gone is None:
            raise
        # removed before the waiter came: it has ended in every sense
        conn.reply({"waiting": False})
        conn.end_stream({"exit": gone[0], "result": {"StatusCode": gone[0],
                                                     "Error": {"Message": gone[1]} if gone[1] else None}})
        return STREAMING
    if condition == "not-running" and not box.running and not box.state.get("Restarting") \
            and box.restart_timer is None:
        code = int(box.state.get("ExitCode") or 0)
        err = box.state.get("Error") or None
        conn.reply({"waiting": False})
        conn.end_stream({"exit": code, "result": {"StatusCode": code,
                                                  "Error": {"Message": err} if err else None}})
        return STREAMING
    box.waiters.append((conn, condition))
    conn.reply({"waiting": True})
    return STREAMING


def op_exec(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    box = core.box(msg["id"])
    detach = bool(msg.get("detach"))
    session = box.exec(msg, NullSink() if detach else Stream(conn), conn=None if detach else conn,
                       stdin=bool(msg.get("stdin_attach")) and not detach)
    box.event("exec_start: " + " ".join(msg.get("Cmd") or []))
    if detach:
        return {"Pid": session.pid}
    conn.target = session
    conn.reply({"Pid": session.pid})
    return STREAMING


def op_resize(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    box = core.box(msg["id"])
    box.resize(int(msg["h"]), int(msg["w"]))
    return None


HANDLERS = {"attach": op_attach, "wait": op_wait, "exec": op_exec, "resize": op_resize}
