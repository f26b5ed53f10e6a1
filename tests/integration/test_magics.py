"""``%docker`` in a real Jupyter kernel (nbclient): same parser as the CLI, errors without tracebacks."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.integration


def execute(sources: list[str]) -> list[list[dict]]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    return [c.outputs for c in nb.cells]


def test_user_errors_print_one_paragraph_without_traceback(sandbox_root):
    outputs = execute([
        "%load_ext sandbox",
        "%docker rmi no-such-image",
        "%docker images --bogus-flag",
        "%sandbox tag busybox 'unbalanced",
        "%docker images -q",
    ])
    for cell in outputs[1:4]:
        assert [o["output_type"] for o in cell] == ["stream"], cell
        assert cell[0]["name"] == "stderr" and cell[0]["text"].startswith("Error:")
        assert len(cell[0]["text"].strip().splitlines()) == 1
    assert "no such image" in outputs[1][0]["text"].lower()
    assert outputs[4] == []  # an empty store lists nothing, and says nothing


def test_help_prints_the_parsers_usage(sandbox_root):
    (cell,) = execute(["%load_ext sandbox\n%docker images --help"])
    text = "".join(o.get("text", "") for o in cell)
    assert "usage: sandbox images" in text and "--digests" in text
    assert all(o["output_type"] == "stream" for o in cell)
