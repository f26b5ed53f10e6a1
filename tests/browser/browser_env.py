"""Plumbing of the browser tier: a JupyterLab server started for one test, headless Chromium.

Both use what is on this machine: the venv's JupyterLab, Debian's chromium and
chromium-driver (Selenium pointed at /usr/bin; nothing is downloaded).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.api_env import stop_process

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR") or Path(__file__).parent / "artifacts")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyterlab(root_dir: Path, state: Path, env: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """JupyterLab on 127.0.0.1 serving ``root_dir``, with a token; yields (base URL, token).

    Its config, runtime and user-settings folders are below ``state``, so the
    user's own JupyterLab settings play no part (and the news toast is off).  The server (and so every
    kernel it starts) inherits this process's environment plus ``env``:
    $SANDBOX_ROOT from the ``sandbox_root`` fixture reaches the kernels.
    The server is stopped on the way out, whatever happened.
    """
    port, token = _free_port(), secrets.token_hex(16)
    # No "Would you like to get notified about official Jupyter news?" toast over the outputs.
    notification = state / "jsettings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text('{"fetchNews": "false", "checkForUpdates": false}\n')
    full_env = dict(os.environ, JUPYTER_CONFIG_DIR=str(state / "jcfg"), JUPYTER_RUNTIME_DIR=str(state / "jrt"),
                    JUPYTERLAB_SETTINGS_DIR=str(state / "jsettings"),
                    JUPYTERLAB_WORKSPACES_DIR=str(state / "jworkspaces"), **(env or {}))
    log_path = state / "jupyter.log"
    log = open(log_path, "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={root_dir}", "--allow-root",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.disable_check_xsrf=True"],
        stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(log_path.read_text()[-2000:])
                time.sleep(0.2)
        yield base, token
    finally:
        stop_process(server, 20)   # the server shuts its kernels down on SIGTERM
        log.close()


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1800) -> Iterator:
    """A headless Chromium driven by Selenium; quit on the way out."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    assert CHROMIUM and DRIVER, "the tests skip when chromium or chromium-driver is missing"
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_kernel(driver, timeout: float = 120) -> None:
    """Until the notebook in front has a kernel (then Run All reaches it)."""
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(
        "return !!(window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel)"))
    time.sleep(1)
