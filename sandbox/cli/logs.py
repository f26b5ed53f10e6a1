"""``sandbox logs``: a container's output, stdout and stderr kept apart as docker does."""

from __future__ import annotations

import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("logs", help="Fetch the logs of a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("-f", "--follow", action="store_true", help="follow log output")
    p.add_argument("-n", "--tail", default="all", help="number of lines to show from the end (default all)")
    p.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    p.add_argument("--since", help="show logs since a timestamp (2013-01-02T13:23:37Z) or relative (42m)")
    p.add_argument("--until", help="show logs before a timestamp or relative time")
    p.add_argument("--details", action="store_true", help="(accepted for compatibility)")
    p.set_defaults(func=run)


def run(engine: Any, args: Any, out: Any) -> int:
    from ..containers.logs import format_record, parse_time
    from ..errors import UsageError
    from .run import output_writer
    container = engine.containers.get(args.container)
    if (container.attrs["HostConfig"].get("LogConfig") or {}).get("Type") == "none":
        raise UsageError('configured logging driver does not support reading',
                         hint="the container was created with --log-driver none")
    tail = None
    if args.tail not in ("all", "-1"):
        try:
            tail = int(args.tail)
        except ValueError:
            raise UsageError(f"invalid tail value {args.tail!r}", hint="a number of lines, or 'all'") from None
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    write = output_writer(out)
    records = container.log_records(tail=tail, since=since, until=until, follow=args.follow)
    try:
        for r in records:
            write(1 if r.stream == "stdout" else 2, format_record(r, timestamps=args.timestamps))
    except KeyboardInterrupt:
        return 0
    sys.stdout.flush()
    return 0
