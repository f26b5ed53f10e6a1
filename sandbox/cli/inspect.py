"""``sandbox inspect``: an object's details as docker-shaped JSON, or through a Go template."""

from __future__ import annotations

import json
import sys
from typing import Any

from ..errors import NotFound



def register(sub: Any, name: str = "inspect") -> None:
    p = sub.add_parser(name, help="Return low-level information on images")
    p.add_argument("names", nargs="+", metavar="NAME|ID")
    p.add_argument("-f", "--format", help="Go template, e.g. '{{.Id}}' or '{{json .Config}}'")
    p.add_argument("--type", choices=["image"], default=None, help="only look for this kind of object")
    p.set_defaults(func=run)


def run(engine: Any, args: Any, out: Any) -> int:
    found, status = [], 0
    for name in args.names:
        try:
            found.append(engine.images.inspect(name))
        except NotFound:
            print(f"Error: No such object: {name}", file=sys.stderr)
            status = 1
    if args.format:
        from ..gotemplate import render
        template = args.format.replace("\\n", "\n").replace("\\t", "\t")
        for obj in found:
            out.write(render(template, obj) + "\n")
    else:
        out.write(json.dumps(found, indent=4) + "\n")
    return status
