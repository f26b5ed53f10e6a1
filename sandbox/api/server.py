"""``sandbox daemon``: the Docker Engine API on unix and TCP sockets, one thread per connection.

The daemon is a client of :class:`sandbox.Engine`, like the CLI and the
magics: image work (build, pull, push, load, save) runs in it as a library,
containers go through the store's supervisor.  A thread per connection keeps
long work (a build, a pull, an attach) from blocking quick calls (a ``ps``
answers while a build runs); the supervisor stays single-threaded and small.

Listening (``-H``, several at once):

* ``unix:///run/sandbox/docker.sock`` (root's default; ``$XDG_RUNTIME_DIR/
  sandbox/docker.sock`` otherwise): mode 0660, group ``sandbox`` (``--group``)
  -- like Docker's ``docker`` group, membership is as good as root;
* ``tcp://127.0.0.1:PORT``: loopback only, unless ``--tlsverify`` with a CA,
  a certificate and a key: then any address, and a client without a
  certificate signed by that CA is refused (Docker's own rule);
* ``fd://``: the sockets systemd passes (socket activation, ``contrib/``).
"""

from __future__ import annotations

import contextlib
import grp
import ipaddress
import os
import socket
import ssl
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .http import ApiError, ClientGone, Connection
from .router import Router, run_handler


def default_host() -> str:
    if os.geteuid() == 0:
        return "unix:///run/sandbox/docker.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
    return f"unix://{runtime}/sandbox/docker.sock"


@dataclass
class TLS:
    ca: str
    cert: str
    key: str

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert, self.key)
        ctx.load_verify_locations(self.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED       # --tlsverify: no client certificate, no connection
        return ctx


@dataclass
class Listener:
    address: str
    sock: socket.socket
    tls: ssl.SSLContext | None = None
    path: str | None = None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(address: str, *, group: str | None, tls: TLS | None) -> list[Listener]:
    """Sockets for one ``-H`` address (``fd://`` may give several)."""
    if address.startswith("unix://"):
        return [_listen_unix(address[len("unix://"):], group)]
    if address.startswith("tcp://"):
        hostport = address[len("tcp://"):]
        host, _, port = hostport.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        if not port.isdigit():
            raise UsageError(f"-H {address}: give a port, e.g. tcp://127.0.0.1:2375")
        if not _loopback(host) and tls is None:
            raise UsageError(f"refusing to listen on {address} without TLS: anyone who reaches it gets root "
                             "on this host", hint="listen on tcp://127.0.0.1:PORT, or give --tlsverify with "
                                                  "--tlscacert, --tlscert and --tlskey")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, int(port)))
        s.listen(128)
        return [Listener(address, s, tls.context() if tls else None)]
    if address.startswith("fd://"):
        count = int(os.environ.get("LISTEN_FDS") or 0)
        if os.environ.get("LISTEN_PID") not in (None, str(os.getpid())) or not count:
            raise UsageError("-H fd://: no sockets were passed by systemd (LISTEN_FDS)",
                             hint="start it from the socket unit in contrib/, or give -H unix://... instead")
        return [Listener(f"fd://{fd}", socket.socket(fileno=fd)) for fd in range(3, 3 + count)]
    raise UsageError(f"-H {address}: unknown address", hint="use unix:///path, tcp://127.0.0.1:PORT or fd://")


def _listen_unix(path: str, group: str | None) -> Listener:
    if len(os.fsencode(path)) > 107:
        raise UsageError(f"-H unix://{path}: a unix socket's path has at most 107 bytes, this one "
                         f"{len(os.fsencode(path))}", hint="put the socket in a shorter directory, e.g. /run or /tmp")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)
    try:
        s.bind(path)
    finally:
        os.umask(old)
    gid = -1
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            print(f"daemon: group {group!r} does not exist: the socket is for root only "
                  f"(`make setup` makes it, or `groupadd {group}`)", file=sys.stderr)
    if gid >= 0:
        os.chown(path, -1, gid)
        os.chmod(path, 0o660)
    s.listen(128)
    return Listener(f"unix://{path}", s, path=path)


@dataclass
class Daemon:
    """What the handlers share: the engine, the exec sessions, the router."""

    engine: Any
    router: Router
    listeners: list[Listener] = field(default_factory=list)
    execs: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: container id -> wait requests not yet registered with the supervisor (start holds back for them)
    pending_waits: dict[str, int] = field(default_factory=dict)
    waits: threading.Condition = field(default_factory=threading.Condition)
    started: float = field(default_factory=time.time)
    debug: bool = False
    stopping: threading.Event = field(default_factory=threading.Event)

    def serve_forever(self) -> None:
        threads = [threading.Thread(target=self._accept, args=(lst,), daemon=True,
                                    name=f"accept {lst.address}") for lst in self.listeners]
        for t in threads:
            t.start()
        try:
            while not self.stopping.wait(0.5):
                pass
        finally:
            self.close()

    def _accept(self, lst: Listener) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = lst.sock.accept()
            except OSError:
                if self.stopping.is_set():
                    return
                time.sleep(0.05)
                continue
            threading.Thread(target=self._serve_connection, args=(sock, lst), daemon=True).start()

    def _serve_connection(self, sock: socket.socket, lst: Listener) -> None:
        if lst.tls is not None:
            try:
                sock = lst.tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError) as e:
                if self.debug:
                    print(f"daemon: TLS handshake refused: {e}", file=sys.stderr)
                sock.close()
                return
        conn = Connection(sock)
        try:
            while not conn.hijacked:
                try:
                    ex = conn.next_exchange()
                except ApiError as e:
                    self._answer_error(conn, e)
                    return
                if ex is None:
                    return
                if not self._handle(conn, ex):
                    return
        except ClientGone:
            return
        finally:
            if not conn.hijacked:
                conn.close()

    def _handle(self, conn: Connection, ex: Any) -> bool:
        """One request; False when the connection must close."""
        t = time.monotonic()
        try:
            handler, params = self.router.resolve(ex)
            run_handler(handler, ex, params, self)
        except ApiError as e:
            if ex.answered:
                return False
            ex.error(e.status, e.message)
        except ClientGone:
            return False
        except Exception as e:  # noqa: BLE001 - a bug of ours: a 500 with the reason, and the trace in the log
            traceback.print_exc()
            if ex.answered:
                return False
            with contextlib.suppress(ClientGone, Exception):
                ex.error(500, f"{type(e).__name__}: {e}")
            return False
        finally:
            if self.debug:
                print(f"daemon: {ex.method} {ex.path} {(time.monotonic() - t) * 1000:.1f} ms", file=sys.stderr)
        return not conn.hijacked

    def _answer_error(self, conn: Connection, e: ApiError) -> None:
        import h11
        with contextlib.suppress(Exception):
            body = ('{"message": %s}\n' % __import__("json").dumps(e.message)).encode()
            conn.send(h11.Response(status_code=e.status, headers=conn.common_headers() + [
                ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                ("Connection", "close")]))
            conn.send(h11.Data(data=body))
            conn.send(h11.EndOfMessage())

    def close(self) -> None:
        self.stopping.set()
        for lst in self.listeners:
            with contextlib.suppress(OSError):
                lst.sock.close()
            if lst.path:
                with contextlib.suppress(OSError):
                    os.unlink(lst.path)


def build_router() -> Router:
    from .routes import register_all
    router = Router()
    register_all(router)
    return router


def serve(hosts: list[str], *, root: str | None = None, group: str | None = "sandbox", tls: TLS | None = None,
          debug: bool = False, ready: Any = None) -> int:
    """Run the daemon until SIGTERM/SIGINT; ``ready(daemon)`` is called once it listens."""
    import signal

    from ..engine import Engine
    listeners: list[Listener] = []
    for address in hosts or [default_host()]:
        listeners += listen(address, group=group, tls=tls)
    daemon = Daemon(Engine(root), build_router(), listeners, debug=debug)
    daemon.engine.ensure_supervisor()
    signal.signal(signal.SIGTERM, lambda *_: daemon.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: daemon.stopping.set())
    print(f"daemon: serving the Docker Engine API 1.41 for {daemon.engine.root} on "
          + ", ".join(lst.address for lst in listeners), file=sys.stderr, flush=True)
    if ready is not None:
        ready(daemon)
    daemon.serve_forever()
    return 0
