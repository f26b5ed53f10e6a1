"""``--change``: the Dockerfile instructions ``docker import -c`` and ``docker commit -c`` accept.

Each change is one Dockerfile line (``CMD``, ``ENTRYPOINT``, ``ENV``, ``EXPOSE``,
``LABEL``, ``ONBUILD``, ``STOPSIGNAL``, ``USER``, ``VOLUME``, ``WORKDIR``) applied to
an image config's ``config`` section with Docker's key names.  Words are split
and variables expanded by the builder's own lexer (:mod:`sandbox.build.words`),
so a change means what the same line means in a Dockerfile.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
from typing import Any
from collections.abc import Callable, Iterable

from ...errors import SandboxError

__all__ = ["VALID_CHANGES", "apply_changes"]


VALID_CHANGES = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER",
                 "VOLUME", "WORKDIR")


def apply_changes(config: dict[str, Any], changes: Iterable[str]) -> None:
    """Apply Dockerfile-like ``changes`` (``docker import -c``) to an image's ``config`` section.

    Keys use Docker's capitalisation (``Cmd``, ``Env``, ``ExposedPorts``...).
    Variables (``$VAR``, ``${VAR}``, ``${VAR:-default}``) are expanded from the
    ``Env`` set so far, as in a Dockerfile, except in CMD and ENTRYPOINT.
    """
    cmd_set = False
    for change in changes:
        line = change.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        keyword, rest = parts[0].upper(), (parts[1].strip() if len(parts) > 1 else "")
        handler = _CHANGES.get(keyword)
        if handler is None:
            raise SandboxError(f"{parts[0]} is not a valid change command: {line!r}",
                               hint="use one of " + ", ".join(VALID_CHANGES))
        if not rest:
            raise SandboxError(f"{keyword} requires at least one argument: {line!r}")
        if keyword == "ENTRYPOINT" and not cmd_set:
            config.pop("Cmd", None)  # as in a Dockerfile: a new ENTRYPOINT drops an inherited CMD
        cmd_set = cmd_set or keyword == "CMD"
        handler(config, rest, _env_map(config))


def _env_map(config: dict[str, Any]) -> dict[str, str]:
    return dict(e.split("=", 1) if "=" in e else (e, "") for e in config.get("Env") or [])


def _exec_or_shell(rest: str) -> list[str]:
    if rest.startswith("["):
        with contextlib.suppress(ValueError):
            value = json.loads(rest)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
    return ["/bin/sh", "-c", rest]


def _pairs(keyword: str, rest: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """``K=V K2="v 2"``, or the legacy ``K V W`` (one pair, the value is the rest of the line)."""
    first = rest.split(None, 1)[0]
    if "=" not in first:
        key, _, value = rest.partition(" ") if " " in rest else rest.partition("\t")
        if not value.strip():
            raise SandboxError(f"{keyword} {rest!r}: expected {keyword} KEY=VALUE", hint=f"e.g. {keyword} A=1 B=\"two words\"")
        return [(_words(key, env)[0], _expand(value.strip(), env))]
    out = []
    for word in _words(rest, env):
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise SandboxError(f"{keyword} {rest!r}: {word!r} is not KEY=VALUE",
                               hint=f"e.g. {keyword} A=1 B=\"two words\"")
        out.append((key, value))
    return out


def _change_env(config: dict[str, Any], rest: str, env: dict[str, str]) -> None:
    current = list(config.get("Env") or [])
    for key, value in _pairs("ENV", rest, env):
        current = [e for e in current if e.split("=", 1)[0] != key] + [f"{key}={value}"]
    config["Env"] = current


def _change_label(config: dict[str, Any], rest: str, env: dict[str, str]) -> None:
    config["Labels"] = {**(config.get("Labels") or {}), **dict(_pairs("LABEL", rest, env))}


def _change_expose(config: dict[str, Any], rest: str, env: dict[str, str]) -> None:
    ports = dict(config.get("ExposedPorts") or {})
    for word in _words(rest, env):
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        low, _, high = port.partition("-")
        if proto not in ("tcp", "udp", "sctp") or not low.isdigit() or (high and not high.isdigit()) \
                or not 0 < int(low) <= int(high or low) <= 65535:
            raise SandboxError(f"EXPOSE {rest!r}: invalid port {word!r}", hint="e.g. EXPOSE 80 443/tcp 53/udp 8000-8002")
        for p in range(int(low), int(high or low) + 1):
            ports[f"{p}/{proto}"] = {}
    config["ExposedPorts"] = ports


def _change_volume(config: dict[str, Any], rest: str, env: dict[str, str]) -> None:
    paths = _exec_or_shell(rest) if rest.startswith("[") else _words(rest, env)
    if paths[:2] == ["/bin/sh", "-c"] or not all(p.strip() for p in paths):
        raise SandboxError(f"VOLUME {rest!r}: expected paths", hint='e.g. VOLUME /data or VOLUME ["/data"]')
    config["Volumes"] = {**(config.get("Volumes") or {}), **{p: {} for p in paths}}


def _change_workdir(config: dict[str, Any], rest: str, env: dict[str, str]) -> None:
    path = _expand(rest, env)
    config["WorkingDir"] = posixpath.normpath(posixpath.join(config.get("WorkingDir") or "/", path))


def _change_single(key: str) -> Callable[[dict[str, Any], str, dict[str, str]], None]:
    def change(config: dict[str, Any], rest: str, env: dict[str, str]) -> None:
        words = _words(rest, env)
        if len(words) != 1:
            raise SandboxError(f"{key} {rest!r}: expected exactly one argument")
        config["User" if key == "USER" else "StopSignal"] = words[0]
    return change


def _change_onbuild(config: dict[str, Any], rest: str, env: dict[str, str]) -> None:
    trigger = rest.split(None, 1)[0].upper()
    if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
        raise SandboxError(f"ONBUILD {rest!r}: {trigger} isn't allowed as an ONBUILD trigger")
    config["OnBuild"] = list(config.get("OnBuild") or []) + [rest]


_CHANGES: dict[str, Callable[[dict[str, Any], str, dict[str, str]], None]] = {
    "CMD": lambda c, rest, env: c.__setitem__("Cmd", _exec_or_shell(rest)),
    "ENTRYPOINT": lambda c, rest, env: c.__setitem__("Entrypoint", _exec_or_shell(rest)),
    "ENV": _change_env, "EXPOSE": _change_expose, "LABEL": _change_label, "ONBUILD": _change_onbuild,
    "STOPSIGNAL": _change_single("STOPSIGNAL"), "USER": _change_single("USER"),
    "VOLUME": _change_volume, "WORKDIR": _change_workdir,
}


def _words(text: str, env: dict[str, str]) -> list[str]:
    """Split like Docker's shell lexer (the builder's, :mod:`sandbox.build.words`)."""
    from ...build import words
    try:
        return words.expand_words(text, env)
    except words.SubstitutionError as e:
        raise SandboxError(f"{e} in {text!r}") from None


def _expand(text: str, env: dict[str, str]) -> str:
    """One word: quotes removed and variables expanded, whitespace kept."""
    from ...build import words
    try:
        return words.expand(text, env)
    except words.SubstitutionError as e:
        raise SandboxError(f"{e} in {text!r}") from None
