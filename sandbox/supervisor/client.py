"""The client side of the supervisor socket, and starting the supervisor on demand.

:class:`Client` keeps one connection for plain requests (a round trip costs
tens of microseconds) and opens another for each stream (attach, exec, wait),
so a long ``logs -f`` in one notebook cell never blocks a ``stop`` in the next.
If nothing listens on the socket, the first client starts the supervisor --
under a lock, so two kernels starting at once make only one -- and waits for
it to say it is ready (it has recovered every container by then).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

from ..errors import SupervisorError, SupervisorLost
from . import protocol

START_TIMEOUT = 30.0

#: How often a request is sent again when the supervisor's end was reset before reading it.
#: UNREAD: a unix socket closed with data still queued resets the connection (ECONNRESET);
#: one closed after reading it ends it (EOF).  So a reset means the request was never read:
#: the supervisor was killed with it queued, or a process forked from the killed supervisor
#: (a container's init being spawned) held its socket a moment longer.  An EOF may follow
#: a request half done, and is never retried.
RETRIES = 3

OutputFn = Callable[[int, bytes], None]


class Client:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.sock_path = self.root / "supervisor.sock"
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        #: Set when this client had to (re)start the supervisor: its pid.
        self.started_supervisor: int | None = None

    # ------------------------------------------------------------------ connecting

    def _try_connect(self) -> socket.socket | None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            s.connect(str(self.sock_path))
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            return None
        except OSError as e:
            s.close()
            raise SupervisorError(f"cannot connect to the supervisor at {self.sock_path}: {e.strerror}",
                                  hint="is the store on a file system that allows unix sockets?") from None

    def connect(self) -> socket.socket:
        s = self._try_connect()
        if s is not None:
            return s
        self._start()
        s = self._try_connect()
        if s is None:
            raise SupervisorError(f"the supervisor started but {self.sock_path} does not answer",
                                  hint=f"look at {self.root / 'supervisor.log'}")
        return s

    def _start(self) -> None:
        (self.root / "locks").mkdir(parents=True, exist_ok=True)
        lock = os.open(self.root / "locks" / "supervisor-start.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            probe = self._try_connect()
            if probe is not None:  # another client started it while we waited
                probe.close()
                return
            log = os.open(self.root / "supervisor.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            ready_r, ready_w = os.pipe()
            os.set_inheritable(ready_r, False)
            env = dict(os.environ)
            package_parent = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "sandbox.supervisor", "--root", str(self.root),
                     "--ready-fd", str(ready_w)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/", env=env,
                    start_new_session=True, pass_fds=(ready_w,), close_fds=True)
            finally:
                os.close(ready_w)
                os.close(log)
            try:
                answer = _read_with_timeout(ready_r, START_TIMEOUT)
            finally:
                os.close(ready_r)
            if not answer:
                code = proc.poll()
                raise SupervisorError(
                    f"the supervisor for {self.root} did not start"
                    + (f" (exit status {code})" if code is not None else ""),
                    hint=f"its last words are in {self.root / 'supervisor.log'}")
            self.started_supervisor = proc.pid
            _forget_child(proc)
        finally:
            os.close(lock)

    def status(self) -> dict[str, Any] | None:
        """The running supervisor's ``ping`` (pid, version, containers); None if none runs.

        Unlike :meth:`call`, never starts one.
        """
        sock = self._try_connect()
        if sock is None:
            return None
        try:
            protocol.send(sock, {"op": "ping"})
            return dict(_result(_recv_json(sock, "ping")))
        except (OSError, SupervisorError):
            return None
        finally:
            sock.close()

    def stop(self, timeout: float = 10.0) -> int | None:
        """Ask the running supervisor to exit and wait until it has; its pid, or None if none ran.

        Containers keep running; the next supervisor adopts them, and until
        then the supervisor's exit keeper holds their exit codes.  Without
        running containers the keeper leaves too, and this waits for it.
        """
        info = self.status()
        if info is None:
            return None
        pid, keeper = int(info["pid"]), info.get("keeper")
        with contextlib.suppress(SupervisorError, OSError):
            self.call("shutdown")
        self.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self._try_connect_quietly() is None and not _alive(pid)
                    and (not keeper or not _alive(int(keeper)) or _has_children(int(keeper), but=pid))):
                return pid
            time.sleep(0.02)
        raise SupervisorError(f"the supervisor (pid {pid}) did not stop within {timeout:.0f} s",
                              hint=f"look at {self.root / 'supervisor.log'}; kill {pid} ends it")

    def _try_connect_quietly(self) -> socket.socket | None:
        s = self._try_connect()
        if s is not None:
            s.close()
        return s

    # ------------------------------------------------------------------ requests

    def call(self, op: str, **args: Any) -> Any:
        """One request, one reply (raises the error the supervisor raised)."""
        with self._lock:
            for attempt in range(RETRIES):
                if self._sock is None:
                    self._sock = self.connect()
                try:
                    protocol.send(self._sock, {"op": op, **args})
                except OSError as e:
                    # The supervisor went away since our last request; it never saw this one.
                    self.close()
                    if attempt == RETRIES - 1 or e.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                        raise
                    continue
                try:
                    data, _ = protocol.recv(self._sock)
                except ConnectionResetError:
                    # Reset rather than closed: the request was never read (see UNREAD), so sending it
                    # to the next supervisor cannot do it twice.
                    self.close()
                    if attempt == RETRIES - 1:
                        raise SupervisorError(f"the supervisor went away before it read {op!r}",
                                              hint=f"see {self.root / 'supervisor.log'}") from None
                    time.sleep(0.01)
                    continue
                if not data:
                    self.close()
                    raise SupervisorError(f"the supervisor closed the connection during {op!r}",
                                          hint=f"it may have crashed; see {self.root / 'supervisor.log'}")
                return _result(json.loads(data))
        raise AssertionError("unreachable")

    def stream(self, op: str, on_output: OutputFn | None = None, *, stdin: int | None = None,
               on_reply: Callable[[Any, Stream], None] | None = None, **args: Any) -> dict[str, Any]:
        """A streaming request on its own connection: output until ``{"exit": ...}``.

        ``stdin`` is a file descriptor whose bytes are forwarded (in a thread)
        until EOF.  Returns the final JSON object (``{"exit": code, ...}``).
        """
        for attempt in range(RETRIES):
            sock = self.connect()
            try:
                protocol.send(sock, {"op": op, **args})
                data, _ = protocol.recv(sock)
                break
            except ConnectionResetError:     # never read (see UNREAD): ask the next supervisor
                sock.close()
                if attempt == RETRIES - 1:
                    raise SupervisorError(f"the supervisor went away before it read {op!r}",
                                          hint=f"see {self.root / 'supervisor.log'}") from None
                time.sleep(0.01)
            except BaseException:
                sock.close()
                raise
        stream = Stream(sock)
        try:
            if not data:
                raise SupervisorError(f"the supervisor closed the connection during {op!r}")
            first = json.loads(data)
            result = _result(first)
            if on_reply is not None:
                on_reply(result, stream)
            if stdin is not None:
                threading.Thread(target=stream.pump_stdin, args=(stdin,), daemon=True).start()
            final = protocol.follow(sock, on_output, lambda result: setattr(stream, "late_result", result))
            if final is None:
                raise SupervisorLost(f"the supervisor closed the stream of {op!r}",
                                     hint=f"it may have been killed; see {self.root / 'supervisor.log'}")
            return final
        finally:
            stream.closed = True
            sock.close()

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


class Stream:
    """The client's end of a streaming request: send stdin and resize packets."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = False
        self.late_result: Any = None

    def send_stdin(self, data: bytes) -> None:
        step = protocol.MAX_PACKET
        if not data:
            self.sock.send(bytes([protocol.STDIN]))
            return
        for i in range(0, len(data), step):
            self.sock.send(bytes([protocol.STDIN]) + data[i:i + step])

    def resize(self, height: int, width: int) -> None:
        self.sock.send(b"R" + json.dumps({"h": height, "w": width}).encode())

    def pump_stdin(self, fd: int) -> None:
        try:
            while not self.closed:
                data = os.read(fd, 65536)
                self.send_stdin(data)
                if not data:
                    return
        except OSError:
            return


def _recv_json(sock: socket.socket, op: str) -> dict[str, Any]:
    try:
        data, _ = protocol.recv(sock)
    except ConnectionResetError:
        data = b""
    if not data:
        raise SupervisorError(f"the supervisor closed the connection during {op!r}")
    obj: dict[str, Any] = json.loads(data)
    return obj


def _result(reply: dict[str, Any]) -> Any:
    if reply.get("ok") is False:
        protocol.raise_error(reply["error"])
    return reply.get("result")


def _has_children(pid: int, but: int | None = None) -> bool:
    """Whether ``pid`` has live child processes other than ``but`` (containers an exit keeper
    still waits for; the supervisor it has not reaped yet does not count)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        return False
    return any(c != but and _alive(c) for c in children)


def _alive(pid: int) -> bool:
    """Still a process (a zombie of ours is reaped here and counts as gone)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _read_with_timeout(fd: int, timeout: float) -> bytes:
    import select
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return b""
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return b""
        chunk = os.read(fd, 64)
        if not chunk:
            return buf
        buf += chunk
    return buf


def _forget_child(proc: subprocess.Popen[bytes]) -> None:
    """The supervisor outlives us; reap it if it ever exits while we live, never wait for it."""
    proc.returncode = None
    threading.Thread(target=_reap_quietly, args=(proc.pid,), daemon=True).start()


def _reap_quietly(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)
