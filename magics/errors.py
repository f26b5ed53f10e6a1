"""How a magic reports a user's mistake: one short paragraph, no traceback.

A :class:`~sandbox.errors.SandboxError` (an image that does not exist, a wrong
flag, a failed build step) is the student's to fix, so it is shown as what
happened and what to do, on stderr, and the cell ends quietly.  Anything else
is a bug in the kit and keeps its traceback.  For a Dockerfile error the
student's own line is quoted from the cell, with its number.
"""

from __future__ import annotations

import sys


def show_error(error: Exception, *, source: str | None = None, first_line: int = 1) -> None:
    """Print ``error`` as one paragraph; quote ``source``'s line when the error has one."""
    text = f"Error: {error}"
    line = getattr(error, "line", None)
    if source is not None and line:
        lines = source.splitlines()
        index = line - first_line
        if 0 <= index < len(lines):
            text += f"\n  line {line} of this cell: {lines[index].strip()}"
    tail = getattr(error, "output_tail", None)
    if tail:
        text += "\n  its last output lines:\n" + "\n".join("    " + t for t in tail[-5:])
    sys.stderr.write(text + "\n")
    sys.stderr.flush()

