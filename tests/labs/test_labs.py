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
    return solutions_for_dir(LABS_DIR, lab)


def solutions_for_dir(labs_dir: Path, lab: Path) -> dict[str, str]:
    """:func:`solutions_for` from a copy of the labs (another user's, a container's)."""
    import importlib.util
    path = labs_dir / "solutions" / ("lab" + lab.stem.replace("-", "_") + ".py")
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location(f"lab_solutions_{lab.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.SOLUTIONS)


def inject(nb, solutions: dict[str, str]) -> None:
    """Put each exercise's solution in place of the student's cell.

    A ``%%needs ...`` first line of the student's cell stays in front of the
    solution, so an exercise that needs more than the mode gives is skipped
    with its one line, solved or not.
    """
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("exercise") in solutions:
            first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
            solution = solutions[cell.metadata["exercise"]]
            keep = first.startswith("%%needs") and not solution.lstrip().startswith("%%needs")
            cell.source = (first + "\n" + solution) if keep else solution


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


def bare_figures(nb) -> list[str]:
    """Outputs that are a figure's text form with no picture beside it (a bare Figure as a cell's value)."""
    out = []
    for index, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []) if cell.cell_type == "code" else ():
            data = o.get("data") or {}
            text = data.get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            if text.startswith("<Figure size") and "image/png" not in data:
                out.append(f"cell {index}: {text}")
    return out


FIGURE_CALLS = ("display(fig", "plt.show(", ".show_for(", "plot_stats(")


def figures_without_pictures(nb) -> list[str]:
    """Cells that draw a figure (``display(fig)``, ``plt.show()``, a monitor's ``show_for``) but left
    no image/png output: in JupyterLab and in the saved notebook they would show no picture.
    A cell skipped by ``%%needs`` draws nothing and is not counted."""
    out = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not any(call in cell.source for call in FIGURE_CALLS):
            continue
        outputs = cell.get("outputs", [])
        if any("○ skipped" in (o.get("text") or "") for o in outputs):
            continue
        if not any("image/png" in (o.get("data") or {}) for o in outputs):
            out.append(f"cell {index}: {cell.source.splitlines()[0][:80]}")
    return out


def use_the_store_as_a_class_would(root: Path) -> None:
    """What a store a class has used holds: other tags, an untagged image, a stopped container, a volume."""
    from sandbox import Engine
    from tests.integration.container_env import stop_supervisor
    engine = Engine(root)
    engine.images.bootstrap("busybox")
    engine.images.tag("busybox", "earlier/class-image:v1")
    context = root.parent / "earlier-context"
    context.mkdir()
    for n in (1, 2):   # the second build takes the tag: the first stays, untagged, in index.json
        (context / "Dockerfile").write_text(f"FROM busybox\nRUN echo {n} > /n\n")
        engine.build(str(context), tags=["earlier/rebuilt:latest"])
    engine.volumes.create("earlier-volume")
    engine.containers.create("busybox", ["true"], name="earlier-container")
    stop_supervisor(engine)


def inventory(root: Path) -> dict[str, Any]:
    """The store's images (id and tags), containers, volumes and networks: what a lab must give back."""
    from sandbox import Engine
    engine = Engine(root)
    return {
        "images": sorted((i.id, tuple(sorted(i.tags))) for i in engine.images.list(all=True)),
        "containers": sorted(c.name for c in engine.containers.list(all=True)),
        "volumes": sorted(v.name for v in engine.volumes.list()),
        "networks": sorted(n.name for n in engine.networks.list()),
    }


@pytest.mark.timeout(5 * CELL_TIMEOUT)
@pytest.mark.parametrize("lab", PARAMS)
def test_lab(lab: Path, sandbox_root, monkeypatch):
    """Solutions in place, in a store a class has used, twice: every check ✓, figures as pictures,
    and the store given back as the lab found it."""
    import nbformat
    solutions = solutions_for(lab)
    missing = set(exercises(nbformat.read(lab, as_version=4))) - set(solutions)
    assert not missing, f"{lab.name}: exercises without a solution in labs/solutions: {sorted(missing)}"
    use_the_store_as_a_class_would(sandbox_root)
    before = inventory(sandbox_root)
    try:
        for attempt in ("first", "second"):
            nb = _execute(lab, sandbox_root, monkeypatch, solutions=solutions, scratch=f"tmp-lab-{attempt}",
                          cleanup=False)
            if solutions:
                failed = failed_checks(nb)
                assert not failed, (f"{lab.name} ({attempt} run): with the solutions in place these checks "
                                    "failed:\n" + "\n".join(failed))
            assert not bare_figures(nb), f"{lab.name}: a figure shows as text, not a picture: {bare_figures(nb)}"
            assert not figures_without_pictures(nb), \
                f"{lab.name}: cells that draw but left no image/png: {figures_without_pictures(nb)}"
            after = inventory(sandbox_root)
            left = {k: sorted(set(after[k]) ^ set(before[k])) for k in before if after[k] != before[k]}
            assert not left, (f"{lab.name} ({attempt} run) did not give the store back as it found it; its "
                              f"clean-up must remove what it made (untagged images by id too): {left}")
    finally:
        _clean(sandbox_root)


def _clean(root: Path) -> None:
    """Remove every container of the store and stop its supervisor (after a lab, failed or not)."""
    from sandbox import Engine
    from tests.integration.container_env import clean_engine
    if (root / "supervisor.sock").exists() or any(root.glob("containers/*")):
        clean_engine(Engine(root))


def _execute(lab: Path, sandbox_root: Path, monkeypatch: Any, solutions: dict[str, str],
             scratch: str = "tmp-lab", cleanup: bool = True) -> Any:
    import nbformat
    from nbclient import NotebookClient

    _kernel_is_ours()
    # The lab's scratch folders (tempfile) go below the test's store too, so that a
    # lab failing half-way has its mounts found and removed by the fixture.
    scratch_dir = sandbox_root / scratch
    scratch_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch_dir))
    nb = nbformat.read(lab, as_version=4)
    inject(nb, solutions)
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
        if cleanup or failure:   # else the caller looks at what the lab left, then cleans
            _clean(sandbox_root)
    if failure:  # outside the except block, so the report is not chained
        pytest.fail(failure, pytrace=False)
    return nb


COURSE = [p for p in LABS if re.match(r"\d\d-", p.name)]


@pytest.mark.parametrize("lab", [pytest.param(p, id=p.stem) for p in COURSE])
def test_every_course_lab_has_three_exercises_with_solutions_outside_the_notebook(lab: Path):
    import nbformat
    nb = nbformat.read(lab, as_version=4)
    names = exercises(nb)
    assert len(names) >= 3, f"{lab.name}: {len(names)} exercise(s) ({names}); every lab has at least three"
    assert len(set(names)) == len(names), f"{lab.name}: an exercise name is used twice: {names}"
    solutions = solutions_for(lab)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("exercise") in solutions:
            assert cell.source.strip() != solutions[cell.metadata["exercise"]].strip(), \
                f"{lab.name}: exercise {cell.metadata['exercise']} holds its own solution"
