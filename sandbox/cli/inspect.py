"""``sandbox inspect``: an object's details as docker-shaped JSON, or through a Go template."""

from __future__ import annotations

import json
import sys
from typing import Any

from ..errors import NotFound



def register(sub: Any, name: str = "inspect", kind: str | None = None) -> None:
    p = sub.add_parser(name, help="Return low-level information on containers, images and volumes")
    p.add_argument("names", nargs="+", metavar="NAME|ID")
    p.add_argument("-f", "--format", help="Go template, e.g. '{{.State.Status}}' or '{{json .Config}}'")
    p.add_argument("--type", choices=["container", "image", "volume"], default=kind,
                   help="only look for this kind of object")
    p.add_argument("-s", "--size", action="store_true", help="(accepted for compatibility)")
    p.set_defaults(func=run)


def _find(engine: Any, name: str, kind: str | None) -> Any:
    """Containers first, then images, then volumes, as docker looks them up."""
    if kind in (None, "container"):
        try:
            return engine.containers.get(name).inspect()
        except NotFound:
            if kind == "container":
                raise
    if kind in (None, "image"):
        try:
            return engine.images.inspect(name)
        except NotFound:
            if kind == "image":
                raise
    return engine.volumes.get(name).attrs


def run(engine: Any, args: Any, out: Any) -> int:
    found, status = [], 0
    for name in args.names:
        try:
            found.append(_find(engine, name, args.type))
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
