"""``sandbox events``: the supervisor's durable record of life-cycle events."""

from __future__ import annotations

import json
import os
import time
from typing import Any
from collections.abc import Iterator


def register(sub: Any) -> None:
    p = sub.add_parser("events", help="Get real time events from the server")
    p.add_argument("--since", help="show events created since timestamp")
    p.add_argument("--until", help="stream events until this timestamp")
    p.add_argument("-f", "--filter", action="append", default=[], help="filter output (container=, event=, type=, label=, image=)")
    p.add_argument("--format", help="Go template, or 'json'")
    p.set_defaults(func=run)


def read_events(root: Any, since: float | None, until: float | None, follow: bool) -> Iterator[dict[str, Any]]:
    """Events from ``events.jsonl`` (and its rotated predecessor), then new ones if ``follow``."""
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
        else:
            from ..errors import UsageError
            raise UsageError(f"invalid filter '{key}'", hint="filters: container, event, type, image, label")
        if not ok:
            return False
    return True


def format_event(ev: dict[str, Any]) -> str:
    import datetime as _dt
    t = _dt.datetime.fromtimestamp(ev["timeNano"] / 1e9).astimezone()
    stamp = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ev['timeNano'] % 10**9:09d}" + t.strftime("%z")[:3] + ":" + t.strftime("%z")[3:]
    attrs = ", ".join(f"{k}={v}" for k, v in sorted(ev["Actor"]["Attributes"].items()))
    return f"{stamp} {ev['Type']} {ev['Action']} {ev['id']} ({attrs})"


def run(engine: Any, args: Any, out: Any) -> int:
    from ..containers.logs import parse_time
    from .ps import parse_filters
    filters = parse_filters(args.filter)
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    follow = until is None
    try:
        for ev in read_events(engine.root, since, until, follow):
            if not matches(ev, filters):
                continue
            if args.format == "json" or args.format == "{{json .}}":
                out.write(json.dumps(ev) + "\n")
            elif args.format:
                from ..gotemplate import render
                out.write(render(args.format, ev) + "\n")
            else:
                out.write(format_event(ev) + "\n")
            out.flush()
    except KeyboardInterrupt:
        return 0
    return 0
