"""docs/design.md's import layers are the code's: the table and drawing between its markers are generated.

``make graph`` (``tools/importgraph.py --write-docs``) writes them from
``LAYERS`` and the imports read today; this test fails when the two differ,
so a split, a new package or a new arrow between packages shows up in the
design document in the same change (run ``make graph`` and commit the result).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "tools" / "importgraph.py"
_spec = importlib.util.spec_from_file_location("importgraph", _PATH)
assert _spec is not None and _spec.loader is not None
importgraph = sys.modules.get("importgraph") or importlib.util.module_from_spec(_spec)
if "importgraph" not in sys.modules:
    sys.modules["importgraph"] = importgraph
    _spec.loader.exec_module(importgraph)


def test_the_design_documents_import_graph_is_what_the_code_imports_today() -> None:
    document = importgraph.DOCS.read_text()
    wanted = importgraph.with_block(document, importgraph.docs_block(importgraph.edges()))
    assert document == wanted, "docs/design.md's import layers are stale: run `make graph`"


def test_the_block_is_replaced_between_its_markers_only() -> None:
    begin, end = importgraph.DOCS_BEGIN, importgraph.DOCS_END
    document = f"before\n{begin}\nold drawing\n{end}\nafter\n"
    assert importgraph.with_block(document, "new\n") == f"before\n{begin}\nnew\n{end}\nafter\n"
    with pytest.raises(LookupError):
        importgraph.with_block("no markers here\n", "new\n")
