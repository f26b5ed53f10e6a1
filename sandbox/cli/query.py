"""``ps``, ``images`` and ``inspect`` in their common case: questions to the running supervisor.

The cold path of the listing verbs, as :mod:`sandbox.cli.quick` is that of
``run``.  A new ``sandbox ps`` that loads the engine spends most of its life
importing; the supervisor holds every container's record and has the image
stack loaded, so once the command line is parsed (by the same parser) the
verb asks it over the socket (:mod:`sandbox.supervisor.handlers.query`) and
formats the answer with the same functions as the full path.

Only json and the C socket module are loaded here.  The request is one
JSON packet; the answer one packet per item, ``{"ok": true, "result":
ITEM}``, until ``{"exit": 0}`` (:mod:`sandbox.supervisor.protocol`'s format;
that module is not imported, because its ``socket`` import -- the Python
wrapper, with ``selectors`` behind it -- and ``typing`` cost a cold command
more than everything else it does here).

:func:`ask` steps aside (None, and the full path runs) whenever the answer
would not be exactly the full path's: no supervisor listening (the full path
starts one, or reads the store itself), a supervisor that does not know the
question (an older one), an answer too large for its packets, or any error
but "not found"; the verbs step aside for what only the engine knows
(``images REFERENCE``, ``ps --filter ancestor=``, volumes for ``inspect``).
"""

from __future__ import annotations

import _socket
import json
import os

from .. import errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Larger than any packet the supervisor sends (protocol.MAX_PACKET, 64 KiB, plus a little):
#: a SOCK_SEQPACKET receive takes one whole packet, and cuts one that is longer than this.
RECV_SIZE = 128 * 1024


def ask(args: Any, op: str, **request: Any) -> list[Any] | None:
    """The items the supervisor answers ``op`` with; None: take the full path.

    Raises :class:`~sandbox.errors.NotFound` (a container or image the
    request names does not exist), so ``inspect`` can look for the name among
    the next kind of object.
    """
    from ..rootdir import default_root_dir
    path = os.path.join(os.path.abspath(args.root or default_root_dir()), "supervisor.sock")
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    items: list[Any] = []
    try:
        sock.connect(path)
        sock.send(json.dumps({"op": op, **request}).encode())
        while True:
            data = sock.recv(RECV_SIZE)
            if data[:1] != b"{":
                return None                       # hung up (or not an answer of ours)
            packet = json.loads(data)
            if "exit" in packet:
                return items if packet["exit"] == 0 and not packet.get("error") else None
            if packet.get("ok") is False:
                _raise_not_found(packet.get("error") or {})
                return None                       # any other error: the full path meets it itself
            items.append(packet.get("result"))
    except (OSError, ValueError):
        return None   # not running, not reachable, hung up, a broken answer
    finally:
        sock.close()


def _raise_not_found(error: dict[str, Any]) -> None:
    """The supervisor's ``ContainerNotFound``, ``ImageNotFound``, ... as a :class:`NotFound` here."""
    cls = getattr(errors, str(error.get("type")), None)
    if isinstance(cls, type) and issubclass(cls, errors.NotFound):
        raise errors.NotFound(str(error.get("message", "")))
