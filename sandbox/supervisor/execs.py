"""Processes started in a running container: ``exec`` and health checks.

:func:`exec_process` turns docker's exec config into the OCI process the
runtime runs (the container's own user, capabilities and environment, with
the exec's changes on top, as Docker does); :func:`spawn` starts it with
pipes (or a terminal) and an :class:`ExecSession` carries its output to a
sink until it exits.  Nothing here knows the Box: the caller checks that the
container runs and passes its runtime container.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from pathlib import Path
from typing import Any
from collections.abc import Callable

from ..containers import setup
from ..runtime.spec.mounts import gid_mapped_here
from . import protocol
from .conn import Conn
from .loop import Loop
from .reaping import exit_code_of


class ExecSession:
    """A process started by ``exec`` (or a health check) in a running container."""

    def __init__(self, loop: Loop, registry: set[Any], sink: Any,
                 done: Callable[[int, bytes], None] | None, conn: Conn | None) -> None:
        self.loop, self.registry = loop, registry
        self.sink, self.done, self.conn = sink, done, conn
        self.out_fds: dict[int, int] = {}
        self.stdin_w: int | None = None
        self.tty_master: int | None = None
        self.pid = 0
        self.timer: Any = None
        self.finished = False

    def _on_output(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.loop.forget(fd)
            self.out_fds.pop(fd, None)
            os.close(fd)
            if fd == self.tty_master:
                self.tty_master = None
            return
        self.sink.send(self.out_fds[fd], data)

    def write_stdin(self, data: bytes) -> None:
        target = self.tty_master if self.tty_master is not None else self.stdin_w
        if target is None:
            return
        if not data:
            if self.tty_master is not None:
                with contextlib.suppress(OSError):
                    os.write(target, b"\x04")
            elif self.stdin_w is not None:
                os.close(self.stdin_w)
                self.stdin_w = None
            return
        with contextlib.suppress(OSError):
            os.set_blocking(target, True)
            os.write(target, data)  # small interactive input; a short block is fine here

    def resize(self, height: int, width: int) -> None:
        if self.tty_master is not None:
            import fcntl
            import struct
            import termios
            fcntl.ioctl(self.tty_master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def on_exit(self, status: int) -> None:
        if self.timer is not None:
            self.timer.cancel()
        code = exit_code_of(status)
        for fd, stream in list(self.out_fds.items()):
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                self.sink.send(stream, data)
            self.loop.forget(fd)
            os.close(fd)
        self.out_fds.clear()
        self.tty_master = None
        if self.stdin_w is not None:
            with contextlib.suppress(OSError):
                os.close(self.stdin_w)
            self.stdin_w = None
        self.finished = True
        self.registry.discard(self)
        if self.done is not None:
            self.done(code, bytes(getattr(self.sink, "data", b"")))
        if self.conn is not None:
            self.conn.end_stream({"exit": code})

    def kill(self) -> None:
        if not self.finished and self.pid:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)


def exec_process(spec_proc: dict[str, Any], cfg: dict[str, Any], rootfs: Path,
                 bounding_set: set[str]) -> dict[str, Any]:
    """The OCI process for docker's exec ``cfg`` in a container whose process is ``spec_proc``."""
    if cfg.get("User"):
        uid, gid, extra = setup.resolve_user(rootfs, cfg["User"])
        extra = [g for g in extra if gid_mapped_here(g)]   # as for the container (setup.build_spec)
        user: dict[str, Any] = {"uid": uid, "gid": gid}
        if extra:
            user["additionalGids"] = extra
    else:
        user = dict(spec_proc["user"])
    caps = dict(spec_proc["capabilities"])
    if cfg.get("Privileged"):
        full = sorted(bounding_set)
        caps = {"bounding": full, "effective": full, "permitted": full, "inheritable": [], "ambient": []}
    elif user["uid"] != 0:
        caps = dict(caps, effective=[], permitted=[])
    elif not caps.get("effective"):
        caps = dict(caps, effective=list(caps["bounding"]), permitted=list(caps["bounding"]))
    env = list(spec_proc.get("env") or [])
    if cfg.get("User") and not any(e.startswith("HOME=") for e in cfg.get("Env") or []):
        # exec -u: the home of that user, as runc's init sets it for the exec'd process
        env = [e for e in env if not e.startswith("HOME=")] + [f"HOME={setup.home_dir(rootfs, user['uid'])}"]
    names = {e.partition("=")[0]: i for i, e in enumerate(env)}
    for e in cfg.get("Env") or []:
        k = e.partition("=")[0]
        if k in names:
            env[names[k]] = e
        else:
            env.append(e)
    tty = bool(cfg.get("Tty"))
    if tty and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    process = {"terminal": tty, "user": user, "args": list(cfg.get("Cmd") or []), "env": env,
               "cwd": cfg.get("WorkingDir") or spec_proc.get("cwd") or "/",
               "capabilities": caps, "noNewPrivileges": bool(spec_proc.get("noNewPrivileges"))}
    if spec_proc.get("rlimits"):
        process["rlimits"] = spec_proc["rlimits"]
    return process


def spawn(loop: Loop, registry: set[Any], rc: Any, process: dict[str, Any], sink: Any, *,
          done: Callable[[int, bytes], None] | None = None, conn: Conn | None = None,
          stdin: bool = False, timeout: float | None = None) -> ExecSession:
    """Start ``process`` in the runtime container ``rc``; its output goes to ``sink``."""
    session = ExecSession(loop, registry, sink, done, conn)
    to_close: list[int] = []
    pair = None
    try:
        if process["terminal"]:
            pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            stdio = None
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            to_close += [out_w, err_w]
            for fd, stream in ((out_r, protocol.STDOUT), (err_r, protocol.STDERR)):
                os.set_blocking(fd, False)
                session.out_fds[fd] = stream
            if stdin:
                in_r, in_w = os.pipe2(os.O_CLOEXEC)
                session.stdin_w = in_w
            else:
                in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            to_close.append(in_r)
            stdio = (in_r, out_w, err_w)
        session.pid = rc.exec(process, stdio=stdio, console_socket=pair[1] if pair else None)
        if pair is not None:
            _, fds, _, _ = socket.recv_fds(pair[0], 1024, 1)
            session.tty_master = fds[0]
            os.set_blocking(fds[0], False)
            session.out_fds[fds[0]] = protocol.STDOUT
    except BaseException:
        for fd in list(session.out_fds) + ([session.stdin_w] if session.stdin_w is not None else []):
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    finally:
        for fd in to_close:
            os.close(fd)
        if pair is not None:
            for s in pair:
                s.close()
    for fd in session.out_fds:
        loop.add_reader(fd, (lambda f: lambda: session._on_output(f))(fd))
    loop.children[session.pid] = session.on_exit
    registry.add(session)
    if timeout:
        session.timer = loop.call_later(timeout, session.kill)
    return session
