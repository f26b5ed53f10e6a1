"""``sandbox push``: upload an image to a registry."""

from __future__ import annotations

from typing import Any

from .progress import ProgressPrinter


def register(sub: Any, name: str = "push") -> None:
    p = sub.add_parser(name, help="Upload an image to a registry")
    p.add_argument("name", metavar="NAME[:TAG]")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress verbose output")
    p.set_defaults(func=run)


def run(engine: Any, args: Any, out: Any) -> int:
    digest = engine.images.push(args.name, progress=ProgressPrinter(out, args.quiet))
    if args.quiet:
        out.write(digest + "\n")
    return 0
