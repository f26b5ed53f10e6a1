"""``sandbox ps``: containers in docker's columns, with --all, --quiet, --filter and --format."""

from __future__ import annotations

from ..containers.status import status_text
from ..humanize import ago
from .table import write_format, write_table

TYPE_CHECKING = False  # typing is not imported on the cold path (see sandbox.cli)
if TYPE_CHECKING:
    from typing import Any


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
    p.set_defaults(func=run, quick=quick)


def row(a: dict[str, Any], no_trunc: bool = False, command: str | None = None) -> dict[str, Any]:
    """The columns of one container record (docker's inspect document) as ``ps`` shows them.

    ``command``: the COMMAND column untruncated, when the caller has it (the
    supervisor works it out for the cold path, see :mod:`.query`).
    """
    if command is None:
        from ..containers.setup import command_line
        command = command_line(a["Config"])
    if not no_trunc and len(command) > 20:
        command = command[:19] + "…"
    ports = ""
    if a["State"].get("Running"):
        from ..network.ports import bindings_text
        published = (a.get("NetworkSettings") or {}).get("Ports") or {}
        ports = bindings_text({**{k: None for k in (a["Config"].get("ExposedPorts") or {})}, **published})
    cid = str(a["Id"])
    return {"ID": cid if no_trunc else cid[:12], "Image": a["Config"].get("Image") or a["Image"][7:19],
            "Command": f'"{command}"', "CreatedAt": a["Created"], "RunningFor": ago(a["Created"]),
            "Status": status_text(a["State"]), "State": a["State"]["Status"], "Ports": ports,
            "Names": str(a["Name"]).lstrip("/"),
            "Labels": ",".join(f"{k}={v}" for k, v in (a["Config"].get("Labels") or {}).items()),
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
    return write(out, args, [(c.attrs, None) for c in containers])


def quick(args: Any, out: Any) -> int | None:
    """The cold path: the records from the running supervisor (:mod:`.query`); None: the full path.

    The selection is :meth:`ContainerCollection.list`'s (newest first; only the
    running ones unless ``-a``, ``-n``, ``-l`` or a status filter; the filters;
    the limit), on the supervisor's records.  ``ancestor=`` needs the image
    store to resolve a name, so it takes the full path.
    """
    filters = parse_filters(args.filter)
    if "ancestor" in filters:
        return None
    from .query import ask
    items = ask(args, "containers")
    if items is None:
        return None
    limit = 1 if args.latest else args.last
    if not (args.all or limit >= 0) and not ("status" in filters or "exited" in filters):
        items = [i for i in items if i["Record"]["State"].get("Running") or i["Record"]["State"].get("Restarting")]
    if filters:
        from ..containers.api import _filter
        for key, values in filters.items():
            match = all if key == "label" else any
            items = [i for i in items if match(_filter(None, i["Record"], key, v) for v in values)]  # type: ignore[arg-type]
    if limit >= 0:
        items = items[:limit]
    return write(out, args, [(i["Record"], i["Command"]) for i in items])


def write(out: Any, args: Any, records: list[tuple[dict[str, Any], str | None]]) -> int:
    """Print ``(record, command)`` pairs as ``-q``, ``--format`` or the table asks."""
    if args.quiet:
        for a, _ in records:
            out.write((a["Id"] if args.no_trunc else a["Id"][:12]) + "\n")
        return 0
    rows = [row(a, args.no_trunc, command) for a, command in records]
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
