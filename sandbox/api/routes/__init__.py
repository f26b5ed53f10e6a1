"""The endpoints by topic; :func:`register_all` puts them on one router.

Each handler is ``fn(daemon, exchange, **path_parts)`` and answers through
the exchange (JSON, an empty 204, a stream, or a hijacked socket).
"""

from __future__ import annotations

from ..router import Router


def register_all(router: Router) -> None:
    from . import build, containers, execs, images, networks, streams, system, volumes
    for module in (system, containers, streams, execs, images, build, networks, volumes):
        module.register(router)
