"""The supervisor: one single-threaded process per store that owns the containers.

Why a separate process (DESIGN.md "Key decisions"): a notebook kernel runs
about nine threads, and forking or entering namespaces from a threaded
process is unsafe or refused; a kernel restart kills its process group; and a
container must outlive the client that started it.  So the first client
starts ``python -m sandbox.supervisor`` in a new session; it makes itself the
*child subreaper*, so every container init (forked by the runtime's
short-lived first stage) is re-parented to it and it alone reaps them and
learns their exit codes.

Clients talk to it over ``$SANDBOX_ROOT/supervisor.sock`` (see
:mod:`protocol`).  It writes records, logs and events to disk as things
happen, and a restarted supervisor rebuilds everything from there:
containers whose init is still the same process (pid + start time + boot id)
are adopted, the others are marked exited and their mounts and cgroups
removed.  Read-only requests (``ps``, ``inspect``, ``logs``) are answered by
clients from the files directly, or, for a cold ``sandbox ps``/``images``/
``inspect``, here (:mod:`.handlers.query`: it has the state loaded).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

from .. import kernel
from ..errors import SandboxError, UsageError
from .adopt import recover
from .box import Box
from .conn import STREAMING, Conn
from .core import Core
from .handlers import HANDLERS as TOPIC_HANDLERS, query
from .health import now_text

#: Every request the supervisor answers: the handlers by topic, and the read-only questions of cold clients.
HANDLERS = {**TOPIC_HANDLERS, **query.HANDLERS}


class Supervisor(Core):
    """The process: the store's state (:class:`Core`) behind a listening socket."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.conns: set[Conn] = set()
        self.sock_path = root / "supervisor.sock"

    def listen(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.sock_path)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            self.server.bind(str(self.sock_path))
        finally:
            os.umask(old)
        self.server.listen(128)
        self.server.setblocking(False)
        self.loop.add_reader(self.server.fileno(), self._accept)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.server.accept()
            except BlockingIOError:
                return
            sock.set_inheritable(False)
            self.conns.add(Conn(self.loop, sock, self.dispatch, self.conn_closed))

    def conn_closed(self, conn: Conn) -> None:
        self.conns.discard(conn)
        for box in self.boxes.values():
            box.streams = [s for s in box.streams if s.conn is not conn]
            box.waiters = [w for w in box.waiters if w[0] is not conn]
        for box in [b for b in self.boxes.values() if b.owner is conn]:
            with contextlib.suppress(SandboxError, OSError):  # its client is gone: a build killed mid-step
                box.remove(force=True, volumes=True)
        for box in self.boxes.values():
            if box.frozen_for is conn:  # a commit killed while the container was frozen for it
                box.frozen_for = None
                box._thaw_quietly()
        if isinstance(conn.target, Box) and conn.target.rec["Config"].get("StdinOnce"):
            conn.target.write_stdin(b"")  # docker: the container's stdin closes with the client
        for session in list(self.execs):
            if session.conn is conn:
                session.conn = None
                session.write_stdin(b"")

    def recover(self) -> None:
        recover(self)

    def dispatch(self, conn: Conn, msg: dict[str, Any]) -> None:
        op = msg.get("op", "")
        fn = HANDLERS.get(op)
        try:
            if fn is None:
                raise UsageError(f"the supervisor does not know the request {op!r}",
                                 hint="the client and the supervisor are different versions; "
                                      "stop the supervisor (`sandbox system supervisor stop`)")
            result = fn(self, conn, msg)
        except SandboxError as e:
            conn.error(e)
            return
        except Exception as e:  # noqa: BLE001 - reported to the client, logged here
            traceback.print_exc()
            conn.error(e)
            return
        if result is not STREAMING:
            conn.reply(result)


def become_keepers_child(exits: Path, close: tuple[int | None, ...]) -> int | None:
    """Fork; the parent becomes the exit keeper (:mod:`.keeper`), the child goes on as the supervisor.

    Returns the keeper's pid (None where fork or the subreaper flag is refused:
    the supervisor then runs without one, as before).
    """
    try:
        kernel.set_child_subreaper(True)    # kept across execve, so the keeper has it
    except SandboxError:
        return None
    pid = os.fork()
    if pid == 0:
        return os.getppid()
    for fd in close:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
    script = str(Path(__file__).with_name("keeper.py"))
    try:
        os.execv(sys.executable, [sys.executable, "-I", "-S", script, str(exits), str(pid)])
    finally:
        os._exit(127)      # exec failed: the child supervisor still runs, with PID 1 above it


def serve(root: Path, ready_fd: int | None = None) -> int:
    """Run the supervisor for ``root`` until asked to stop (or SIGTERM)."""
    import fcntl
    root.mkdir(parents=True, exist_ok=True)
    (root / "locks").mkdir(exist_ok=True)
    lock_fd = os.open(root / "locks" / "supervisor.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        # Another supervisor owns this store: nothing to do (the client will connect to it).
        if ready_fd is not None:
            os.write(ready_fd, b"other\n")
        return 0
    keeper = become_keepers_child(root / "run" / "exits", close=(ready_fd,))
    os.ftruncate(lock_fd, 0)
    os.write(lock_fd, f"{os.getpid()}\n".encode())
    kernel.set_child_subreaper(True)
    with contextlib.suppress(SandboxError, OSError):
        kernel.set_name("sandbox-sup")
    sup = Supervisor(root)
    sup.keeper = keeper      # before recover(): it reads what older keepers wrote
    signal.signal(signal.SIGTERM, lambda *_: setattr(sup.loop, "running", False))
    signal.signal(signal.SIGINT, lambda *_: setattr(sup.loop, "running", False))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    sup.recover()
    sup.listen()
    if ready_fd is not None:
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)
    print(f"{now_text()} supervisor {os.getpid()} serving {root} ({len(sup.boxes)} containers)",
          file=sys.stderr, flush=True)
    sup.loop.run()
    with contextlib.suppress(OSError):
        os.unlink(sup.sock_path)
    if sup.runtime.spares is not None:
        sup.runtime.spares.close()
    sup.loop.janitor.close()      # what it was given is deleted before the supervisor is gone
    if sup.network_loaded:
        try:
            sup.network.idle()   # bridges and rules go when no container uses them
        except Exception:  # noqa: BLE001 - on the way out; the next start cleans up
            traceback.print_exc()
    print(f"{now_text()} supervisor {os.getpid()} stopped; running containers keep running",
          file=sys.stderr, flush=True)
    return 0

