"""Registries: pull, push, login and logout over the OCI distribution API.

See ``distribution.py`` for how a pull and a push proceed, ``transport.py`` for
HTTP and the token dance, ``auth.py`` for where credentials are kept.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import Unauthorized
from . import auth
from .distribution import PullResult, PushResult, pull, push
from .transport import Transport


def login(registry: str, user: str, password: str) -> Path:
    """Check the credentials against ``registry`` and store them only if it accepts them."""
    t = Transport(registry, (user, password), use_stored_credentials=False)
    try:
        t.request("GET", "/v2/", ok=(200,), what="a login")
    except Unauthorized:
        raise Unauthorized(f"login to {registry} failed: wrong user name or password for {user}",
                           hint="check them and try again; nothing was stored") from None
    finally:
        t.close()
    return auth.store_credentials(registry, user, password)


def logout(registry: str) -> bool:
    """Forget the credentials for ``registry``; False if there were none."""
    return auth.remove_credentials(registry)


__all__ = ["login", "logout", "pull", "push", "PullResult", "PushResult", "Transport"]
