"""``sandbox import``: turn a root filesystem tarball into a one-layer image."""

from __future__ import annotations

import sys
from typing import Any

from ..errors import UsageError


def register(sub: Any, name: str = "import") -> None:
    p = sub.add_parser(name, help="Import the contents from a tarball to create a filesystem image")
    p.add_argument("file", metavar="file|-", help="a tar (plain, gzip or zstd), or - for STDIN")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-c", "--change", action="append", default=[],
                   help="apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR)")
    p.add_argument("-m", "--message", help="set the commit message for the imported image")
    p.set_defaults(func=run)


def run(engine: Any, args: Any, out: Any) -> int:
    options = dict(tag=args.repository, changes=args.change, message=args.message, source_name=args.file)
    if args.file == "-":
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None or sys.stdin.isatty():
            raise UsageError("no tarball on STDIN", hint="give a file name, or pipe a tarball in")
        image = engine.images.import_(buffer, **options)
    else:
        with open(args.file, "rb") as f:
            image = engine.images.import_(f, **options)
    out.write(image.id + "\n")
    return 0
