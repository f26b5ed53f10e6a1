"""The supervisor's event loop: idle work waits for a quiet moment and is never lost."""

from __future__ import annotations

import os
import signal

from sandbox.supervisor.loop import Loop


def test_idle_work_waits_until_nothing_is_ready_and_runs_at_exit():
    old_chld = signal.getsignal(signal.SIGCHLD)
    loop = Loop()   # takes over SIGCHLD and the wakeup fd: given back below
    order: list[str] = []
    r, w = os.pipe()
    try:
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
    finally:
        loop.remove_reader(r)
        os.close(r)
        os.close(w)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, old_chld)
        for fd in (loop._wake_r, loop._wake_w):
            os.close(fd)
        loop.sel.close()


def test_idle_work_waits_for_a_quiet_moment_and_can_be_done_while_waiting_elsewhere():
    from sandbox.supervisor import loop as loop_mod
    old_chld = signal.getsignal(signal.SIGCHLD)
    loop = Loop()
    order: list[str] = []
    try:
        assert loop_mod.QUIET > 0     # a client's next request right after an answer goes first
        assert loop.run_one_idle() is False   # nothing queued: nothing done, nothing left
        loop.when_idle(lambda: order.append("idle-1"))
        loop.when_idle(lambda: 1 / 0)      # a failing piece is logged, not raised into the runtime
        loop.when_idle(lambda: order.append("idle-3"))
        # what the runtime calls while a container's init sets itself up: one piece per call
        assert loop.run_one_idle() is True and order == ["idle-1"]
        assert loop.run_one_idle() is True and order == ["idle-1"]
        assert loop.run_one_idle() is False and order == ["idle-1", "idle-3"]
    finally:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, old_chld)
        for fd in (loop._wake_r, loop._wake_w):
            os.close(fd)
        loop.sel.close()
