"""Every lab in the two lesser modes: rootless, and no namespaces at all (Binder, simulated).

A class may run the labs without root: on a laptop as a normal user (rootless
mode, user namespaces with the user's subordinate ranges) or on Binder (no
namespaces: Docker's seccomp profile refuses unshare).  Each lab must then
still run top to bottom with its solutions in place: the cells that need
more than the mode gives print one line (``○ skipped: ...``), the checks that
need it show ○, and nothing raises or shows ✗.

* rootless: a user made by the test (useradd, subordinate ranges) runs the
  labs from a copy in their home, in the rootless kernel that
  ``python -m sandbox.rootless --install-kernel`` installs, with their own
  default store;
* Binder: uid 1000 inside a container of our own engine with Docker's
  default seccomp profile and capabilities, the host's /usr and this checkout
  bound read-only (as ``test_binder_mode.py`` does), runs the same.

All labs run once per mode in a module fixture (``tests/labs/runner.py``
writes a report); each lab is then one test reading its part of the report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import requires_root
from tests.integration.container_env import engine  # noqa: F401 - a fixture
from tests.integration.test_rootless import SYSTEM_PYTHON, _python_works, user  # noqa: F401 - a fixture

REPO = Path(__file__).resolve().parents[2]
# SANDBOX_TEST_LABS=12-networking.ipynb,13-... narrows the run while a lab is being written.
LABS = [name for name in sorted(p.name for p in (REPO / "labs").glob("*.ipynb"))
        if not os.environ.get("SANDBOX_TEST_LABS") or name in os.environ["SANDBOX_TEST_LABS"].split(",")]
RUN_TIMEOUT = 3600

pytestmark = [requires_root, pytest.mark.lab]


def copy_labs(dest: Path, uid: int, gid: int) -> Path:
    labs = dest / "labs"
    shutil.copytree(REPO / "labs", labs, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    for path in [labs, *labs.rglob("*")]:
        os.chown(path, uid, gid)
    return labs


def assert_lab_ran(report: dict, lab: str, mode: str) -> None:
    result = report.get(lab)
    assert result is not None, f"{lab} did not run in {mode} mode (the runner stopped before it)"
    print(f"{lab} in {mode} mode: {result['seconds']} s, {result['skipped_checks']} checks skipped, "
          f"{len(result['skipped_lines'])} cells skipped")
    assert result["mode_line"].startswith(f"sandbox: {mode} mode"), result["mode_line"]
    assert not result["error"], f"{lab} in {mode} mode: {result['error']}"
    assert not result["failed"], f"{lab} in {mode} mode, checks that failed:\n" + "\n".join(result["failed"])


@pytest.fixture(scope="module")
def rootless_report(user):  # noqa: F811
    user.run(SYSTEM_PYTHON, "-m", "sandbox.rootless", "--install-kernel")
    labs = copy_labs(user.home, user.pw.pw_uid, user.pw.pw_gid)
    tmp = user.home / "tmp"
    tmp.mkdir()
    os.chown(tmp, user.pw.pw_uid, user.pw.pw_gid)
    user.env["TMPDIR"] = str(tmp)
    report = user.home / "report.json"
    r = user.run(SYSTEM_PYTHON, "-m", "tests.labs.runner", str(labs), str(report), *LABS, check=False,
                 timeout=RUN_TIMEOUT)
    assert report.exists(), f"the lab runner wrote no report:\n{r.stdout}\n{r.stderr}"
    # The user's supervisor and namespace holder stop with the user fixture.
    return json.loads(report.read_text())


@pytest.mark.timeout(RUN_TIMEOUT)
@pytest.mark.parametrize("lab", LABS)
def test_lab_in_rootless_mode(rootless_report, lab):
    assert_lab_ran(rootless_report, lab, "rootless")


@pytest.fixture(scope="module")
def binder_report(engine, tmp_path_factory):  # noqa: F811
    if shutil.which("proot") is None:
        pytest.skip("needs proot (apt install proot)")
    if not _python_works():
        pytest.skip(f"needs {SYSTEM_PYTHON} of this Python's version")
    home = tmp_path_factory.mktemp("binder-home")
    os.chown(home, 1000, 1000)
    copy_labs(home, 1000, 1000)
    purelib = sysconfig.get_paths()["purelib"]
    script = (f"{SYSTEM_PYTHON} -m tests.labs.runner /home/jovyan/labs /home/jovyan/report.json {' '.join(LABS)} "
              "> /home/jovyan/runner.log 2>&1; /usr/bin/python3 -m sandbox system supervisor stop >/dev/null 2>&1")
    try:
        engine.containers.run(
            "busybox", ["sh", "-c", script], remove=True, user="1000:1000", working_dir="/home/jovyan",
            environment={"HOME": "/home/jovyan", "PYTHONPATH": f"{REPO}:{purelib}", "LANG": "C.UTF-8",
                         "PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "TMPDIR": "/tmp"},
            tmpfs={"/tmp": "rw,exec,mode=1777"},
            volumes={"/usr": {"bind": "/usr", "mode": "ro"}, "/lib": {"bind": "/lib", "mode": "ro"},
                     "/lib64": {"bind": "/lib64", "mode": "ro"},
                     str(REPO): {"bind": str(REPO), "mode": "ro"}, str(home): {"bind": "/home/jovyan", "mode": "rw"}})
    except subprocess.TimeoutExpired:
        pytest.fail("the labs did not finish in the Binder simulation")
    report = home / "report.json"
    log = (home / "runner.log").read_text() if (home / "runner.log").exists() else ""
    assert report.exists(), f"the lab runner wrote no report:\n{log}"
    data = json.loads(report.read_text())
    shutil.rmtree(home, ignore_errors=True)
    return data


@pytest.mark.timeout(RUN_TIMEOUT)
@pytest.mark.parametrize("lab", LABS)
def test_lab_on_binder(binder_report, lab):
    assert_lab_ran(binder_report, lab, "no-namespaces")
