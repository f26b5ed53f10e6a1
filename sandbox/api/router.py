"""Routes: method + path pattern -> handler, the API version in the path, and errors as Docker gives them.

Paths come as ``/v1.41/containers/json`` or without the version (Docker
serves both).  A version above ours is refused as Docker refuses it ("client
version 1.43 is too new. Maximum supported API version is 1.41"), below the
minimum likewise.  Patterns name their parts (``/containers/{id}/json``);
``{name*}`` takes slashes too, for image names (``localhost:5000/class/app``).

A :class:`~sandbox.errors.SandboxError` from the engine becomes Docker's
status and ``{"message": ...}``: not found 404, conflicts 409 (304 for a
start of a started or a stop of a stopped container, as Docker answers),
bad parameters 400, authentication 401/403; anything else is 500 with the
exception's text (a bug of ours, logged by the server).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .. import errors
from .http import ApiError, Exchange

API_VERSION = "1.41"
MIN_API_VERSION = "1.12"

Handler = Callable[..., None]

_VERSION = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


def _as_tuple(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor)


class Router:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", pattern)
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
        self.routes.append((method, re.compile(f"^{regex}$"), handler))

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.add(method, pattern, fn)
            return fn
        return register

    def resolve(self, ex: Exchange) -> tuple[Handler, dict[str, str]]:
        path = ex.path
        m = _VERSION.match(path)
        if m:
            version = f"{m.group(1)}.{m.group(2)}"
            if _as_tuple(version) > _as_tuple(API_VERSION):
                raise ApiError(400, f"client version {version} is too new. Maximum supported API version "
                                    f"is {API_VERSION}")
            if _as_tuple(version) < _as_tuple(MIN_API_VERSION):
                raise ApiError(400, f"client version {version} is too old. Minimum supported API version "
                                    f"is {MIN_API_VERSION}, please upgrade your client to a newer version")
            ex.version = version
            path = m.group(3)
        path = path.rstrip("/") or "/"
        allowed = []
        for method, regex, handler in self.routes:
            match = regex.match(path)
            if match is None:
                continue
            if method == ex.method or (method == "GET" and ex.method == "HEAD" and
                                       not any(m == "HEAD" and r.match(path) for m, r, _ in self.routes)):
                return handler, match.groupdict()
            allowed.append(method)
        if allowed:
            raise ApiError(405, f"method {ex.method} is not allowed on {path} (use {', '.join(sorted(set(allowed)))})")
        raise ApiError(404, f"page not found: {ex.method} {ex.path}")


def status_of(exc: errors.SandboxError) -> int:
    """Docker's HTTP status for one of our errors."""
    if isinstance(exc, errors.NotFound):
        return 404
    if isinstance(exc, (errors.Unauthorized,)):
        return 401
    if isinstance(exc, errors.PermissionRequired):
        return 403
    if isinstance(exc, errors.Conflict):
        return 409
    if isinstance(exc, (errors.UsageError, errors.InvalidReference, errors.DockerfileSyntaxError,
                        errors.InvalidResources, errors.InvalidSpec, errors.ArchiveError)):
        return 400
    return 500


def message_of(exc: errors.SandboxError) -> str:
    """The message as Docker's CLI shows it after "Error response from daemon: " (with our hint)."""
    return str(exc)


def run_handler(handler: Handler, ex: Exchange, params: dict[str, str], context: Any) -> None:
    """Call ``handler(context, ex, **params)``; turn a SandboxError into its HTTP answer."""
    try:
        handler(context, ex, **params)
    except errors.SandboxError as e:
        if ex.answered:
            raise
        ex.error(status_of(e), message_of(e))
