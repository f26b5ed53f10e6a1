"""Lab 10's test bench: runs *your* steps in a child process, then the command.

Nothing here isolates anything: the isolation is what you write in the
notebook.  ``start(argv, step, step, ...)`` does what your ``run`` of part 1
does (fork, exec, wait), plus three things a lab needs:

* the child's output goes through a pipe, so the notebook can show it;
* the child calls your steps (plain functions) between ``fork`` and ``exec``,
  in the order given; if one raises, the child prints why and exits 126;
* the parent gets a :class:`Box` back at once, so a check can look at the
  running process (its ``/proc/PID/root``, its namespaces, its cgroup) before
  it ends.

A step that forks (the PID namespace needs it) makes a chain of processes:
``Box.init`` is the one that ran the command.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from collections.abc import Callable, Sequence

_PYTHON = os.stat(sys.executable)
_BOXES: list[Box] = []
_KERNEL_PID = os.getpid()
_HELPERS = {"_ok", "_in_a_child", "unshare", "mount", "umount2", "pivot_root", "<lambda>"}


@dataclass
class Result:
    """How a box ended: ``code`` as subprocess gives it (-9: killed by signal 9)."""
    code: int
    output: str

    def __repr__(self) -> str:
        how = f"killed by signal {-self.code}" if self.code < 0 else f"exit code {self.code}"
        return f"{how}, output:\n{self.output}" if self.output else f"{how}, no output"


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        pass
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _is_python(pid: int) -> bool:
    """Still this notebook's Python (forked, not exec'd yet)?"""
    try:
        st = os.stat(f"/proc/{pid}/exe")
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (_PYTHON.st_dev, _PYTHON.st_ino)


class Box:
    """A child process started by :func:`start`, and the processes it forked."""

    def __init__(self, pid: int, out_fd: int, argv: Sequence[str]) -> None:
        self.pid, self._fd, self.argv = pid, out_fd, list(argv)
        self._chunks: list[bytes] = []
        self.result: Result | None = None

    def __repr__(self) -> str:
        state = "running" if self.result is None else repr(self.result).split(",")[0]
        return f"<box pid {self.pid}: {' '.join(self.argv)} ({state})>"

    @property
    def init(self) -> int | None:
        """The host's pid of the process that runs the command (None once it ended).

        Waits up to 5 s for the exec, following the chain of forks down.
        """
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.result is None:
            pid = self.pid
            while _is_python(pid):
                kids = _children(pid)
                if not kids:
                    break
                pid = kids[0]
            if not _is_python(pid) and os.path.exists(f"/proc/{pid}/exe"):
                return pid
            if self._reaped():
                return None
            time.sleep(0.02)
        return None

    def running_pid(self) -> int | None:
        """:attr:`init`; when the box has already ended, print how (a failed step says why) and return None."""
        pid = self.init
        if pid is None:
            print("the box is not running:", self.wait())
        return pid

    def _reaped(self) -> bool:
        if self.result is not None:
            return True
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 0
        if pid == 0:
            return False
        self._finish(os.waitstatus_to_exitcode(status))
        return True

    def _read(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._fd >= 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                return
            chunk = os.read(self._fd, 65536)
            if not chunk:
                os.close(self._fd)
                self._fd = -1
                return
            self._chunks.append(chunk)

    def _finish(self, code: int) -> None:
        self._read(0.5)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.result = Result(code, b"".join(self._chunks).decode(errors="replace"))

    def wait(self, timeout: float = 30) -> Result:
        """Wait for the box to end (killing it after ``timeout`` s); how it ended and what it printed."""
        deadline = time.monotonic() + timeout
        while self.result is None:
            self._read(0.05)
            if self._reaped():
                break
            if time.monotonic() > deadline:
                self.kill()
                break
        assert self.result is not None
        return self.result

    def kill(self) -> Result:
        """SIGKILL the box and everything it forked; reap it."""
        if self.result is None:
            chain, pid = [], self.pid
            while pid and len(chain) < 16:
                chain.append(pid)
                kids = _children(pid)
                pid = kids[0] if kids else 0
            for p in reversed(chain):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _, status = os.waitpid(self.pid, 0)
            self._finish(os.waitstatus_to_exitcode(status))
        assert self.result is not None
        return self.result


def _child(argv: Sequence[str], steps: Sequence[Callable[[], object]], out: int) -> None:
    """In the child: output to the pipe, the steps, then exec. Never returns."""
    code = 127
    try:
        gc.disable()                     # no finalizer of the notebook's objects runs here
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        sys.stdout = sys.stderr = open(1, "w", buffering=1, closefd=False)
        for step in steps:
            try:
                step()
            except BaseException as e:   # noqa: BLE001 - a student's step may raise anything
                frames = traceback.extract_tb(e.__traceback__)[1:]
                chain = " -> ".join(f.name for f in frames if f.name != "<lambda>") or "a step"
                # The line to show is the student's: the deepest frame outside the lab's libc helpers.
                yours = [f for f in frames if f.name not in _HELPERS] or frames
                print(f"the step failed in {chain}: {type(e).__name__}: {e} (at: {yours[-1].line})")
                code = 126
                return
        os.execvp(argv[0], list(argv))
    except BaseException as e:           # noqa: BLE001
        try:
            print(f"exec {argv[0]} failed: {type(e).__name__}: {e}")
        except BaseException:            # noqa: BLE001
            pass
    finally:
        try:
            sys.stdout.flush()
        except BaseException:            # noqa: BLE001
            pass
        os._exit(code)


def start(argv: Sequence[str], *steps: Callable[[], object]) -> Box:
    """Fork; in the child run ``steps`` in order, then exec ``argv``; return the running :class:`Box`."""
    argv = [str(a) for a in argv]
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _child(argv, steps, w)
    os.close(w)
    box = Box(pid, r, argv)
    _BOXES.append(box)
    return box


def run(argv: Sequence[str], *steps: Callable[[], object], timeout: float = 30) -> Result:
    """:func:`start`, then wait: how it ended and what it printed."""
    return start(argv, *steps).wait(timeout)


def kill_all() -> int:
    """Kill every box this kernel started that still runs; how many there were."""
    running = [b for b in _BOXES if b.result is None]
    for box in running:
        box.kill()
    _BOXES.clear()
    return len(running)


def guard_forks() -> None:
    """If a forked copy of this kernel ever gets back to IPython (an exec that failed
    without ``os._exit``), end it there instead of letting a second kernel run."""
    from IPython import get_ipython
    ip = get_ipython()
    if ip is None:
        return

    def end_forked_copy(*_: object) -> None:
        if os.getpid() != _KERNEL_PID:
            os._exit(127)

    ip.events.register("pre_run_cell", end_forked_copy)
    ip.events.register("post_run_cell", end_forked_copy)
