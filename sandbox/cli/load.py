"""``sandbox load``: read images from a docker-archive or OCI archive (plain, gzip or zstd)."""

from __future__ import annotations

import sys
from typing import Any

from ..errors import UsageError
from ..image.archive import describe_loaded


def register(sub: Any, name: str = "load") -> None:
    p = sub.add_parser(name, help="Load images from a tar archive or STDIN")
    p.add_argument("-i", "--input", help="read from a tar archive file instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress the load output")
    p.set_defaults(func=run)


def run(engine: Any, args: Any, out: Any) -> int:
    if args.input:
        with open(args.input, "rb") as f:
            loaded = engine.images.load(f)
    else:
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None or sys.stdin.isatty():
            raise UsageError("no archive on STDIN", hint="use -i FILE, or pipe an archive in")
        loaded = engine.images.load(buffer)
    if not args.quiet:
        for line in describe_loaded(loaded):
            out.write(line + "\n")
    return 0
