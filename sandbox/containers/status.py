"""A container's state in words, as ``docker ps`` shows it: "Up 3 minutes (healthy)", "Exited (0) 2 seconds ago"."""

from __future__ import annotations

import time
TYPE_CHECKING = False  # not typing's: a cold `sandbox ps` need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any

from ..humanize import ago, duration, parse_time

__all__ = ["status_text"]


def status_text(state: dict[str, Any]) -> str:
    """docker ps's STATUS column: "Up 3 minutes (Paused)", "Exited (0) 2 seconds ago", ..."""
    status = state.get("Status")
    if status in ("running", "paused"):
        started = parse_time(state["StartedAt"])
        up = duration(time.time() - started.timestamp()) if started else "N/A"
        health = (state.get("Health") or {}).get("Status")
        suffix = " (Paused)" if status == "paused" else (
            f" ({'health: starting' if health == 'starting' else health})" if health else "")
        return f"Up {up}{suffix}"
    if status == "restarting":
        return f"Restarting ({state.get('ExitCode', 0)}) {ago(state['FinishedAt'])}"
    if status == "exited":
        return f"Exited ({state.get('ExitCode', 0)}) {ago(state['FinishedAt'])}"
    return {"created": "Created", "removing": "Removal In Progress", "dead": "Dead"}.get(str(status), str(status))
