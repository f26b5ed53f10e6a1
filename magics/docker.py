"""``%docker VERB ...`` / ``%sandbox VERB ...``: the sandbox command inside a cell.

The line goes through the very parser of the ``sandbox`` command, so what
works in a cell works in a terminal.  Two kinds of verbs:

* verbs that answer with a table or a document (``images``, ``ps``,
  ``history``, ``inspect``, ``volume ls``, ``system df`` ...) return a
  :class:`CommandOutput`: it *is* the cell's result, shown as an HTML table
  (or as the text the terminal prints), and usable from Python: it iterates
  over the engine's objects (``imgs = %docker images; imgs[0].tags``);
* verbs that stream (``run``, ``logs -f``, ``build``, ``pull``, ``exec``)
  print as they go, and return the object they made where there is one (a
  Container for ``run -d``/``create``, an Image for ``build``/``commit``).

A user's mistake prints one short paragraph, never a traceback; an
unexpected exception still shows its traceback, because that is a bug.
"""

from __future__ import annotations

import io
import shlex
import sys
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from sandbox.cli import _Exit, build_parser
from sandbox.cli import run_argv as run
from sandbox.errors import SandboxError

from .errors import show_error

#: verbs whose whole output is captured and returned as one displayable result
TABLE_VERBS = {"images", "ps", "history", "inspect", "version", "info", "top", "diff", "port",
               "volume", "system", "image", "container", "network"}
#: subcommands of the management verbs that print tables
TABLE_SUBVERBS = {"ls", "list", "df", "inspect", "history", "info"}


class CommandOutput:
    """What a table verb printed, plus the engine's objects behind it.

    Shows as HTML tables in a notebook and as the terminal's text elsewhere;
    behaves as a list of ``value`` (images, containers ...) for Python code.
    """

    def __init__(self, argv: list[str], text: str, tables: list[tuple[list[str], list[list[str]]]],
                 value: Any = None) -> None:
        self.argv, self.text, self.tables, self.value = argv, text, tables, value

    def __repr__(self) -> str:
        return self.text.rstrip("\n")

    def _repr_html_(self) -> str:
        from sandbox.display import esc, table
        if self.tables:
            return "".join(table(h, r) for h, r in self.tables)
        return f'<pre style="font-size:12px">{esc(self.text)}</pre>'

    def _items(self) -> list[Any]:
        if isinstance(self.value, list):
            return self.value
        if self.value is None:
            return []
        return [self.value]

    def __iter__(self) -> Any:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __contains__(self, item: Any) -> bool:
        if isinstance(self.value, str):
            return item in self.value   # `"ready" in %docker logs web`
        return item in self._items()

    def __getitem__(self, index: Any) -> Any:
        if isinstance(self.value, dict):
            return self.value[index]
        return self._items()[index]


class _Capture(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[list[str], list[list[str]]]] = []

    def add_table(self, headers: list[str], rows: list[list[str]]) -> None:
        self.tables.append((headers, rows))


def _is_table_verb(argv: list[str]) -> bool:
    words = [a for a in argv if not a.startswith("-")]
    if words and words[0] == "logs":
        return not {"-f", "--follow"} & set(argv)        # a finished log is a result; a followed one streams
    if words and words[0] == "stats":
        return "--no-stream" in argv
    if not words or words[0] not in TABLE_VERBS:
        return False
    if words[0] in ("volume", "system", "image", "container", "network"):
        return len(words) > 1 and words[1] in TABLE_SUBVERBS
    return True


def value_for(engine: Any, argv: list[str]) -> Any:
    """The engine's objects behind a table verb's output (best effort, never raises)."""
    words = [a for a in argv if not a.startswith("-")]
    flags = set(a for a in argv if a.startswith("-"))
    try:
        verb = words[0]
        if verb in ("images",) or words[:2] in (["image", "ls"], ["image", "list"]):
            return engine.images.list(all="-a" in flags or "--all" in flags)
        if verb == "ps" or words[:2] in (["container", "ls"], ["container", "list"]):
            return engine.containers.list(all=bool(flags & {"-a", "--all"}))
        if verb == "history" and len(words) > 1:
            return engine.images.history(words[1])
        if verb == "diff" and len(words) > 1:
            return engine.containers.get(words[1]).changes()
        if verb == "inspect" and len(words) > 1:
            docs = []
            for ref in words[1:]:
                try:
                    docs.append(engine.containers.get(ref).inspect())
                except SandboxError:
                    docs.append(engine.images.inspect(ref))
            return docs
        if words[:2] == ["volume", "ls"]:
            return engine.volumes.list()
        if words[:2] in (["network", "ls"], ["network", "list"]):
            return engine.networks.list()
        if words[:2] == ["network", "inspect"] and len(words) > 2:
            return [engine.networks.get(ref).attrs for ref in words[2:]]
        if verb == "logs" and len(words) > 1:
            return engine.containers.get(words[-1]).logs().decode(errors="replace")
        if verb == "stats":
            return [engine.containers.get(n).stats() for n in words[1:]] or \
                [c.stats() for c in engine.containers.list()]
        if verb == "info":
            return engine.info()
        if verb == "version":
            return engine.version()
    except (SandboxError, IndexError):
        return None
    return None


@magics_class
class DockerMagics(Magics):
    """``%docker`` and ``%sandbox``, one engine per kernel."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._engine: Any = None

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from sandbox.engine import Engine
            self._engine = Engine()
        return self._engine

    @line_magic
    def docker(self, line: str) -> Any:
        """Run a sandbox/docker verb, e.g. ``%docker images`` or ``%docker run --rm busybox echo hi``."""
        return self.run_line(line)

    @line_magic
    def sandbox(self, line: str) -> Any:
        """Alias of ``%docker``."""
        return self.run_line(line)

    def run_line(self, line: str) -> Any:
        try:
            argv = shlex.split(line)
        except ValueError as e:
            print(f"Error: cannot split the line into arguments: {e} (check the quotes)", file=sys.stderr)
            return None
        engine = self.engine if "--root" not in argv else None
        if not argv or argv in (["-h"], ["--help"]):
            build_parser().print_help()
            return None
        try:
            if _is_table_verb(argv) and not {"-h", "--help"} & set(argv):
                out = _Capture()
                code = run(argv, out=out, engine=engine)
                if not out.getvalue() and not out.tables:
                    return None
                return CommandOutput(argv, out.getvalue(), out.tables,
                                     value_for(engine or self.engine, argv))
            before = None
            if argv[0] in ("run", "create", "commit", "build", "pull", "import"):
                before = _snapshot(engine or self.engine, argv[0])
            code = run(argv, out=sys.stdout, engine=engine)
            made = _made(engine or self.engine, argv[0], before) if before is not None else None
            if made is not None:
                return made
            # a container's own exit code is a result; other verbs have printed their errors
            return ExitCode(code) if code and argv[0] in ("run", "start", "exec", "wait") else None
        except _Exit:
            return None  # --help printed its text
        except SandboxError as e:
            show_error(e)
            return None


class ExitCode(int):
    """An exit code that reads as one (the value of ``%%container`` and of a failed verb)."""

    def __repr__(self) -> str:
        return f"exit code {int(self)}"


def _snapshot(engine: Any, verb: str) -> Any:
    if verb in ("run", "create"):
        return {c.id for c in engine.containers.list(all=True)}
    return {i.id for i in engine.images.list(all=True)}


def _made(engine: Any, verb: str, before: Any) -> Any:
    """The container or image a verb just made (what docker-py would return)."""
    if verb in ("run", "create"):
        new = [c for c in engine.containers.list(all=True) if c.id not in before]
        return new[0] if len(new) == 1 else None
    new = [i for i in engine.images.list(all=True) if i.id not in before]
    return new[0] if len(new) == 1 else None


# ---------------------------------------------------------------------------- help and completion

def help_text() -> str:
    out = io.StringIO()
    build_parser(prog="%docker").print_help(file=out)
    return out.getvalue()


CONTAINER_VERBS = {"start", "stop", "kill", "pause", "unpause", "restart", "rm", "wait", "attach", "logs",
                   "exec", "top", "stats", "diff", "commit", "export", "rename", "update", "port", "inspect"}
IMAGE_VERBS = {"run", "create", "rmi", "history", "tag", "save", "push", "inspect"}


def completions(engine: Any, line: str) -> list[str]:
    """Words to offer after ``%docker``: verbs first, then image or container names."""
    words = line.split()
    if line.endswith(" "):
        words.append("")
    args = words[1:] if words and words[0].lstrip("%") in ("docker", "sandbox") else words
    if len(args) <= 1:
        from sandbox.cli import VERBS, VERB_MODULES
        verbs = set(VERB_MODULES) | {v.rstrip("_") for v in VERBS}
        prefix = args[0] if args else ""
        return sorted(v for v in verbs if v.startswith(prefix))
    verb, prefix = args[0], args[-1]
    names: set[str] = set()
    try:
        if verb in CONTAINER_VERBS:
            names |= {c.name for c in engine.containers.list(all=True)}
        if verb in IMAGE_VERBS:
            names |= {t for i in engine.images.list() for t in i.tags}
    except SandboxError:
        return []
    return sorted(n for n in names if n.startswith(prefix))
