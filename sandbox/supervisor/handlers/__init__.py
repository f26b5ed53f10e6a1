"""The supervisor's requests, one module per topic; :data:`HANDLERS` maps each op to its function.

A handler is ``fn(core, conn, msg)``: it returns the reply's result, or
:data:`~sandbox.supervisor.conn.STREAMING` when it answers (and ends the
stream) itself.  A :class:`~sandbox.errors.SandboxError` it raises crosses
the socket as itself.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

from . import admin, create, lifecycle, network, streams

Handler = Callable[..., Any]

HANDLERS: dict[str, Handler] = {**admin.HANDLERS, **create.HANDLERS, **lifecycle.HANDLERS,
                                **network.HANDLERS, **streams.HANDLERS}
