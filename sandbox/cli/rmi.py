"""``sandbox rmi``: untag images and delete them when nothing else names or uses them."""

from __future__ import annotations

import sys
from typing import Any

from ..errors import SandboxError


def register(sub: Any, name: str = "rmi") -> None:
    p = sub.add_parser(name, help="Remove one or more images")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--force", action="store_true", help="force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="do not delete untagged parents")
    p.set_defaults(func=run)


def run(engine: Any, args: Any, out: Any) -> int:
    status = 0
    for name in args.images:
        try:
            for item in engine.images.remove(name, force=args.force):
                for key, value in item.items():
                    out.write(f"{key}: {value}\n")
        except SandboxError as e:
            # Like docker: report each failure and go on with the other names.
            print(f"Error: {e}", file=sys.stderr)
            status = 1
    return status
