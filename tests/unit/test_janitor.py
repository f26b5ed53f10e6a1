"""The janitor (sandbox/supervisor/janitor.py): a real process deletes what it is sent, in order;
close() waits for it; one that died is started again; a path it cannot take is refused."""

from __future__ import annotations

import os
import signal

from sandbox.supervisor.janitor import Janitor


def tree(root, n: int = 3):
    for i in range(n):
        (root / f"d{i}" / "sub").mkdir(parents=True)
        (root / f"d{i}" / "sub" / "f").write_text("x")
        os.mkfifo(root / f"d{i}" / "fifo")
    (root / "work").mkdir()
    (root / "work" / "work").mkdir(mode=0)      # as overlayfs leaves it
    return root


def test_the_janitor_deletes_what_it_is_sent_and_close_waits_for_it(tmp_path):
    janitor = Janitor()
    doomed = [tree(tmp_path / f"c{i}") for i in range(5)]
    assert all(janitor.delete(str(d)) for d in doomed)
    proc = janitor.proc
    janitor.close()
    assert proc is not None and proc.returncode == 0
    assert not any(d.exists() for d in doomed)
    assert janitor.proc is None


def test_a_janitor_that_died_is_started_again(tmp_path):
    janitor = Janitor()
    assert janitor.delete(str(tree(tmp_path / "a")))
    first = janitor.proc
    assert first is not None
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert janitor.delete(str(tree(tmp_path / "b")))
    assert janitor.proc is not None and janitor.proc.pid != first.pid
    janitor.close()
    assert not (tmp_path / "b").exists()


def test_a_path_longer_than_an_atomic_pipe_write_is_left_to_the_caller(tmp_path):
    janitor = Janitor()
    assert not janitor.delete(str(tmp_path / ("x" * 5000)))
    assert janitor.proc is None
