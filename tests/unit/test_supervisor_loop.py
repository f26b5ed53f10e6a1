"""The supervisor's event loop: idle work waits for a quiet moment and is never lost."""

from __future__ import annotations

import os
import signal

import pytest

from sandbox.supervisor.loop import Loop


@pytest.fixture
def loop():
    """A Loop, which takes over SIGCHLD and the wakeup fd: both given back afterwards."""
    old_chld = signal.getsignal(signal.SIGCHLD)
    made = Loop()
    try:
        yield made
    finally:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, old_chld)
        for fd in (made._wake_r, made._wake_w):
            os.close(fd)
        made.sel.close()


@pytest.fixture
def pipe():
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


def test_idle_work_waits_until_nothing_is_ready_and_runs_at_exit(loop, pipe):
    order: list[str] = []
    r, w = pipe

    def on_read() -> None:
        os.read(r, 1)
        order.append("request")

    loop.add_reader(r, on_read)
    loop.when_idle(lambda: order.append("idle-1"))
    loop.when_idle(lambda: order.append("idle-2"))
    os.write(w, b"x")
    loop.run_once(0)            # a ready descriptor goes first
    assert order == ["request"]
    loop.run_once(0)            # then one piece of idle work per quiet turn
    assert order == ["request", "idle-1"]
    loop.running = False
    loop.run()                  # what is left runs on the way out
    assert order == ["request", "idle-1", "idle-2"]
    assert not loop.idle
    loop.remove_reader(r)


def test_idle_work_waits_for_a_quiet_moment_and_can_be_done_while_waiting_elsewhere(loop):
    from sandbox.supervisor import loop as loop_mod
    order: list[str] = []
    assert loop_mod.QUIET > 0     # a client's next request right after an answer goes first
    assert loop.run_one_idle() is False   # nothing queued: nothing done, nothing left
    loop.when_idle(lambda: order.append("idle-1"))
    loop.when_idle(lambda: 1 / 0)      # a failing piece is logged, not raised into the runtime
    loop.when_idle(lambda: order.append("idle-3"))
    # what the runtime calls while a container's init sets itself up: one piece per call
    assert loop.run_one_idle() is True and order == ["idle-1"]
    assert loop.run_one_idle() is True and order == ["idle-1"]
    assert loop.run_one_idle() is False and order == ["idle-1", "idle-3"]


def test_a_tree_is_deleted_one_entry_per_piece_of_idle_work(loop, tmp_path):
    doomed = tmp_path / ".removing-x"
    (doomed / "upper" / "etc").mkdir(parents=True)
    (doomed / "upper" / "etc" / "passwd").write_text("root\n")
    (doomed / "container.json").write_text("{}")
    os.symlink(tmp_path / "outside", doomed / "init")     # a link is removed, never followed
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep").write_text("")
    os.mkfifo(doomed / "stdout.fifo")
    loop.delete_when_idle(doomed)
    pieces = 0
    while loop.run_one_idle():
        pieces += 1
        assert doomed.exists()    # the runtime answers its init between any two pieces
    assert not doomed.exists()
    assert pieces >= 4            # one per entry, not one rmtree of the lot
    assert (tmp_path / "outside" / "keep").exists()
    loop.delete_when_idle(tmp_path / "gone-already")   # nothing there: nothing to do, no error
    loop.run_idle()
    assert not loop.idle


def test_once_quiet_the_pieces_of_idle_work_follow_one_another_until_an_event(loop, pipe):
    from sandbox.supervisor import loop as loop_mod
    waits: list[float | None] = []
    real_select = loop.sel.select

    def select(timeout=None):
        waits.append(timeout)
        return real_select(0)     # nothing is ever waited for here

    loop.sel.select = select
    r, w = pipe
    done: list[int] = []
    loop.add_reader(r, lambda: os.read(r, 1))
    for i in range(4):
        loop.when_idle(lambda i=i: done.append(i))
    for _ in range(3):
        loop.run_once()
    # one quiet wait, then no new one per piece: a directory's dozen pieces take no 12 waits
    assert (waits, done) == ([loop_mod.QUIET, 0.0, 0.0], [0, 1, 2])
    os.write(w, b"x")
    loop.run_once()           # a request came: the next piece waits for quiet again
    loop.run_once()
    assert waits[3:] == [0.0, loop_mod.QUIET] and done == [0, 1, 2, 3]
    loop.remove_reader(r)
