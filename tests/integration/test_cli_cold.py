"""The cold ``sandbox ps``/``images``/``inspect``/``version``: the same output, a fraction of the imports.

A new ``sandbox ps`` asks the running supervisor (``sandbox/cli/query.py``,
``sandbox/supervisor/handlers/query.py``) instead of loading the engine.
These tests hold it to two promises: for every flag combination below, the
cold path prints byte for byte what the full path prints (the full path is
the verb's ``run`` with an engine, as the magics call it), and a cold
command does not import the modules it was cut loose from -- a test of
imports, not of time, so the gain cannot silently regress.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from sandbox import cli
from tests.conftest import requires_root_for
from tests.integration.container_env import engine  # noqa: F401

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

#: What a cold ps/images/inspect must not load: the engine, the container set-up and API, the
#: runtime, the kernel's ctypes, the image stack, and the heavy standard modules they pull in.
HEAVY = ("sandbox.engine", "sandbox.containers.setup", "sandbox.containers.api", "sandbox.containers.records",
         "sandbox.runtime", "sandbox.kernel", "sandbox.image", "sandbox.supervisor.client", "sandbox.gotemplate",
         "pathlib", "subprocess", "ctypes", "dataclasses", "html", "shutil", "typing")
#: And what only some verbs do without: for a running container ``ps`` shows its uptime (datetime) and
#: its ports (sandbox.network.ports, which imports socket).
LEAN = ("datetime", "socket")


@pytest.fixture(scope="module")
def listed(engine):  # noqa: F811 - the fixture imported above
    """A running container with a label, an exited one, and busybox under a second tag."""
    engine.images.tag("busybox", "class/bb:v1")
    running = engine.containers.run("busybox", ["sleep", "60"], detach=True, name="cold-running",
                                    labels={"lab": "1"})
    exited = engine.containers.run("busybox", ["sh", "-c", "exit 3"], detach=True, name="cold-exited")
    exited.wait()
    yield engine
    for c in (running, exited):
        c.remove(force=True)
    engine.images.remove("class/bb:v1")


def outputs(engine, argv):  # noqa: F811
    """(cold, full) output of ``argv``; the cold path must answer, not step aside."""
    argv = ["--root", str(engine.root), *argv]
    args = cli.build_parser(only=cli._verb_of(argv)).parse_args(argv)
    cold = io.StringIO()
    assert args.quick(args, cold) is not None, f"the cold path stepped aside for {argv}"
    full = io.StringIO()
    args.func(engine, args, full)
    return cold.getvalue(), full.getvalue()


@pytest.mark.parametrize("argv", [
    ["ps"], ["ps", "-a"], ["ps", "-a", "-q"], ["ps", "-q", "--no-trunc"], ["ps", "-a", "--no-trunc"],
    ["ps", "-n", "1"], ["ps", "-l"], ["ps", "--filter", "label=lab=1", "--format", "{{.Names}} {{.State}}"],
    ["ps", "-a", "--filter", "status=exited"], ["ps", "--filter", "status=exited"], ["ps", "-a", "-f", "name=cold"],
    ["ps", "-a", "--format", "table {{.ID}}\\t{{.Names}}\\t{{.Ports}}"], ["ps", "-a", "--format", "{{json .Labels}}"],
    ["container", "ls", "-a"],
    ["images"], ["images", "-a"], ["images", "-q"], ["images", "--digests"], ["images", "--no-trunc"],
    ["images", "--format", "{{.Repository}}:{{.Tag}}"], ["images", "--format", "table {{.ID}}\\t{{.Size}}"],
    ["images", "-f", "reference=class/*"], ["images", "-f", "dangling=false"], ["image", "ls"],
    ["inspect", "busybox"], ["inspect", "cold-exited"], ["inspect", "cold-running", "class/bb:v1"],
    ["inspect", "-f", "{{.State.Status}} {{.State.Running}}", "cold-running"],
    ["inspect", "-f", "{{json .Config}}", "busybox"], ["inspect", "--type", "image", "busybox"],
    ["container", "inspect", "cold-exited"], ["image", "inspect", "busybox"],
])
def test_cold_path_prints_what_the_full_path_prints(listed, argv):
    for _ in range(3):   # "Up 2 seconds" may turn into "Up 3 seconds" between the two
        cold, full = outputs(listed, argv)
        if cold == full:
            break
    assert cold == full


@pytest.mark.parametrize("argv", [["ps", "-a", "--filter", "ancestor=busybox"], ["images", "busybox"],
                                  ["inspect", "no-such-thing"], ["inspect", "--type", "volume", "v"]])
def test_what_only_the_engine_knows_takes_the_full_path(listed, argv):
    argv = ["--root", str(listed.root), *argv]
    args = cli.build_parser(only=cli._verb_of(argv)).parse_args(argv)
    out = io.StringIO()
    assert args.quick(args, out) is None
    assert out.getvalue() == ""


def test_no_supervisor_means_the_full_path(tmp_path):
    args = cli.build_parser(only="ps").parse_args(["--root", str(tmp_path), "ps", "-a"])
    assert args.quick(args, io.StringIO()) is None


def cold_modules(engine, *argv: str) -> tuple[str, set[str]]:  # noqa: F811
    """What ``sandbox ARGV`` prints and every module it imported, in a new interpreter."""
    code = ("import sys\nfrom sandbox.cli import main\ncode = main(sys.argv[1:])\n"
            "sys.stdout.flush()\nprint('\\x00' + ' '.join(sorted(sys.modules)))\nsys.exit(code)\n")
    env = dict(os.environ, SANDBOX_ROOT=str(engine.root))
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    text, _, modules = r.stdout.rpartition("\x00")
    return text, set(modules.split())


@requires_root_for("a user's command first joins the user namespace (sandbox.rootless: pathlib, shutil)")
@pytest.mark.parametrize("argv", [["ps", "-a"], ["ps", "-q"], ["images"], ["inspect", "busybox"],
                                  ["inspect", "cold-exited"], ["version"]])
def test_a_cold_verb_imports_only_what_it_uses(listed, argv):
    text, modules = cold_modules(listed, *argv)
    cut = HEAVY + (LEAN if argv[0] != "ps" else ())
    heavy = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in cut))
    assert heavy == [], f"sandbox {' '.join(argv)} imported {heavy}"
    if argv[0] == "inspect":
        assert json.loads(text)[0]["Id"]


@requires_root_for("a user's command first joins the user namespace (sandbox.rootless)")
def test_a_build_cache_hit_imports_no_container_api(listed, tmp_path):
    """A full hit reads the store and tags; the container API, records and supervisor client stay out."""
    (tmp_path / "Dockerfile").write_text('FROM busybox\nENV A=1\nCMD ["true"]\n')
    cold_modules(listed, "build", "-q", "-t", "cold-hit", str(tmp_path))  # the first build fills the cache
    text, modules = cold_modules(listed, "build", "-q", "-t", "cold-hit", str(tmp_path))
    listed.images.remove("cold-hit")
    cut = ("sandbox.containers.api", "sandbox.containers.container", "sandbox.containers.records",
           "sandbox.supervisor.client")
    heavy = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in cut))
    assert heavy == [], f"a cached sandbox build imported {heavy}"
    assert text.strip().startswith("sha256:")


@requires_root_for("a user's command first joins the user namespace (sandbox.rootless)")
def test_a_cold_run_sends_its_request_without_the_engine(listed):
    """``sandbox run`` through the quick path: no engine, image store, typing, pathlib or threading."""
    text, modules = cold_modules(listed, "run", "--rm", "--network", "none", "busybox", "echo", "cold")
    assert text == "cold\n"
    cut = ("sandbox.engine", "sandbox.image", "sandbox.containers.api", "sandbox.supervisor.client",
           "typing", "pathlib", "threading", "dataclasses", "hashlib", "shutil", "subprocess")
    heavy = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in cut))
    assert heavy == [], f"a cold sandbox run imported {heavy}"


def test_a_template_loads_the_template_engine_only_then(listed):
    text, modules = cold_modules(listed, "ps", "-a", "--format", "{{.Names}}")
    assert "cold-exited" in text.split() and "sandbox.gotemplate" in modules
    assert "sandbox.engine" not in modules


def test_cold_version_is_the_engines(listed):
    args = cli.build_parser(only="version").parse_args(["version", "--format", "{{json .}}"])
    cold, full = io.StringIO(), io.StringIO()
    args.quick(args, cold)
    args.func(listed, args, full)
    assert json.loads(cold.getvalue()) == listed.version()
    assert cold.getvalue() == full.getvalue()
