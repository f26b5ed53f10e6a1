"""The ``process`` section: command, user, environment, capabilities, rlimits.

Docker's rules for what a process starts with: PATH, HOSTNAME and TERM in
the environment, a numeric ``uid:gid``, and no effective capabilities for a
non-root user (Docker 23+).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ...errors import UsageError
from .options import INIT_PATH_IN_CONTAINER, ContainerOptions

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def parse_user(user: str) -> tuple[int, int]:
    """``"uid[:gid]"`` in numbers -> (uid, gid); gid 0 when left out, like Docker without passwd."""
    text = (user or "0").strip()
    uid_text, _, gid_text = text.partition(":")
    try:
        uid = int(uid_text)
        gid = int(gid_text) if gid_text else 0
    except ValueError:
        raise UsageError(f"user {user!r} is not numeric 'uid[:gid]'",
                         hint="resolve user and group names from the image's /etc/passwd "
                              "and /etc/group first") from None
    if uid < 0 or gid < 0:
        raise UsageError(f"user {user!r}: ids cannot be negative")
    return uid, gid


def process_config(opts: ContainerOptions, caps: list[str],
                   limits: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``process`` section of config.json, from ``opts``, the capability set and the rlimits."""
    if not opts.args:
        raise UsageError("no command specified",
                         hint="give a command after the image name, or an image with CMD/ENTRYPOINT")
    if not opts.cwd.startswith("/"):
        raise UsageError(f"the working directory {opts.cwd!r} is not an absolute path")
    uid, gid = parse_user(opts.user)
    user: dict[str, Any] = {"uid": uid, "gid": gid}
    if opts.additional_gids:
        user["additionalGids"] = sorted(set(opts.additional_gids))
    args = list(opts.args)
    if opts.init:
        args = [INIT_PATH_IN_CONTAINER, "--", *args]
    # Docker 23+: a non-root user gets no effective/permitted capabilities, so
    # it behaves as it would on a normal host; root keeps all of them.
    running = caps if uid == 0 else []
    process: dict[str, Any] = {
        "terminal": bool(opts.terminal),
        "user": user,
        "args": args,
        "env": container_env(opts.env, opts.hostname, opts.terminal),
        "cwd": opts.cwd or "/",
        "capabilities": {"bounding": list(caps), "effective": list(running),
                         "permitted": list(running), "inheritable": [], "ambient": []},
        "noNewPrivileges": bool(opts.no_new_privileges),
        "oomScoreAdj": opts.oom_score_adj,
    }
    if limits:
        process["rlimits"] = limits
    return process


def container_env(env: Iterable[str] | Mapping[str, str], hostname: str,
                  terminal: bool) -> list[str]:
    """Docker's environment: PATH, HOSTNAME, TERM=xterm with a terminal, then ``env``.

    A variable in ``env`` replaces the default of the same name in place.
    """
    items = [f"{k}={v}" for k, v in env.items()] if isinstance(env, Mapping) else list(env)
    out = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"]
    if terminal:
        out.append("TERM=xterm")
    positions = {entry.partition("=")[0]: i for i, entry in enumerate(out)}
    for entry in items:
        name = entry.partition("=")[0]
        if not name:
            raise UsageError(f"invalid environment variable {entry!r}")
        if name in positions:
            out[positions[name]] = entry
        else:
            positions[name] = len(out)
            out.append(entry)
    return out
