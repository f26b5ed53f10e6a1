"""No build reads or writes the host through a path it was given: symlinks, ``..`` and races in the
context, in the image being built, and in a stage copied from, on a real store.

The rules are BuildKit's: a source is resolved with its root (the context, or the stage) as ``/``,
a symlink inside a copied directory is copied as a symlink, a destination is resolved inside the
image, and ``.dockerignore`` hides a file also from a symlink that names it.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from sandbox import BuildError
from tests import leaks
from tests.integration.container_env import engine  # noqa: F401  (module fixture)

SECRET = "host-secret-7f3a\n"


def _ctx(tmp_path: Path, dockerfile: str | None, files: dict[str, str] | None = None,
         links: dict[str, str] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    if dockerfile is not None:
        (ctx / "Dockerfile").write_text(dockerfile)
    for rel, content in (files or {}).items():
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_text(content)
    for rel, target in (links or {}).items():
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, ctx / rel)
    return ctx


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "secret.txt"
    path.parent.mkdir()
    path.write_text(SECRET)
    return path


def _out(engine, image: str, *cmd: str) -> bytes:  # noqa: F811
    return engine.run(image, list(cmd)).output


def test_a_context_symlink_to_the_host_is_not_followed_out(engine, tmp_path, secret):  # noqa: F811
    ctx = _ctx(tmp_path, "FROM busybox\nCOPY leak /leak\n", links={"leak": str(secret)})
    with pytest.raises(BuildError) as err:
        engine.build(ctx, tags=["paths-leak"])
    assert "file not found in build context" in str(err.value)
    assert "leak is a symlink to" in (err.value.hint or "")        # the hint says why
    # the same link through a directory, and a relative one climbing out
    for links in ({"d": str(secret.parent)}, {"d": "../outside"}):
        shutil.rmtree(ctx)
        ctx = _ctx(tmp_path, "FROM busybox\nCOPY d/secret.txt /s\n", links=links)
        with pytest.raises(BuildError, match="file not found"):
            engine.build(ctx, tags=["paths-leak"])
    assert not leaks.mounts_below(str(engine.root / "tmp"))


def test_an_absolute_symlink_is_followed_inside_the_context(engine, tmp_path):  # noqa: F811
    """``abs -> /inside.txt`` means the context's inside.txt (the context is /), as BuildKit reads it."""
    ctx = _ctx(tmp_path, "FROM busybox\nCOPY abs /abs\nCOPY sub/up /up\nCOPY lin* /w/\n",
               {"inside.txt": "in\n"}, {"abs": "/inside.txt", "sub/up": "../../../../inside.txt",
                                        "link1": "inside.txt"})
    engine.build(ctx, tags=["paths-abs"])
    try:
        assert _out(engine, "paths-abs", "cat", "/abs", "/up", "/w/link1") == b"in\nin\nin\n"
    finally:
        engine.images.remove("paths-abs")


def test_a_symlink_inside_a_copied_directory_stays_a_symlink(engine, tmp_path, secret):  # noqa: F811
    ctx = _ctx(tmp_path, "FROM busybox\nCOPY tree/ /tree/\n", {"tree/ok": "ok\n"},
               {"tree/leak": str(secret), "tree/dir": str(secret.parent)})
    engine.build(ctx, tags=["paths-tree"])
    try:
        out = _out(engine, "paths-tree", "sh", "-c", "readlink /tree/leak; readlink /tree/dir; cat /tree/ok; "
                                                     "cat /tree/leak 2>/dev/null || echo absent")
        assert out.decode() == f"{secret}\n{secret.parent}\nok\nabsent\n"
    finally:
        engine.images.remove("paths-tree")


def test_dockerfile_and_dockerignore_links_stay_in_the_context(engine, tmp_path, secret):  # noqa: F811
    outside_df = tmp_path / "outside" / "Dockerfile"
    outside_df.write_text("FROM busybox\nRUN echo from-outside\n")
    ctx = _ctx(tmp_path, None, links={"Dockerfile": str(outside_df)})
    with pytest.raises(BuildError, match="Cannot locate specified Dockerfile"):
        engine.build(ctx, tags=["paths-df"])
    # -f naming a file outside the context is the caller's own file: read as given, as docker does
    image = engine.build(ctx, dockerfile=str(outside_df), tags=["paths-df"])
    engine.images.remove(image.id, force=True)
    # a .dockerignore that points out is no .dockerignore
    shutil.rmtree(ctx)
    ignore = tmp_path / "outside" / "ignore"
    ignore.write_text("*\n")
    ctx = _ctx(tmp_path, "FROM busybox\nCOPY f /f\n", {"f": "f\n"}, {".dockerignore": str(ignore)})
    engine.build(ctx, tags=["paths-ign"])
    try:
        assert _out(engine, "paths-ign", "cat", "/f") == b"f\n"
    finally:
        engine.images.remove("paths-ign")


def test_an_ignored_file_cannot_be_reached_through_a_link(engine, tmp_path):  # noqa: F811
    ctx = _ctx(tmp_path, "FROM busybox\nCOPY alias /alias\n", {"secret.key": "k\n", ".dockerignore": "secret.key\n"},
               {"alias": "secret.key"})
    with pytest.raises(BuildError, match="excluded by .dockerignore"):
        engine.build(ctx, tags=["paths-ignored"])


def test_dotdot_sources_are_refused(engine, tmp_path, secret):  # noqa: F811
    for src in ("../outside/secret.txt", "a/../../outside/secret.txt"):
        ctx = _ctx(tmp_path, f"FROM busybox\nCOPY {src} /s\n", {"a/x": "x"})
        with pytest.raises(BuildError, match="forbidden path outside the build context"):
            engine.build(ctx, tags=["paths-dotdot"])
        shutil.rmtree(ctx)


def test_run_mount_sources_are_confined(engine, tmp_path, secret):  # noqa: F811
    ctx = _ctx(tmp_path, "# syntax=docker/dockerfile:1\nFROM busybox\n"
                         "RUN --mount=type=bind,source=leak,target=/m cat /m\n", links={"leak": str(secret)})
    with pytest.raises(BuildError, match="file not found"):
        engine.build(ctx, tags=["paths-mount"])
    assert not leaks.mounts_below(str(engine.root / "tmp"))
    # a file source is bound as that file; a link inside a bound directory stays a link
    shutil.rmtree(ctx)
    ctx = _ctx(tmp_path, "# syntax=docker/dockerfile:1\nFROM busybox\n"
                         "RUN --mount=type=bind,source=f,target=/m/f --mount=type=bind,source=d,target=/d "
                         "cat /m/f && readlink /d/leak > /seen && (cat /d/leak || true) >> /seen\n",
               {"f": "file\n", "d/x": "x"}, {"d/leak": str(secret)})
    engine.build(ctx, tags=["paths-mount"])
    try:
        assert _out(engine, "paths-mount", "cat", "/seen") == f"{secret}\n".encode()
    finally:
        engine.images.remove("paths-mount")


def test_copy_from_a_stage_resolves_inside_that_stage(engine, tmp_path, secret):  # noqa: F811
    """The stage's /link -> HOSTPATH is the stage's HOSTPATH (absent there), never the host's file."""
    df = (f"FROM busybox AS src\nRUN ln -s {secret} /link && ln -s ../../../../../{secret} /rel "
          "&& mkdir -p /real && echo real > /real/f && ln -s /real /via\n"
          "FROM busybox\nCOPY --from=src /via/f /f\n"
          "RUN --mount=type=bind,from=src,source=/via,target=/v cat /v/f > /g\n")
    ctx = _ctx(tmp_path, df)
    engine.build(ctx, tags=["paths-stage"])
    try:
        assert _out(engine, "paths-stage", "cat", "/f", "/g") == b"real\nreal\n"
    finally:
        engine.images.remove("paths-stage")
    for name in ("link", "rel"):
        (ctx / "Dockerfile").write_text(df.split("FROM busybox\nCOPY")[0] + f"FROM busybox\nCOPY --from=src /{name} /x\n")
        with pytest.raises(BuildError, match="file not found"):
            engine.build(ctx, tags=["paths-stage"])
        (ctx / "Dockerfile").write_text(df.split("FROM busybox\nCOPY")[0] + "FROM busybox\n"
                                        f"RUN --mount=type=bind,from=src,source=/{name},target=/v cat /v\n")
        with pytest.raises(BuildError, match="file not found"):
            engine.build(ctx, tags=["paths-stage"])
    assert not leaks.mounts_below(str(engine.root / "tmp"))


def test_workdir_and_heredoc_write_inside_the_image(engine, tmp_path):  # noqa: F811
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()
    df = (f"# syntax=docker/dockerfile:1\nFROM busybox\nRUN ln -s {host_dir} /app && ln -s ../../../{host_dir} /rel\n"
          "WORKDIR /app/made\nCOPY <<EOF /rel/here.txt\nheredoc\nEOF\n")
    ctx = _ctx(tmp_path, df)
    engine.build(ctx, tags=["paths-workdir"])
    try:
        assert list(host_dir.iterdir()) == []
        assert _out(engine, "paths-workdir", "sh", "-c", f"ls -d {host_dir}/made; cat {host_dir}/here.txt") == \
            f"{host_dir}/made\nheredoc\n".encode()
    finally:
        engine.images.remove("paths-workdir")


def test_a_directory_swapped_for_a_link_while_copied_never_leaks(engine, tmp_path, secret):  # noqa: F811
    """While COPY reads ``tree/``, another thread keeps swapping ``tree/sub`` between a directory and a
    symlink to the host's secret directory: whatever each build saw, no image holds the secret."""
    ctx = _ctx(tmp_path, "FROM busybox\nCOPY tree/ /tree/\n",
               {f"tree/sub/f{i}": "x" * 4096 for i in range(50)})
    real, link, spare = ctx / "tree" / "sub", ctx / "tree" / "sub-link", ctx / "tree" / "sub-dir"
    os.symlink(secret.parent, link)
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            os.rename(real, spare)
            os.rename(link, real)          # tree/sub is now the link
            os.rename(real, link)
            os.rename(spare, real)         # and a directory again
    thread = threading.Thread(target=swap)
    thread.start()
    images = []
    try:
        for i in range(8):
            try:
                images.append(engine.build(ctx, tags=[f"paths-race:{i}"], no_cache=True).id)
            except BuildError as e:        # a source that changed mid-copy may fail the step
                assert "secret" not in str(e)
    finally:
        stop.set()
        thread.join()
    try:
        for i in range(len(images)):
            out = _out(engine, images[i], "sh", "-c", "cat /tree/sub/secret.txt /tree/sub-link/secret.txt "
                                                      "/tree/sub-dir/secret.txt 2>/dev/null; true")
            assert SECRET.encode() not in out
    finally:
        for image in images:
            engine.images.remove(image, force=True)
    assert not leaks.mounts_below(str(engine.root / "tmp"))
