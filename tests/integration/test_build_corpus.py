"""Every Dockerfile of the corpus built on a real store: image config, output, or the error.

RUN steps go through the supervisor like any container, so this is also a
test that builds leave no container, mount or layer-less tag behind.
"""

from __future__ import annotations

import pytest

from sandbox import errors
from tests.dockerfiles import CASES, Ok, Syntax
from tests.integration.container_env import engine  # noqa: F401  (module fixture)

BUILD_CASES = [c for c in CASES if not (isinstance(c.expect, Syntax) and not c.expect.at_build)]


def _context(tmp_path, case):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(case.text)
    for name, content in case.files.items():
        path = ctx / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return ctx


@pytest.mark.parametrize("case", BUILD_CASES, ids=lambda c: c.name)
def test_corpus_build(engine, tmp_path, case):  # noqa: F811
    ctx = _context(tmp_path, case)
    tag = f"corpus-{case.name}:test"
    events = []
    before = {c.id for c in engine.containers.list(all=True)}
    try:
        if isinstance(case.expect, Ok):
            image = engine.build(ctx, tags=[tag], build_args=case.build_args, target=case.target,
                                 on_event=events.append)
            config = image.config["config"]
            for key, value in case.expect.config.items():
                assert config.get(key) == value, (key, config.get(key))
            if case.expect.layers is not None:
                base = engine.images.get("busybox")
                assert len(image.diff_ids) - len(base.diff_ids) == case.expect.layers
            if case.expect.output is not None:
                result = engine.run(tag, case.expect.command)
                assert result.output.decode() == case.expect.output, result
                assert result.exit_code == 0
            assert [e.kind for e in events][-1] == "result"
        else:
            cls = errors.DockerfileSyntaxError if isinstance(case.expect, Syntax) else \
                getattr(errors, case.expect.cls)
            with pytest.raises(cls) as info:
                engine.build(ctx, tags=[tag], build_args=case.build_args, target=case.target,
                             on_event=events.append)
            assert case.expect.text in str(info.value)
            assert info.value.line == case.expect.line
            with pytest.raises(errors.ImageNotFound):
                engine.images.get(tag)   # nothing half-made is tagged
            assert events[-1].kind == "error" and events[-1].line == (case.expect.line or 0)
    finally:
        with pytest.raises(errors.ImageNotFound) if not isinstance(case.expect, Ok) else _nothing():
            engine.images.remove(tag, force=True)
    after = {c.id for c in engine.containers.list(all=True)}
    assert after <= before, "a build left a container behind"


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
