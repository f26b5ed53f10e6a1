"""One supervised container: its processes, pipes, logs, clients and policies.

A :class:`Box` lives in the supervisor as long as the container's record
does.  It owns:

* the container's output: ``stdout.fifo``/``stderr.fifo`` in the container
  directory.  The container's own descriptors are opened read-write, so a
  write never meets "no reader" (SIGPIPE) while the supervisor is down; the
  pipe buffer holds 64 KiB and then the container blocks until a restarted
  supervisor opens the fifo again and drains it.  That is how a detached
  container outlives ``kill -9`` of its supervisor without losing a line.
* with ``-t``, the pty master instead (a tty cannot survive the supervisor);
* with ``-i``, the write end of the container's stdin pipe;
* the log writer, the attached clients and the waiters;
* the stop timer (signal, then SIGKILL), restart back-off and health checks.

Exit handling is ordered so a client never sees an exit before the output:
drain the pipes, flush the log, read the OOM counter, delete the runtime
container (kills stragglers, removes the cgroup), unmount, write the record,
remove it when ``--rm``, and only then tell attached clients and waiters.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .. import kernel
from ..errors import (CgroupError, CommandNotExecutable, CommandNotFound, Conflict,
                      ContainerStartError, InvalidStateTransition, SandboxError)
from ..runtime.container import (Container as RuntimeContainer, parse_signal, proc_stat_fields,
                                 process_start_time)
from ..containers import setup
from ..containers.records import boot_id
from . import protocol
from .loop import Timer

if TYPE_CHECKING:
    from .server import Conn, Supervisor

READ_CHUNK = 65536
HEALTH_LOG_KEEP = 5
HEALTH_OUTPUT_MAX = 4096


def now_text() -> str:
    from ..containers.logs import rfc3339_nano
    return rfc3339_nano(time.time_ns())


def exit_code_of(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class Stream:
    """A client receiving output (attach, run, exec): a connection and what it wants."""

    def __init__(self, conn: "Conn", stdout: bool = True, stderr: bool = True) -> None:
        self.conn, self.stdout, self.stderr = conn, stdout, stderr

    def send(self, stream: int, data: bytes) -> None:
        if (stream == protocol.STDOUT and self.stdout) or (stream == protocol.STDERR and self.stderr):
            self.conn.send_output(stream, data)


class Box:
    def __init__(self, sup: "Supervisor", record: dict[str, Any]) -> None:
        self.sup = sup
        self.rec = record
        self.id: str = record["Id"]
        self.dir: Path = sup.containers.path(self.id)
        self.rc: RuntimeContainer | None = None
        self.out_fds: dict[int, int] = {}          # our read fd -> stream number
        self.tty_master: int | None = None
        self.tty_resize: int | None = None   # a duplicate of the terminal's master, to set its size
        self.keeper: int | None = None        # the process holding the master (ttykeeper)
        self.stdin_w: int | None = None
        self.stdin_buf = bytearray()
        self.log: Any = None
        self.streams: list[Stream] = []
        #: (whoever waits, condition): a client's Conn, or a _Restarter; each has end_stream().
        self.waiters: list[tuple[Any, str]] = []
        self.stop_timer: Timer | None = None
        self.restart_timer: Timer | None = None
        self.health_timer: Timer | None = None
        self.health_pid = 0
        self.pidfd: int | None = None
        self.stopping = False
        self.removing = False

    # ------------------------------------------------------------------ helpers

    @property
    def state(self) -> dict[str, Any]:
        return self.rec["State"]

    @property
    def running(self) -> bool:
        return bool(self.state.get("Running"))

    @property
    def name(self) -> str:
        return str(self.rec.get("Name", "")).lstrip("/")

    def save(self, durable: bool = False) -> None:
        self.sup.containers.save(self.rec, durable=durable)

    def event(self, action: str, **attrs: Any) -> None:
        self.sup.event(self, action, **attrs)

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        """Mount, build the spec, create and start the container; raise on failure."""
        if self.running:
            if self.state.get("Paused"):
                raise InvalidStateTransition(
                    f"cannot start a paused container {self.id[:12]}", state="paused",
                    hint="try unpause instead")
            raise InvalidStateTransition(f"container {self.name} is already running", state="running",
                                         hint="stop it first, or use `restart`")
        if self.removing:
            raise Conflict(f"container {self.id[:12]} is being removed")
        if self.restart_timer is not None:
            self.restart_timer.cancel()
            self.restart_timer = None
        config, host = self.rec["Config"], self.rec["HostConfig"]
        sandbox = self.rec["Sandbox"]
        fds_to_close: list[int] = []
        console_pair: tuple[socket.socket, socket.socket] | None = None
        try:
            setup.mount_rootfs(self.sup.store, self.dir, sandbox["Layers"])
            rootfs = self.dir / "rootfs"
            volume_mounts = self.sup.volume_mounts(self)
            spec, warnings = setup.build_spec(self.rec, self.dir, self.sup.facts, volume_mounts)
            user = spec["process"]["user"]
            setup.ensure_workdir(rootfs, config.get("WorkingDir") or "/", user["uid"], user["gid"])
            self.sup.write_bundle(self.dir, spec)
            if self.log is None:
                self.log = self.sup.open_log(self)
            # Output: our non-blocking read ends first (opening a fifo for reading
            # with O_NONBLOCK never waits), then the container's read-write ends.
            if config.get("Tty"):
                console_pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                stdio = None
            else:
                out_r = self._open_fifo_reader("stdout.fifo", protocol.STDOUT)
                err_r = self._open_fifo_reader("stderr.fifo", protocol.STDERR)
                del out_r, err_r
                out_w = os.open(self.dir / "stdout.fifo", os.O_RDWR | os.O_CLOEXEC)
                fds_to_close.append(out_w)
                err_w = os.open(self.dir / "stderr.fifo", os.O_RDWR | os.O_CLOEXEC)
                fds_to_close.append(err_w)
                if config.get("OpenStdin"):
                    in_r, in_w = os.pipe2(os.O_CLOEXEC)
                    fds_to_close.append(in_r)
                    os.set_blocking(in_w, False)
                    self.stdin_w = in_w
                else:
                    in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                    fds_to_close.append(in_r)
                stdio = (in_r, out_w, err_w)
            self.rc = self.sup.runtime_for(self).create(
                self.id, str(self.dir / "bundle"), stdio=stdio, spec=spec,
                console_socket=console_pair[1] if console_pair else None)  # type: ignore[arg-type]
            if console_pair is not None:
                self._take_console(console_pair[0])
            self.rc.start()
        except BaseException as e:
            self._undo_start()
            if isinstance(e, SandboxError):
                self._record_failed_start(e)
            raise
        finally:
            for fd in fds_to_close:
                os.close(fd)
            if console_pair is not None:
                for s in console_pair:
                    s.close()
        st = self.state
        st.update(Status="running", Running=True, Paused=False, Restarting=False, OOMKilled=False,
                  Dead=False, Pid=self.rc.pid, ExitCode=0, Error="", StartedAt=now_text())
        sandbox.update(StartTime=self.rc.start_time, BootId=boot_id(), HasBeenStarted=True,
                       ManualStop=False, LastStart=time.monotonic(), Warnings=warnings + self.rc.warnings)
        if "Health" in st or (config.get("Healthcheck") or {}).get("Test", ["NONE"])[0] not in ("NONE",):
            self._health_reset()
        self.save()
        self.sup.loop.children[self.rc.pid] = self._on_exit
        self.event("start")
        self._schedule_health(first=True)

    def _open_fifo_reader(self, name: str, stream: int) -> int:
        for fd, s in self.out_fds.items():
            if s == stream:
                return fd  # still open from before (a restart, or an adopted container)
        fd = os.open(self.dir / name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.out_fds[fd] = stream
        self.sup.loop.add_reader(fd, lambda: self._on_output(fd))
        return fd

    def _take_console(self, sock: socket.socket) -> None:
        """Hand the terminal's master to a keeper process; keep a duplicate to resize it."""
        from . import ttykeeper
        msg, fds, _, _ = socket.recv_fds(sock, 1024, 1)
        if not fds:
            raise ContainerStartError("console", "the container did not send its terminal")
        master = fds[0]
        self._open_fifo_reader("stdout.fifo", protocol.STDOUT)
        out_w = os.open(self.dir / "stdout.fifo", os.O_RDWR | os.O_CLOEXEC)
        in_r = None
        try:
            if self.rec["Config"].get("OpenStdin"):
                fifo = self.dir / "stdin.fifo"
                if not fifo.exists():
                    os.mkfifo(fifo, 0o600)
                in_r = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)
                self.stdin_w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            self.keeper = ttykeeper.spawn(master, out_w, in_r)
        finally:
            os.close(out_w)
            if in_r is not None:
                os.close(in_r)
        self.tty_resize = master
        self.rec["Sandbox"]["TtyKeeper"] = [self.keeper, process_start_time(self.keeper) or 0]

    def adopt_tty(self, keeper: int, start_time: int) -> None:
        """A new supervisor: take the terminal back from its keeper (to resize it, and for -i)."""
        from .. import kernel
        from . import ttykeeper
        if not alive(keeper, start_time):
            return   # the keeper is gone: the terminal has ended
        self.keeper = keeper
        with contextlib.suppress(SandboxError, OSError):
            pidfd = kernel.pidfd_open(keeper)
            try:
                self.tty_resize = kernel.pidfd_getfd(pidfd, ttykeeper.MASTER_FD)
            finally:
                os.close(pidfd)
        fifo = self.dir / "stdin.fifo"
        if self.rec["Config"].get("OpenStdin") and fifo.exists():
            with contextlib.suppress(OSError):
                self.stdin_w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)

    def _wait_keeper(self, timeout: float = 2.0) -> None:
        """The container has ended: let its keeper pass on the last output, then reap it."""
        if self.keeper is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain()   # keep the fifo flowing: a full fifo would block the keeper
            try:
                pid, _ = os.waitpid(self.keeper, os.WNOHANG)
            except ChildProcessError:
                break       # reaped already, or not our child (adopted): alive() says when it is gone
            if pid:
                break
            time.sleep(0.01)
        self.keeper = None

    def _record_failed_start(self, e: SandboxError) -> None:
        code = 127 if isinstance(e, CommandNotFound) else 126 if isinstance(e, CommandNotExecutable) else 128
        self.state.update(ExitCode=code, Error=str(e))
        self.save()

    def _undo_start(self) -> None:
        if self.rc is not None:
            with contextlib.suppress(SandboxError, OSError):
                self.rc.delete(force=True)
            self.rc = None
        self._close_io()
        with contextlib.suppress(SandboxError, OSError):
            self.sup.unmount_all(self)

    # ------------------------------------------------------------------ output

    def _on_output(self, fd: int) -> None:
        stream = self.out_fds.get(fd)
        if stream is None:
            return
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: the pty's last holder closed it
                raise
            data = b""
        if not data:
            if fd == self.tty_master or not self.running:
                self._close_out(fd)
            else:
                # Nobody holds a write end right now (the init has not opened it
                # yet, or only grandchildren did): stop polling the EOF until exit.
                self.sup.loop.remove_reader(fd)
            return
        self._deliver(stream, data)

    def _deliver(self, stream: int, data: bytes) -> None:
        if self.log is not None:
            self.log.write("stdout" if stream == protocol.STDOUT else "stderr", data)
        for s in list(self.streams):
            s.send(stream, data)

    def drain(self) -> None:
        """Read whatever the pipes still hold (the container has exited)."""
        for fd, stream in list(self.out_fds.items()):
            while True:
                try:
                    data = os.read(fd, READ_CHUNK)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                self._deliver(stream, data)
        if self.log is not None:
            self.log.flush()

    def _close_out(self, fd: int) -> None:
        self.sup.loop.forget(fd)
        self.out_fds.pop(fd, None)
        if fd == self.tty_master:
            self.tty_master = None
        with contextlib.suppress(OSError):
            os.close(fd)

    def _close_io(self) -> None:
        for fd in list(self.out_fds):
            self._close_out(fd)
        if self.tty_resize is not None:
            with contextlib.suppress(OSError):
                os.close(self.tty_resize)
            self.tty_resize = None
        if self.stdin_w is not None:
            self.sup.loop.forget(self.stdin_w)
            with contextlib.suppress(OSError):
                os.close(self.stdin_w)
            self.stdin_w = None
        self.stdin_buf.clear()

    # ------------------------------------------------------------------ input

    def write_stdin(self, data: bytes) -> None:
        target = self.tty_master if self.tty_master is not None else self.stdin_w
        if target is None:
            return
        if not data:  # end of input
            if self.tty_resize is not None:
                self.stdin_buf += b"\x04"  # ^D on a terminal (through its keeper)
                self._flush_stdin()
            elif self.tty_master is None:
                self.stdin_buf += b""  # flush what is queued, then close
                self._stdin_eof = True
                self._flush_stdin()
            else:
                self.stdin_buf += b"\x04"  # ^D on a terminal
                self._flush_stdin()
            return
        self.stdin_buf += data
        self._flush_stdin()

    _stdin_eof = False

    def _flush_stdin(self) -> None:
        target = self.tty_master if self.tty_master is not None else self.stdin_w
        if target is None:
            self.stdin_buf.clear()
            return
        while self.stdin_buf:
            try:
                n = os.write(target, self.stdin_buf)
            except BlockingIOError:
                self.sup.loop.add_writer(target, self._flush_stdin)
                return
            except OSError:
                self.stdin_buf.clear()
                break
            del self.stdin_buf[:n]
        self.sup.loop.remove_writer(target)
        if self._stdin_eof and self.stdin_w is not None and self.tty_master is None:
            self.sup.loop.forget(self.stdin_w)
            os.close(self.stdin_w)
            self.stdin_w = None
            self._stdin_eof = False

    def resize(self, height: int, width: int) -> None:
        target = self.tty_resize if self.tty_resize is not None else self.tty_master
        if target is not None:
            import fcntl
            import struct
            import termios
            fcntl.ioctl(target, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    # ------------------------------------------------------------------ signals

    def kill(self, sig: int | str = "KILL") -> None:
        if not self.running:
            raise InvalidStateTransition(f"container {self.id} is not running", state="exited",
                                         hint="start it first")
        signum = parse_signal(sig)
        assert self.rc is not None
        with contextlib.suppress(InvalidStateTransition):
            self.rc.kill(signum)
        if self.state.get("Paused") and signum == signal.SIGKILL:
            self._thaw_quietly()
        self.event("kill", signal=str(signum))

    def _thaw_quietly(self) -> None:
        if self.rc is not None and self.rc.cgroup is not None:
            with contextlib.suppress(CgroupError, OSError):
                self.rc.cgroup.thaw()

    def stop(self, timeout: float | None, sig: str | None = None) -> None:
        """Send the stop signal; SIGKILL the whole cgroup after ``timeout`` seconds."""
        if not self.running:
            return
        self.rec["Sandbox"]["ManualStop"] = True
        self.stopping = True
        if self.restart_timer is not None:
            self.restart_timer.cancel()
        signame = sig or self.rec["Config"].get("StopSignal") or "SIGTERM"
        if timeout is None:
            t = self.rec["Config"].get("StopTimeout")
            timeout = 10 if t is None else t
        assert self.rc is not None
        with contextlib.suppress(InvalidStateTransition):
            self.rc.kill(parse_signal(signame))
        if self.state.get("Paused"):
            self._thaw_quietly()  # a frozen task only acts on its signal once thawed
        if self.stop_timer is not None:
            self.stop_timer.cancel()
        if timeout is not None and timeout >= 0:
            self.stop_timer = self.sup.loop.call_later(float(timeout), self._force_kill)

    def _force_kill(self) -> None:
        self.stop_timer = None
        if self.running and self.rc is not None:
            cg = self.rc.cgroup
            try:
                if cg is not None and cg.exists():
                    for pid in cg.pids():
                        with contextlib.suppress(OSError):
                            os.kill(pid, signal.SIGKILL)
                    self._thaw_quietly()
                else:
                    self.rc.kill(signal.SIGKILL)
            except (SandboxError, OSError):
                pass

    def pause(self) -> None:
        if not self.running:
            raise InvalidStateTransition(f"container {self.id} is not running", state="exited",
                                         hint="start it first")
        if self.state.get("Paused"):
            raise InvalidStateTransition(f"container {self.id} is already paused", state="paused",
                                         hint="unpause it")
        assert self.rc is not None
        self.rc.pause()
        self.state.update(Status="paused", Paused=True)
        self.save()
        self.event("pause")

    def unpause(self) -> None:
        if not self.state.get("Paused"):
            raise InvalidStateTransition(f"container {self.id} is not paused", state=self.state["Status"],
                                         hint="only a paused container can be unpaused")
        assert self.rc is not None
        self.rc.resume()
        self.state.update(Status="running", Paused=False)
        self.save()
        self.event("unpause")

    # ------------------------------------------------------------------ exit

    def _on_exit(self, status: int) -> None:
        self.exited(exit_code_of(status))

    def exited(self, code: int, error: str = "") -> None:
        if self.stop_timer is not None:
            self.stop_timer.cancel()
            self.stop_timer = None
        if self.health_timer is not None:
            self.health_timer.cancel()
            self.health_timer = None
        if self.pidfd is not None:
            self.sup.loop.forget(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None
        self._wait_keeper()
        self.drain()
        oom = False
        if self.rc is not None:
            cg = self.rc.cgroup
            if cg is not None:
                with contextlib.suppress(CgroupError, OSError):
                    oom = cg.exists() and cg.oom_kills() > 0
            with contextlib.suppress(SandboxError, OSError):
                self.rc.delete(force=True)
            self.rc = None
        self._close_io()
        with contextlib.suppress(SandboxError, OSError):
            self.sup.unmount_all(self)
        st = self.state
        st.update(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0,
                  ExitCode=code, OOMKilled=oom and code == 137, FinishedAt=now_text(), Error=error)
        if oom and code == 137:
            self.event("oom")
        self.event("die", exitCode=str(code))
        manual = bool(self.rec["Sandbox"].get("ManualStop"))
        self.stopping = False
        if not manual and not self.removing and self._should_restart(code):
            self.save()
            self._finish_streams(code)
            self._notify_waiters(code, "next-exit", "not-running")
            self._schedule_restart()
            return
        if self.rec["HostConfig"].get("AutoRemove") and not self.removing:
            # Removed before anyone hears of the exit: `run --rm` returns with nothing left.
            # (No "exited" record first: removal writes "removing" straight away.)
            self.sup.remove(self, force=True, volumes=True)
            return
        self.save()
        self._finish_streams(code)
        self._notify_waiters(code, "next-exit", "not-running")

    def _finish_streams(self, code: int) -> None:
        streams, self.streams = self.streams, []
        for s in streams:
            s.conn.end_stream({"exit": code})

    def _notify_waiters(self, code: int, *conditions: str) -> None:
        keep = []
        for conn, condition in self.waiters:
            if condition in conditions:
                error = self.state.get("Error") or None
                conn.end_stream({"exit": code, "result": {"StatusCode": code,
                                                          "Error": {"Message": error} if error else None}})
            else:
                keep.append((conn, condition))
        self.waiters = keep

    def removed(self) -> None:
        """The record is gone: answer whoever still waits."""
        code = int(self.state.get("ExitCode") or 0)
        self._finish_streams(code)
        self._notify_waiters(code, "next-exit", "not-running", "removed")
        for t in (self.restart_timer, self.health_timer, self.stop_timer):
            if t is not None:
                t.cancel()

    # ------------------------------------------------------------------ restart policy

    def _should_restart(self, code: int) -> bool:
        policy = self.rec["HostConfig"].get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure" and code != 0:
            limit = int(policy.get("MaximumRetryCount") or 0)
            return limit <= 0 or int(self.rec.get("RestartCount") or 0) < limit
        return False

    def _schedule_restart(self) -> None:
        sandbox = self.rec["Sandbox"]
        ran = time.monotonic() - float(sandbox.get("LastStart") or 0)
        # Docker's back-off: 100 ms doubling per quick failure, reset after 10 s of running.
        delay = 0.1 if ran >= 10 else min(float(sandbox.get("Backoff") or 0.05) * 2, 60.0)
        sandbox["Backoff"] = delay
        self.state.update(Restarting=True, Status="restarting")
        self.save()
        self.restart_timer = self.sup.loop.call_later(delay, self._restart_now)

    def _restart_now(self) -> None:
        self.restart_timer = None
        if self.running or self.removing or self.rec["Sandbox"].get("ManualStop"):
            return
        self.rec["RestartCount"] = int(self.rec.get("RestartCount") or 0) + 1
        self.state["Restarting"] = False
        try:
            self.start()
            self.event("restart")
        except SandboxError as e:
            self.state.update(Status="exited", Restarting=False, Error=str(e))
            self.save()
            if self._should_restart(int(self.state.get("ExitCode") or 1)):
                self._schedule_restart()

    # ------------------------------------------------------------------ health checks

    def _health_conf(self) -> dict[str, Any] | None:
        hc = self.rec["Config"].get("Healthcheck") or {}
        test = hc.get("Test") or []
        if not test or test[0] == "NONE":
            return None
        return hc

    def _health_reset(self) -> None:
        if self._health_conf() is not None:
            self.state["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}

    def _schedule_health(self, first: bool = False) -> None:
        hc = self._health_conf()
        if hc is None or not self.running:
            return
        interval = (hc.get("Interval") or 30 * 10**9) / 1e9
        if first and hc.get("StartInterval") and self.state["Health"]["Status"] == "starting":
            interval = hc["StartInterval"] / 1e9
        self.health_timer = self.sup.loop.call_later(interval, self._run_health)

    def _run_health(self) -> None:
        self.health_timer = None
        hc = self._health_conf()
        if hc is None or not self.running or self.rc is None:
            return
        if self.state.get("Paused"):
            self._schedule_health()
            return
        test = hc["Test"]
        args = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])
        timeout = (hc.get("Timeout") or 30 * 10**9) / 1e9
        started = now_text()
        collector = _Collector()

        def done(code: int, output: bytes) -> None:
            self._health_result(hc, started, code, output)

        try:
            self.sup.start_exec(self, {"Cmd": args, "Env": [], "WorkingDir": "", "User": "",
                                       "Tty": False}, collector, done=done, timeout=timeout)
        except SandboxError as e:
            self._health_result(hc, started, -1, str(e).encode())

    def _health_result(self, hc: dict[str, Any], started: str, code: int, output: bytes) -> None:
        health = self.state.get("Health")
        if health is None or not self.running:
            return
        health["Log"] = (health.get("Log") or [])[-(HEALTH_LOG_KEEP - 1):] + [{
            "Start": started, "End": now_text(), "ExitCode": code,
            "Output": output[:HEALTH_OUTPUT_MAX].decode(errors="replace")}]
        retries = int(hc.get("Retries") or 3)
        start_period = (hc.get("StartPeriod") or 0) / 1e9
        in_grace = time.monotonic() - float(self.rec["Sandbox"].get("LastStart") or 0) < start_period
        old = health["Status"]
        if code == 0:
            health.update(Status="healthy", FailingStreak=0)
        elif not (in_grace and old == "starting"):
            health["FailingStreak"] = int(health.get("FailingStreak") or 0) + 1
            if health["FailingStreak"] >= retries:
                health["Status"] = "unhealthy"
        self.save()
        if health["Status"] != old:
            self.event(f"health_status: {health['Status']}")
        self._schedule_health()


class _Collector:
    """Output sink of a health check: keeps the first few KiB."""

    def __init__(self) -> None:
        self.data = bytearray()

    def send(self, stream: int, data: bytes) -> None:
        if len(self.data) < HEALTH_OUTPUT_MAX:
            self.data += data[: HEALTH_OUTPUT_MAX - len(self.data)]


def exit_code_from_pidfd(pidfd: int, pid: int) -> int | None:
    """The exit code of a process that is not our child (an adopted container).

    Linux 6.15+ keeps it for holders of a pidfd (PIDFD_GET_INFO with
    PIDFD_INFO_EXIT); before it is reaped, /proc/PID/stat field 52 has it too.
    """
    status = kernel.pidfd_exit_status(pidfd)
    if status is None:
        status = zombie_exit_status(pid)
    return None if status is None else exit_code_of(status)


def zombie_exit_status(pid: int) -> int | None:
    """A zombie's wait status: field 52 of /proc/PID/stat (Linux 3.5+), readable by anyone."""
    fields = proc_stat_fields(pid)
    if fields is None or fields[0] != b"Z" or len(fields) < 50:
        return None
    return int(fields[-1])


def alive(pid: int, start_time: int) -> bool:
    return pid > 0 and process_start_time(pid) == start_time


Callback = Callable[..., None]
