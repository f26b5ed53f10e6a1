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


def test_needs_runs_a_cell_where_the_machine_gives_it_and_says_why_not_elsewhere(sandbox_root):
    """%%needs and check(needs=...) in a real kernel: how a lab degrades in a lesser mode."""
    outputs = execute([
        "%load_ext sandbox\nfrom magics import check, needs, lacks",
        "%%needs no-such-tool-here\nprint('ran')",
        "%%needs sh\nx = 6\n!echo shell ok\nx * 7",
        "%%needs sh\nraise ValueError('the body failed')",
        "check('a claim', False, needs='no-such-tool-here')",
        "print(needs('no-such-tool-here'), needs('sh'))",
        "%%needs\nprint('no name')",
        "print(repr(lacks('cgroups')))",
    ])
    skipped = outputs[1][0]["text"]
    assert skipped.startswith("○ skipped:") and "no-such-tool-here" in skipped and "ran" not in skipped
    assert len(skipped.strip().splitlines()) == 1
    texts = [o.get("text", "") for o in outputs[2]] + [o.get("data", {}).get("text/plain", "") for o in outputs[2]]
    assert any("shell ok" in t for t in texts) and "42" in texts   # magics and !commands kept, last value shown
    assert [o["output_type"] for o in outputs[3]] == ["error"] and outputs[3][0]["evalue"] == "the body failed"
    shown = outputs[4][0]["data"]
    assert shown["text/plain"].startswith("○ a claim: skipped") and "○" in shown["text/html"]
    assert outputs[5][-1]["text"].split()[-2:] == ["False", "True"]
    assert outputs[6][0]["name"] == "stderr" and "%%needs takes what the cell needs" in outputs[6][0]["text"]
    # On this host as root the cgroup controllers the labs use are there; in the cgroup2 tier they may not be.
    from tests.conftest import cgroup_controller_missing
    import os
    expected_empty = os.geteuid() == 0 and not cgroup_controller_missing("cpu", "memory", "pids")
    assert (outputs[7][0]["text"].strip() == "''") == expected_empty, outputs[7]
