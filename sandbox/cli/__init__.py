"""The ``sandbox`` command: docker's verbs over :class:`sandbox.Engine`.

One small module per verb (``images.py``, ``rmi.py``, ...), each with
``register(subparsers)`` and ``run(engine, args, out) -> int``; they parse and
print, the engine does the work.  :func:`build_parser` is shared with the
notebook magics (``%docker VERB ...``), so a cell and a terminal accept exactly
the same syntax.  A ``SandboxError`` becomes one line on stderr and exit code
125, Docker's code for the engine's own errors.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import IO, Any, Sequence

from ..errors import SandboxError, UsageError

#: verb -> module; ``image`` is the management command grouping the image verbs.
VERBS = ["bootstrap", "history", "images", "import_", "info", "inspect", "load", "login", "pull",
         "push", "rmi", "save", "tag", "version", "image"]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", hint=f"see '{self.prog} --help'")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            sys.stderr.write(message)
        raise _Exit(status)


class _Exit(Exception):
    """--help and --version end the parse; main() turns this into an exit code."""

    def __init__(self, status: int) -> None:
        self.status = status


def build_parser(prog: str = "sandbox") -> Parser:
    parser = Parser(prog=prog, description="A small container engine for teaching, with docker's verbs.")
    parser.add_argument("--root", help="store directory (default: $SANDBOX_ROOT or /var/lib/sandbox)")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in VERBS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def run(argv: Sequence[str], out: IO[str] | None = None, engine: Any = None) -> int:
    """Parse ``argv`` and run the verb; raises SandboxError/UsageError for the caller to show."""
    from ..engine import Engine
    args, extra = build_parser().parse_known_args(list(argv))
    if extra:
        verb = " ".join(v for v in (args.verb, getattr(args, "image_verb", None)) if v)
        raise UsageError(f"sandbox {verb}: unknown flag or argument {' '.join(extra)!r}",
                         hint=f"see 'sandbox {verb} --help'")
    engine = engine or Engine(args.root)
    return int(args.func(engine, args, out or sys.stdout) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(argv)
    except _Exit as e:
        return e.status
    except SandboxError as e:
        print(f"Error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
