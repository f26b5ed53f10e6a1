"""``sandbox exec`` and ``sandbox attach``."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("exec", help="Execute a command in a running container")
    p.add_argument("-d", "--detach", action="store_true", help="run the command in the background")
    p.add_argument("-e", "--env", action="append", default=[], help="set environment variables")
    p.add_argument("-i", "--interactive", action="store_true", help="keep STDIN open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-u", "--user", default="", help="username or UID (format: name|uid[:group|gid])")
    p.add_argument("-w", "--workdir", default="", help="working directory inside the container")
    p.add_argument("--privileged", action="store_true", help="give extended privileges to the command")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs="...", metavar="COMMAND")
    p.set_defaults(func=run_exec)

    p = sub.add_parser("attach", help="Attach local standard input, output, and error streams to a running container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--no-stdin", action="store_true", help="do not attach STDIN")
    p.set_defaults(func=run_attach)


def run_exec(engine: Any, args: Any, out: Any) -> int:
    from ..errors import UsageError
    from .run import _stdin_fd, output_writer, raw_terminal
    if not args.command:
        raise UsageError("exec requires at least 2 arguments", hint="sandbox exec CONTAINER COMMAND [ARG...]")
    container = engine.containers.get(args.container)
    if args.detach:
        container.exec_run(args.command, detach=True, environment=args.env, workdir=args.workdir,
                           user=args.user, tty=args.tty, privileged=args.privileged)
        return 0
    stdin_fd = _stdin_fd() if args.interactive else None
    import os

    def on_start(result: Any, stream: Any) -> None:
        if args.tty and stdin_fd is not None and os.isatty(stdin_fd):
            size = os.get_terminal_size(stdin_fd)
            stream.resize(size.lines, size.columns)

    from ..errors import CommandNotFound
    try:
        with raw_terminal(stdin_fd if args.tty else None):
            return container.exec_stream(list(args.command), output_writer(out), stdin_fd=stdin_fd,
                                         tty=args.tty, env=args.env, workdir=args.workdir, user=args.user,
                                         privileged=args.privileged, on_start=on_start)
    except CommandNotFound as e:
        e.exit_code = 126   # docker exec says 126 for a missing command too (docker run: 127)
        raise


def run_attach(engine: Any, args: Any, out: Any) -> int:
    from .run import _stdin_fd, attached
    container = engine.containers.get(args.container)
    tty = bool(container.attrs["Config"].get("Tty"))
    stdin_fd = None if args.no_stdin or not container.attrs["Config"].get("OpenStdin") else _stdin_fd()
    return attached(engine, container.id, out, stdin_fd=stdin_fd, tty=tty, start=False, container=container)
