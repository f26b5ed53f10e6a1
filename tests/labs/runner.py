"""Run labs outside pytest, as another user or inside a container, and report what each did.

    python -m tests.labs.runner LABS_DIR REPORT.json [LAB ...]

Each lab is executed top to bottom in the ``python3`` kernel (whatever that
kernel is for the user running this: the rootless kernel of
``sandbox.rootless --install-kernel``, or plain python inside a Binder-like
container), with its solutions injected as ``tests/labs/test_labs.py`` does.
The report lists per lab: the cell that raised (if any), the checks that
showed ✗, how many showed ○ (skipped for this mode) and the one-line
"○ skipped" messages cells printed.  The mode tests (``test_labs_modes.py``)
read it; nothing here asserts, so one lab's failure does not hide another's.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CELL_TIMEOUT = 600


def outputs_text(o: dict) -> str:
    if "text" in o:
        return o["text"] if isinstance(o["text"], str) else "".join(o["text"])
    text = (o.get("data") or {}).get("text/plain", "")
    return text if isinstance(text, str) else "".join(text)


def run_lab(path: Path, solutions: dict[str, str]) -> dict:
    import nbformat
    from nbclient import NotebookClient
    from tests.labs.test_labs import inject
    nb = nbformat.read(path, as_version=4)
    inject(nb, solutions)
    started = time.monotonic()
    error = ""
    try:
        NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the next lab still runs
        error = f"{type(exc).__name__}: {ANSI.sub('', str(exc))[-3000:]}"
    failed, skipped, lines = [], 0, []
    for index, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []) if cell.cell_type == "code" else ():
            text = outputs_text(o)
            if o.get("output_type") == "error":
                tb = ANSI.sub("", "\n".join(o.get("traceback", [])))[-3000:]
                error = f"cell {index} raised {o.get('ename')}: {o.get('evalue')}\n{cell.source}\n{tb}"
            elif text.startswith("✗ "):
                failed.append(f"cell {index}: {text}")
            elif text.startswith("○ ") and not text.startswith("○ skipped"):
                skipped += 1   # a check shown as skipped (the cell's own one line is counted below)
            for line in text.splitlines():
                if line.startswith("○ skipped"):
                    lines.append(line)
    return {"error": error, "failed": failed, "skipped_checks": skipped, "skipped_lines": lines,
            "mode_line": next((outputs_text(o).strip() for c in nb.cells if c.cell_type == "code"
                               for o in c.get("outputs", []) if outputs_text(o).startswith("sandbox:")), ""),
            "seconds": round(time.monotonic() - started, 1)}


def main(argv: list[str]) -> int:
    labs_dir, report = Path(argv[0]), Path(argv[1])
    from tests.labs.test_labs import solutions_for_dir
    names = argv[2:] or sorted(p.name for p in labs_dir.glob("*.ipynb"))
    results = {}
    for name in names:
        lab = labs_dir / name
        results[name] = run_lab(lab, solutions_for_dir(labs_dir, lab))
        report.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
