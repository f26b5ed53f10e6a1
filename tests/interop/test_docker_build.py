"""Our builds beside Docker's classic builder (DOCKER_BUILDKIT=0) on the same Dockerfiles.

For each Dockerfile of the corpus that the classic builder understands, both
build from the same context on the same busybox (ours, loaded into Docker);
then the image configs must agree on the keys a Dockerfile sets, and every
layer must hold the same list of files.  Docker's image is loaded back into
a store of ours to list its layers with the same code.
"""

from __future__ import annotations

import json
import tarfile

import pytest

from sandbox import Engine
from tests.dockerfiles import CASES, Ok

KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels",
        "StopSignal", "Healthcheck", "OnBuild", "Shell")
#: What the classic builder lacks (heredocs, --chmod, RUN --network and --mount, $BUILDPLATFORM) is
#: checked in the corpus instead.
SKIP = {"heredoc-run", "heredoc-run-cat", "heredoc-copy", "copy-chown-chmod", "platform-host",
        "run-mount-bind-and-cache", "run-mount-from-stage"}
DOCKER_CASES = [c for c in CASES if isinstance(c.expect, Ok) and c.name not in SKIP]


@pytest.fixture(scope="module")
def stores(busybox_both):
    ours, base = busybox_both
    return ours, Engine(base / "theirs"), base


def _norm(value):
    return None if value in (None, "", {}, []) else value


def _layer_files(engine: Engine, image) -> list[list[str]]:
    out = []
    for layer in image.layers:
        with engine.store.open_blob(layer.digest, "layer") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            names = sorted(m.name.rstrip("/").removeprefix("./") for m in tar)
        out.append([n for n in names if n not in ("", ".")])
    return out


@pytest.mark.parametrize("case", DOCKER_CASES, ids=lambda c: c.name)
def test_same_config_and_layers_as_docker(stores, docker, case, monkeypatch):
    ours, theirs, base = stores
    ctx = base / f"ctx-{case.name}"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(case.text)
    for name, content in case.files.items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(content)
    tag = f"interop-{case.name}:1"
    mine = ours.build(ctx, tags=[tag], build_args=case.build_args, target=case.target)
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    args = ["build", "--network", "none", "-q", "-t", tag]
    for k, v in case.build_args.items():
        args += ["--build-arg", f"{k}={v}"]
    if case.target:
        args += ["--target", case.target]
    docker(*args, str(ctx))
    try:
        saved = base / f"{case.name}.tar"
        docker("save", "-o", str(saved), tag)
        with open(saved, "rb") as f:
            (dimg,) = theirs.images.load(f)
        want = json.loads(docker("inspect", "-f", "{{json .Config}}", tag).stdout)
        got = mine.config["config"]
        for key in KEYS:
            assert _norm(got.get(key)) == _norm(want.get(key)), (key, got.get(key), want.get(key))
        assert _layer_files(ours, mine) == _layer_files(theirs, dimg)
        assert len(mine.config["history"]) == len(dimg.config["history"])
        assert [bool(h.get("empty_layer")) for h in mine.config["history"]] == \
            [bool(h.get("empty_layer")) for h in dimg.config["history"]]
    finally:
        docker("rmi", "-f", tag, check=False)
        ours.images.remove(tag, force=True)
