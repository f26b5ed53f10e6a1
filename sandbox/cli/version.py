"""``sandbox version``: versions of the engine and of what it runs on."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported on the cold path (see sandbox.cli)
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any, name: str = "version") -> None:
    p = sub.add_parser(name, help="Show the sandbox version information")
    p.add_argument("-f", "--format", help="Go template, e.g. '{{.Version}}'")
    p.set_defaults(func=run, quick=quick)


def run(engine: Any, args: Any, out: Any) -> int:
    return write(out, args, engine.version())


def quick(args: Any, out: Any) -> int:
    """The cold path: the same facts as :meth:`sandbox.Engine.version`, without loading the engine.

    They are the package's version and what :mod:`platform` says; a test
    checks this dictionary against the engine's.
    """
    import platform
    from .._version import __version__
    return write(out, args, {"Version": __version__, "ApiVersion": "1.43",
                             "PythonVersion": platform.python_version(), "Os": "linux",
                             "Arch": platform.machine(), "KernelVersion": platform.release()})


def write(out: Any, args: Any, v: dict[str, Any]) -> int:
    if args.format:
        from ..gotemplate import render
        out.write(render(args.format, v) + "\n")
        return 0
    for key in ("Version", "ApiVersion", "PythonVersion", "Os", "Arch", "KernelVersion"):
        out.write(f" {key + ':':<16}{v[key]}\n")
    return 0
