"""The ``sandbox`` command: docker's verbs over :class:`sandbox.Engine`.

One small module per verb (``images.py``, ``rmi.py``, ...), each with
``register(subparsers)`` and ``run(engine, args, out) -> int``; they parse and
print, the engine does the work.  :func:`build_parser` is shared with the
notebook magics (``%docker VERB ...``), so a cell and a terminal accept exactly
the same syntax.  A ``SandboxError`` becomes one line on stderr and exit code
125, Docker's code for the engine's own errors.

A new process is the common case in a terminal, so the cold verbs load little:
``run`` (:mod:`.quick`), ``ps``, ``images``, ``inspect`` (:mod:`.query`) and
``version`` answer without the engine when they can.  The modules they load
do not import ``typing`` (a few milliseconds of a command that should take
tens): their annotations are strings (``from __future__ import
annotations``), and the names come from ``typing`` under a module-level
``TYPE_CHECKING = False``, which mypy reads as true.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import SandboxError, UsageError

TYPE_CHECKING = False  # not typing's (see above)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import IO, Any

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


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, but the terminal's width is looked up when help is formatted.

    argparse makes a formatter at every ``add_argument`` (to check the
    metavar), and its default width comes from ``shutil.get_terminal_size``:
    importing shutil (and zlib, bz2 and lzma with it) cost a cold ``sandbox
    ps`` more than its own code.  Only help and usage text needs the width.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None, **kwargs: Any) -> None:
        super().__init__(prog, indent_increment, max_help_position, 80 if width is None else width, **kwargs)
        self._wanted = None if width is not None else max_help_position

    def format_help(self) -> str:
        if self._wanted is not None:  # what HelpFormatter.__init__ does with width=None
            import shutil
            self._width = shutil.get_terminal_size().columns - 2
            self._max_help_position = min(self._wanted, max(self._width - 20, self._indent_increment * 2))
            self._wanted = None
        return super().format_help()


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` instead of exiting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

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
    parser.add_argument("--storage-driver", choices=["overlay", "fuse-overlayfs", "vfs"],
                        help="storage driver of the containers and builds this command makes "
                             "(default: $SANDBOX_STORAGE_DRIVER, else overlay where the kernel mounts it, else fuse-overlayfs where it can, else vfs)")
    # prog given: argparse would format the usage to work it out (the same "sandbox"), and so look up the width
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser, prog=prog)
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
