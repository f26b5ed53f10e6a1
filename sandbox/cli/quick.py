"""``sandbox run`` in its common case, with nothing but a socket: the cold path.

A new ``sandbox run --rm busybox true`` spends most of its life importing.
Docker's CLI is a thin client of its daemon; here the supervisor already has
the engine loaded, so once the command line is parsed (with the same parser
as always) this module sends ``create_named`` and ``start`` over the
supervisor's socket and copies the output, importing only json, os, socket
and the wire format -- not pathlib, subprocess, the image store or the engine.

It steps aside (returns None, and the full path runs) whenever the full path
does something it does not: no supervisor listening yet (the full path starts
one), layers still to unpack, ``-i``/``-t``/``-a``.  Errors are the
supervisor's own ``SandboxError`` classes, shown by ``main`` as always.
"""

from __future__ import annotations

import os
import socket
import sys
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any

from ..supervisor import protocol


def quick_run(args: Any, out: Any) -> int | None:
    """Run ``args`` (a parsed ``sandbox run``) through the supervisor; None: use the full path."""
    if args.interactive or args.tty or args.attach:
        return None
    from ..containers.options import config_from_args
    config, host, name, networking = config_from_args(args, args.image, list(args.command))
    from ..rootdir import default_root_dir
    path = os.path.join(os.path.abspath(args.root or default_root_dir()), "supervisor.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        try:
            sock.connect(path)
        except OSError:
            return None   # not running (or not reachable): the full path starts it, or says why
        created = _call(sock, "create_named", image=args.image, config=config, host_config=host,
                        networking_config=networking,
                        name=name, command_given=bool(args.command),
                        storage_driver=os.environ.get("SANDBOX_STORAGE_DRIVER") or None)
        if created.get("NeedUnpack"):
            return None   # nothing was created; the full path unpacks, then creates
        cid = created["Id"]
        try:
            return _start(sock, cid, args, out)
        except KeyboardInterrupt:
            _stop(path, cid, remove=args.rm)
            raise
    finally:
        sock.close()


def _start(sock: socket.socket, cid: str, args: Any, out: Any) -> int:
    if args.detach:
        warn(_call(sock, "start", id=cid))
        out.write(cid + "\n")
        return 0
    from .streams import output_writer
    warn(_call(sock, "start", id=cid, attach=True))
    from ..containers.resume import Shown
    shown = Shown(output_writer(out))
    final = protocol.follow(sock, shown)
    if final is None:
        return _resume(args, cid, shown)
    return int(final["exit"])


def warn(result: Any) -> None:
    """The start's warnings on stderr, as ``docker run`` prints them (also for the full path in cli.run)."""
    for text in (result.get("Warnings") or []) if isinstance(result, dict) else []:
        sys.stderr.write(f"WARNING: {text}\n")


def _resume(args: Any, cid: str, shown: Any) -> int:
    """The supervisor died while the container ran: a new one takes over (the rare, slow path)."""
    from ..containers.resume import container_dir, resume_attached
    from ..engine import Engine
    engine = Engine(args.root)
    return resume_attached(engine.containers.client, cid, container_dir(engine.root, cid), shown)


def _call(sock: socket.socket, op: str, **args: Any) -> Any:
    """One request and its reply's result.

    A supervisor that hangs up is an error, never a reason to fall back: the
    request may have been carried out (a second create would make two).
    """
    try:
        protocol.send(sock, {"op": op, **args})
        data, _ = protocol.recv(sock)
    except (BrokenPipeError, ConnectionResetError):
        data = b""
    if not data:
        raise _hung_up(op)
    import json
    reply = json.loads(data)
    if reply.get("ok") is False:
        protocol.raise_error(reply["error"])
    return reply.get("result")


def _stop(path: str, cid: str, *, remove: bool) -> None:
    """Ctrl-C: stop the container (its stop signal, 2 s, SIGKILL); with --rm, it goes too.

    ``--rm`` removes a container when it exits; one interrupted before it
    ever started is removed here.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
        _call(sock, "stop", id=cid, timeout=2)
        protocol.follow(sock)
        if remove:
            from ..errors import ContainerNotFound
            try:
                _call(sock, "remove", id=cid, force=True)
            except ContainerNotFound:
                pass   # removed on exit already
    except Exception as e:  # noqa: BLE001 - on the way out anyway; say why it may still run
        print(f"Error: could not stop {cid[:12]}: {e}", file=sys.stderr)
    finally:
        sock.close()


def _hung_up(op: str) -> Exception:
    from ..errors import SupervisorError
    return SupervisorError(f"the supervisor closed the connection during {op!r}",
                           hint="it may have been killed; see supervisor.log in the store")
