"""``sandbox build`` and ``sandbox builder prune``: Dockerfile to image, with the cache explained.

The progress printed is close to Docker's classic builder (``Step 2/5 :
RUN ...``, `` ---> Using cache``) so that tutorials read the same, plus
the reason for every cache miss.  ``-q`` prints only the image id (and a
failed step's output, which would otherwise be lost).
"""

from __future__ import annotations

import sys
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any

from ..errors import BuildError, UsageError


def register(sub: Any) -> None:
    p = sub.add_parser("build", help="Build an image from a Dockerfile")
    p.add_argument("context", metavar="PATH", help="the build context directory ('-': a Dockerfile on stdin, "
                                                   "no context)")
    p.add_argument("-t", "--tag", action="append", default=[], help="name[:tag] (repeatable)")
    p.add_argument("-f", "--file", help="the Dockerfile (default PATH/Dockerfile; '-' reads stdin)")
    p.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="a build argument (KEY alone takes the value from the environment)")
    p.add_argument("--target", help="build up to this stage")
    p.add_argument("--no-cache", action="store_true", help="do not use the cache")
    p.add_argument("--network", help="the network RUN steps use (default: bridge; none, host or a network name)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="set a label on the image")
    p.add_argument("--rm", default=True, type=lambda v: v.lower() != "false",
                   help="remove intermediate containers (always true here)")
    p.add_argument("--force-rm", action="store_true", help="accepted for docker compatibility")
    p.add_argument("--progress", default="auto", choices=("auto", "plain", "quiet"),
                   help="output style (plain prints every event)")
    p.set_defaults(func=run)
    b = sub.add_parser("builder", help="Manage the build cache")
    bsub = b.add_subparsers(dest="builder_verb", metavar="COMMAND", parser_class=type(b), prog=b.prog)
    bsub.required = True
    pr = bsub.add_parser("prune", help="Remove the build cache")
    pr.add_argument("-a", "--all", action="store_true", help="remove all cache records (the default here)")
    pr.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    pr.add_argument("--filter", action="append", default=[], help="until=DURATION: only older records")
    pr.set_defaults(func=run_prune)


def key_values(items: list[str], flag: str, env_fallback: bool = False) -> dict[str, str]:
    import os
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise UsageError(f"{flag} {item!r}: expected KEY=VALUE")
        if not eq:
            if not env_fallback:
                raise UsageError(f"{flag} {item!r}: expected KEY=VALUE")
            if key not in os.environ:
                continue  # docker: --build-arg KEY with KEY unset is ignored
            value = os.environ[key]
        out[key] = value
    return out


def run(engine: Any, args: Any, out: Any) -> int:
    context: str | None = args.context
    text = None
    if args.file == "-" or context == "-":
        if args.file == "-" and context == "-":
            raise UsageError("sandbox build: the Dockerfile and the context cannot both come from stdin")
        text = sys.stdin.read()
        if context == "-":
            context = None
    build_args = key_values(args.build_arg, "--build-arg", env_fallback=True)
    labels = key_values(args.label, "--label")
    quiet = args.quiet or args.progress == "quiet"
    tail: list[str] = []

    def show(event: Any) -> None:
        if event.kind == "output":
            tail.append(event.text)
            del tail[:-40]
        if quiet:
            return
        if event.kind in ("result",):
            return
        out.write(str(event) + "\n")
        out.flush()

    try:
        image = engine.build(context, tags=args.tag, dockerfile=None if args.file == "-" else args.file,
                             dockerfile_text=text, build_args=build_args, target=args.target,
                             no_cache=args.no_cache, labels=labels, on_event=show, network=args.network)
    except BuildError:
        if quiet and tail:
            sys.stderr.write("\n".join(tail) + "\n")
        raise
    if quiet:
        out.write(image.id + "\n")
    else:
        out.write(f"Successfully built {image.short_id}\n")
        for tag in args.tag:
            out.write(f"Successfully tagged {_full(tag)}\n")
    return 0


def _full(tag: str) -> str:
    from ..reference import parse
    return parse(tag).familiar


def run_prune(engine: Any, args: Any, out: Any) -> int:
    import time
    keep_newer = None
    for f in args.filter:
        key, _, value = f.partition("=")
        if key != "until":
            raise UsageError(f"builder prune --filter {f!r}: only until=DURATION is supported",
                             hint="e.g. --filter until=24h")
        from ..containers.options import parse_duration
        keep_newer = time.time() - parse_duration(value, "--filter until") / 1e9
    result = engine.build_cache().prune(keep_newer_than=keep_newer)
    reclaimed = engine.image_store.collect()
    from ..humanize import size
    out.write(f"Deleted build cache records: {result['CachesDeleted']}\n")
    out.write(f"Total reclaimed space: {size(reclaimed)}\n")
    return 0
