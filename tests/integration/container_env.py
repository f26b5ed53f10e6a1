"""Fixtures for container tests: a store with busybox and its supervisor, cleaned up after.

One store per test module: bootstrapping busybox and starting the supervisor
cost about a second, which a module pays once.  At teardown every container
is removed with ``rm -fv``, the supervisor is asked to stop and waited for,
and the store must have nothing mounted below it -- the session-wide leak
check then finds no process, cgroup or mount of ours.
"""

from __future__ import annotations

import pytest

from sandbox import Engine
from sandbox.errors import SandboxError
from tests import leaks


def stop_supervisor(engine: Engine) -> None:
    """Ask the supervisor to exit and wait until its process is gone (none running: nothing to do)."""
    engine.supervisor.stop()


def clean_engine(engine: Engine) -> list[str]:
    """Remove every container and stop the supervisor; what was left mounted below the root."""
    for c in engine.containers.list(all=True):
        try:
            c.remove(force=True, v=True)
        except SandboxError:
            pass
    stop_supervisor(engine)
    return leaks.mounts_below(str(engine.root))


@pytest.fixture(scope="module")
def engine(tmp_path_factory, busybox_binary):
    root = tmp_path_factory.mktemp("containers") / "root"
    eng = Engine(root)
    eng.images.bootstrap("busybox", binary=busybox_binary)
    yield eng
    left = clean_engine(eng)
    assert not left, f"mounts left below the store: {left}"
