"""Two processes share one store; one is killed with SIGKILL mid-work; nothing is corrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sandbox import Engine
from tests.integration.store_checks import check_store

pytestmark = pytest.mark.integration

WORKER = textwrap.dedent("""
    import random, sys
    from sandbox import Engine, SandboxError
    engine = Engine(sys.argv[1])
    archive, me, ops = sys.argv[2], sys.argv[3], int(sys.argv[4])
    rng = random.Random(me)
    for i in range(ops):
        ops = ["load", "load", "load", "rmi", "prune"] if me.startswith("victim") else ["tag", "tag", "load", "rmi", "prune"]
        op = rng.choice(ops)
        try:
            if op == "tag":
                engine.images.tag("base:latest", f"{me}-{rng.randrange(8)}:latest")
            elif op == "load":
                with open(archive, "rb") as f:
                    engine.images.load(f)
            elif op == "rmi":
                engine.images.remove(f"{me}-{rng.randrange(8)}:latest")
            else:
                engine.images.prune()
        except SandboxError:
            pass  # e.g. removing a tag that does not exist (yet)
        print(i, op, flush=True)
""")


def _make_archive(tmp_path: Path, engine: Engine) -> Path:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "motd").write_text("hello\n")
    (tree / "data.bin").write_bytes(os.urandom(8 << 20))  # big enough that a kill lands mid-load
    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(tree), "-cf", str(tar), "."], check=True)
    with open(tar, "rb") as f:
        engine.images.import_(f, tag="base:latest")
    archive = tmp_path / "base.tar"
    with open(archive, "wb") as f:
        engine.images.save(["base:latest"], f)
    return archive


def test_two_processes_one_killed_repeatedly(tmp_path):
    """A steady worker runs a fixed number of operations while a second worker is
    started and killed with SIGKILL five times at varied moments (often mid-load,
    with a blob half-written or a layer half-unpacked)."""
    root = tmp_path / "root"
    engine = Engine(root)
    archive = _make_archive(tmp_path, engine)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    cmd = [sys.executable, "-c", WORKER, str(root), str(archive)]
    steady = subprocess.Popen(cmd + ["steady", "150"], env=env, stdout=subprocess.PIPE, text=True)
    victims = []
    try:
        for round_, delay in enumerate([0.35, 0.5, 0.42, 0.6, 0.47]):
            victim = subprocess.Popen(cmd + [f"victim{round_}", "100000"], env=env,
                                      stdout=subprocess.DEVNULL)
            victims.append(victim)
            time.sleep(delay)  # past interpreter start-up, into the operations
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
        out, _ = steady.communicate(timeout=300)
    finally:
        for p in [steady, *victims]:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert steady.returncode == 0, "the surviving process failed"
    assert out.count("\n") == 150
    assert all(v.returncode == -signal.SIGKILL for v in victims)
    fresh = Engine(root)  # a new start runs recovery
    check_store(fresh)
    assert os.listdir(fresh.store.ingest_dir) == []
    assert not [n for n in os.listdir(fresh.store.layers_dir) if ".incomplete" in n]
    assert not [n for n in os.listdir(fresh.store.tmp_dir)]
    fresh.images.prune()
    check_store(fresh)
