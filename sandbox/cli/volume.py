"""``sandbox volume create|ls|inspect|rm|prune``."""

from __future__ import annotations

import json
import sys
from typing import Any

from .table import write_format, write_table


def register(sub: Any) -> None:
    p = sub.add_parser("volume", help="Manage volumes")
    vsub = p.add_subparsers(dest="volume_verb", metavar="COMMAND", parser_class=type(p), prog=p.prog)
    vsub.required = True
    c = vsub.add_parser("create", help="Create a volume")
    c.add_argument("name", nargs="?")
    c.add_argument("-d", "--driver", default="local")
    c.add_argument("-o", "--opt", action="append", default=[])
    c.add_argument("--label", action="append", default=[])
    c.set_defaults(func=run_create)
    for name in ("ls", "list"):
        l = vsub.add_parser(name, help="List volumes")
        l.add_argument("-q", "--quiet", action="store_true")
        l.add_argument("-f", "--filter", action="append", default=[])
        l.add_argument("--format")
        l.set_defaults(func=run_ls)
    i = vsub.add_parser("inspect", help="Display detailed information on one or more volumes")
    i.add_argument("names", nargs="+")
    i.add_argument("-f", "--format")
    i.set_defaults(func=run_inspect)
    for name in ("rm", "remove"):
        r = vsub.add_parser(name, help="Remove one or more volumes")
        r.add_argument("names", nargs="+")
        r.add_argument("-f", "--force", action="store_true")
        r.set_defaults(func=run_rm)
    pr = vsub.add_parser("prune", help="Remove unused local volumes")
    pr.add_argument("-a", "--all", action="store_true", help="remove all unused volumes, not just anonymous ones")
    pr.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    pr.set_defaults(func=run_prune)


def run_create(engine: Any, args: Any, out: Any) -> int:
    labels = dict(l.partition("=")[::2] for l in args.label)
    opts = dict(o.partition("=")[::2] for o in args.opt)
    v = engine.volumes.create(args.name, driver=args.driver, driver_opts=opts or None, labels=labels)
    out.write(v.name + "\n")
    return 0


def run_ls(engine: Any, args: Any, out: Any) -> int:
    from .ps import parse_filters
    vols = engine.volumes.list(filters=parse_filters(args.filter))
    if args.quiet:
        for v in vols:
            out.write(v.name + "\n")
        return 0
    rows = [{"Driver": v.attrs["Driver"], "Name": v.name, "Mountpoint": v.attrs["Mountpoint"],
             "Labels": ",".join(f"{k}={val}" for k, val in v.attrs["Labels"].items())} for v in vols]
    if args.format:
        write_format(out, args.format, rows, {"Driver": "DRIVER", "Name": "VOLUME NAME",
                                              "Mountpoint": "MOUNTPOINT", "Labels": "LABELS"})
        return 0
    write_table(out, ["DRIVER", "VOLUME NAME"], [[r["Driver"], r["Name"]] for r in rows])
    return 0


def run_inspect(engine: Any, args: Any, out: Any) -> int:
    from ..errors import SandboxError
    found, status = [], 0
    for name in args.names:
        try:
            found.append(engine.volumes.get(name).attrs)
        except SandboxError as e:
            print(f"Error: {e}", file=sys.stderr)
            status = 1
    if args.format:
        from ..gotemplate import render
        for obj in found:
            out.write(render(args.format, obj) + "\n")
    else:
        out.write(json.dumps(found, indent=4) + "\n")
    return status


def run_rm(engine: Any, args: Any, out: Any) -> int:
    from .run import for_each
    return for_each(args.names, lambda n: engine.volumes.get(n).remove(force=args.force), out)


def run_prune(engine: Any, args: Any, out: Any) -> int:
    from ..humanize import size
    result = engine.volumes.prune(all=args.all)
    if result["VolumesDeleted"]:
        out.write("Deleted Volumes:\n" + "".join(f"{n}\n" for n in result["VolumesDeleted"]) + "\n")
    out.write(f"Total reclaimed space: {size(result['SpaceReclaimed'])}\n")
    return 0
