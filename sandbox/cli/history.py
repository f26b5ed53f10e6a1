"""``sandbox history``: the steps that made an image, newest first, with each layer's size."""

from __future__ import annotations

from typing import Any

from .. import humanize
from .table import write_format, write_table

HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
           "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}


def register(sub: Any, name: str = "history") -> None:
    p = sub.add_parser(name, help="Show the history of an image")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("-H", "--human", default=True, type=lambda v: v.lower() != "false",
                   help="print sizes and dates in human readable format (default true)")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image ids")
    p.add_argument("--format", help="Go template")
    p.set_defaults(func=run)


def _created_by(text: str, no_trunc: bool) -> str:
    text = " ".join(text.split()) if not no_trunc else text
    return text if no_trunc or len(text) <= 45 else text[:44] + "…"


def run(engine: Any, args: Any, out: Any) -> int:
    records = []
    for row in engine.images.history(args.image):
        image_id = row["Id"]
        if image_id != "<missing>" and not args.no_trunc:
            image_id = image_id.split(":", 1)[1][:12]
        records.append({
            "ID": image_id,
            "CreatedSince": humanize.ago(row["Created"]) if args.human else row["Created"],
            "CreatedAt": row["Created"],
            "CreatedBy": _created_by(row["CreatedBy"], args.no_trunc),
            "Size": humanize.size(row["Size"]) if args.human else str(row["Size"]),
            "Comment": row["Comment"]})
    if args.quiet:
        out.write("".join(r["ID"] + "\n" for r in records))
    elif args.format:
        write_format(out, args.format, records, HEADERS)
    else:
        cols = ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
        write_table(out, [HEADERS[c] for c in cols], [[r[c] for c in cols] for r in records])
    return 0
