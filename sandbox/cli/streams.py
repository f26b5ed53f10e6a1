"""A container's output streams, written to this terminal.

Its own module, importing only ``contextlib`` and ``sys``, because both the
cold path (:mod:`sandbox.cli.quick`) and the full one (:mod:`sandbox.cli.run`,
``exec``, ``logs``) write output this way, and ``run`` registers the quick path:
kept in either of them, the two would import each other.
"""

from __future__ import annotations

import contextlib
import sys
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any


def output_writer(out: Any) -> Any:
    """A callback writing stream 1 to ``out`` and stream 2 to stderr, bytes where possible."""
    out_bin = getattr(out, "buffer", None)
    err_bin = getattr(sys.stderr, "buffer", None)

    def write(stream: int, data: bytes) -> None:
        if stream == 1:
            if out_bin is not None:
                out_bin.write(data)
                out_bin.flush()
            else:
                out.write(data.decode(errors="replace"))
                with contextlib.suppress(AttributeError, ValueError):
                    out.flush()
        else:
            if err_bin is not None:
                err_bin.write(data)
                err_bin.flush()
            else:
                sys.stderr.write(data.decode(errors="replace"))
    return write
