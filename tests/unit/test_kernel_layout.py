"""sandbox.kernel's layout: topic modules behind one ``__init__``, arrows down, the only ctypes user."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

from sandbox import kernel

PACKAGE = Path(kernel.__file__).parent
SANDBOX = PACKAGE.parent
#: Bottom first: a topic may import only those before it (the order of the package docstring).
TOPICS = ["_libc", "namespaces", "mounts", "process", "caps", "pidfd", "ids", "netdev", "resolve", "seccomp", "bpf",
          "nftables"]


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
        if topic in kernel._LAZY:
            assert set(kernel._LAZY[topic]) == set(module.__all__), topic
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


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_seccomp_and_bpf_load_on_first_use():
    code = ("import sys; from sandbox import kernel\n"
            "lazy = lambda: sorted(m for m in sys.modules if m.endswith(('kernel.seccomp', 'kernel.bpf')))\n"
            "print(lazy()); kernel.mount; kernel.capset; print(lazy()); kernel.SeccompFilter; print(lazy())")
    assert _run(code).splitlines() == ["[]", "[]", "['sandbox.kernel.seccomp']"]


def test_the_cli_and_the_image_store_load_no_ctypes_until_they_mount():
    code = ("import sys, sandbox.cli, sandbox.engine; sandbox.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith(('ctypes', 'sandbox.kernel'))))")
    assert _run(code) == "[]"


def test_container_init_reaches_its_kernel_names_without_an_import():
    # After pivot_root the init cannot import from the host: every kernel name it
    # uses must be reachable once the caller has imported the runtime.
    code = f"""
import re, sys
from pathlib import Path
import sandbox.runtime.init
from sandbox import kernel

class NoImports:
    def find_spec(self, name, path=None, target=None):
        raise ImportError("import of " + name + " in the container's init")

sys.meta_path.insert(0, NoImports())
names = set()
for source in ("runtime/init.py", "runtime/process.py", "runtime/steps.py", "runtime/rootfs.py"):
    names |= set(re.findall(r"\\bkernel\\.(\\w+)", Path({str(SANDBOX)!r}, source).read_text()))
used = sorted(names & set(kernel.__all__))
for name in used:
    getattr(kernel, name)
print(len(used))
"""
    assert int(_run(code)) > 40
