"""Breaking a feature turns a lab red.

The labs are the engine's test suite only if a lab notices when the engine
stops doing what the lab teaches.  Shown once, for whiteouts: lab 04 runs with
its solutions in place in a kernel whose engine writes layers without any
whiteout (a ``sitecustomize`` on the kernel's PYTHONPATH makes
``tarlayer.write_tree`` drop its ``deleted`` and ``opaque`` lists, which is
where both a build step's and a commit's ``.wh.`` entries come from).  The lab
must go red: the teaching assert that looks for ``.wh.big.bin`` in the ``rm``
step's layer raises, and the checks of the two exercises that delete a
directory and make one opaque show ✗.  The run goes on past the errors
(``allow_errors``), so the lab's own clean-up cell still removes what it made.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.labs.test_labs import CELL_TIMEOUT, LABS_DIR, _kernel_is_ours, failed_checks, solutions_for

LAB = LABS_DIR / "04-layers-and-copy-on-write.ipynb"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

NO_WHITEOUTS = '''\
"""Test only (tests/labs/test_lab_breaks.py): the engine writes layers without whiteouts."""
from sandbox.image import tarlayer
from sandbox.image.tarlayer import writing

_write_tree = writing.write_tree


def write_tree_without_whiteouts(root, out, *, paths=None, deleted=(), opaque=(), epoch=None):
    return _write_tree(root, out, paths=paths, epoch=epoch)


# write_overlay_upper calls the module's name; vfs.write_diff imports the package's.
writing.write_tree = tarlayer.write_tree = write_tree_without_whiteouts
'''

PROBE = "from sandbox.image import tarlayer\nprint('write_tree in this kernel:', tarlayer.write_tree.__name__)"


def _outputs(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


@pytest.mark.timeout(3 * CELL_TIMEOUT)
@pytest.mark.skipif(not LAB.exists(), reason="lab 04 is not in labs/")
def test_lab04_goes_red_without_whiteouts(sandbox_root: Path, tmp_path: Path, monkeypatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    _kernel_is_ours()
    patch = tmp_path / "no-whiteouts"
    patch.mkdir()
    (patch / "sitecustomize.py").write_text(NO_WHITEOUTS)
    # The kernel (and the supervisor it starts) inherit this environment.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(patch), os.environ.get("PYTHONPATH")) if p))
    scratch = sandbox_root / "tmp-lab"     # the lab's temp dirs below the store: the fixture finds leaked mounts
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))

    nb = nbformat.read(LAB, as_version=4)
    solutions = solutions_for(LAB)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("exercise") in solutions:
            cell.source = solutions[cell.metadata["exercise"]]
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(LABS_DIR)}})
    try:
        client.execute()
    finally:
        from sandbox import Engine
        from tests.integration.container_env import clean_engine
        if (sandbox_root / "supervisor.sock").exists() or any(sandbox_root.glob("containers/*")):
            clean_engine(Engine(sandbox_root))

    assert "write_tree_without_whiteouts" in _outputs(nb.cells[-1]), \
        "the kernel did not load the patch, so this run proves nothing"
    errors = [(o.get("ename"), ANSI.sub("", o.get("evalue", "")))
              for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert ("AssertionError", "the deletion is a whiteout entry in the layer's tar") in errors, \
        f"the teaching assert on the rm step's layer should have failed; errors: {errors}"
    failed = failed_checks(nb)
    for name in ("lab04-nocache-", "lab04-fresh-"):
        assert any(f.startswith(f"✗ {name}") for f in failed), \
            f"the check of {name}... should show ✗ without whiteouts; failed checks: {failed}"
    # Nothing else broke the lab: the clean-up cell ran to the end.
    assert "removed; mounts undone" in _outputs(nb.cells[-2])
