"""``process.rlimits``: docker's ``--ulimit`` triples and the daemon's defaults, clamped to the host.

Without CAP_SYS_RESOURCE no process can raise a hard limit, so a limit above
the host's is clamped with a warning rather than left to fail at start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ...errors import UsageError

RLIM_INFINITY = 2**64 - 1

RLIMIT_NAMES = frozenset({
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
    "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
})


def rlimits(ulimits: Iterable[tuple[str, int, int]],
            hard_limits: Mapping[str, int] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """OCI ``process.rlimits`` from docker's ``--ulimit`` triples, plus warnings.

    Names are docker's (``nofile``) or the kernel's (``RLIMIT_NOFILE``); -1 is
    unlimited.  A soft limit above its hard limit is refused as Docker does.
    ``hard_limits`` (name -> the host's hard limit, -1 unlimited) clamps both
    values: without CAP_SYS_RESOURCE no process can raise a hard limit, so the
    container could not start with it.
    """
    host = {_rlimit_name(k): _rlimit_value(v) for k, v in (hard_limits or {}).items()}
    out: list[dict[str, Any]] = []
    warnings: list[str] = []
    for name, soft, hard in ulimits:
        short = _rlimit_name(name)
        soft_v, hard_v = _rlimit_value(soft), _rlimit_value(hard)
        if soft_v > hard_v:
            raise UsageError(f"ulimit {short}: soft limit {soft} is above the hard limit {hard}",
                             hint=f"use --ulimit {short}={hard}:{hard} or raise the hard limit")
        ceiling = host.get(short)
        if ceiling is not None and hard_v > ceiling:
            warnings.append(f"ulimit {short}={soft}:{hard} is above this host's hard limit "
                            f"{_rlimit_text(ceiling)}; clamped to {_rlimit_text(min(soft_v, ceiling))}"
                            f":{_rlimit_text(ceiling)}")
            soft_v, hard_v = min(soft_v, ceiling), ceiling
        out.append({"type": "RLIMIT_" + short.upper(), "hard": hard_v, "soft": soft_v})
    return out, warnings


def merge_ulimits(defaults: Iterable[tuple[str, int, int]],
                  given: Iterable[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """The daemon's default ulimits, each replaced by the container's of the same name."""
    merged = {_rlimit_name(u[0]): u for u in defaults}
    merged.update({_rlimit_name(u[0]): u for u in given})
    return list(merged.values())


def _rlimit_name(name: str) -> str:
    short = name.strip().lower()
    short = short[len("rlimit_"):] if short.startswith("rlimit_") else short
    if short not in RLIMIT_NAMES:
        raise UsageError(f"unknown ulimit {name!r}", hint="known: " + ", ".join(sorted(RLIMIT_NAMES)))
    return short


def _rlimit_value(value: int | None) -> int:
    if value is None or value < 0 or value >= RLIM_INFINITY:
        return RLIM_INFINITY
    return int(value)


def _rlimit_text(value: int) -> str:
    return "unlimited" if value == RLIM_INFINITY else str(value)
