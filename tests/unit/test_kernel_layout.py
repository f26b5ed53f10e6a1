"""sandbox.kernel's layout: topic modules behind one ``__init__``, arrows down, the only ctypes user."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from sandbox import kernel

PACKAGE = Path(kernel.__file__).parent
SANDBOX = PACKAGE.parent
#: Bottom first: a topic may import only those before it (the order of the package docstring).
TOPICS = ["_libc", "namespaces", "mounts", "process", "caps", "pidfd", "ids", "netdev", "seccomp", "bpf"]


def _public_definitions(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


def test_every_exported_name_resolves():
    for name in kernel.__all__:
        assert hasattr(kernel, name), name
    assert len(kernel.__all__) == len(set(kernel.__all__))


def test_each_topic_exports_what_it_defines():
    assert sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__") == sorted(TOPICS)
    for topic in TOPICS:
        module = importlib.import_module(f"sandbox.kernel.{topic}")
        assert _public_definitions(PACKAGE / f"{topic}.py") == set(module.__all__), topic
        for name in module.__all__:
            assert getattr(kernel, name) is getattr(module, name), name


def test_topics_import_downwards_only():
    for topic in TOPICS:
        tree = ast.parse((PACKAGE / f"{topic}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                assert node.module in TOPICS[:TOPICS.index(topic)], f"{topic} imports .{node.module}"
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                assert node.module == "errors", f"{topic} imports ..{node.module}"


def test_only_the_kernel_package_imports_ctypes():
    for path in [*SANDBOX.rglob("*.py"), *(SANDBOX.parent / "magics").rglob("*.py")]:
        if PACKAGE in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(m.split(".")[0] == "ctypes" for m in modules), path
