"""Binder, simulated: the kit as uid 1000 inside a container of our own engine, where unshare(2) is refused.

Binder runs the notebook as an unprivileged user in a Docker container with
Docker's default seccomp profile and capabilities, so no namespace can be
made.  The same holds in a container of ours (the same profile, the same 14
capabilities), started here with the host's /usr and /lib bound read-only for
Python and proot, this checkout and its venv bound read-only, and a home
directory of its own.  Inside, the engine must say ``no-namespaces`` and still
build (COPY and RUN, with the cache), run, exec, log, diff and commit through
proot on the vfs driver, and refuse what needs more in one line each.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
import textwrap
from pathlib import Path

import pytest

from tests.conftest import requires_root
from tests.integration.container_env import engine  # noqa: F401

pytestmark = [requires_root, pytest.mark.skipif(shutil.which("proot") is None,
                                                reason="needs proot (apt install proot)")]

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    S="/usr/bin/python3 -m sandbox"
    cd "$HOME"
    $S info | sed -n 's/^ Privilege Mode: /MODE /p'
    $S bootstrap busybox --binary /usr/bin/busybox >/dev/null && echo BOOTSTRAPPED
    mkdir -p ctx && echo hello > ctx/f.txt
    printf 'FROM busybox\\nCOPY f.txt /f.txt\\nRUN echo built > /built && rm /bin/vi\\nCMD ["cat", "/f.txt", "/built"]\\n' > ctx/Dockerfile
    $S build -q -t b1 ctx >/dev/null && echo BUILT
    echo "RUN-OUT $($S run --rm b1 | tr '\\n' ' ')"
    echo "HITS $($S build -t b1 ctx | grep -c 'Using cache')"
    echo "VI $($S run --rm b1 sh -c 'test -e /bin/vi && echo present || echo gone')"
    $S run -d --name d1 busybox sh -c 'echo log-line; sleep 30' >/dev/null
    sleep 0.5
    echo "LOGS $($S logs d1)"
    echo "EXEC $($S exec d1 sh -c 'echo x > /new; echo ok')"
    echo "DIFF $($S diff d1 | tr '\\n' ' ')"
    $S commit d1 c1 >/dev/null && echo "COMMITTED $($S run --rm c1 cat /new)"
    echo "PAUSE $($S pause d1 2>&1)"
    echo "MEMORY $($S run --rm --memory 64m busybox echo ran 2>&1 | tr '\\n' ' ')"
    echo "NONE $($S run --rm --network none busybox true 2>&1)"
    $S stop -t 1 d1 >/dev/null
    echo "STOPPED $($S inspect -f '{{.State.ExitCode}}' d1)"
    $S rm d1 >/dev/null && echo REMOVED
    $S system supervisor stop >/dev/null
""")


def test_the_kit_where_namespaces_are_refused(engine, tmp_path):  # noqa: F811
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, 1000, 1000)
    (home / "script.sh").write_text(SCRIPT)
    purelib = sysconfig.get_paths()["purelib"]
    out = engine.containers.run(
        "busybox", ["sh", "/home/jovyan/script.sh"], remove=True, user="1000:1000", working_dir="/home/jovyan",
        environment={"HOME": "/home/jovyan", "PYTHONPATH": f"{REPO}:{purelib}", "LANG": "C.UTF-8"},
        tmpfs={"/tmp": "rw,exec,mode=1777"},   # as Binder's: proot puts its loader there (the busybox image has none)
        volumes={"/usr": {"bind": "/usr", "mode": "ro"}, "/lib": {"bind": "/lib", "mode": "ro"},
                 "/lib64": {"bind": "/lib64", "mode": "ro"}, str(REPO): {"bind": str(REPO), "mode": "ro"},
                 str(home): {"bind": "/home/jovyan", "mode": "rw"}}).decode()
    lines = dict(line.split(" ", 1) if " " in line else (line, "") for line in out.splitlines())
    assert lines.get("MODE") == "no-namespaces", out
    assert "BOOTSTRAPPED" in lines and "BUILT" in lines, out
    assert lines["RUN-OUT"].split() == ["hello", "built"], out
    assert lines["HITS"] == "3", out            # FROM aside, every step from the cache
    assert lines["VI"] == "gone", out           # a RUN's deletion is in the layer
    assert lines["LOGS"] == "log-line", out
    assert lines["EXEC"] == "ok", out
    assert "A /new" in lines["DIFF"], out
    assert lines["COMMITTED"] == "x", out
    assert "pause needs a cgroup freezer" in lines["PAUSE"], out
    assert lines["MEMORY"].startswith("WARNING: no namespaces: limits not applied (--memory)"), out
    assert lines["MEMORY"].split()[-1] == "ran", out
    assert "needs a network namespace" in lines["NONE"], out
    assert lines["STOPPED"] == "143", out
    assert "REMOVED" in lines, out
