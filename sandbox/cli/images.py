"""``sandbox images``: list images (REPOSITORY TAG IMAGE ID CREATED SIZE)."""

from __future__ import annotations

from .. import humanize
from .table import write_format, write_table

TYPE_CHECKING = False  # typing is not imported on the cold path (see sandbox.cli)
if TYPE_CHECKING:
    from typing import Any

HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
           "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE"}


def register(sub: Any, name: str = "images") -> None:
    p = sub.add_parser(name, help="List images")
    p.add_argument("reference", nargs="?", help="only images whose repository or repo:tag matches")
    p.add_argument("-a", "--all", action="store_true", help="show all images, untagged ones too")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image ids")
    p.add_argument("--digests", action="store_true", help="show digests")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate ids")
    p.add_argument("-f", "--filter", action="append", default=[], help="dangling=true|false, reference=PATTERN, label=KEY[=VALUE]")
    p.add_argument("--format", help="Go template, e.g. '{{.Repository}}:{{.Tag}}' or 'table {{.ID}}\\t{{.Size}}'")
    p.set_defaults(func=run, quick=quick)


def records(images: list[dict[str, Any]], args: Any) -> list[dict[str, Any]]:
    """One record per (image, tag) as docker's formatter sees it; untagged images once.

    ``images``: :func:`sandbox.image.images.summary` of each image, from the
    store (the full path) or from the supervisor (the cold path, :func:`quick`).
    """
    out = []
    for image in images:
        digest = image["RepoDigests"][0].split("@", 1)[1] if image["RepoDigests"] else "<none>"
        image_id = image["Id"] if args.no_trunc else image["Id"].split(":", 1)[1][:12]
        base = {"ID": image_id, "Digest": digest, "CreatedAt": image["Created"],
                "CreatedSince": humanize.ago(image["Created"]), "Size": humanize.size(image["Size"]),
                "Labels": image["Labels"]}
        for tag in image["RepoTags"] or ["<none>:<none>"]:
            repo, _, t = tag.rpartition(":")
            out.append(dict(base, Repository=repo, Tag=t))
    return [r for r in out if _keep(r, args)]


def _keep(r: dict[str, Any], args: Any) -> bool:
    dangling = r["Repository"] == "<none>"
    if dangling and not args.all and not any(f.startswith("dangling=") for f in args.filter):
        return False
    for f in args.filter:
        key, _, value = f.partition("=")
        if key == "dangling" and (value.lower() == "true") != dangling:
            return False
        if key == "reference":
            from fnmatch import fnmatchcase
            if not (fnmatchcase(r["Repository"], value) or fnmatchcase(f"{r['Repository']}:{r['Tag']}", value)):
                return False
        if key == "label":
            k, _, v = value.partition("=")
            if k not in r["Labels"] or (v and r["Labels"][k] != v):
                return False
    return True


def run(engine: Any, args: Any, out: Any) -> int:
    from ..image.images import summary
    return write(out, args, records([summary(i) for i in engine.images.list(name=args.reference, all=True)], args))


def quick(args: Any, out: Any) -> int | None:
    """The cold path: the images from the running supervisor (:mod:`.query`); None: the full path.

    A REFERENCE is matched by the engine's rules (``ImageCollection.list``), so it takes the full path.
    """
    if args.reference:
        return None
    from .query import ask
    images = ask(args, "images")
    return None if images is None else write(out, args, records(images, args))


def write(out: Any, args: Any, rows: list[dict[str, Any]]) -> int:
    if args.quiet:
        for image_id in dict.fromkeys(r["ID"] for r in rows):
            out.write(image_id + "\n")
        return 0
    if args.format:
        write_format(out, args.format, rows, HEADERS)
        return 0
    cols = ["Repository", "Tag"] + (["Digest"] if args.digests else []) + ["ID", "CreatedSince", "Size"]
    write_table(out, [HEADERS[c] for c in cols], [[r[c] for c in cols] for r in rows])
    return 0
