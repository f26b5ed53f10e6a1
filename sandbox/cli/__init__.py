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
import os
import sys
from typing import IO, Any
from collections.abc import Sequence

from ..errors import SandboxError, UsageError

#: verb -> module; ``image`` is the management command grouping the image verbs.
VERBS = ["bootstrap", "history", "images", "import_", "info", "inspect", "load", "login", "pull",
         "push", "rmi", "save", "tag", "version", "image",
         "run", "lifecycle", "ps", "logs", "exec_", "top", "changes", "events", "volume", "container",
         "system", "build", "network", "daemon"]

#: verb -> the module that registers it, for the verbs whose module name differs;
#: a command line naming one verb builds only that verb's parser (a cold
#: ``sandbox run`` must not pay for argparse set-up of forty verbs).
VERB_MODULES = {"import": "import_", "create": "run", "start": "run", "stop": "lifecycle",
                "kill": "lifecycle", "pause": "lifecycle", "unpause": "lifecycle",
                "restart": "lifecycle", "rm": "lifecycle", "wait": "lifecycle", "rename": "lifecycle",
                "update": "lifecycle", "exec": "exec_", "attach": "exec_", "stats": "top",
                "diff": "changes", "commit": "changes", "cp": "changes", "export": "changes",
                "logout": "login", "builder": "build", "port": "network"}


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", hint=f"see '{self.prog} --help'")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            sys.stderr.write(message)
        raise _Exit(status)

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # Python 3.11's argparse drops a "--" that is an option's own value
        # (``--label=--``) and hands the verb an empty list instead of a string;
        # docker's flag parser takes it as the value, and so do we.
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            value = self._get_value(action, "--")
            self._check_value(action, value)
            return value
        return super()._get_values(action, arg_strings)


class _Exit(Exception):
    """--help and --version end the parse; main() turns this into an exit code."""

    def __init__(self, status: int) -> None:
        self.status = status


def build_parser(prog: str = "sandbox", only: str | None = None) -> Parser:
    """The whole command line parser; with ``only``, just the module of that verb."""
    parser = Parser(prog=prog, description="A small container engine for teaching, with docker's verbs.")
    parser.add_argument("--root", help="store directory (default: $SANDBOX_ROOT or /var/lib/sandbox)")
    parser.add_argument("--storage-driver", choices=["overlay", "vfs"],
                        help="storage driver of the containers and builds this command makes "
                             "(default: $SANDBOX_STORAGE_DRIVER, else overlay where it can be mounted, else vfs)")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    modules = VERBS
    if only is not None:
        module = VERB_MODULES.get(only, only)
        if module in VERBS:
            modules = [module]
    for name in modules:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


#: The global options that take a value (skipped to find the verb).
_GLOBAL_OPTIONS = ("--root", "--storage-driver")


def _verb_of(argv: list[str]) -> str | None:
    i = 0
    while i < len(argv):
        if argv[i] in _GLOBAL_OPTIONS:
            i += 2
            continue
        if argv[i].startswith(tuple(o + "=" for o in _GLOBAL_OPTIONS)):
            i += 1
            continue
        return None if argv[i].startswith("-") else argv[i]
    return None


def run(argv: Sequence[str], out: IO[str] | None = None, engine: Any = None) -> int:
    """Parse ``argv`` and run the verb; raises SandboxError/UsageError for the caller to show.

    A verb with a ``quick`` function (``run``) tries it first when no engine
    was passed in: it talks to a running supervisor without loading the engine.
    """
    argv = list(argv)
    args, extra = build_parser(only=_verb_of(argv)).parse_known_args(argv)
    if extra:
        verb = " ".join(v for v in (args.verb, getattr(args, "image_verb", None)) if v)
        raise UsageError(f"sandbox {verb}: unknown flag or argument {' '.join(extra)!r}",
                         hint=f"see 'sandbox {verb} --help'")
    if getattr(args, "storage_driver", None):
        # As the environment variable, for this process and the supervisor it may start
        # (Docker's --storage-driver is the daemon's; here each client may force its own).
        os.environ["SANDBOX_STORAGE_DRIVER"] = args.storage_driver
    quick = getattr(args, "quick", None)
    if engine is None and quick is not None:
        code = quick(args, out or sys.stdout)
        if code is not None:
            return int(code)
    from ..engine import Engine
    engine = engine or Engine(args.root)
    return int(args.func(engine, args, out or sys.stdout) or 0)


#: ``run`` under a name that the submodule ``sandbox.cli.run`` (the ``run`` verb) cannot shadow:
#: importing that submodule rebinds the package attribute ``run``.
run_argv = run


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if os.geteuid() != 0:  # a user's command joins their rootless namespace first (see sandbox.rootless)
            from .. import rootless
            rootless.join_if_wanted()
        return run_argv(argv)  # not run(): importing the verb module sandbox.cli.run rebinds that name
    except _Exit as e:
        return e.status
    except SandboxError as e:
        print(f"Error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
