"""The event log: ``events.jsonl`` in the store, one Docker-shaped event per line.

``sandbox events`` (and later the API's ``/events``) reads the file, so
events outlive the supervisor and a client can follow them without asking it.
The file is appended with one ``write`` per event (``O_APPEND``: a reader
never sees half a line) and rotated to ``events.jsonl.1`` past 8 MiB.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

EVENTS_MAX = 8 * 1024 * 1024


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        try:
            if self._fd < 0:
                self._fd = self._open()
            if os.fstat(self._fd).st_size > EVENTS_MAX:
                os.replace(self.path, str(self.path) + ".1")
                os.close(self._fd)
                self._fd = self._open()
            os.write(self._fd, line)
        except OSError as e:
            print(f"events: {e}", file=sys.stderr)

    def emit(self, kind: str, actor_id: str, action: str, attributes: dict[str, str],
             **top: Any) -> None:
        """One event of ``kind`` (container, network, volume, image) in Docker's shape."""
        t = time.time_ns()
        self.write({**top, "Type": kind, "Action": action,
                    "Actor": {"ID": actor_id, "Attributes": attributes},
                    "scope": "local", "time": t // 10**9, "timeNano": t})


def container_attributes(rec: dict[str, Any], attrs: dict[str, Any]) -> dict[str, str]:
    """A container event's attributes: its labels, image and name, and the event's own."""
    labels = rec["Config"].get("Labels") or {}
    image = rec["Config"].get("Image") or ""
    return {**labels, "image": image, "name": str(rec.get("Name", "")).lstrip("/"),
            **{k: str(v) for k, v in attrs.items()}}


def container_event(log: EventLog, rec: dict[str, Any], action: str, **attrs: Any) -> None:
    image = rec["Config"].get("Image") or ""
    log.emit("container", rec["Id"], action, container_attributes(rec, attrs),
             status=action, id=rec["Id"], **{"from": image})
