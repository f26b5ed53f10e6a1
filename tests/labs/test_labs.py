"""Every notebook in labs/ executed top to bottom in a real kernel.

Labs assert their own teaching claims in code, so a lab that runs green
proves the engine did what the lab says.  Each lab gets a fresh, empty store
($SANDBOX_ROOT, from the ``sandbox_root`` fixture); the kernel inherits it
because nbclient starts the kernel with this process's environment.

Exercises: a cell marked ``{"tags": ["exercise"], "exercise": NAME}`` gets
the solution from ``labs/solutions/lab<NN>_<name>.py`` before the run, and
every ``check(...)`` of the lab must then show ✓ -- the proof that each
exercise can be solved.  A second run, as a student gets the notebook (no
solution, Run All), must end without a traceback: the checks say what is
still missing instead.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

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


def solutions_for(lab: Path) -> dict[str, str]:
    """The lab's ``SOLUTIONS`` (exercise name -> cell source); {} when it has none."""
    import importlib.util
    path = LABS_DIR / "solutions" / ("lab" + lab.stem.replace("-", "_") + ".py")
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location(f"lab_solutions_{lab.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.SOLUTIONS)


def exercises(nb) -> list[str]:
    return [c.metadata["exercise"] for c in nb.cells if c.cell_type == "code" and "exercise" in c.metadata]


def failed_checks(nb) -> list[str]:
    """The text of every check that showed ✗."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []) if cell.cell_type == "code" else ():
            text = (o.get("data") or {}).get("text/plain", "")
            if isinstance(text, list):
                text = "".join(text)
            if text.startswith("✗ "):
                out.append(text)
    return out


STUDENT_PARAMS = [pytest.param(p, id=p.stem) for p in LABS if '"exercise"' in p.read_text()] or \
    [pytest.param(None, id="no-exercises", marks=pytest.mark.skip(reason="no lab has exercise cells yet"))]


@pytest.mark.timeout(3 * CELL_TIMEOUT)
@pytest.mark.parametrize("lab", STUDENT_PARAMS)
def test_lab_as_a_student_gets_it(lab: Path, sandbox_root, monkeypatch):
    """No solution, Run All: no traceback anywhere; the exercises' checks are ✗, not errors."""
    nb = _execute(lab, sandbox_root, monkeypatch, solutions={})
    assert failed_checks(nb), f"{lab.name}: with no answers given, some check should say what is missing"


@pytest.mark.timeout(3 * CELL_TIMEOUT)
@pytest.mark.parametrize("lab", PARAMS)
def test_lab(lab: Path, sandbox_root, monkeypatch):
    import nbformat
    solutions = solutions_for(lab)
    missing = set(exercises(nbformat.read(lab, as_version=4))) - set(solutions)
    assert not missing, f"{lab.name}: exercises without a solution in labs/solutions: {sorted(missing)}"
    nb = _execute(lab, sandbox_root, monkeypatch, solutions=solutions)
    if solutions:   # a lab whose exercises are marked (older labs still show ✗ before their inline answers)
        failed = failed_checks(nb)
        assert not failed, f"{lab.name}: with the solutions in place these checks failed:\n" + "\n".join(failed)


def _execute(lab: Path, sandbox_root: Path, monkeypatch: Any, solutions: dict[str, str]) -> Any:
    import nbformat
    from nbclient import NotebookClient

    _kernel_is_ours()
    # The lab's scratch folders (tempfile) go below the test's store too, so that a
    # lab failing half-way has its mounts found and removed by the fixture.
    scratch = sandbox_root / "tmp-lab"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    nb = nbformat.read(lab, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("exercise") in solutions:
            cell.source = solutions[cell.metadata["exercise"]]
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
    return nb
