"""The fork: start a container's init (see :mod:`.init`) and follow it until it is ready.

The caller's half of the init's messages (one JSON line each on the sync
pipe; the caller answers with one byte on the ack pipe):

    userns   write the new user namespace's uid_map/gid_map, then ack
    pid      PID 1's host pid; move it into its cgroup unless it moves itself, then ack
    hooks    run the createRuntime/prestart hooks, ack whether they passed
    ready    set up and blocked on the exec fifo: warnings and per-step timings
    error    the step that failed, its errno and a hint

On any failure the init is killed before the error is raised.
"""

from __future__ import annotations

import json
import os
import select
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import cgroups, kernel
from ..errors import (CgroupError, CommandNotExecutable, CommandNotFound, ContainerStartError,
                      InvalidSpec, KernelError, UsageError)
from . import init as init_mod
from .procs import kill_and_wait, reap
from .spare import SparePool

#: (container id, spec, PID 1's pid, hook stage) -> whether every hook passed.
HookRunner = Callable[[str, Mapping[str, Any], int, str], bool]
#: Work of the caller's to do while the init sets itself up; returns whether more is left.
WhileWaiting = Callable[[], bool]


@dataclass
class Ready:
    """What a spawned init reported: its pid, warnings, and where its set-up time went."""

    pid: int
    warnings: list[str] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)


def spawn(container_id: str, spec: dict[str, Any], process: dict[str, Any], *,
          fifo_path: str | None, cgroup: cgroups.Cgroup | None,
          stdio: tuple[int, int, int] | None, console_socket: str | socket.socket | None,
          preserve_fds: int, run_hooks: HookRunner, no_pivot: bool = False,
          is_exec: bool = False, exec_root: str | None = None,
          while_waiting: WhileWaiting | None = None, spares: SparePool | None = None) -> Ready:
    """Start the init of ``process`` in ``spec`` and follow its messages until it is ready.

    The init is a spare from ``spares`` when one fits (see :mod:`.spare`), else
    forked now.  ``while_waiting`` is called, one piece at a time, whenever the
    init has not spoken yet: the caller's deferred work overlaps the init's
    set-up, and so does making the next spare.
    """
    program = _seccomp_program(spec)
    # The init moves itself into a v1 cgroup (fast, see Cgroup.self_join_files)
    # unless it lives in a user namespace, where host cgroup files are not its own.
    flags, joins = init_mod.namespace_flags(spec)
    in_userns = bool(flags & kernel.CLONE_NEWUSER) or "user" in joins
    join_files = tuple(cgroup.self_join_files()) if cgroup is not None and not in_userns else ()
    console = _console(process, console_socket)
    try:
        args = init_mod.InitArgs(
            spec=spec, sync_fd=-1, ack_fd=-1, fifo_path=fifo_path,
            in_cgroup=cgroup is not None and not join_files, join_files=join_files,
            seccomp_bpf=program, stdio=stdio,
            console_fd=console.fileno() if console else None, preserve_fds=preserve_fds,
            no_pivot=no_pivot, process=process, is_exec=is_exec, exec_root=exec_root)
        child, sync_r, ack_w = _start(args, flags, joins, spares)
    finally:
        if console:
            console.close()     # the init has its own copy (forked, or sent with SCM_RIGHTS)
    if spares is not None:
        while_waiting = _refilling(spares, while_waiting)
    follower = _Follower(container_id, spec, ack_w, cgroup if cgroup is not None and not join_files
                         else None, run_hooks, while_waiting)
    try:
        return follower.follow(sync_r)
    except BaseException:
        if follower.pid:
            kill_and_wait(follower.pid)
        raise
    finally:
        os.close(sync_r)
        os.close(ack_w)
        reap(child)


def _start(args: init_mod.InitArgs, flags: int, joins: dict[str, str],
           spares: SparePool | None) -> tuple[int, int, int]:
    """Hand ``args`` to a spare init, or fork one: (the child to reap, sync read end, ack write end)."""
    spare = spares.take(flags, joins) if spares is not None and not args.is_exec \
        and not args.preserve_fds else None
    if spare is not None:
        assert spares is not None
        fds = [*(args.stdio or ()), *([args.console_fd] if args.console_fd is not None else [])]
        if spares.hand_over(spare, args, fds):
            return spare.first, spare.sync_r, spare.chan.detach()
    sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    ack_r, ack_w = os.pipe2(os.O_CLOEXEC)
    args.sync_fd, args.ack_fd = sync_w, ack_r
    try:
        child = os.fork()
    except BaseException:
        for fd in (sync_r, sync_w, ack_r, ack_w):
            os.close(fd)
        raise
    if child == 0:
        try:
            os.close(sync_r)
            os.close(ack_w)
        finally:
            init_mod.stage_one(args)
    os.close(sync_w)
    os.close(ack_r)
    return child, sync_r, ack_w


def _refilling(spares: SparePool, then: WhileWaiting | None) -> WhileWaiting:
    """The caller's waiting work with making the next spare first."""
    def work() -> bool:
        if spares.wanted():
            spares.refill()
            return True
        return then() if then is not None else False
    return work


def _seccomp_program(spec: Mapping[str, Any]) -> bytes | None:
    """The compiled filter of ``linux.seccomp`` (once per distinct profile), or None."""
    seccomp = (spec.get("linux") or {}).get("seccomp")
    try:
        return init_mod.compile_seccomp(seccomp) if seccomp else None
    except KernelError as e:
        raise InvalidSpec("linux.seccomp", str(e)) from None


def _console(process: Mapping[str, Any], console_socket: str | socket.socket | None) -> socket.socket | None:
    """The socket the init sends its pty master to, when ``process.terminal`` asks for one."""
    if not process.get("terminal"):
        return None
    if isinstance(console_socket, socket.socket):
        return console_socket.dup()  # a connected socket (the supervisor's socketpair)
    if isinstance(console_socket, str) and console_socket:
        console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            console.connect(console_socket)
        except OSError as e:
            console.close()
            raise UsageError(f"cannot connect to console socket {console_socket}: {e.strerror}") from None
        return console
    return None


class _Follower:
    """The caller's side of one init's messages (see the module docstring)."""

    def __init__(self, container_id: str, spec: dict[str, Any], ack_w: int,
                 move_into: cgroups.Cgroup | None, run_hooks: HookRunner,
                 while_waiting: WhileWaiting | None = None) -> None:
        self.container_id, self.spec, self.ack_w = container_id, spec, ack_w
        self.move_into, self.run_hooks = move_into, run_hooks
        self.while_waiting = while_waiting
        self.pid = 0

    def follow(self, sync_r: int) -> Ready:
        reader = _Lines(sync_r)
        while True:
            if self.while_waiting is not None and not reader.has_line():
                self._work_while_waiting(sync_r)
            msg = reader.next()
            if msg is None:
                raise ContainerStartError("create", "the container's init exited without "
                                          "saying why (killed, or out of memory?)")
            if "ready" in msg:
                return Ready(self.pid, list(msg.get("warnings") or []),
                             [(str(name), float(ms)) for name, ms in msg.get("timings") or []])
            if "error" in msg:
                raise _start_error(msg)
            self._answer(msg)

    def _work_while_waiting(self, sync_r: int) -> None:
        """The caller's deferred work, piece by piece, as long as the init is silent."""
        assert self.while_waiting is not None
        poller = select.poll()
        poller.register(sync_r, select.POLLIN)
        while not poller.poll(0):
            if not self.while_waiting():
                return

    def _answer(self, msg: Mapping[str, Any]) -> None:
        if "userns" in msg:
            _ack(self.ack_w, b"1" if _write_id_maps(msg["userns"], self.spec) else b"0")
        elif "pid" in msg:
            self.pid = msg["pid"]
            if self.move_into is not None:
                _join_cgroup(self.pid, self.move_into, self.ack_w)
            else:
                _ack(self.ack_w, b"1")   # PID 1 waits for this (see init._await_cgroup)
        elif "hooks" in msg:
            ok = self.run_hooks(self.container_id, self.spec, self.pid, "createRuntime")
            _ack(self.ack_w, b"1" if ok else b"0")


class _Lines:
    """JSON lines from a pipe, read without Python's buffering games."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def has_line(self) -> bool:
        return b"\n" in self.buf

    def next(self) -> dict[str, Any] | None:
        while b"\n" not in self.buf:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        data: dict[str, Any] = json.loads(line)
        return data


def _start_error(msg: Mapping[str, Any]) -> ContainerStartError:
    cls = {"notfound": CommandNotFound, "notexec": CommandNotExecutable}.get(
        msg.get("kind") or "", ContainerStartError)
    message = msg["error"]
    prefix = f"{msg['step']}: "
    if message.startswith(prefix):
        message = message[len(prefix):]
    return cls(msg["step"], message, errno=msg.get("errno"), hint=msg.get("hint"))


def _join_cgroup(pid: int, cg: cgroups.Cgroup, ack_w: int) -> None:
    """Move the init into its cgroup while it mounts (see init._await_cgroup), then ack."""
    try:
        cg.add(pid)
    except (CgroupError, OSError) as e:
        _ack(ack_w, b"0")
        raise ContainerStartError("join cgroup", f"cannot move the init into cgroup {cg.name}: {e}") from None
    _ack(ack_w, b"1")


def _ack(fd: int, answer: bytes) -> None:
    """Answer the init; if it has died already, its error message follows on the sync pipe."""
    try:
        os.write(fd, answer)
    except BrokenPipeError:
        pass


def _write_id_maps(pid: int, spec: Mapping[str, Any]) -> bool:
    """uid_map and gid_map of the new user namespace; only the parent namespace may write them."""
    linux = spec.get("linux") or {}
    try:
        for kind in ("uid", "gid"):
            maps = linux.get(f"{kind}Mappings") or []
            text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)
            if text:
                fd = os.open(f"/proc/{pid}/{kind}_map", os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
        return True
    except OSError as e:
        os.write(2, f"writing the id maps of pid {pid}: {e}\n".encode())
        return False
