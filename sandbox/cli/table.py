"""Column output for the verbs: the kit's one tabwriter (:mod:`sandbox.tables`), under the CLI's name."""

from __future__ import annotations

from ..tables import write_format, write_table

__all__ = ["write_format", "write_table"]
