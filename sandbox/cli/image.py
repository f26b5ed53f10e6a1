"""``sandbox image VERB``: docker's management command for images (ls, rm, prune, ...)."""

from __future__ import annotations

import sys
from typing import Any

from .. import humanize
from . import history, images, import_, inspect, load, rmi, save, tag


def register(sub: Any) -> None:
    p = sub.add_parser("image", help="Manage images")
    verbs = p.add_subparsers(dest="image_verb", metavar="COMMAND", parser_class=type(p), prog=p.prog)
    verbs.required = True
    images.register(verbs, "ls")
    rmi.register(verbs, "rm")
    inspect.register(verbs, "inspect")
    history.register(verbs, "history")
    tag.register(verbs, "tag")
    save.register(verbs, "save")
    load.register(verbs, "load")
    import_.register(verbs, "import")
    prune = verbs.add_parser("prune", help="Remove unused images")
    prune.add_argument("-a", "--all", action="store_true", help="remove all unused images, not just dangling ones")
    prune.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    prune.set_defaults(func=run_prune)


def run_prune(engine: Any, args: Any, out: Any) -> int:
    what = "all images without at least one container associated to them" if args.all else "all dangling images"
    if not args.force:
        if not sys.stdin.isatty():
            out.write(f"WARNING! This will remove {what}.\nNot continuing without a terminal to confirm: "
                      "pass -f to prune without asking.\n")
            return 1
        answer = input(f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    report = engine.images.prune(all=args.all)
    if report["ImagesDeleted"]:
        out.write("Deleted Images:\n")
        for item in report["ImagesDeleted"]:
            for key, value in item.items():
                out.write(f"{key.lower()}: {value}\n")
        out.write("\n")
    out.write(f"Total reclaimed space: {humanize.size(report['SpaceReclaimed'])}\n")
    return 0
