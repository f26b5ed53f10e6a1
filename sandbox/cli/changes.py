"""``sandbox diff``, ``commit``, ``cp`` and ``export``: a container's file system."""

from __future__ import annotations

import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("diff", help="Inspect changes to files or directories on a container's filesystem")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=run_diff)

    p = sub.add_parser("commit", help="Create a new image from a container's changes")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-a", "--author", help='author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    p.add_argument("-c", "--change", action="append", default=[], help="apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", help="commit message")
    p.add_argument("-p", "--pause", action="store_true", default=True, help="pause container during commit (default true)")
    p.add_argument("--no-pause", dest="pause", action="store_false", help=argparse_suppress())
    p.set_defaults(func=run_commit)

    p = sub.add_parser("cp", help="Copy files/folders between a container and the local filesystem")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dest", metavar="DEST")
    p.add_argument("-L", "--follow-link", action="store_true", help="always follow symbol link in SRC_PATH")
    p.add_argument("-a", "--archive", action="store_true", help="archive mode (copy all uid/gid information)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run_cp)

    p = sub.add_parser("export", help="Export a container's filesystem as a tar archive")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("-o", "--output", help="write to a file, instead of STDOUT")
    p.set_defaults(func=run_export)


def argparse_suppress() -> str:
    import argparse
    return argparse.SUPPRESS


def run_diff(engine: Any, args: Any, out: Any) -> int:
    for kind, path in engine.containers.get(args.container).changes():
        out.write(f"{kind} {path}\n")
    return 0


def run_commit(engine: Any, args: Any, out: Any) -> int:
    image = engine.containers.get(args.container).commit(
        repository=args.repository, message=args.message, author=args.author, changes=args.change,
        pause=args.pause)
    out.write(f"sha256:{image.id.split(':', 1)[1]}\n")
    return 0


def _split(ref: str) -> tuple[str | None, str]:
    """``CONTAINER:PATH`` or a local path (docker: a colon before any slash names a container)."""
    if ":" in ref and not ref.startswith(("/", ".")) and "/" not in ref.split(":", 1)[0]:
        name, path = ref.split(":", 1)
        return name, path
    return None, ref


def run_cp(engine: Any, args: Any, out: Any) -> int:
    from ..errors import UsageError
    src_c, src = _split(args.src)
    dst_c, dst = _split(args.dest)
    if (src_c is None) == (dst_c is None):
        raise UsageError("copying between containers or between local paths is not supported",
                         hint="one of SRC and DEST must be CONTAINER:PATH")
    if src_c is not None:
        container = engine.containers.get(src_c)
        if dst == "-":
            container.get_archive(src, sys.stdout.buffer, follow_link=args.follow_link)
        else:
            container.copy_from(src, dst, follow_link=args.follow_link)
            if not args.quiet:
                print(f"Successfully copied to {dst}", file=sys.stderr)
    else:
        assert dst_c is not None
        container = engine.containers.get(dst_c)
        if src == "-":
            container.put_archive(dst, sys.stdin.buffer)
        else:
            container.copy_to(src, dst, follow_link=args.follow_link)
            if not args.quiet:
                print(f"Successfully copied to {dst_c}:{dst}", file=sys.stderr)
    return 0


def run_export(engine: Any, args: Any, out: Any) -> int:
    from ..errors import UsageError
    container = engine.containers.get(args.container)
    if args.output:
        with open(args.output, "wb") as f:
            container.export(f)
        return 0
    stream = getattr(out, "buffer", None)
    if stream is None or (hasattr(stream, "isatty") and stream.isatty()):
        raise UsageError("cowardly refusing to save to a terminal", hint="use the -o flag or redirect")
    container.export(stream)
    return 0
