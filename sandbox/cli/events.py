"""``sandbox events``: the supervisor's durable record of life-cycle events."""

from __future__ import annotations

import json
from typing import Any

from ..supervisor.events import matches, read_events

__all__ = ["matches", "read_events", "register", "run"]


def register(sub: Any) -> None:
    p = sub.add_parser("events", help="Get real time events from the server")
    p.add_argument("--since", help="show events created since timestamp")
    p.add_argument("--until", help="stream events until this timestamp")
    p.add_argument("-f", "--filter", action="append", default=[], help="filter output (container=, event=, type=, label=, image=)")
    p.add_argument("--format", help="Go template, or 'json'")
    p.set_defaults(func=run)


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
