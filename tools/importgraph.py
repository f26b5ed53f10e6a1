"""The import graph of ``sandbox/`` and ``magics/``, and the layers it must respect.

Every module's imports are read from its source with :mod:`ast` -- top-level
imports, imports inside functions (the lazy ones that keep a cold
``sandbox run`` light) and imports under ``if TYPE_CHECKING:`` alike: an
import that runs late, or only for mypy, is still a dependency, and a circle
through it is still a circle.  Importing ``a.b.c`` counts as an arrow to
``a.b.c`` only, not to the packages ``a`` and ``a.b`` that Python runs
first, so a module may import its siblings without pointing at its
package's ``__init__``; ``from . import name`` of something that is not a
module is an arrow to the package.  Imports made by name at run time
(``importlib.import_module``: the facade's lazy names, the magics' views,
the CLI's verb table) are invisible here; the facade names its lazy modules
again under ``TYPE_CHECKING``, so its arrows are seen.

:data:`LAYERS` is the layer table of ``shared/DESIGN.md`` ("Layers of the
system") written down once: ``tests/unit/test_import_graph.py`` checks the
code against it (no circle, no arrow pointing up, but for the exceptions it
lists with their reasons), and ``--mermaid``/``--dot`` draw it for the docs.

    python tools/importgraph.py              # each module and its imports, then every upward arrow and circle
    python tools/importgraph.py --packages   # the same, one node per package
    python tools/importgraph.py --mermaid    # layers and package arrows, for docs/design.md
    python tools/importgraph.py --write-docs # put the layer table and that drawing into docs/design.md (`make graph`)
    python tools/importgraph.py --check-docs # exit 1 when they are stale there
    python tools/importgraph.py --dot FILE   # Graphviz, module level (upward arrows red)
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
#: The top-level packages drawn; imports of anything else (the standard library,
#: IPython, pyroute2 ...) are not arrows of this graph.
PACKAGES = ("sandbox", "magics")

#: The layers, top first: (name, what it holds, the modules in it).  A
#: module belongs to the entry naming it or its package (the longest such
#: entry); the facade entry ``sandbox`` names the package's ``__init__`` only,
#: so a new module of the kit must be placed here before the test passes.
#: An arrow may point sideways (within a layer) or down, never up.
LAYERS: list[tuple[str, str, tuple[str, ...]]] = [
    ("clients", "the notebook layer, the `sandbox` command and the API daemon: parse, call the Engine, shape "
     "the answer", ("magics", "sandbox.cli", "sandbox.api", "sandbox.widgets", "sandbox.__main__")),
    ("facade", "`import sandbox` and sandbox.Engine, the one public Python API",
     ("sandbox", "sandbox.engine")),
    ("services", "what the engine does in the client's process: builds, registries, the container and "
     "network APIs (requests to the supervisor), the displayable results they return",
     ("sandbox.build", "sandbox.registry", "sandbox.containers", "sandbox.display")),
    ("supervisor", "one small process per store: forks, reaps, logs, owns the networks",
     ("sandbox.supervisor",)),
    ("model", "what the supervisor and the clients share: container records and their set-up, volumes, "
     "logs, the image store, networks",
     ("sandbox.containers.records", "sandbox.containers.setup", "sandbox.containers.logs",
      "sandbox.containers.volumes", "sandbox.containers.defaults", "sandbox.containers.options",
      "sandbox.containers.parse", "sandbox.containers.keywords", "sandbox.image", "sandbox.network",
      "sandbox.rootless", "sandbox.hostinfo")),
    ("runtime", "an OCI runtime: config.json + rootfs -> process", ("sandbox.runtime",)),
    ("cgroups", "cgroup v1 and v2 behind one interface", ("sandbox.cgroups",)),
    ("kernel", "the only module that calls libc through ctypes", ("sandbox.kernel",)),
    ("leaves", "small modules that import nothing of the kit but errors, usable from every layer",
     ("sandbox.errors", "sandbox.humanize", "sandbox.reference", "sandbox.rootdir", "sandbox.gotemplate",
      "sandbox._version", "sandbox.build.words", "sandbox.tables", "sandbox.plain")),
]


class Edge(NamedTuple):
    source: str
    target: str
    kind: str     # "top" (at import time), "lazy" (inside a function) or "type" (TYPE_CHECKING only)
    line: int


#: Which kind of arrow wins when a module imports another more than once.
_RANK = {"top": 0, "lazy": 1, "type": 2}


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> its file, for every module of :data:`PACKAGES`."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement with its kind, walking into functions and ``if`` blocks."""
    def walk(node: ast.AST, kind: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, kind
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), "type")
                for stmt in child.orelse:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), kind)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from walk(child, "type" if kind == "type" else "lazy")
            else:
                yield from walk(child, kind)
    yield from walk(tree, "top")


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name of ``from ...X import`` in ``module``."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` or its longest prefix that is one of our modules."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def edges(modules: dict[str, Path] | None = None) -> list[Edge]:
    """Every arrow between our modules, one per import of a module (duplicates kept once, strongest kind)."""
    modules = module_files() if modules is None else modules
    best: dict[tuple[str, str], Edge] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        for node, kind in _imports(tree):
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [_known(alias.name, modules) for alias in node.names]
            else:
                base = _resolve(name, path.name == "__init__.py", node)
                for alias in node.names:
                    targets.append(_known(f"{base}.{alias.name}", modules) or _known(base, modules))
            for target in targets:
                if target is None or target == name:
                    continue
                edge = Edge(name, target, kind, node.lineno)
                old = best.get((name, target))
                if old is None or _RANK[kind] < _RANK[old.kind]:
                    best[(name, target)] = edge
    return sorted(best.values())


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` (0 is the top) of ``module``'s layer."""
    best, index = -1, -1
    for i, (_, _, names) in enumerate(LAYERS):
        for name in names:
            inside = module.startswith(name + ".") and name not in ("sandbox",)
            if (module == name or inside) and len(name) > best:
                best, index = len(name), i
    if index < 0:
        raise LookupError(f"{module} is in no layer: place it in LAYERS of tools/importgraph.py")
    return index


def upward(all_edges: Iterable[Edge]) -> list[Edge]:
    """Arrows from a lower layer to a higher one."""
    return [e for e in all_edges if layer_of(e.target) < layer_of(e.source)]


def circles(all_edges: Iterable[Edge]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, list[str]] = {}
    for e in all_edges:
        graph.setdefault(e.source, []).append(e.target)
        graph.setdefault(e.target, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:   # recursive: the graph is a few hundred modules deep at most
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def package_of(module: str) -> str:
    """The node of ``--packages``: ``sandbox.image.store`` -> ``sandbox.image``, ``magics.views`` -> ``magics``.

    The engine's top-level modules (``sandbox.engine``, ``sandbox.errors``) stay nodes of their own.
    """
    parts = module.split(".")
    if parts[0] != "sandbox":
        return parts[0]
    return ".".join(parts[:2]) if len(parts) > 2 or module in _SUBPACKAGES else module


_SUBPACKAGES = {m for m, p in module_files().items() if p.name == "__init__.py"}


def collapse(all_edges: Iterable[Edge]) -> list[Edge]:
    """One arrow per pair of packages (see :func:`package_of`)."""
    best: dict[tuple[str, str], Edge] = {}
    for e in all_edges:
        s, t = package_of(e.source), package_of(e.target)
        old = best.get((s, t))
        if s != t and (old is None or _RANK[e.kind] < _RANK[old.kind]):
            best[(s, t)] = Edge(s, t, e.kind, e.line)
    return sorted(best.values())


def _node(name: str) -> str:
    return name.replace(".", "_")


def mermaid(all_edges: list[Edge]) -> str:
    """A mermaid flowchart: one box per layer, one arrow per pair of packages."""
    pkg_edges = collapse(all_edges)
    nodes = sorted({package_of(m) for m in module_files()})
    lines = ["flowchart TB"]
    for i, (name, _, _) in enumerate(LAYERS):
        members = [n for n in nodes if layer_of(n) == i]
        lines.append(f'  subgraph {name}["{name}"]')
        lines.extend(f'    {_node(n)}["{n}"]' for n in members)
        lines.append("  end")
    for e in pkg_edges:
        arrow = "-.->" if e.kind == "type" else "-->"
        lines.append(f"  {_node(e.source)} {arrow} {_node(e.target)}")
    return "\n".join(lines) + "\n"


def dot(all_edges: list[Edge]) -> str:
    """Graphviz: modules clustered by layer; dashed arrows are TYPE_CHECKING-only, dotted ones lazy."""
    bad = {(e.source, e.target) for e in upward(all_edges)}
    lines = ["digraph imports {", "  rankdir=TB; node [shape=box, fontsize=10];"]
    for i, (name, _, _) in enumerate(LAYERS):
        lines.append(f'  subgraph cluster_{i} {{ label="{name}";')
        lines.extend(f'    "{m}";' for m in module_files() if layer_of(m) == i)
        lines.append("  }")
    for e in all_edges:
        style = {"top": "solid", "lazy": "dotted", "type": "dashed"}[e.kind]
        colour = ", color=red" if (e.source, e.target) in bad else ""
        lines.append(f'  "{e.source}" -> "{e.target}" [style={style}{colour}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def text(all_edges: list[Edge]) -> str:
    """Each module and what it imports; ``~`` marks a lazy import, ``?`` a TYPE_CHECKING one."""
    marks = {"top": "", "lazy": "~", "type": "?"}
    by_source: dict[str, list[Edge]] = {}
    for e in all_edges:
        by_source.setdefault(e.source, []).append(e)
    out: list[str] = []
    for i, (name, why, _) in enumerate(LAYERS):
        out.append(f"== {i} {name}: {why}")
        for m in sorted(module_files()):
            if layer_of(m) != i:
                continue
            targets = " ".join(marks[e.kind] + e.target for e in by_source.get(m, []))
            out.append(f"  {m}" + (f" -> {targets}" if targets else ""))
    return "\n".join(out) + "\n"


def report(all_edges: list[Edge]) -> str:
    """Every upward arrow and every circle, one a line."""
    out = []
    for e in upward(all_edges):
        out.append(f"upward: {e.source} -> {e.target} ({e.kind}, line {e.line}; "
                   f"{LAYERS[layer_of(e.source)][0]} -> {LAYERS[layer_of(e.target)][0]})")
    for c in circles(all_edges):
        out.append(f"circle: {' <-> '.join(c)}")
    return "\n".join(out) + "\n" if out else "no upward arrows, no circles\n"


#: The document whose import-graph drawing is generated, and the markers around the generated block.
DOCS = ROOT / "docs" / "design.md"
DOCS_BEGIN = "<!-- generated by `make graph` (tools/importgraph.py --write-docs): do not edit -->"
DOCS_END = "<!-- end of the generated import graph -->"


def layer_table() -> str:
    """:data:`LAYERS` as a markdown table: each layer, what it holds, its modules."""
    rows = ["| layer | what it holds | modules |", "|---|---|---|"]
    for name, why, modules in LAYERS:
        rows.append(f"| {name} | {why} | {', '.join(modules)} |")
    return "\n".join(rows) + "\n"


def docs_block(all_edges: list[Edge]) -> str:
    """What :data:`DOCS` holds between its markers: the layer table, then the mermaid drawing (fenced)."""
    return f"{layer_table()}\n```mermaid\n{mermaid(all_edges)}```\n"


def with_block(document: str, block: str) -> str:
    """``document`` with what lies between :data:`DOCS_BEGIN` and :data:`DOCS_END` replaced by ``block``."""
    head, begin, rest = document.partition(DOCS_BEGIN)
    _, end, tail = rest.partition(DOCS_END)
    if not begin or not end:
        raise LookupError(f"{DOCS.name} has no block between {DOCS_BEGIN!r} and {DOCS_END!r}")
    return f"{head}{DOCS_BEGIN}\n{block}{DOCS_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--packages", action="store_true", help="one node per package")
    parser.add_argument("--mermaid", action="store_true", help="print a mermaid flowchart of the layers")
    parser.add_argument("--dot", metavar="FILE", help="write a Graphviz file (module level)")
    parser.add_argument("--write-docs", action="store_true", help=f"write the layer table and the drawing into {DOCS.name}")
    parser.add_argument("--check-docs", action="store_true", help=f"exit 1 when they are stale in {DOCS.name}")
    args = parser.parse_args(argv)
    all_edges = edges()
    if args.write_docs or args.check_docs:
        current = DOCS.read_text()
        wanted = with_block(current, docs_block(all_edges))
        if args.write_docs and wanted != current:
            DOCS.write_text(wanted)
        elif args.check_docs and wanted != current:
            sys.stderr.write(f"{DOCS} has a stale import graph: run `make graph`\n")
            return 1
        return 0
    if args.dot:
        Path(args.dot).write_text(dot(all_edges))
        return 0
    if args.mermaid:
        sys.stdout.write(mermaid(all_edges))
        return 0
    if args.packages:
        sys.stdout.write(_package_text(collapse(all_edges)))
    else:
        sys.stdout.write(text(all_edges))
    sys.stdout.write(report(all_edges))
    return 0


def _package_text(pkg_edges: list[Edge]) -> str:
    """Each package and the packages it imports, by layer."""
    out = []
    for i, (name, why, _) in enumerate(LAYERS):
        out.append(f"== {i} {name}: {why}")
        for p in sorted({package_of(m) for m in module_files()}):
            if layer_of(p) == i:
                targets = " ".join(e.target for e in pkg_edges if e.source == p)
                out.append(f"  {p}" + (f" -> {targets}" if targets else ""))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
