"""``%docker VERB ...`` / ``%sandbox VERB ...``: the sandbox command inside a cell.

A user's mistake (a wrong flag, an image that does not exist) prints one short
paragraph, never a traceback, following IPython's ``UsageError`` pattern; an
unexpected exception still shows its traceback, because that is a bug to report.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from sandbox.cli import _Exit, run
from sandbox.errors import SandboxError


@magics_class
class DockerMagics(Magics):
    """``%docker`` and ``%sandbox``, one engine per kernel."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._engine: Any = None

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from sandbox import Engine
            self._engine = Engine()
        return self._engine

    @line_magic
    def docker(self, line: str) -> None:
        """Run a sandbox/docker verb, e.g. ``%docker images`` or ``%docker history busybox``."""
        self._run(line)

    @line_magic
    def sandbox(self, line: str) -> None:
        """Alias of ``%docker``."""
        self._run(line)

    def _run(self, line: str) -> None:
        try:
            argv = shlex.split(line)
        except ValueError as e:
            print(f"Error: cannot split the line into arguments: {e} (check the quotes)", file=sys.stderr)
            return
        try:
            run(argv, out=sys.stdout, engine=self.engine if "--root" not in argv else None)
        except _Exit:
            pass  # --help printed its text
        except SandboxError as e:
            print(f"Error: {e}", file=sys.stderr)
