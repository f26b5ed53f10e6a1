"""What the init's two stages share: their arguments, their messages, their steps.

Every step of the checklist runs inside :func:`step`, which names it for the
error the caller will see and times it for the ``ready`` message; a failed
step ends the init through :func:`fail_and_exit`, which reports it on the
sync pipe (or on stderr once nobody listens any more).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from ..errors import KernelError


@dataclass
class InitArgs:
    """What the caller hands the forked init (no serialisation: fork copies it)."""

    spec: dict[str, Any]
    sync_fd: int                      # write end of the pipe to the caller
    ack_fd: int                       # read end of the pipe from the caller
    fifo_path: str | None             # the exec fifo; None: exec as soon as ready
    fifo_fd: int | None = None        # stage 1 opens it (O_PATH) for stage 2
    in_cgroup: bool = False           # the caller moves PID 1 into a cgroup before it acks the pid
    join_files: tuple[str, ...] = ()  # or PID 1 writes 0 to these to move itself (v1 ``tasks``)
    join_fds: tuple[int, ...] = ()    # ... opened by stage 1 while the host's paths are in view
    seccomp_bpf: bytes | None = None  # the compiled filter (compiling is the caller's job)
    stdio: tuple[int, int, int] | None = None
    console_fd: int | None = None     # connected unix socket to send the pty master to
    preserve_fds: int = 0
    no_pivot: bool = False
    process: dict[str, Any] | None = None   # exec: the process to run instead of spec's
    exec_root: str | None = None      # exec: None, or the root to chroot to (a container
                                      # without a mount namespace of its own: /proc/PID/root)
    is_exec: bool = False             # exec: the namespaces are joined, the rootfs is ready
    loopback_up: bool = False         # a spare init (.spare) brought up its network's loopback


class StepFailed(Exception):
    def __init__(self, step: str, message: str, err: int | None, kind: str = "error",
                 hint: str | None = None) -> None:
        super().__init__(message)
        self.step, self.err, self.kind, self.hint = step, err, kind, hint


def send(fd: int, **message: Any) -> None:
    os.write(fd, (json.dumps(message) + "\n").encode())


#: (step, milliseconds) of this init, sent with "ready": where start-up time goes.
TIMINGS: list[tuple[str, float]] = []


@contextmanager
def step(name: str) -> Iterator[None]:
    """Name the checklist step for the error the caller will see, and time it."""
    started = time.perf_counter()
    try:
        yield
        TIMINGS.append((name, round((time.perf_counter() - started) * 1000, 3)))
    except StepFailed:
        raise
    except KernelError as e:
        raise StepFailed(name, Exception.__str__(e), e.errno, hint=e.hint) from None
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        raise StepFailed(name, f"{e.strerror or e}{where}", e.errno) from None
    except Exception as e:  # a bug or a bad value: still one clean report
        raise StepFailed(name, f"{type(e).__name__}: {e}", None) from None


def fail_and_exit(sync_fd: int, e: BaseException) -> NoReturn:
    """Report ``e`` to the caller and exit; after ``start`` nobody listens, so say it on stderr."""
    try:
        if isinstance(e, StepFailed):
            message = dict(error=str(e), step=e.step, errno=e.err, kind=e.kind, hint=e.hint)
        else:
            message = dict(error=f"{type(e).__name__}: {e}", step="init", errno=None, kind="error")
        try:
            send(sync_fd, **message)
        except OSError:
            os.write(2, f"sandbox-runtime: {message['step']}: {message['error']}\n".encode())
        code = {"notfound": 127, "notexec": 126}.get(str(message["kind"]), 1)
    finally:
        os._exit(locals().get("code", 1))


def write_file(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
