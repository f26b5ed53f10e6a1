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
