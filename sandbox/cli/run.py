"""``sandbox create``, ``run`` and ``start``: docker's flags, docker's exit codes.

``run`` is create + start with the output attached (or ``-d``: the id).  Its
exit code is the container's; the engine's own errors are 125, a command that
does not exist 127 and one that cannot be executed 126, as with docker.  With
``-t`` on a terminal the local terminal goes raw and the container's pty does
the line editing, as ``docker run -it`` does.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any

from .streams import output_writer


def register(sub: Any) -> None:
    from ..containers.options import add_create_flags
    for name, help_text in (("create", "Create a new container"),
                            ("run", "Create and run a new container from an image")):
        p = sub.add_parser(name, help=help_text, add_help=False)  # -h is --hostname, as in docker
        p.add_argument("--help", action="help", help="show this help message and exit")
        add_create_flags(p)
        p.add_argument("image", metavar="IMAGE")
        p.add_argument("command", nargs="...", metavar="COMMAND")
        if name == "run":
            from .quick import quick_run
            p.set_defaults(func=run_run, quick=quick_run)
        else:
            p.set_defaults(func=run_create)
    p = sub.add_parser("start", help="Start one or more stopped containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-a", "--attach", action="store_true", help="attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="attach the container's STDIN")
    p.set_defaults(func=run_start)


def _create(engine: Any, args: Any) -> Any:
    from ..containers.options import config_from_args
    config, host, name, networking = config_from_args(args, args.image, list(args.command))
    container = engine.containers.create_from(args.image, config, host, name, networking=networking,
                                              command_given=bool(args.command))
    return container


def run_create(engine: Any, args: Any, out: Any) -> int:
    container = _create(engine, args)
    out.write(container.id + "\n")
    return 0


def run_run(engine: Any, args: Any, out: Any) -> int:
    container = _create(engine, args)
    if args.detach:
        from .quick import warn
        warn(engine.containers.client.call("start", id=container.id))
        out.write(container.id + "\n")
        return 0
    tty = bool(container.attrs["Config"].get("Tty"))
    stdin_fd = _stdin_fd() if args.interactive else None
    return attached(engine, container.id, out, stdin_fd=stdin_fd, tty=tty)


def attached(engine: Any, cid: str, out: Any, *, stdin_fd: int | None, tty: bool, start: bool = True,
             container: Any = None) -> int:
    """Stream a container's output here until it exits; the exit code."""
    write = output_writer(out)

    def on_start(result: Any, stream: Any) -> None:
        from .quick import warn
        warn(result)
        if tty and stdin_fd is not None and os.isatty(stdin_fd):
            with contextlib.suppress(OSError):
                size = os.get_terminal_size(stdin_fd)
                stream.resize(size.lines, size.columns)

    with raw_terminal(stdin_fd if tty else None):
        if start:
            return int(engine.containers.start_attached(cid, write, stdin_fd=stdin_fd, on_start=on_start))
        return int(container.attach_stream(write, stdin_fd=stdin_fd))


def _stdin_fd() -> int | None:
    try:
        return sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        return None  # a notebook: there is no stdin to forward


@contextlib.contextmanager
def raw_terminal(fd: int | None) -> Iterator[None]:
    if fd is None or not os.isatty(fd):
        yield
        return
    import termios
    import tty as tty_mod
    saved = termios.tcgetattr(fd)
    try:
        tty_mod.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_start(engine: Any, args: Any, out: Any) -> int:
    if (args.attach or args.interactive) and len(args.containers) > 1:
        from ..errors import UsageError
        raise UsageError("you cannot start and attach multiple containers at once")
    if args.attach or args.interactive:
        container = engine.containers.get(args.containers[0])
        tty = bool(container.attrs["Config"].get("Tty"))
        stdin_fd = _stdin_fd() if args.interactive else None
        return attached(engine, container.id, out, stdin_fd=stdin_fd, tty=tty)
    return for_each(args.containers, lambda ref: engine.containers.get(ref).start(), out)


def for_each(refs: list[str], action: Any, out: Any, echo: bool = True) -> int:
    """Docker's multi-container verbs: act on each, report each failure, go on; 1 if any failed."""
    from ..errors import SandboxError
    status = 0
    for ref in refs:
        try:
            action(ref)
            if echo:
                out.write(ref + "\n")
        except SandboxError as e:
            print(f"Error: {e}", file=sys.stderr)
            status = 1
    return status
