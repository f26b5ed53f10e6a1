"""``sandbox login`` / ``sandbox logout``: registry credentials, checked before they are stored."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from ..errors import UsageError


def register(sub: Any) -> None:
    p = sub.add_parser("login", help="Log in to a registry")
    p.add_argument("server", nargs="?", default="docker.io", metavar="SERVER")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password", help="(insecure: it shows in the shell history; prefer --password-stdin)")
    p.add_argument("--password-stdin", action="store_true", help="take the password from STDIN")
    p.set_defaults(func=run_login)
    q = sub.add_parser("logout", help="Log out from a registry")
    q.add_argument("server", nargs="?", default="docker.io", metavar="SERVER")
    q.set_defaults(func=run_logout)


def run_login(engine: Any, args: Any, out: Any) -> int:
    user = args.username
    if args.password_stdin:
        if args.password:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        if not user:
            raise UsageError("must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\n")
    else:
        password = args.password
    if not user:
        if not sys.stdin.isatty():
            raise UsageError("no user name given", hint="use -u USER")
        user = input("Username: ")
    if password is None:
        if not sys.stdin.isatty():
            raise UsageError("no password given", hint="use --password-stdin")
        password = getpass.getpass("Password: ")
    path = engine.login(args.server, user, password)
    out.write(f"Credentials stored in {path}\nLogin Succeeded\n")
    return 0


def run_logout(engine: Any, args: Any, out: Any) -> int:
    if engine.logout(args.server):
        out.write(f"Removing login credentials for {args.server}\n")
    else:
        out.write(f"Not logged in to {args.server}\n")
    return 0
