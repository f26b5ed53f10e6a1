"""Every lab as a new user meets it: opened in a real JupyterLab, Run All, looked at in the page.

The lab (solutions injected as ``tests/labs/test_labs.py`` does, so every
exercise cell has something to run) is written into a copy of the whole
``labs/`` folder -- labs import files next to them (``lab10_runtime.py``,
``lab03-context/``) -- in the JupyterLab root, a temp dir.  The server, and so
the kernel, inherits the test's private store ($SANDBOX_ROOT) and a $TMPDIR
below it.  Headless Chromium opens the lab, runs ``notebook:run-all-cells``
and waits until the kernel is idle and every code cell has an execution count.
Then, in the page:

* no traceback: JupyterLab gives an error output no class of its own -- it is a
  ``.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]`` like
  any stderr text -- so both the page (stderr holding "Traceback") and the
  notebook model (an output of type ``error``) are searched;
* every matplotlib figure is a picture: the output areas' ``<img>`` have a
  decoded image, and no output's text starts with ``<Figure size``;
* no widget shown as its text form or as "Error displaying widget", and no raw
  ANSI escape in the page's text.

Screenshots of the whole notebook, one per screenful, go to ``$ARTIFACTS_DIR``
or ``tests/browser/artifacts`` (``lab-<lab>-p<NN>.png``), with
``lab-<lab>.json``: per output, its cell, kind, height and first text -- what
to read when a lab looks wrong on the projector.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from tests.browser.browser_env import ARTIFACTS, CHROMIUM, DRIVER, chromium, jupyterlab, wait_for_kernel
from tests.labs.test_labs import LABS, LABS_DIR, inject, solutions_for

pytest.importorskip("selenium.webdriver", reason="make browser installs selenium")

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian's chromium and chromium-driver (make browser installs them)")

RUN_TIMEOUT = 600          # the slowest lab runs in about 100 s here
MAX_PAGES = 60             # screenshots per lab
WIDTH, HEIGHT = 1400, 1800

# The notebook's state, as the page's model has it: kernel status and, per code cell,
# its execution count and whether an output of it is an error.
STATE_JS = """
const nb = window.jupyterapp.shell.currentWidget;
const kernel = nb.sessionContext.session && nb.sessionContext.session.kernel;
const cells = nb.content.model.cells;
const out = {status: kernel ? kernel.status : 'none', cells: []};
for (let i = 0; i < cells.length; i++) {
  const c = cells.get(i);
  if (c.type !== 'code') continue;
  const errors = [];
  for (let j = 0; j < c.outputs.length; j++) {
    const o = c.outputs.get(j).toJSON();
    if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
  }
  out.cells.push({index: i, count: c.executionCount, errors: errors});
}
return out;
"""

# Every output area of the page, with the cell it belongs to.
OUTPUTS_JS = """
const nb = window.jupyterapp.shell.currentWidget;
const res = [];
nb.content.widgets.forEach((w, i) => {
  if (w.model.type !== 'code') return;
  w.node.querySelectorAll('.jp-OutputArea-output').forEach((el, j) => {
    const text = el.textContent || '';   // not innerText: it is '' for a cell content-visibility skips
    res.push({
      cell: i, output: j, mime: el.getAttribute('data-mime-type') || '',
      height: el.offsetHeight, chars: text.length, text: text.slice(0, 300),
      traceback: el.matches('.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]')
                 && text.includes('Traceback'),
      escape: text.includes('\\u001b'),
      imgs: Array.from(el.querySelectorAll('img')).map(img => ({
        src: (img.getAttribute('src') || '').slice(0, 30), complete: img.complete,
        width: img.naturalWidth, height: img.naturalHeight})),
    });
  });
});
return res;
"""

# The notebook's scrolling element (JupyterLab 4: the windowed panel's outer node).
SCROLLER_JS = """
const nb = window.jupyterapp.shell.currentWidget;
return nb.node.querySelector('.jp-WindowedPanel-outer') || nb.content.node;
"""

# Where the scroller is, how tall it is, and where the last cell ends (below it is only the
# notebook's scroll-past-end padding: no page of blank screen).
END_JS = """
const s = arguments[0], widgets = window.jupyterapp.shell.currentWidget.content.widgets;
const last = widgets[widgets.length - 1].node.getBoundingClientRect();
return [s.scrollTop, s.clientHeight, s.scrollTop + last.bottom - s.getBoundingClientRect().top];
"""

WIDGET_AS_TEXT = re.compile(r"^(HBox|VBox|Box|GridBox|Tab|Accordion|Output|HTML|Image|Dropdown|Select)\(")


def _params():
    if not LABS:
        return [pytest.param(None, id="no-labs", marks=pytest.mark.skip(reason="no labs yet"))]
    return [pytest.param(p, id=p.stem) for p in LABS]


@pytest.fixture
def served_lab(request, tmp_path, sandbox_root):
    """(base URL, token, the lab's path below the root): a copy of labs/ with this lab's solutions in place."""
    lab: Path = request.param
    work = tmp_path / "work"
    shutil.copytree(LABS_DIR, work / "labs", ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    nb = nbformat.read(lab, as_version=4)
    inject(nb, solutions_for(lab))
    nbformat.write(nb, work / "labs" / lab.name)
    scratch = sandbox_root / "tmp-lab"   # the lab's tempfile folders, where the fixture finds leaked mounts
    scratch.mkdir()
    try:
        with jupyterlab(work, tmp_path, env={"TMPDIR": str(scratch)}) as (base, token):
            yield base, token, f"labs/{lab.name}"
    finally:
        from sandbox import Engine
        from tests.integration.container_env import clean_engine
        clean_engine(Engine(sandbox_root))


def _run_all(driver, timeout: float) -> dict:
    """Run All, then wait until every code cell ran (or one raised and Run All stopped) and the kernel is idle."""
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.monotonic() + timeout
    settled = 0
    while True:
        state = driver.execute_script(STATE_JS)
        if state["status"] in ("dead", "unknown"):
            pytest.fail(f"the kernel died: {state['status']}")
        done = all(c["count"] is not None for c in state["cells"])
        raised = any(c["errors"] for c in state["cells"])
        settled = settled + 1 if state["status"] == "idle" and (done or raised) else 0
        if settled >= 3:    # idle for three polls in a row: no cell is still queued
            return state
        if time.monotonic() > deadline:
            pending = [c["index"] for c in state["cells"] if c["count"] is None]
            pytest.fail(f"Run All did not finish in {timeout:.0f} s: kernel {state['status']}, "
                        f"cells not run: {pending}")
        time.sleep(1)


def _screenshots(driver, stem: str) -> list[Path]:
    """The notebook screenful by screenful (the left sidebar closed, as on a projector)."""
    scroller = driver.execute_script(SCROLLER_JS)
    shots, y = [], 0
    for page in range(1, MAX_PAGES + 1):
        driver.execute_script("arguments[0].scrollTop = arguments[1];", scroller, y)
        time.sleep(0.5)     # content-visibility: let the cells coming into view render
        shot = ARTIFACTS / f"lab-{stem}-p{page:02d}.png"
        driver.save_screenshot(str(shot))
        shots.append(shot)
        top, client, end = driver.execute_script(END_JS, scroller)
        if top + client >= end - 2:
            break
        y = top + client - 40   # a little overlap, so no line is cut in two unseen
    driver.execute_script("arguments[0].scrollTop = 0;", scroller)
    return shots


@pytest.mark.timeout(RUN_TIMEOUT + 300)
@pytest.mark.parametrize("served_lab", _params(), indirect=True)
def test_lab_runs_clean_in_jupyterlab(served_lab):
    from selenium.webdriver.support.ui import WebDriverWait

    base, token, path = served_lab
    stem = Path(path).stem
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob(f"lab-{stem}-p*.png"):
        old.unlink()
    with chromium(WIDTH, HEIGHT) as driver:
        driver.get(f"{base}/lab/tree/{path}?token={token}")
        wait_for_kernel(driver)
        driver.execute_script("window.jupyterapp.shell.collapseLeft();")
        started = time.monotonic()
        state = _run_all(driver, RUN_TIMEOUT)
        ran_in = time.monotonic() - started
        # Every cell is in the page (content-visibility keeps them attached); wait for the images to decode.
        WebDriverWait(driver, 30).until(lambda d: all(
            img["complete"] for o in d.execute_script(OUTPUTS_JS) for img in o["imgs"]))
        shots = _screenshots(driver, stem)
        outputs = driver.execute_script(OUTPUTS_JS)

    (ARTIFACTS / f"lab-{stem}.json").write_text(json.dumps(
        {"lab": path, "run_all_seconds": round(ran_in, 1), "screenshots": [s.name for s in shots],
         "outputs": outputs}, indent=1, ensure_ascii=False))

    raised = [f"cell {c['index']}: {e}" for c in state["cells"] for e in c["errors"]]
    assert not raised, f"{path}: Run All raised: {raised}"
    not_run = [c["index"] for c in state["cells"] if c["count"] is None]
    assert not not_run, f"{path}: cells with no execution count after Run All: {not_run}"
    tracebacks = [f"cell {o['cell']}: {o['text'][:200]}" for o in outputs if o["traceback"]]
    assert not tracebacks, f"{path}: a traceback in the page: {tracebacks}"
    bare = [f"cell {o['cell']}: {o['text'][:80]}" for o in outputs if o["text"].lstrip().startswith("<Figure size")]
    assert not bare, f"{path}: a figure shown as text, not a picture: {bare}"
    broken = [f"cell {o['cell']}: {img['src']}" for o in outputs for img in o["imgs"]
              if not img["src"].startswith(("data:", "blob:")) or img["width"] == 0]
    assert not broken, f"{path}: an image in the output that did not render: {broken}"
    as_text = [f"cell {o['cell']}: {o['text'][:80]}" for o in outputs
               if WIDGET_AS_TEXT.match(o["text"]) or o["text"].startswith("Error displaying widget")]
    assert not as_text, f"{path}: a widget shown as text: {as_text}"
    escapes = [f"cell {o['cell']}: {o['text'][:80]!r}" for o in outputs if o["escape"]]
    assert not escapes, f"{path}: raw ANSI escapes in the page: {escapes}"
    assert shots and all(s.stat().st_size > 10_000 for s in shots)
