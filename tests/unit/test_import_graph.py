"""The import graph of sandbox/ and magics/: no circles, and every arrow points down the layers.

The layers are those of shared/DESIGN.md ("Layers of the system"), written
down once in tools/importgraph.py (``LAYERS``); ``python tools/importgraph.py``
prints the graph and every violation.  Imports inside functions and under
``TYPE_CHECKING`` count: a lazy import is still a dependency.

The exceptions below are the code as it is today; each says why it is there
and what would remove it.  A key ``(A, B)`` allows arrows from module A, or
any module of package A, to module B or any module of package B, so an
engineer splitting A does not have to rename entries.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

_PATH = Path(__file__).resolve().parents[2] / "tools" / "importgraph.py"
_spec = importlib.util.spec_from_file_location("importgraph", _PATH)
assert _spec is not None and _spec.loader is not None
importgraph = importlib.util.module_from_spec(_spec)
sys.modules["importgraph"] = importgraph
_spec.loader.exec_module(importgraph)

#: Upward arrows the code has today, with why.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {
    ("sandbox", "magics"):
        "IPython's `%load_ext sandbox` calls sandbox.load_ipython_extension, which it finds only on the "
        "package named; a function-level import, and the only thing of the engine pointing at magics",
}

#: Circles the code has today, with why (each as the set of its modules).
ALLOWED_CIRCLES: dict[frozenset[str], str] = {}


def _under(module: str, name: str) -> bool:
    return module == name or (module.startswith(name + ".") and name not in importgraph.PACKAGES)


def _allowed(edge: Any) -> bool:
    return any(_under(edge.source, a) and _under(edge.target, b) for a, b in ALLOWED_UPWARD)


@pytest.fixture(scope="module")
def edges() -> list[Any]:
    return list(importgraph.edges())


def test_every_module_has_a_layer(edges: list[Any]) -> None:
    for module in importgraph.module_files():
        importgraph.layer_of(module)   # raises LookupError naming the module


def test_no_circles(edges: list[Any]) -> None:
    circles = [c for c in importgraph.circles(edges) if frozenset(c) not in ALLOWED_CIRCLES]
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_arrows_point_down_the_layers(edges: list[Any]) -> None:
    up = [e for e in importgraph.upward(edges) if not _allowed(e)]
    names = [layer[0] for layer in importgraph.LAYERS]
    assert not up, "arrows pointing up the layers:\n" + "\n".join(
        f"{e.source} -> {e.target} (line {e.line}, {e.kind}; "
        f"{names[importgraph.layer_of(e.source)]} -> {names[importgraph.layer_of(e.target)]})" for e in up)


def test_the_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    # The checks above prove little unless imports in functions and TYPE_CHECKING blocks count.
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import thing\n")
    (pkg / "a.py").write_text("thing = 1\n\ndef f():\n    from . import b\n    from .sub import c\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n"
                              "else:\n    import os\n")
    (pkg / "sub").mkdir()
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from .. import thing\nfrom ..b import nothing_here\n")
    modules = {"pkg": pkg / "__init__.py", "pkg.a": pkg / "a.py", "pkg.b": pkg / "b.py",
               "pkg.sub": pkg / "sub" / "__init__.py", "pkg.sub.c": pkg / "sub" / "c.py"}
    found = {(e.source, e.target, e.kind) for e in importgraph.edges(modules)}
    assert found == {("pkg", "pkg.a", "top"), ("pkg.a", "pkg.b", "lazy"), ("pkg.a", "pkg.sub.c", "lazy"),
                     ("pkg.b", "pkg.a", "type"), ("pkg.sub.c", "pkg", "top"), ("pkg.sub.c", "pkg.b", "top")}
    assert importgraph.circles(importgraph.edges(modules)) == [["pkg", "pkg.a", "pkg.b", "pkg.sub.c"]]
