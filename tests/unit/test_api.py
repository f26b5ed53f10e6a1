"""The public API is what sandbox/__init__.py exports, and every error class is part of it."""

from __future__ import annotations

import inspect

import sandbox
import sandbox.errors


def test_all_names_exist():
    for name in sandbox.__all__:
        assert hasattr(sandbox, name), name


def test_every_error_class_is_exported_and_documented():
    classes = [c for _, c in inspect.getmembers(sandbox.errors, inspect.isclass)
               if issubclass(c, sandbox.errors.SandboxError)]
    for cls in classes:
        assert cls.__name__ in sandbox.__all__, f"{cls.__name__} is not exported"
        assert cls.__doc__ and cls.__doc__.strip(), f"{cls.__name__} has no docstring"
        assert cls.__name__ in sandbox.errors.__doc__, f"{cls.__name__} is missing from the tree drawing"


def test_engine_images_reads_like_docker_py():
    images = sandbox.Engine("/nonexistent-not-created").images
    for method in ("get", "list", "pull", "push", "remove", "tag", "prune", "load", "save", "history", "inspect"):
        assert callable(getattr(images, method)), method


def test_cli_import_stays_light():
    import subprocess
    import sys
    code = ("import sys, sandbox.cli; sandbox.cli.build_parser(); "
            "print(sorted(m for m in ('pyroute2', 'matplotlib', 'ipywidgets', 'IPython') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
