"""Docker-style progress lines for pull and push.

On a terminal, byte counts update in place; otherwise each layer's state
changes print once, so logs and notebooks stay readable.
"""

from __future__ import annotations

from typing import IO, Any

from .. import humanize


class ProgressPrinter:
    def __init__(self, out: IO[str], quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet
        self.tty = hasattr(out, "isatty") and out.isatty()
        self._inline = False

    def __call__(self, event: dict[str, Any]) -> None:
        if self.quiet:
            return
        status, ident = event.get("status", ""), event.get("id")
        detail = event.get("progressDetail") or {}
        if status in ("Downloading", "Pushing"):
            if self.tty and detail.get("total"):
                self.out.write(f"\r{ident}: {status} {humanize.size(detail['current'])}/"
                               f"{humanize.size(detail['total'])}\x1b[K")
                self.out.flush()
                self._inline = True
            return
        if self._inline:
            self.out.write("\r\x1b[K")
            self._inline = False
        self.out.write(f"{ident}: {status}\n" if ident else f"{status}\n")
