"""The opt-in browser tier (``make browser``): our widgets rendered by a real JupyterLab.

JupyterLab is started by the test on 127.0.0.1 with a token, a notebook with a
LayerExplorer and a ResourceMonitor is opened in headless Chromium (Debian's
chromium and chromium-driver, driven by Selenium pointed at /usr/bin: nothing
is downloaded), all cells run, and the test waits until the widgets are in the
page: the layer list (a ``<select>``), the tree of the chosen layer, and the
monitor's plot as an image.  A screenshot is saved as an artifact
(``$ARTIFACTS_DIR`` or ``tests/browser/artifacts``).
"""

from __future__ import annotations

import time

import nbformat
import pytest

from tests.browser.browser_env import ARTIFACTS, CHROMIUM, DRIVER, chromium, jupyterlab, wait_for_kernel

pytest.importorskip("selenium.webdriver", reason="make browser installs selenium")

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian's chromium and chromium-driver (make browser installs them)")

CELLS = [
    "%load_ext sandbox\nfrom sandbox import Engine\nengine = Engine()\nengine.images.bootstrap('busybox')",
    "%%dockerfile -t browser-demo\nFROM busybox\nRUN mkdir /data && echo hello > /data/greeting\n",
    "from magics import LayerExplorer, ResourceMonitor\nLayerExplorer('browser-demo', compare='busybox')",
    "c = engine.containers.run('busybox', ['sh', '-c', 'for f in a b c; do dd if=/dev/zero "
    "of=/dev/shm/$f bs=1M count=8 2>/dev/null; sleep 1; done'], detach=True, mem_limit='64m')\n"
    "monitor = ResourceMonitor(c)\nmonitor",
]


@pytest.fixture
def lab(tmp_path, sandbox_root):
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, work / "demo.ipynb")
    try:
        with jupyterlab(work, tmp_path) as server:
            yield server
    finally:
        from sandbox import Engine
        from tests.integration.container_env import clean_engine
        clean_engine(Engine(sandbox_root))


def test_widgets_render_in_jupyterlab(lab):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, token = lab
    with chromium() as driver:
        driver.get(f"{base}/lab/tree/demo.ipynb?token={token}")
        wait_for_kernel(driver)
        wait = WebDriverWait(driver, 120)
        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        select = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".widget-select select")))
        options_text = [o.text for o in select.find_elements(By.TAG_NAME, "option")]
        assert len(options_text) == 2 and "mkdir /data" in options_text[-1]
        wait.until(lambda d: "greeting" in d.find_element(By.CSS_SELECTOR, ".widget-html-content").text
                   or any("greeting" in e.get_attribute("innerHTML")
                          for e in d.find_elements(By.CSS_SELECTOR, ".widget-html-content")))
        wait.until(lambda d: any((img.get_attribute("src") or "").startswith(("blob:", "data:"))
                                 for img in d.find_elements(By.CSS_SELECTOR, ".widget-image")))
        time.sleep(3)   # let the monitor draw a few seconds of samples
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "jupyterlab-widgets.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
