"""``sandbox version``: versions of the engine and of what it runs on."""

from __future__ import annotations

from typing import Any


def register(sub: Any, name: str = "version") -> None:
    p = sub.add_parser(name, help="Show the sandbox version information")
    p.add_argument("-f", "--format", help="Go template, e.g. '{{.Version}}'")
    p.set_defaults(func=run)


def run(engine: Any, args: Any, out: Any) -> int:
    v = engine.version()
    if args.format:
        from ..gotemplate import render
        out.write(render(args.format, v) + "\n")
        return 0
    for key in ("Version", "ApiVersion", "PythonVersion", "Os", "Arch", "KernelVersion"):
        out.write(f" {key + ':':<16}{v[key]}\n")
    return 0
