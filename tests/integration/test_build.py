"""The builder on a real store: the cache and its explanations, multi-stage, history, ONBUILD,
ADD, the command line, pruning, two builders at once, and faults that must leave nothing behind."""

from __future__ import annotations

import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from sandbox import BuildError, Engine
from sandbox.errors import ImageNotFound
from tests import leaks
from tests.integration.container_env import engine  # noqa: F401  (module fixture)

SEED = ("FROM busybox\nRUN echo hello > /greeting\nENV A=1\nRUN ls / > /listing\n"
        'CMD ["cat","/greeting"]\n')


def _ctx(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None, name: str = "ctx") -> Path:
    ctx = tmp_path / name
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for rel, content in (files or {}).items():
        p = ctx / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    return ctx


def _steps(events):
    return [(e.step, e.cache, e.reason) for e in events if e.kind == "step" and e.cache]


def _cli(engine, *args, stdin=None):  # noqa: F811
    env = dict(os.environ, SANDBOX_ROOT=str(engine.root))
    return subprocess.run([sys.executable, "-m", "sandbox", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=120)


def test_seed_example_and_full_cache_hit(engine, tmp_path):  # noqa: F811
    ctx = _ctx(tmp_path, SEED)
    first: list = []
    image = engine.build(ctx, tags=["seed:1"], on_event=first.append)
    assert engine.run("seed:1").output == b"hello\n"
    again: list = []
    same = engine.build(ctx, tags=["seed:1"], on_event=again.append)
    assert same.id == image.id                      # a full hit gives the same image
    assert all(c == "HIT" for _, c, _ in _steps(again))
    assert _steps(first)[0][1:] in (("MISS", "nothing cached yet for this step"), ("HIT", ""))
    # the history reads like Docker's
    rows = engine.images.history("seed:1")
    created_by = [r["CreatedBy"] for r in rows[:4]]
    assert created_by == ['/bin/sh -c #(nop)  CMD ["cat" "/greeting"]', "/bin/sh -c ls / > /listing",
                          "/bin/sh -c #(nop)  ENV A=1", "/bin/sh -c echo hello > /greeting"]
    assert [r["EmptyLayer"] for r in rows[:4]] == [True, False, True, False]
    engine.images.remove("seed:1")


def test_changed_copy_source_is_named_and_rebuilds_from_there(engine, tmp_path):  # noqa: F811
    df = "FROM busybox\nRUN echo one > /1\nCOPY app/ /app/\nRUN cat /app/* > /all\nENV DONE=1\n"
    ctx = _ctx(tmp_path, df, {"app/a.txt": "a\n", "app/b.txt": "b\n"})
    engine.build(ctx, tags=["cachetest"])
    (ctx / "app" / "b.txt").write_text("B changed\n")
    events: list = []
    engine.build(ctx, tags=["cachetest"], on_event=events.append)
    steps = _steps(events)
    assert [c for _, c, _ in steps] == ["HIT", "MISS", "MISS", "MISS"]
    assert "app/b.txt" in steps[1][2] and "changed" in steps[1][2]
    assert "step before it was rebuilt" in steps[2][2]
    assert engine.run("cachetest", ["cat", "/all"]).output == b"a\nB changed\n"
    # a new file is named too; touching a file without changing it is still a hit
    (ctx / "app" / "c.txt").write_text("c\n")
    events = []
    engine.build(ctx, tags=["cachetest"], on_event=events.append)
    assert "new: app/c.txt" in _steps(events)[1][2]
    os.utime(ctx / "app" / "a.txt", (1, 1))
    events = []
    engine.build(ctx, tags=["cachetest"], on_event=events.append)
    assert [c for _, c, _ in _steps(events)] == ["HIT"] * 4
    # --no-cache rebuilds everything and says so
    events = []
    engine.build(ctx, tags=["cachetest"], no_cache=True, on_event=events.append)
    assert all(c == "MISS" and "--no-cache" in r for _, c, r in _steps(events))
    engine.images.remove("cachetest")


def test_build_arg_change_is_named(engine, tmp_path):  # noqa: F811
    ctx = _ctx(tmp_path, "FROM busybox\nARG V=1\nRUN echo $V > /v\nCMD cat /v\n")
    engine.build(ctx, tags=["argtest"], build_args={"V": "2"})
    events: list = []
    engine.build(ctx, tags=["argtest"], build_args={"V": "3"}, on_event=events.append)
    steps = _steps(events)
    assert steps[1][1] == "MISS" and "build argument V changed ('2' -> '3')" in steps[1][2]
    assert engine.run("argtest").output == b"3\n"
    history = engine.images.history("argtest")
    assert history[1]["CreatedBy"] == "|1 V=3 /bin/sh -c echo $V > /v"
    warnings: list = []
    engine.build(ctx, tags=["argtest"], build_args={"NOPE": "x"}, on_event=warnings.append)
    assert any(e.kind == "warning" and "[NOPE] were not consumed" in e.text for e in warnings)
    engine.images.remove("argtest")


def test_changed_instruction_is_explained(engine, tmp_path):  # noqa: F811
    ctx = _ctx(tmp_path, "FROM busybox\nRUN echo a > /x\n")
    engine.build(ctx, tags=["instr"])
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo b > /x\n")
    events: list = []
    engine.build(ctx, tags=["instr"], on_event=events.append)
    assert "instruction is new or changed" in _steps(events)[0][2]
    engine.images.remove("instr")


def test_multi_stage_final_image_holds_only_its_layers(engine, tmp_path):  # noqa: F811
    df = ("FROM busybox AS builder\nRUN echo compiled > /app && dd if=/dev/zero of=/big bs=1k count=64\n"
          "FROM busybox\nCOPY --from=builder /app /usr/local/bin/app\nCMD cat /usr/local/bin/app\n")
    ctx = _ctx(tmp_path, df)
    image = engine.build(ctx, tags=["ms"])
    base = engine.images.get("busybox")
    assert image.diff_ids[:len(base.diff_ids)] == base.diff_ids
    assert len(image.diff_ids) == len(base.diff_ids) + 1     # only the COPY layer
    assert engine.run("ms").output == b"compiled\n"
    assert engine.run("ms", ["ls", "/big"]).exit_code != 0
    engine.build(ctx, tags=["ms-builder"], target="builder")
    assert engine.run("ms-builder", ["ls", "/big"]).exit_code == 0
    engine.images.remove("ms")
    engine.images.remove("ms-builder")


def test_onbuild_triggers_run_in_the_child(engine, tmp_path):  # noqa: F811
    parent = _ctx(tmp_path, "FROM busybox\nONBUILD COPY hello.txt /from-child\nONBUILD RUN echo trig > /trig\n",
                  name="parent")
    engine.build(parent, tags=["onbuild-parent"])
    child = _ctx(tmp_path, "FROM onbuild-parent\nCMD cat /from-child /trig\n", {"hello.txt": "child file\n"},
                 name="child")
    image = engine.build(child, tags=["onbuild-child"])
    assert engine.run("onbuild-child").output == b"child file\ntrig\n"
    assert not image.config["config"].get("OnBuild")     # triggers do not pass to grandchildren
    engine.images.remove("onbuild-child")
    engine.images.remove("onbuild-parent")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_add_tar_and_url(engine, tmp_path):  # noqa: F811
    ctx = _ctx(tmp_path, "FROM busybox\nADD bundle.tar.gz /opt/\nADD URL /dl/\n"
               'CMD ["sh", "-c", "cat /opt/inner/file.txt /dl/served.txt; stat -c %a /dl/served.txt"]\n')
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"from the tar\n"
        info = tarfile.TarInfo("inner/file.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (ctx / "bundle.tar.gz").write_bytes(buf.getvalue())
    served = tmp_path / "www"
    served.mkdir()
    (served / "served.txt").write_text("downloaded\n")
    handler = lambda *a, **kw: _Quiet(*a, directory=str(served), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/served.txt"
        (ctx / "Dockerfile").write_text((ctx / "Dockerfile").read_text().replace("URL", url))
        engine.build(ctx, tags=["addtest"])
    finally:
        server.shutdown()
        thread.join()
    assert engine.run("addtest").output == b"from the tar\ndownloaded\n600\n"
    engine.images.remove("addtest")


def test_cli_build_quiet_stdin_and_failure(engine, tmp_path):  # noqa: F811
    ctx = _ctx(tmp_path, SEED)
    done = _cli(engine, "build", "-q", "-t", "cli-seed", str(ctx))
    assert done.returncode == 0, done.stderr
    image_id = done.stdout.strip()
    assert image_id == engine.images.get("cli-seed").id
    verbose = _cli(engine, "build", "-t", "cli-seed", str(ctx))
    assert "Step 2/5 : RUN echo hello > /greeting" in verbose.stdout and "Using cache" in verbose.stdout
    assert "Successfully tagged cli-seed:latest" in verbose.stdout
    piped = _cli(engine, "build", "-t", "cli-stdin", "-f", "-", str(ctx), stdin="FROM busybox\nENV X=1\n")
    assert piped.returncode == 0, piped.stderr
    assert "X=1" in engine.images.get("cli-stdin").config["config"]["Env"]
    no_ctx = _cli(engine, "build", "-t", "cli-noctx", "-", stdin="FROM busybox\nCOPY x /x\n")
    assert no_ctx.returncode == 1 and "needs a build context" in no_ctx.stderr
    failed = _cli(engine, "build", "-t", "cli-fail", "-f", "-", str(ctx),
                  stdin="FROM busybox\nRUN echo doomed; exit 7\n")
    assert failed.returncode == 1
    assert "doomed" in failed.stdout
    assert "step 2/2 (Dockerfile:2)" in failed.stderr and "returned a non-zero code: 7" in failed.stderr
    with pytest.raises(ImageNotFound):
        engine.images.get("cli-fail")
    for tag in ("cli-seed", "cli-stdin"):
        engine.images.remove(tag)


def test_two_processes_share_the_cache(engine, tmp_path):  # noqa: F811
    ctx = _ctx(tmp_path, "FROM busybox\nRUN echo shared > /s\nCOPY f /f\nCMD cat /s /f\n", {"f": "F\n"})
    procs = [subprocess.Popen([sys.executable, "-m", "sandbox", "build", "-q", "-t", f"twin{i}", str(ctx)],
                              env=dict(os.environ, SANDBOX_ROOT=str(engine.root)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    for i in range(2):
        assert engine.run(f"twin{i}").output == b"shared\nF\n"
    # a third, later build in a fresh process is a full hit
    third = _cli(engine, "build", "-t", "twin2", str(ctx))
    assert third.stdout.count("Using cache") == 3, third.stdout
    for i in range(3):
        engine.images.remove(f"twin{i}")


def test_builder_prune_and_system_df(engine, tmp_path):  # noqa: F811
    ctx = _ctx(tmp_path, "FROM busybox\nRUN echo prune-me > /p\n")
    engine.build(ctx, tags=["prunetest"])
    df = _cli(engine, "system", "df")
    assert "Build Cache" in df.stdout
    verbose = _cli(engine, "system", "df", "-v")
    assert "CACHE ID" in verbose.stdout and "RUN echo prune-me > /p" in verbose.stdout
    engine.images.remove("prunetest")
    records = engine.build_cache().records()
    assert records
    out = _cli(engine, "builder", "prune", "-f")
    assert out.returncode == 0 and "Deleted build cache records" in out.stdout
    assert engine.build_cache().records() == []
    assert not [l for l in engine.store.leases() if l["holder"].startswith("cache-")]
    events: list = []
    engine.build(ctx, tags=["prunetest"], on_event=events.append)
    assert _steps(events)[0][1] == "MISS"
    engine.images.remove("prunetest")


def test_failed_and_interrupted_builds_leave_nothing(engine, tmp_path):  # noqa: F811
    ctx = _ctx(tmp_path, "FROM busybox\nCOPY f /f\nRUN sleep 30\n", {"f": "x"})
    started = threading.Event()

    def on_event(e):
        if e.kind == "step" and e.step == 3:
            started.set()
    result: dict = {}

    def target():
        try:
            Engine(engine.root).build(ctx, tags=["interrupted"], on_event=on_event)
        except BaseException as exc:  # noqa: BLE001
            result["exc"] = exc
    thread = threading.Thread(target=target)
    thread.start()
    assert started.wait(30)
    # the RUN's container: kill its process from outside, like a crash of the step
    import time
    deadline = time.monotonic() + 10
    victims = []
    while not victims and time.monotonic() < deadline:
        victims = [c for c in engine.containers.list() if c.labels.get("sandbox.build")]
        time.sleep(0.05)
    assert victims
    victims[0].kill()
    thread.join(30)
    assert isinstance(result.get("exc"), BuildError) and result["exc"].returncode == 137
    with pytest.raises(ImageNotFound):
        engine.images.get("interrupted")
    assert not [c for c in engine.containers.list(all=True) if c.labels.get("sandbox.build")]
    assert not leaks.mounts_below(str(engine.root / "tmp"))
    assert not list((engine.root / "tmp").glob("step-*"))


def test_a_build_killed_during_copy_leaves_nothing_mounted(engine, tmp_path):  # noqa: F811
    """kill -9 of a build while a COPY writes into its overlay: the next user of the store
    unmounts and removes what it left."""
    ctx = _ctx(tmp_path, "FROM busybox\nCOPY big /big\n")
    with open(ctx / "big", "wb") as f:
        f.write(os.urandom(1 << 20) * 400)        # 400 MiB: the copy takes a while
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "build", "-q", "-t", "killed-copy", str(ctx)],
                            env=dict(os.environ, SANDBOX_ROOT=str(engine.root)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import time
    deadline = time.monotonic() + 60
    while not [m for m in leaks.mounts_below(str(engine.root / "tmp")) if "step-" in m]:
        assert proc.poll() is None and time.monotonic() < deadline, "the COPY never started"
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert leaks.mounts_below(str(engine.root / "tmp"))       # it did leave its mount behind
    Engine(engine.root).store  # noqa: B018 - the next user of the store recovers it
    assert not leaks.mounts_below(str(engine.root / "tmp"))
    assert not list((engine.root / "tmp").glob("step-*")) and not list((engine.root / "tmp").glob("build-*"))
    with pytest.raises(ImageNotFound):
        engine.images.get("killed-copy")


def test_copy_never_writes_through_an_image_symlink_to_the_host(engine, tmp_path):  # noqa: F811
    """An image may hold /app/link -> /HOSTDIR (absolute); COPY follows it inside the image only."""
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()
    df = (f"FROM busybox\nRUN mkdir -p /app && ln -s {host_dir} /app/link\n"
          "COPY tree/ /app/\nCOPY single.txt /app/link/single.txt\n")
    ctx = _ctx(tmp_path, df, {"tree/link/evil.txt": "x", "tree/ok.txt": "ok", "single.txt": "s",
                              ".dockerignore": "tree/link\n!tree/link/evil.txt\n"})
    engine.build(ctx, tags=["symlinks"])
    assert list(host_dir.iterdir()) == []          # nothing reached the host
    out = engine.run("symlinks", ["sh", "-c", f"cat /app/ok.txt {host_dir}/evil.txt {host_dir}/single.txt"])
    assert out.output == b"okxs"                  # resolved inside the image
    engine.images.remove("symlinks")


def test_env_of_a_key_the_image_has_keeps_its_place(engine, tmp_path):  # noqa: F811
    base = engine.images.get("busybox").config["config"]["Env"]
    assert base[0].startswith("PATH=")
    ctx = _ctx(tmp_path, "FROM busybox\nENV A=1\nENV PATH=/x:$PATH B=2\nENV A=3\n")
    image = engine.build(ctx, tags=["envorder"])
    try:
        env = image.config["config"]["Env"]
        assert env == [f"PATH=/x:{base[0][5:]}", *base[1:], "A=3", "B=2"]   # as Docker orders it
    finally:
        engine.images.remove("envorder", force=True)


def test_a_same_size_same_mtime_change_still_misses(engine, tmp_path):  # noqa: F811
    """The context is hashed by content on every build, not trusted by its stat: a rewrite that
    keeps the size and puts the mtime back (a checkout, ``touch -r``) is still a change."""
    ctx = _ctx(tmp_path, "FROM busybox\nCOPY app.txt /app.txt\nCMD cat /app.txt\n", {"app.txt": "aaaa\n"})
    engine.build(ctx, tags=["samestat"])
    before = os.stat(ctx / "app.txt")
    (ctx / "app.txt").write_text("bbbb\n")
    os.utime(ctx / "app.txt", ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(ctx / "app.txt")
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    events: list = []
    engine.build(ctx, tags=["samestat"], on_event=events.append)
    steps = _steps(events)
    assert [c for _, c, _ in steps] == ["MISS", "MISS"] and "app.txt" in steps[0][2]
    assert engine.run("samestat").output == b"bbbb\n"
    engine.images.remove("samestat")


def test_cached_steps_are_unpacked_for_the_first_step_that_reads_them(engine, tmp_path):  # noqa: F811
    """A cache hit leaves its layers to the step that mounts them: a RUN after hits, and a
    COPY --from a stage that was all hits, see every file the cached steps made."""
    df = ("FROM busybox AS stage\nRUN echo made > /made\nENV X=1\n"
          "FROM busybox\nRUN echo one > /one\nCOPY --from=stage /made /made\n")
    ctx = _ctx(tmp_path, df)
    engine.build(ctx, tags=["unpacked"])
    (ctx / "Dockerfile").write_text(df + "COPY --from=stage /made /again\nRUN cat /one /made /again > /all\n"
                                    "CMD cat /all\n")
    events: list = []
    engine.build(ctx, tags=["unpacked"], on_event=events.append)
    assert [c for _, c, _ in _steps(events)] == ["HIT", "HIT", "HIT", "HIT", "MISS", "MISS", "MISS"]
    assert engine.run("unpacked").output == b"one\nmade\nmade\n"
    engine.images.remove("unpacked")
