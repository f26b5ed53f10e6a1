"""Every notebook in labs/ executed top to bottom in a real kernel.

Labs assert their own teaching claims in code, so a lab that runs green
proves the engine did what the lab says.  Each lab gets a fresh, empty store
($SANDBOX_ROOT, from the ``sandbox_root`` fixture); the kernel inherits it
because nbclient starts the kernel with this process's environment.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

LABS_DIR = Path(__file__).resolve().parents[2] / "labs"
LABS = sorted(LABS_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 600
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

if LABS:
    PARAMS = [pytest.param(p, id=p.stem) for p in LABS]
else:
    PARAMS = [pytest.param(None, id="no-labs",
                           marks=pytest.mark.skip(reason="no labs yet"))]


def _kernel_is_ours() -> None:
    """The python3 kernel must run this interpreter (the venv), not another."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    exe = spec.argv[0]
    # jupyter_client replaces a bare python/python3/python3.X with sys.executable.
    bare = {"python", f"python{sys.version_info[0]}",
            "python{}.{}".format(*sys.version_info[:2])}
    if exe not in bare and os.path.realpath(exe) != os.path.realpath(sys.executable):
        pytest.fail(f"the python3 kernelspec in {spec.resource_dir} runs {exe}, "
                    f"not {sys.executable}; run the tests from the .venv (make test)")


def _failure(nb, path: Path, exc: Exception) -> str:
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else ():
            if out.get("output_type") == "error":
                tb = ANSI.sub("", "\n".join(out.get("traceback", [])))
                return (f"{path.name}: cell {index} raised "
                        f"{out.get('ename')}: {out.get('evalue')}\n"
                        f"--- cell source ---\n{cell.source}\n"
                        f"--- traceback ---\n{tb}")
    return f"{path.name}: {type(exc).__name__}: {ANSI.sub('', str(exc))}"


@pytest.mark.timeout(3 * CELL_TIMEOUT)
@pytest.mark.parametrize("lab", PARAMS)
def test_lab(lab: Path, sandbox_root, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    _kernel_is_ours()
    # The lab's scratch folders (tempfile) go below the test's store too, so that a
    # lab failing half-way has its mounts found and removed by the fixture.
    scratch = sandbox_root / "tmp-lab"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    nb = nbformat.read(lab, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(LABS_DIR)}},
    )
    failure = None
    try:
        client.execute()
    except Exception as exc:  # CellExecutionError, CellTimeoutError, DeadKernelError
        failure = _failure(nb, lab, exc)
    finally:
        # A lab that ran containers started the store's supervisor; a lab's clean-up cell
        # removes its containers, and the supervisor goes with the store.
        from sandbox import Engine
        from tests.integration.container_env import clean_engine
        if (sandbox_root / "supervisor.sock").exists() or any(sandbox_root.glob("containers/*")):
            clean_engine(Engine(sandbox_root))
    if failure:  # outside the except block, so the report is not chained
        pytest.fail(failure, pytrace=False)
