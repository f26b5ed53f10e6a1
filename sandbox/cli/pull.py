"""``sandbox pull``: fetch an image from a registry."""

from __future__ import annotations

from typing import Any

from .progress import ProgressPrinter


def register(sub: Any, name: str = "pull") -> None:
    p = sub.add_parser(name, help="Download an image from a registry")
    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    p.add_argument("--platform", help="os/arch[/variant] to choose from a multi-platform image")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress verbose output")
    p.set_defaults(func=run)


def run(engine: Any, args: Any, out: Any) -> int:
    image = engine.images.pull(args.name, platform=args.platform, progress=ProgressPrinter(out, args.quiet))
    if args.quiet:
        out.write(f"{image.tags[0] if image.tags else image.id}\n")
    return 0
