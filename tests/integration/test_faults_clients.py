"""``kill -9`` of a client in every phase of run, build, commit, pull, push, save and load.

Each test starts the real CLI (``python -m sandbox --root ROOT VERB ...``) as a
subprocess, waits until the phase it aims at is visible from outside, kills
the client with SIGKILL, and then checks that nothing was lost and nothing
was left:

* the store reads whole (:func:`~tests.integration.store_checks.check_store`);
* nothing the killed operation had not finished is tagged;
* what the killed writer left goes where it is documented to go (below);
* no container is left that cannot be removed, and no mount below the store
  but those of running containers;
* the same operation, run again, succeeds (and a build hits the cache for the
  steps that had finished, and only for those).

Where leftovers go, as these tests check:

* an ingest file, an ``.incomplete`` layer, a ``tmp/`` scratch directory (with
  a build step's overlay still mounted in it): removed by the store's recovery
  when the next ``Engine`` starts, i.e. by the next CLI command of any kind;
* complete blobs of an unfinished pull, load or commit: used by the same
  operation run again, otherwise deleted by the next garbage collection
  (``rmi``, ``image prune``, ``system prune``);
* a container created by a ``run`` killed before it started: kept in state
  "created", as Docker keeps it; ``rm`` or ``system prune`` removes it;
* a build step's container: removed by the supervisor as soon as the
  builder's connection to it closes, running or not;
* a container frozen for a ``commit``: thawed by the supervisor as soon as the
  committing client's connection closes;
* a killed ``push``: nothing in the local store; in the registry, blobs and an
  open upload session but no tag (the registry's own upload purging is its
  business);
* the output of a killed ``save -o FILE``: nothing at all, neither FILE nor a
  partial file beside it (it is written unnamed, see ``sandbox/cli/save.py``).

Phases are found by observable state -- a file growing in the store's
``ingest/``, a layer directory ``*.incomplete``, a build step's container
running or its overlay mounted, the build's progress line, an upload or a
layer in the registry's storage, the save's open output file, the
container's first output line -- and where the phase leaves a trace, each
test checks afterwards that its kill did land in it (the killed writer's file
is still there).  Only
"created but not started" has no such moment: the client goes on at once,
so that test runs the CLI with one function replaced by a pause (see
``PAUSED_CLI``); the kill is still a real SIGKILL.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox import Engine
from sandbox.errors import ContainerNotFound, ImageNotFound, SandboxError
from sandbox.image.images import new_config
from sandbox.image.layers import write_layer_blob
from sandbox.registry import push as library_push
from tests import leaks
from tests.conftest import requires_root
from tests.integration.container_env import engine  # noqa: F401  (module fixture)
from tests.integration.store_checks import check_store, leftovers, unreferenced_blobs

pytestmark = requires_root

MB = 1 << 20
BIG = 32 * MB  # big enough that every phase lasts tens of milliseconds

#: ``python -c PAUSED_CLI MODULE:NAME[.NAME] ARGS...`` is ``python -m sandbox ARGS...`` with
#: that function (or method) replaced by a pause: it touches $FAULT_MARK and sleeps until killed.
PAUSED_CLI = """
import importlib, os, runpy, signal, sys
def paused(*args, **kwargs):
    open(os.environ["FAULT_MARK"], "w").close()
    while True:
        signal.pause()
module, _, path = sys.argv[1].partition(":")
*owners, name = path.split(".")
owner = importlib.import_module(module)
for o in owners:
    owner = getattr(owner, o)
setattr(owner, name, paused)
sys.argv = ["sandbox"] + sys.argv[2:]
runpy.run_module("sandbox", run_name="__main__", alter_sys=True)
"""


# ---------------------------------------------------------------- running the CLI

@pytest.fixture(autouse=True)
def private_credentials(tmp_path, monkeypatch):
    """Registry credentials go to a temp dir, never to the real ~/.sandbox."""
    monkeypatch.setenv("SANDBOX_CONFIG", str(tmp_path / "config"))


@pytest.fixture(autouse=True)
def drop_test_images(engine):  # noqa: F811
    """Each test's images go afterwards: check_store hashes every blob, so the store stays small."""
    yield
    for image in engine.images.list():
        for tag in image.tags:
            if "fault/" in tag:
                with contextlib.suppress(SandboxError):
                    engine.images.remove(tag, force=True)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}  # 127.0.0.1 directly
    env.pop("SANDBOX_ROOT", None)
    return {**env, **extra}


def cli(engine: Engine, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``sandbox --root ROOT ARGS`` to its end."""
    return subprocess.run([sys.executable, "-m", "sandbox", "--root", str(engine.root), *args],
                          env=_env(), capture_output=True, text=True, timeout=timeout)


def spawn(engine: Engine, *args: str, stdout: int | None = subprocess.DEVNULL,
          pause_at: str | None = None, mark: Path | None = None) -> subprocess.Popen:
    """Start ``sandbox --root ROOT ARGS`` (with ``pause_at``: paused there, see PAUSED_CLI)."""
    head = [sys.executable, "-c", PAUSED_CLI, pause_at] if pause_at else [sys.executable, "-m", "sandbox"]
    env = _env(FAULT_MARK=str(mark)) if mark else _env()
    return subprocess.Popen([*head, "--root", str(engine.root), *args], env=env,
                            stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE)


def kill_when(proc: subprocess.Popen, phase: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """SIGKILL ``proc`` as soon as ``phase()`` holds; fail if it ends or the phase never comes."""
    deadline = time.monotonic() + timeout
    while not phase():
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else b""
            pytest.fail(f"the client ended (status {proc.returncode}) before {what}: {err!r}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"no {what} within {timeout:g} s")
        time.sleep(0.001)
    sigkill(proc, what)


def sigkill(proc: subprocess.Popen, what: str = "") -> None:
    """kill -9, reap, and check it was the kill that ended it."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    assert proc.returncode == -signal.SIGKILL, f"the client ended by itself before the kill {what}"


def kill_after(proc: subprocess.Popen, delay: float) -> None:
    """kill -9 after ``delay`` seconds, wherever it is then (or nothing, if it has finished)."""
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.stderr is not None
    proc.stderr.close()


def read_until(proc: subprocess.Popen, wanted: Callable[[str], bool], timeout: float = 30) -> list[str]:
    """Lines of ``proc``'s stdout up to and including the first that is ``wanted``."""
    assert proc.stdout is not None
    fd, buf, lines = proc.stdout.fileno(), b"", []
    deadline = time.monotonic() + timeout
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            lines.append(line.decode(errors="replace"))
            if wanted(lines[-1]):
                return lines
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            proc.kill()
            proc.wait()
            pytest.fail(f"the wanted line never came; stdout so far: {lines + [buf.decode()]}")
        buf += chunk


# ---------------------------------------------------------------- phases, seen from outside

def _files(directory: Path) -> list[os.DirEntry]:
    try:
        return [e for e in os.scandir(directory) if not e.name.startswith(".")]
    except FileNotFoundError:
        return []


def ingest_files(engine: Engine) -> list[str]:
    return sorted(e.name for e in _files(engine.store.ingest_dir))


def blob_being_written(engine: Engine) -> Callable[[], bool]:
    """A big blob is half in ``ingest/``: a megabyte written, not yet committed.

    (Small blobs, a config or a manifest, come and go within microseconds.)
    """
    def phase() -> bool:
        for e in _files(engine.store.ingest_dir):
            try:
                if e.stat().st_size >= MB:
                    return True
            except FileNotFoundError:
                continue
        return False
    return phase


def incomplete_layers(engine: Engine) -> list[str]:
    return sorted(n for n in os.listdir(engine.store.layers_dir) if ".incomplete" in n)


def layer_being_unpacked(engine: Engine) -> Callable[[], bool]:
    return lambda: bool(incomplete_layers(engine))


# ---------------------------------------------------------------- what must hold after a kill

def stray_mounts(engine: Engine) -> list[str]:
    """Mounts below the store that no running container accounts for."""
    live = [os.path.realpath(engine.root / "containers" / c.id) for c in engine.containers.list()]
    return [m for m in leaks.mounts_below(str(engine.root))
            if not any(m == d or m.startswith(d + "/") for d in live)]


def assert_recovered(engine: Engine, *untagged: str) -> None:
    """The next command clears what the killed client left, and the store reads whole.

    ``untagged``: names the killed operation was to tag, which must not exist.
    """
    r = cli(engine, "images", "-q")  # any command: its Engine start runs the store's recovery
    assert r.returncode == 0, r.stderr
    assert leftovers(engine) == []
    check_store(engine)
    for name in untagged:
        with pytest.raises(ImageNotFound):
            engine.images.get(name)
    assert stray_mounts(engine) == []


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        time.sleep(0.02)


def remove_container(engine: Engine, name: str) -> None:
    """``rm -f`` works on it (whatever state the kill left it in)."""
    r = cli(engine, "rm", "-f", name)
    assert r.returncode == 0, r.stderr
    with pytest.raises(ContainerNotFound):
        engine.containers.get(name)


# ---------------------------------------------------------------- content

def _big_tar(out, size: int = BIG) -> None:
    """A layer tar of one file of ``size`` new bytes (a random megabyte repeated)."""
    block = os.urandom(MB)
    with tarfile.open(fileobj=out, mode="w|") as t:
        info = tarfile.TarInfo("big.bin")
        info.size, info.mode = size, 0o644
        t.addfile(info, io.BytesIO(block * (size // MB)))


def make_big_image(engine: Engine, tag: str) -> str:
    """An image of one uncompressed layer holding a BIG file of new bytes; its id."""
    blob = write_layer_blob(engine.store, _big_tar, compress=False)
    config = new_config([blob], [{"created_by": f"fault test: {tag}"}], config={"Cmd": ["sh"]})
    return engine.image_store.create(config, [blob], tags=[tag]).id


def big_archive(tmp_path: Path, tag: str) -> tuple[Path, str]:
    """A docker-archive of a new big image tagged ``tag`` (made in a store of its own); its id."""
    src = Engine(tmp_path / "src")
    image_id = make_big_image(src, tag)
    archive = tmp_path / "big.tar"
    with open(archive, "wb") as f:
        src.images.save([tag], f)
    return archive, image_id


# ---------------------------------------------------------------- load

@pytest.mark.parametrize("phase", ["blob", "unpack"])
def test_load_killed_mid_write(engine, tmp_path, phase):  # noqa: F811
    """Killed while a layer blob is half in ingest/, or while its layer is half unpacked."""
    tag = f"fault/load-{phase}:1"
    archive, image_id = big_archive(tmp_path, tag)
    garbage = unreferenced_blobs(engine)
    proc = spawn(engine, "load", "-i", str(archive))
    if phase == "blob":
        kill_when(proc, blob_being_written(engine), "a blob in ingest/")
        assert ingest_files(engine), "the kill did not land mid-blob"
    else:
        kill_when(proc, layer_being_unpacked(engine), "an .incomplete layer")
        assert incomplete_layers(engine), "the kill did not land mid-unpack"
    assert_recovered(engine, tag)
    r = cli(engine, "load", "-i", str(archive))
    assert r.returncode == 0, r.stderr
    assert engine.images.get(tag).id == image_id
    assert unreferenced_blobs(engine) <= garbage  # the second load used what the first had stored
    check_store(engine)


@pytest.mark.parametrize("delay", [0.15, 0.3, 0.45])
def test_load_killed_after_a_delay(engine, tmp_path, delay):  # noqa: F811
    """A sweep: killed wherever the load is after ``delay`` seconds (start-up, blobs, unpack, index)."""
    tag = f"fault/load-delay-{int(delay * 1000)}:1"
    archive, image_id = big_archive(tmp_path, tag)
    proc = spawn(engine, "load", "-i", str(archive))
    kill_after(proc, delay)
    r = cli(engine, "images", "-q")
    assert r.returncode == 0, r.stderr
    assert leftovers(engine) == []
    check_store(engine)  # tagged or not, whatever the index names is whole
    r = cli(engine, "load", "-i", str(archive))
    assert r.returncode == 0, r.stderr
    assert engine.images.get(tag).id == image_id


# ---------------------------------------------------------------- pull

@pytest.mark.parametrize("phase", ["download", "unpack"])
def test_pull_killed_mid_write(engine, registry, tmp_path, phase):  # noqa: F811
    """Killed while a layer is half downloaded into ingest/, or half unpacked."""
    name = f"{registry.host}/fault/pull-{phase}:1"
    src = Engine(tmp_path / "src")
    image_id = make_big_image(src, name)
    library_push(src.image_store, name)
    garbage = unreferenced_blobs(engine)
    proc = spawn(engine, "pull", name)
    if phase == "download":
        kill_when(proc, blob_being_written(engine), "a download in ingest/")
        assert ingest_files(engine), "the kill did not land mid-download"
    else:
        kill_when(proc, layer_being_unpacked(engine), "an .incomplete layer")
        assert incomplete_layers(engine), "the kill did not land mid-unpack"
    assert_recovered(engine, name)
    r = cli(engine, "pull", name)
    assert r.returncode == 0, r.stderr
    assert engine.images.get(name).id == image_id
    assert unreferenced_blobs(engine) <= garbage  # the second pull used what the first had stored
    check_store(engine)


def test_a_killed_pulls_blobs_go_with_the_next_gc(engine, registry, tmp_path):  # noqa: F811
    """Complete blobs of a pull killed mid-unpack are not named by anything: system prune deletes them."""
    name = f"{registry.host}/fault/pull-gc:1"
    src = Engine(tmp_path / "src")
    make_big_image(src, name)
    library_push(src.image_store, name)
    proc = spawn(engine, "pull", name)
    kill_when(proc, layer_being_unpacked(engine), "an .incomplete layer")
    assert_recovered(engine, name)
    assert unreferenced_blobs(engine)            # the downloaded layer, config and manifest
    r = cli(engine, "system", "prune", "-f")
    assert r.returncode == 0, r.stderr
    assert unreferenced_blobs(engine) == set()
    check_store(engine)


@pytest.mark.parametrize("delay", [0.2, 0.3, 0.4])
def test_pull_killed_after_a_delay(engine, registry, tmp_path, delay):  # noqa: F811
    """A sweep: killed wherever the pull is after ``delay`` seconds (manifest, download, unpack, tag)."""
    name = f"{registry.host}/fault/pull-delay-{int(delay * 1000)}:1"
    src = Engine(tmp_path / "src")
    image_id = make_big_image(src, name)
    library_push(src.image_store, name)
    proc = spawn(engine, "pull", name)
    kill_after(proc, delay)
    r = cli(engine, "images", "-q")
    assert r.returncode == 0, r.stderr
    assert leftovers(engine) == []
    check_store(engine)  # tagged or not, whatever the index names is whole
    r = cli(engine, "pull", name)
    assert r.returncode == 0, r.stderr
    assert engine.images.get(name).id == image_id


# ---------------------------------------------------------------- push

def _registry_uploads(registry, repo: str) -> Callable[[], bool]:
    """An upload session in the registry's storage has a megabyte of data."""
    uploads = registry.storage / "docker/registry/v2/repositories" / repo / "_uploads"

    def phase() -> bool:
        try:
            return any((d / "data").stat().st_size >= MB for d in uploads.iterdir() if (d / "data").exists())
        except FileNotFoundError:
            return False
    return phase


def _registry_has_layer(registry, repo: str, digest: str) -> Callable[[], bool]:
    link = registry.storage / "docker/registry/v2/repositories" / repo / "_layers/sha256" / digest[7:] / "link"
    return link.exists


@pytest.mark.parametrize("phase", ["upload", "before-manifest"])
def test_push_killed(engine, registry, phase):  # noqa: F811
    """Killed mid-upload of the big layer, or after it and before the manifest: no tag in the registry."""
    repo = f"fault/push-{phase}"
    name = f"{registry.host}/{repo}:1"
    make_big_image(engine, name)
    image = engine.images.get(name)
    proc = spawn(engine, "push", name)
    if phase == "upload":
        kill_when(proc, _registry_uploads(registry, repo), "an upload in the registry")
    else:
        kill_when(proc, _registry_has_layer(registry, repo, image.layers[0].digest), "the layer in the registry")
    assert registry.tags(repo) == []
    assert_recovered(engine)
    assert engine.images.get(name).repo_digests == []   # nothing says it was pushed
    r = cli(engine, "push", name)
    assert r.returncode == 0, r.stderr
    assert registry.tags(repo) == ["1"]
    assert registry.manifest(repo, "1")[0] == image.manifest_digest
    assert engine.images.get(name).repo_digests == [f"{registry.host}/{repo}@{image.manifest_digest}"]


# ---------------------------------------------------------------- save

def _written_by(pid: int, directory: Path) -> int:
    """Bytes in the biggest file ``pid`` has open in ``directory`` (named or not: O_TMPFILE)."""
    biggest = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(f"{directory}/"):
                biggest = max(biggest, os.stat(f"/proc/{pid}/fd/{fd}").st_size)
        except OSError:
            continue
    return biggest


def test_save_killed_mid_write(engine, tmp_path):  # noqa: F811
    """Killed while the archive is half written: nothing under the output's name, the store untouched."""
    tag = "fault/save:1"
    image_id = make_big_image(engine, tag)
    out = tmp_path / "out" / "saved.tar"
    out.parent.mkdir()
    proc = spawn(engine, "save", "-o", str(out), tag)
    kill_when(proc, lambda: _written_by(proc.pid, out.parent) >= MB, "a partial archive")
    assert os.listdir(out.parent) == []                  # no archive, and no partial one either
    assert_recovered(engine)
    r = cli(engine, "save", "-o", str(out), tag)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out.parent)) == ["saved.tar"]   # and nothing beside it
    check = Engine(tmp_path / "check")
    with open(out, "rb") as f:
        assert [i.id for i in check.images.load(f)] == [image_id]
    check_store(check)


# ---------------------------------------------------------------- build

def _context(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def build_containers(engine: Engine) -> list:
    return [c for c in engine.containers.list(all=True) if "sandbox.build" in c.labels]


def _cache_use(engine: Engine, ctx: Path, tag: str) -> list[str]:
    """Build ``ctx`` again (in this process, to see the cache's answers): HIT or MISS per step after FROM."""
    events: list = []
    engine.build(ctx, tags=[tag], on_event=events.append)
    return [e.cache for e in events if e.kind == "step" and e.cache]


def assert_build_cleaned_up(engine: Engine, tag: str) -> None:
    """The step's container goes (the supervisor removes it once the builder's connection closes)."""
    wait_until(lambda: build_containers(engine) == [], "the killed build's step container is removed")
    assert_recovered(engine, tag)


def test_build_killed_while_a_run_step_runs(engine, tmp_path):  # noqa: F811
    """Killed while RUN's container runs (through the supervisor): it is removed, the next build
    hits the cache for the step before and runs the killed one."""
    tag = "fault/build-run:1"
    ctx = _context(tmp_path, "FROM busybox\nRUN echo one > /one\nRUN echo two > /two; sleep 1\n")
    proc = spawn(engine, "build", "-t", tag, str(ctx))
    kill_when(proc, lambda: any(c.status == "running" and c.attrs["Config"]["Cmd"][-1].endswith("sleep 1")
                                for c in build_containers(engine)), "the RUN step's container running")
    assert_build_cleaned_up(engine, tag)
    assert _cache_use(engine, ctx, tag) == ["HIT", "MISS"]
    assert engine.run(tag, ["cat", "/one", "/two"]).output == b"one\ntwo\n"


def test_build_killed_between_steps(engine, tmp_path):  # noqa: F811
    """Killed as step 3 of 4 begins: the next build hits the cache for step 2 only."""
    tag = "fault/build-between:1"
    ctx = _context(tmp_path, "FROM busybox\nRUN echo a > /a\nRUN echo b > /b\nRUN echo c > /c\n")
    proc = spawn(engine, "build", "-t", tag, str(ctx), stdout=subprocess.PIPE)
    read_until(proc, lambda line: line.startswith("Step 3/4"))
    sigkill(proc)
    assert_build_cleaned_up(engine, tag)
    assert _cache_use(engine, ctx, tag) == ["HIT", "MISS", "MISS"]


def test_build_killed_while_a_steps_layer_is_written(engine, tmp_path):  # noqa: F811
    """Killed while the RUN step's writable layer goes into ingest/ (its container has exited)."""
    tag = "fault/build-layer:1"
    ctx = _context(tmp_path, "FROM busybox\nRUN head -c 24000000 /dev/urandom > /noise\n")
    garbage = unreferenced_blobs(engine)
    proc = spawn(engine, "build", "-t", tag, str(ctx))
    kill_when(proc, blob_being_written(engine), "the step's layer in ingest/")
    assert ingest_files(engine), "the kill did not land mid-layer"
    assert_build_cleaned_up(engine, tag)
    assert _cache_use(engine, ctx, tag) == ["MISS"]
    assert unreferenced_blobs(engine) <= garbage          # the half-written layer left nothing


@pytest.mark.skipif(os.environ.get("SANDBOX_STORAGE_DRIVER", "overlay") != "overlay",
                    reason="a COPY step mounts an overlay only with the overlay storage driver")
def test_build_killed_with_a_copy_steps_overlay_mounted(engine, tmp_path):  # noqa: F811
    """Killed while COPY writes into the step's overlay, mounted in tmp/: the next command unmounts it."""
    tag = "fault/build-copy:1"
    ctx = _context(tmp_path, "FROM busybox\nCOPY big.bin /big.bin\n")
    (ctx / "big.bin").write_bytes(os.urandom(MB) * 48)
    proc = spawn(engine, "build", "-t", tag, str(ctx))
    kill_when(proc, lambda: bool(leaks.mounts_below(str(engine.store.tmp_dir))), "the COPY step's overlay")
    assert leaks.mounts_below(str(engine.store.tmp_dir)), "the kill did not land with the overlay mounted"
    assert_build_cleaned_up(engine, tag)   # and stray_mounts() is empty
    assert _cache_use(engine, ctx, tag) == ["MISS"]


# ---------------------------------------------------------------- commit

def _logs(engine: Engine, name: str) -> bytes:
    return bytes(engine.containers.get(name).logs())


def test_commit_killed_mid_write_of_a_running_container(engine):  # noqa: F811
    """Killed while the layer of a running container (frozen for it) is half in ingest/: no tag,
    and the container runs on (it is thawed when the committing client's connection closes)."""
    name, tag = "fault-commit", "fault/commit:1"
    r = cli(engine, "run", "-d", "--name", name, "busybox", "sh", "-c",
            "head -c 24000000 /dev/urandom > /noise; echo ready; while :; do echo tick; sleep 0.02; done")
    assert r.returncode == 0, r.stderr
    try:
        wait_until(lambda: b"ready" in _logs(engine, name), "the container's file is written")
        proc = spawn(engine, "commit", name, tag)
        kill_when(proc, blob_being_written(engine), "the container's layer in ingest/")
        assert ingest_files(engine), "the kill did not land mid-layer"
        assert_recovered(engine, tag)
        ticks = _logs(engine, name).count(b"tick")
        wait_until(lambda: _logs(engine, name).count(b"tick") > ticks + 3, "the container runs again")
        assert engine.containers.get(name).status == "running"
        r = cli(engine, "commit", name, tag)
        assert r.returncode == 0, r.stderr
        assert engine.run(tag, ["wc", "-c", "/noise"]).output.split()[0] == b"24000000"
        check_store(engine)
    finally:
        remove_container(engine, name)


# ---------------------------------------------------------------- run

#: How ``sandbox run`` gets from create to start: the quick path (plain ``run``: create_named
#: and start over one socket, no engine loaded) or the full one (``-a``: Engine, Client.stream).
RUN_PATHS = {"quick": ([], "sandbox.cli.quick:_start"),
             "full": (["-a", "stdout", "-a", "stderr"], "sandbox.containers.api:ContainerCollection.start_attached")}


@pytest.mark.parametrize("path", sorted(RUN_PATHS))
def test_run_killed_between_create_and_start(engine, tmp_path, path):  # noqa: F811
    """Killed with the container created and not started: it stays "created" (Docker's rule, --rm
    or not), ``system prune`` removes it, and the same run then works."""
    flags, pause_at = RUN_PATHS[path]
    name, mark = f"fault-created-{path}", tmp_path / "paused"
    args = ("run", "--rm", *flags, "--name", name, "busybox", "sh", "-c", "exit 3")
    engine.ensure_supervisor()  # a supervisor listens: plain `run` takes the quick path
    proc = spawn(engine, *args, pause_at=pause_at, mark=mark)
    kill_when(proc, mark.exists, "the client between create and start")
    assert engine.containers.get(name).status == "created"
    assert_recovered(engine)
    r = cli(engine, "system", "prune", "-f")
    assert r.returncode == 0, r.stderr
    with pytest.raises(ContainerNotFound):
        engine.containers.get(name)
    assert cli(engine, *args).returncode == 3
    with pytest.raises(ContainerNotFound):
        engine.containers.get(name)


@pytest.mark.parametrize("path", sorted(RUN_PATHS))
@pytest.mark.parametrize("rm", [False, True], ids=["keep", "rm"])
def test_run_attached_killed_while_the_container_runs(engine, rm, path):  # noqa: F811
    """The attached client killed, the container goes on: its exit code is recorded, --rm honoured."""
    name = f"fault-attached-{'rm' if rm else 'keep'}-{path}"
    args = ("run", *(["--rm"] if rm else []), *RUN_PATHS[path][0], "--name", name, "busybox", "sh", "-c",
            "echo started; sleep 0.5; exit 7")
    proc = spawn(engine, *args, stdout=subprocess.PIPE)
    read_until(proc, lambda line: line == "started")
    sigkill(proc)
    assert engine.containers.get(name).status == "running"
    if rm:
        def removed() -> bool:
            try:
                engine.containers.get(name)
                return False
            except ContainerNotFound:
                return True
        wait_until(removed, "the --rm container is removed once it ends")
    else:
        c = engine.containers.get(name)
        assert c.wait(timeout=15)["StatusCode"] == 7
        assert c.reload().attrs["State"]["ExitCode"] == 7
        remove_container(engine, name)
    assert_recovered(engine)
    assert cli(engine, *args).returncode == 7
    if not rm:
        remove_container(engine, name)
