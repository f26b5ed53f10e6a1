"""``sandbox bootstrap busybox|debian``: make an offline base image from this host."""

from __future__ import annotations

from typing import Any


def register(sub: Any, name: str = "bootstrap") -> None:
    p = sub.add_parser(name, help="Build a base image offline: busybox (static busybox) or debian (debootstrap)")
    p.add_argument("kind", choices=["busybox", "debian"])
    p.add_argument("-t", "--tag", help="name of the image (default busybox:latest or debian:SUITE)")
    p.add_argument("--binary", help="busybox: path of a static busybox binary (default: the host's)")
    p.add_argument("--suite", default="bookworm", help="debian: the release to bootstrap (default bookworm)")
    p.add_argument("--mirror", help="debian: the mirror URL for debootstrap")
    p.set_defaults(func=run)


def run(engine: Any, args: Any, out: Any) -> int:
    if args.kind == "busybox":
        options = {"binary": args.binary} | ({"tag": args.tag} if args.tag else {})
    else:
        options = {"suite": args.suite, "mirror": args.mirror, "tag": args.tag}
    image = engine.images.bootstrap(args.kind, **options)
    out.write(f"{', '.join(image.tags)} {image.id}\n")
    return 0
