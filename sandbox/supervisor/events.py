"""The event log: ``events.jsonl`` in the store, one Docker-shaped event per line.

``sandbox events`` and the API's ``/events`` read the file (:func:`read_events`), so
events outlive the supervisor and a client can follow them without asking it.
The file is appended with one ``write`` per event (``O_APPEND``: a reader
never sees half a line) and rotated to ``events.jsonl.1`` past 8 MiB.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
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


def read_events(root: Any, since: float | None, until: float | None, follow: bool,
                stop: Any = None) -> Iterator[dict[str, Any]]:
    """Events from ``events.jsonl`` (and its rotated predecessor), then new ones if ``follow``.

    ``stop()``, when given, is asked between polls: true ends a follow (the API's client left).
    """
    path = os.path.join(str(root), "events.jsonl")
    for old in (path + ".1",):
        if since is not None and os.path.exists(old):
            with open(old, "rb") as f:
                for line in f:
                    ev = _parse(line)
                    if ev and _in_window(ev, since, until):
                        yield ev
    offset = 0
    partial = b""
    while True:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
                offset += len(data)
        except FileNotFoundError:
            data = b""
        data = partial + data
        lines = data.split(b"\n")
        partial = lines.pop()
        for line in lines:
            ev = _parse(line)
            if ev is None:
                continue
            if until is not None and ev["timeNano"] / 1e9 > until:
                return
            if since is None and follow:
                continue  # without --since, docker shows only new events
            if _in_window(ev, since, until):
                yield ev
        if not follow:
            return
        if since is None:
            since = 0.0  # from now on everything appended is new
        if until is not None and time.time() > until:
            return
        if stop is not None and stop():
            return
        time.sleep(0.1)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        ev: dict[str, Any] = json.loads(line)
        return ev
    except ValueError:
        return None


def _in_window(ev: dict[str, Any], since: float | None, until: float | None) -> bool:
    t = ev["timeNano"] / 1e9
    return (since is None or t >= since) and (until is None or t <= until)


def matches(ev: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    attrs = ev["Actor"]["Attributes"]
    for key, values in filters.items():
        if key == "container":
            ok = any(ev["id"].startswith(v) or attrs.get("name") == v for v in values)
        elif key == "event":
            ok = any(ev["Action"] == v or ev["Action"].split(":")[0] == v for v in values)
        elif key == "type":
            ok = ev["Type"] in values
        elif key == "image":
            ok = attrs.get("image") in values
        elif key == "label":
            ok = any(attrs.get(v.partition("=")[0]) == v.partition("=")[2] if "=" in v else v in attrs for v in values)
        elif key in ("network", "volume"):
            ok = ev["Type"] == key and any(ev["Actor"]["ID"].startswith(v) or attrs.get("name") == v
                                           for v in values)
        else:
            from ..errors import UsageError
            raise UsageError(f"invalid filter '{key}'", hint="filters: container, event, type, image, label")
        if not ok:
            return False
    return True


