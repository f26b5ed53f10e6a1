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


def check_diff_and_commit(engine: Engine, repo: str) -> None:
    """A change of each kind shows in ``diff``, and ``commit`` makes it one layer on the image.

    Shared by the overlay and the vfs driver's tests: the same change must read
    the same through either.
    """
    c = engine.containers.run("busybox", ["sh", "-c", "mkdir /newdir && echo hi > /newdir/f && "
                                          "rm /bin/true && echo x >> /etc/passwd"], detach=True)
    try:
        assert c.wait()["StatusCode"] == 0
        changes = c.changes()
        assert ("A", "/newdir") in changes and ("A", "/newdir/f") in changes
        assert ("D", "/bin/true") in changes and ("C", "/etc/passwd") in changes
        assert not any(p in ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/mtab", "/proc", "/dev",
                             "/sys") for _, p in changes), changes
        image = c.commit(repo, "v1", message="lab change", changes=["CMD cat /newdir/f"])
        assert len(image.diff_ids) == len(engine.images.get("busybox").diff_ids) + 1
        assert engine.run(f"{repo}:v1").output == b"hi\n"
        assert engine.run(f"{repo}:v1", ["ls", "/bin/true"]).exit_code != 0
        engine.images.remove(f"{repo}:v1")
    finally:
        c.remove(force=True)
