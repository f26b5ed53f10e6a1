"""``sandbox inspect``: an object's details as docker-shaped JSON, or through a Go template."""

from __future__ import annotations

import sys

from ..errors import NotFound

TYPE_CHECKING = False  # typing is not imported on the cold path (see sandbox.cli)
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any, name: str = "inspect", kind: str | None = None) -> None:
    p = sub.add_parser(name, help="Return low-level information on containers, images and volumes")
    p.add_argument("names", nargs="+", metavar="NAME|ID")
    p.add_argument("-f", "--format", help="Go template, e.g. '{{.State.Status}}' or '{{json .Config}}'")
    p.add_argument("--type", choices=["container", "image", "volume"], default=kind,
                   help="only look for this kind of object")
    p.add_argument("-s", "--size", action="store_true", help="(accepted for compatibility)")
    p.set_defaults(func=run, quick=quick)


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
    write(out, args, found)
    return status


def quick(args: Any, out: Any) -> int | None:
    """The cold path: each name asked of the running supervisor (:mod:`.query`); None: the full path.

    Containers first, then images, as :func:`_find` looks; a name that is
    neither (a volume, or nothing: the full path prints the error), or an
    answer the supervisor cannot give, takes the full path for the whole command.
    """
    if args.type == "volume":
        return None
    from .query import ask
    found = []
    for name in args.names:
        items = None
        if args.type in (None, "container"):
            try:
                items = ask(args, "containers", ref=name)
            except NotFound:
                pass
            else:
                if items is None:
                    return None
                items = [{k: v for k, v in i["Record"].items() if k != "Sandbox"} for i in items]
        if items is None and args.type in (None, "image"):
            try:
                items = ask(args, "image_inspect", name=name)
            except NotFound:
                pass
        if not items:
            return None
        found.extend(items)
    write(out, args, found)
    return 0


def write(out: Any, args: Any, found: list[Any]) -> None:
    if args.format:
        from ..gotemplate import render
        template = args.format.replace("\\n", "\n").replace("\\t", "\t")
        for obj in found:
            out.write(render(template, obj) + "\n")
    else:
        import json
        out.write(json.dumps(found, indent=4) + "\n")
