"""``sandbox tag SOURCE TARGET``: give an image another name."""

from __future__ import annotations

from typing import Any


def register(sub: Any, name: str = "tag") -> None:
    p = sub.add_parser(name, help="Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
    p.set_defaults(func=run)


def run(engine: Any, args: Any, out: Any) -> int:
    engine.images.tag(args.source, args.target)
    return 0
