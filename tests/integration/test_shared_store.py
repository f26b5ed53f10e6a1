"""One store, three users at once: two notebook kernels and a CLI loop, a fixed count of mixed work.

A class shares a machine, and often a store: two students' kernels (each with
its own engine and the same supervisor) and an instructor's terminal.  Each
participant runs a fixed script of runs, execs, commits, ``%%dockerfile``
builds (sharing a cache step with the others, so their builds meet in the
cache), removals and prunes.  Nothing may fail, and afterwards every
container, image and log each one made is checked against what it did: exit
codes, log text, the files in committed and built images, and the store as an
OCI layout whose every blob verifies.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat

from sandbox import Engine
from tests.conftest import requires_root
from tests.integration.container_env import clean_engine
from tests.integration.store_checks import check_store

pytestmark = requires_root

ROUNDS = 4  # per kernel: 4 rounds of 8 operations each, 64 in all, beside 30 from the CLI loop

# Runs one notebook with nbclient in its own process, so the two kernels really overlap.
RUNNER = textwrap.dedent("""
    import sys, nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(sys.argv[1], as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": sys.argv[2]}}).execute()
    nbformat.write(nb, sys.argv[1])
""")

CLI_LOOP = textwrap.dedent("""
    set -u
    sb() { "$PY" -m sandbox "$@"; }
    for i in 0 1 2 3 4; do
        sb run --name cli-run-$i busybox sh -c "echo cli-$i" || echo "FAILED run $i"
        sb ps -a -q >/dev/null || echo "FAILED ps $i"
        printf 'FROM busybox\\nRUN echo shared > /shared\\nRUN echo cli-%s > /mine\\n' $i | sb build -q -t cli-b:$i - >/dev/null \
            || echo "FAILED build $i"
        sb images -q >/dev/null || echo "FAILED images $i"
        sb image prune -f >/dev/null || echo "FAILED prune $i"
        if [ $i -gt 0 ]; then sb rmi cli-b:$((i - 1)) >/dev/null || echo "FAILED rmi $i"; fi
    done
""")


def _cells(me: str) -> list[str]:
    cells = ["%load_ext sandbox"]
    for i in range(ROUNDS):
        cells += [
            f"%docker run --name {me}-run-{i} busybox sh -c 'echo {me}-{i}; exit {i}'",
            f"%docker run -d --name {me}-d-{i} busybox sleep 60",
            f"%docker exec {me}-d-{i} sh -c 'echo {me}-{i} > /made; cat /made'",
            f"%docker commit {me}-d-{i} {me}-img:{i}",
            f"%docker rm -f {me}-d-{i}",
            f"%%dockerfile -q -t {me}-b:{i}\nFROM busybox\nRUN echo shared > /shared\n"
            f"RUN echo {me}-{i} > /mine\nCMD [\"cat\", \"/mine\"]",
            f"%docker run --rm {me}-b:{i}",
            f"%docker rmi {me}-img:{i - 1}" if i else "%docker image prune -f",
        ]
    return cells


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    """Each cell output that reports a failure: an error, or the magics' one-line ``Error:``."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out["output_type"] == "error" or (out.get("name") == "stderr" and "Error" in out.get("text", "")):
                found.append(f"{cell.source.splitlines()[0]}: {out.get('text') or out.get('evalue')}")
    return found


def _stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")


def test_two_kernels_and_a_cli_loop_share_one_store(tmp_path, busybox_binary, monkeypatch):
    root = tmp_path / "root"
    engine = Engine(root)
    engine.images.bootstrap("busybox", binary=busybox_binary)
    monkeypatch.setenv("SANDBOX_ROOT", str(root))
    env = {**os.environ, "PY": sys.executable}
    books = {}
    try:
        procs = []
        for me in ("k1", "k2"):
            nb = nbformat.v4.new_notebook()
            nb.cells = [nbformat.v4.new_code_cell(s) for s in _cells(me)]
            books[me] = tmp_path / f"{me}.ipynb"
            nbformat.write(nb, books[me])
            procs.append(subprocess.Popen([sys.executable, "-c", RUNNER, str(books[me]), str(tmp_path)],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        loop = subprocess.run(["bash", "-c", CLI_LOOP], env=env, capture_output=True, text=True, timeout=300)
        outputs = [p.communicate(timeout=300)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
        assert "FAILED" not in loop.stdout, loop.stdout + loop.stderr

        for me, path in books.items():
            nb = nbformat.read(path, as_version=4)
            assert _errors(nb) == [], _errors(nb)
            for i in range(ROUNDS):
                base = 1 + 8 * i
                assert _stdout(nb.cells[base]) == f"{me}-{i}\n"            # the attached run's output
                assert _stdout(nb.cells[base + 2]) == f"{me}-{i}\n"        # exec
                assert _stdout(nb.cells[base + 6]) == f"{me}-{i}\n"        # the built image's CMD
                run = engine.containers.get(f"{me}-run-{i}")
                assert (run.status, run.attrs["State"]["ExitCode"]) == ("exited", i)
                assert run.logs() == f"{me}-{i}\n".encode()
                assert engine.containers.list(all=True, filters={"name": f"{me}-d-{i}"}) == []
                assert engine.containers.run(f"{me}-b:{i}", "cat /shared /mine", remove=True) == \
                    f"shared\n{me}-{i}\n".encode()
            last = ROUNDS - 1
            assert engine.containers.run(f"{me}-img:{last}", "cat /made", remove=True) == f"{me}-{last}\n".encode()
            tags = {t for image in engine.images.list() for t in image.tags}
            assert not {f"{me}-img:{i}" for i in range(last)} & tags, tags  # removed by the next round
        for i in range(5):
            run = engine.containers.get(f"cli-run-{i}")
            assert (run.attrs["State"]["ExitCode"], run.logs()) == (0, f"cli-{i}\n".encode())
        assert engine.containers.run("cli-b:4", "cat /mine", remove=True) == b"cli-4\n"
        tags = {t for image in engine.images.list() for t in image.tags}
        assert not {f"cli-b:{i}" for i in range(4)} & tags, tags
        # every tag still has its layers, and the store is a valid OCI layout whose blobs verify
        check_store(engine)
    finally:
        left = clean_engine(engine)
        assert not left, f"mounts left below the store: {left}"


def test_the_loop_and_the_kernels_use_one_supervisor(tmp_path: Path, busybox_binary, monkeypatch):
    """A kernel's engine and the CLI meet the same supervisor: one process per store, whoever came first."""
    root = tmp_path / "root"
    engine = Engine(root)
    engine.images.bootstrap("busybox", binary=busybox_binary)
    monkeypatch.setenv("SANDBOX_ROOT", str(root))
    try:
        engine.containers.run("busybox", "true", remove=True)
        pid = engine.supervisor.call("ping")["pid"]
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(
            "%load_ext sandbox\nimport sandbox\nprint(sandbox.Engine().supervisor.call('ping')['pid'])")]
        path = tmp_path / "one.ipynb"
        nbformat.write(nb, path)
        subprocess.run([sys.executable, "-c", RUNNER, str(path), str(tmp_path)], check=True, timeout=120)
        assert _stdout(nbformat.read(path, as_version=4).cells[0]).split()[-1] == str(pid)  # after the mode line
    finally:
        left = clean_engine(engine)
        assert not left, f"mounts left below the store: {left}"
