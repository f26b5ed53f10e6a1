"""``sandbox ps``: containers in docker's columns, with --all, --quiet, --filter and --format."""

from __future__ import annotations

from typing import Any

from ..containers.status import status_text
from ..humanize import ago
from .table import write_format, write_table


def register(sub: Any, name: str = "ps") -> None:
    p = sub.add_parser(name, help="List containers")
    p.add_argument("-a", "--all", action="store_true", help="show all containers (default shows just running)")
    p.add_argument("-q", "--quiet", action="store_true", help="only display container IDs")
    p.add_argument("-n", "--last", type=int, default=-1, help="show n last created containers (all states)")
    p.add_argument("-l", "--latest", action="store_true", help="show the latest created container (all states)")
    p.add_argument("-f", "--filter", action="append", default=[], help="filter output (status=, name=, ancestor=, label=, ...)")
    p.add_argument("--format", help="Go template, e.g. 'table {{.Names}}\\t{{.Status}}'")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("-s", "--size", action="store_true", help="display total file sizes")
    p.set_defaults(func=run)


def row(c: Any, no_trunc: bool = False) -> dict[str, Any]:
    from ..containers.setup import command_line
    a = c.attrs
    command = command_line(a["Config"])
    if not no_trunc and len(command) > 20:
        command = command[:19] + "…"
    from ..network.ports import bindings_text
    published = (a.get("NetworkSettings") or {}).get("Ports") or {}
    ports = bindings_text({**{k: None for k in (a["Config"].get("ExposedPorts") or {})}, **published}) \
        if a["State"].get("Running") else ""
    return {"ID": c.id if no_trunc else c.short_id, "Image": a["Config"].get("Image") or a["Image"][7:19],
            "Command": f'"{command}"', "CreatedAt": a["Created"], "RunningFor": ago(a["Created"]),
            "Status": status_text(a["State"]), "State": a["State"]["Status"], "Ports": ports,
            "Names": c.name, "Labels": ",".join(f"{k}={v}" for k, v in (a["Config"].get("Labels") or {}).items()),
            "Size": ""}


def parse_filters(items: list[str]) -> dict[str, list[str]]:
    from ..errors import UsageError
    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"bad format of filter (expected name=value): {item}")
        filters.setdefault(key, []).append(value)
    return filters


def run(engine: Any, args: Any, out: Any) -> int:
    limit = 1 if args.latest else args.last
    containers = engine.containers.list(all=args.all or limit >= 0, filters=parse_filters(args.filter),
                                        limit=limit)
    if args.quiet:
        for c in containers:
            out.write((c.id if args.no_trunc else c.short_id) + "\n")
        return 0
    rows = [row(c, args.no_trunc) for c in containers]
    if args.format:
        write_format(out, args.format, rows, {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
                                              "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS",
                                              "Names": "NAMES", "State": "STATE", "CreatedAt": "CREATED AT",
                                              "Labels": "LABELS", "Size": "SIZE"})
        return 0
    write_table(out, ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
                [[r["ID"], r["Image"], r["Command"], r["RunningFor"], r["Status"], r["Ports"], r["Names"]]
                 for r in rows])
    return 0
