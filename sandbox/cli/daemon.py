"""``sandbox daemon`` (and ``sandbox system service``, Podman's name): serve the Docker Engine API.

The docker CLI, docker-py and docker-compose then drive this engine:
``DOCKER_HOST=unix:///run/sandbox/docker.sock docker ps``.  Runs in the
foreground until SIGTERM or Ctrl-C; containers keep running under the
store's supervisor when it stops.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-H", "--host", action="append", default=[], metavar="ADDRESS",
                   help="unix:///path, tcp://127.0.0.1:PORT or fd:// (repeatable; default "
                        "unix:///run/sandbox/docker.sock as root)")
    p.add_argument("--group", default="sandbox", help="group of the unix socket (mode 0660); default sandbox")
    p.add_argument("--tlsverify", action="store_true", help="TCP with TLS, and client certificates required")
    p.add_argument("--tlscacert", help="CA that signed the clients' certificates")
    p.add_argument("--tlscert", help="the server's certificate")
    p.add_argument("--tlskey", help="the server's key")
    p.add_argument("-D", "--debug", action="store_true", help="log every request")
    p.set_defaults(func=run)


def register(sub: Any) -> None:
    add_flags(sub.add_parser("daemon", help="Serve the Docker Engine API (docker, docker-py, docker-compose)"))


def run(engine: Any, args: Any, out: Any) -> int:
    from ..api.server import TLS, serve
    from ..errors import UsageError
    tls = None
    if args.tlsverify:
        if not (args.tlscacert and args.tlscert and args.tlskey):
            raise UsageError("--tlsverify needs --tlscacert, --tlscert and --tlskey",
                             hint="make a CA and certificates as Docker's docs explain (openssl)")
        tls = TLS(args.tlscacert, args.tlscert, args.tlskey)
    return serve(list(args.host), root=str(engine.root), group=args.group or None, tls=tls, debug=args.debug)
