"""Cell magics: ``%%dockerfile`` builds the cell, ``%%container`` runs it as a shell script.

``%%dockerfile`` prints progress as the build goes (step n/m, HIT or MISS
with the reason, the RUN's output, the layer's size and time): plain stream
output, so it is live in every front end and stays readable in a saved
notebook.  The cell's value is the Image, whose display is a compact
summary; ``-o VAR`` binds it too.  Line numbers in errors are the cell's own.

``%%container IMAGE [run options]`` runs the cell body with ``sh -c`` in a
fresh container (``--rm`` implied), streams its output, and its value is the
exit code.  Interrupting either cell stops what it started: the RUN's or the
script's container is stopped and removed, and a build tags nothing.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from IPython.core.magic import Magics, cell_magic, magics_class

from sandbox.cli import Parser, _Exit
from sandbox.cli.build import key_values
from sandbox.errors import SandboxError, UsageError

from .docker import ExitCode
from .errors import show_error

GREEN, YELLOW, RED, DIM, RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[2m", "\x1b[0m"


def dockerfile_parser() -> Parser:
    p = Parser(prog="%%dockerfile", add_help=True,
               description="Build the cell as a Dockerfile; the notebook's folder is the context.")
    p.add_argument("-t", "--tag", action="append", default=[], help="name[:tag] for the image (repeatable)")
    p.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    p.add_argument("--network", help="the network RUN steps use (default: bridge; none, host or a network name)")
    p.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE", help="a build argument")
    p.add_argument("--target", help="build up to this stage")
    p.add_argument("--context", default=".", metavar="DIR", help="the build context (default: this folder)")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="a label on the image")
    p.add_argument("-o", "--output", metavar="VAR", help="also bind the Image to this variable")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    return p


class BuildPrinter:
    """Build events as the lines a student reads while the cell runs."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.events: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.events.append(event)
        if self.quiet:
            return
        w = sys.stdout.write
        if event.kind == "step":
            w(f"{DIM}[{event.step}/{event.total}]{RESET} {event.instruction}")
            if event.cache == "HIT":
                w(f"  {GREEN}HIT{RESET}\n")
            elif event.cache == "MISS":
                w(f"  {YELLOW}MISS{RESET} {DIM}({event.reason}){RESET}\n")
            else:
                w("\n")
        elif event.kind == "output":
            w(f"    {event.text}\n")
        elif event.kind == "step-done" and event.cache != "HIT" and not event.instruction.startswith("FROM"):
            from sandbox.humanize import size
            layer = "no new layer" if event.size is None else f"layer {size(event.size)}"
            w(f"    {DIM}-> {layer}, {event.duration:.2f} s{RESET}\n")
        elif event.kind == "warning":
            w(f"{YELLOW}warning:{RESET} {event.text}\n")
        sys.stdout.flush()


@magics_class
class CellMagics(Magics):
    """``%%dockerfile``, ``%%container`` and ``%%needs``."""

    def __init__(self, shell: Any, docker: Any) -> None:
        super().__init__(shell)
        self._docker = docker   # the DockerMagics instance: one engine per kernel

    @property
    def engine(self) -> Any:
        return self._docker.engine

    @cell_magic
    def dockerfile(self, line: str, cell: str) -> Any:
        """Build this cell as a Dockerfile: ``%%dockerfile -t NAME [--no-cache] [--build-arg K=V]
        [--target STAGE] [--network NET] [--context DIR] [-o VAR]``."""
        try:
            args = dockerfile_parser().parse_args(shlex.split(line))
        except _Exit:
            return None
        except (SandboxError, ValueError) as e:
            show_error(e)
            return None
        printer = BuildPrinter(args.quiet)
        try:
            image = self.engine.build(args.context, tags=args.tag, dockerfile="Dockerfile (this cell)",
                                      dockerfile_text=cell, build_args=key_values(args.build_arg, "--build-arg"),
                                      target=args.target, no_cache=args.no_cache,
                                      labels=key_values(args.label, "--label"), on_event=printer,
                                      network=args.network)
        except SandboxError as e:
            show_error(e, source=cell)
            return None
        except KeyboardInterrupt:
            sys.stderr.write("Build interrupted: the running step was stopped and nothing was tagged.\n")
            return None
        if args.output and self.shell is not None:
            self.shell.user_ns[args.output] = image
        hits = sum(1 for e in printer.events if e.kind == "step" and e.cache == "HIT")
        misses = sum(1 for e in printer.events if e.kind == "step" and e.cache == "MISS")
        result = next((e for e in printer.events if e.kind == "result"), None)
        took = f" in {result.duration:.2f} s" if result else ""
        sys.stdout.write(f"built {', '.join(args.tag) or image.short_id}{took}: "
                         f"{hits} cached, {misses} built\n")
        return image

    @cell_magic
    def needs(self, line: str, cell: str) -> Any:
        """Run the cell only where this kernel has what the line names: ``%%needs root``,
        ``namespaces``, ``cgroups``, ``networks`` or a command (``%%needs runc``); elsewhere
        print one line saying what is missing and what would give it."""
        from .lab import needs
        if not line.strip():
            show_error(UsageError("%%needs takes what the cell needs",
                                  hint="e.g. %%needs cgroups, or %%needs root runc"))
            return None
        if not needs(line) or self.shell is None:
            return None
        # The body keeps its magics and !commands (transform_cell), an error fails this cell
        # once (no nested run_cell swallowing it), and a last expression is the cell's value.
        import ast
        tree = ast.parse(self.shell.transform_cell(cell))
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        ns = self.shell.user_ns
        exec(compile(tree, "<%%needs cell>", "exec"), ns)  # noqa: S102 - the student's own cell
        if last is not None:
            return eval(compile(ast.Expression(last.value), "<%%needs cell>", "eval"), ns)  # noqa: S307
        return None

    @cell_magic
    def container(self, line: str, cell: str) -> Any:
        """Run this cell as a shell script in a fresh container: ``%%container IMAGE [run options]``
        (options may also come before the image, as in ``docker run``)."""
        from sandbox.cli import run_argv as run
        try:
            words = shlex.split(line)
        except ValueError as e:
            show_error(UsageError(f"cannot split the line into arguments: {e}", hint="check the quotes"))
            return None
        if not words or words in (["-h"], ["--help"]):
            sys.stdout.write("usage: %%container IMAGE [docker run options]\n"
                             "Runs the cell body with sh -c in a new container (--rm implied).\n")
            return None
        if not words[0].startswith("-"):
            image, options = words[0], words[1:]
            argv = ["run", "--rm", *options, image, "sh", "-c", cell]
        else:
            argv = ["run", "--rm", *words, "sh", "-c", cell]
        try:
            code = run(argv, out=sys.stdout, engine=self.engine)
        except _Exit:
            return None
        except SandboxError as e:
            show_error(e)
            return None
        except KeyboardInterrupt:
            sys.stderr.write("Interrupted: the container was stopped and removed.\n")
            return ExitCode(130)
        return ExitCode(code)

