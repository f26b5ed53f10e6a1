"""``sandbox save``: write images to a docker-archive (or OCI archive) tar."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from ..errors import UsageError


def register(sub: Any, name: str = "save") -> None:
    p = sub.add_parser(name, help="Save one or more images to a tar archive (streamed to STDOUT by default)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", help="write to a file instead of STDOUT")
    p.add_argument("--format", choices=["docker", "oci"], default="docker",
                   help="docker-archive (what 'docker load' reads, default) or an OCI image layout tar")
    p.set_defaults(func=run)


def run(engine: Any, args: Any, out: Any) -> int:
    if args.output:
        tmp = f"{args.output}.partial"
        try:
            with open(tmp, "wb") as f:
                engine.images.save(args.images, f, format=args.format)
            os.replace(tmp, args.output)  # no half-written archive under the real name
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return 0
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a notebook's output is text, not a byte stream
        raise UsageError("cannot write an archive to this output", hint="use -o FILE")
    if sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal", hint="use -o FILE or redirect STDOUT")
    sys.stdout.flush()
    engine.images.save(args.images, buffer, format=args.format)
    buffer.flush()
    return 0
