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

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="make browser installs selenium")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR") or Path(__file__).parent / "artifacts")

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path, sandbox_root):
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, work / "demo.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "jcfg"), JUPYTER_RUNTIME_DIR=str(tmp_path / "jrt"))
    log = open(tmp_path / "jupyter.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={work}", "--allow-root",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.disable_check_xsrf=True"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail((tmp_path / "jupyter.log").read_text()[-2000:])
                time.sleep(0.2)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        from sandbox import Engine
        from tests.integration.container_env import clean_engine
        clean_engine(Engine(sandbox_root))


def test_widgets_render_in_jupyterlab(lab):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, token = lab
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1800", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    try:
        driver.get(f"{base}/lab/tree/demo.ipynb?token={token}")
        wait = WebDriverWait(driver, 120)
        wait.until(lambda d: d.execute_script(
            "return !!(window.jupyterapp && window.jupyterapp.shell.currentWidget"
            " && window.jupyterapp.shell.currentWidget.sessionContext"
            " && window.jupyterapp.shell.currentWidget.sessionContext.session"
            " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel)"))
        time.sleep(1)
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
    finally:
        driver.quit()
