"""One supervised container: its start, signals, exit, removal and restart policy.

A :class:`Box` lives in the supervisor as long as the container's record
does.  It owns the runtime container, its input and output (:mod:`boxio`:
fifos that outlive the supervisor, a terminal's keeper, stdin), the log
writer, the attached clients and the waiters, the stop timer (signal, then
SIGKILL), the restart back-off and the health checks (:mod:`health`).  What
it needs of the supervisor comes through :class:`~sandbox.supervisor.host.Host`.

Exit handling is ordered so a client never sees an exit before the output:
drain the pipes, flush the log, read the OOM counter, delete the runtime
container (kills stragglers, removes the cgroup), unmount, write the record,
remove it when ``--rm``, and only then tell attached clients and waiters.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

from ..containers import setup
from ..containers.records import boot_id, write_json
from ..errors import (CgroupError, CommandNotExecutable, CommandNotFound, Conflict,
                      InvalidStateTransition, SandboxError, UsageError)
from ..runtime.container import Container as RuntimeContainer
from ..runtime.procs import parse_signal
from . import execs, protocol
from .boxio import BoxIO
from .conn import Stream
from .events import container_event
from .health import HealthCheck, health_config, now_text
from .host import Host
from .loop import Timer
from .mounts import oci_mounts
from .reaping import exit_code_of


class Box:
    def __init__(self, host: Host, record: dict[str, Any]) -> None:
        self.host = host
        self.rec = record
        self.id: str = record["Id"]
        self.dir: Path = host.containers.path(self.id)
        self.rc: RuntimeContainer | None = None
        self.io = BoxIO(host.loop, self.dir, self._deliver, lambda: self.running)
        self.log: Any = None
        self.streams: list[Stream] = []
        #: (whoever waits, condition): a client's Conn, or a _Restarter; each has end_stream().
        self.waiters: list[tuple[Any, str]] = []
        self.stop_timer: Timer | None = None
        self.restart_timer: Timer | None = None
        self.health = HealthCheck(self, host.loop)
        self.pidfd: int | None = None
        self.stopping = False
        self.removing = False
        #: The connection whose close removes this container (a build step's: see op_create).
        self.owner: Any = None
        #: The connection of the commit that froze this container; its close thaws it (op_commit_pause).
        self.frozen_for: Any = None

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
        self.host.containers.save(self.rec, durable=durable)

    def event(self, action: str, **attrs: Any) -> None:
        container_event(self.host.events, self.rec, action, **attrs)

    # ------------------------------------------------------------------ start

    def _running_pid(self, ref: str) -> int:
        """The host pid of the running container ``ref``, whose namespace this one joins."""
        other = self.host.containers.load(self.host.containers.resolve(ref))
        if not other["State"].get("Running") or not other["State"].get("Pid"):
            raise InvalidStateTransition(f"cannot join a namespace of a non running container: {ref}",
                                         state=other["State"].get("Status", ""), hint=f"start {ref} first")
        return int(other["State"]["Pid"])

    def start(self) -> None:
        """Mount, build the spec, create and start the container; raise on failure."""
        self._check_startable()
        if self.restart_timer is not None:
            self.restart_timer.cancel()
            self.restart_timer = None
        fds_to_close: list[int] = []
        console_pair: tuple[socket.socket, socket.socket] | None = None
        try:
            spec, warnings = self._prepare_bundle()
            if self.log is None:
                self.log = self.open_log()
            stdio: tuple[int, int, int] | None = None
            if self.rec["Config"].get("Tty"):
                console_pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            else:
                stdio = self.io.container_stdio(bool(self.rec["Config"].get("OpenStdin")), fds_to_close)
            self._create_and_start(spec, stdio, console_pair)
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
        self._record_started(warnings)

    def _check_startable(self) -> None:
        if self.running:
            if self.state.get("Paused"):
                raise InvalidStateTransition(
                    f"cannot start a paused container {self.id[:12]}", state="paused",
                    hint="try unpause instead")
            raise InvalidStateTransition(f"container {self.name} is already running", state="running",
                                         hint="stop it first, or use `restart`")
        if self.removing:
            raise Conflict(f"container {self.id[:12]} is being removed")

    def _prepare_bundle(self) -> tuple[dict[str, Any], list[str]]:
        """The rootfs mounted, the network wired, the spec written: (spec, warnings)."""
        config = self.rec["Config"]
        setup.mount_rootfs(self.host.store, self.dir, self.rec["Sandbox"]["Layers"],
                           self.rec.get("Driver") or "overlay",
                           volatile=bool(self.rec["HostConfig"].get("AutoRemove")))
        rootfs = self.dir / "rootfs"
        volume_mounts = oci_mounts(self.rec, str(rootfs), self.host.volumes)
        netns = self.host.network.attach(self.rec) if self.networked else None
        joins = setup.joined_namespaces(self.rec["HostConfig"], self._running_pid)
        spec, warnings = setup.build_spec(self.rec, self.dir, self.host.facts, volume_mounts,
                                          netns_path=netns, namespace_paths=joins)
        user = spec["process"]["user"]
        setup.ensure_workdir(rootfs, config.get("WorkingDir") or "/", user["uid"], user["gid"])
        write_json(self.dir / "bundle" / "config.json", spec)
        return spec, warnings

    def _create_and_start(self, spec: dict[str, Any], stdio: tuple[int, int, int] | None,
                          console_pair: tuple[socket.socket, socket.socket] | None) -> None:
        """The runtime's create (the init set up, blocked on its fifo), then its start."""
        config = self.rec["Config"]
        self.rc = self.host.runtime_for(self.rec).create(
            self.id, str(self.dir / "bundle"), stdio=stdio, spec=spec,
            console_socket=console_pair[1] if console_pair else None)
        if console_pair is not None:
            self.rec["Sandbox"]["TtyKeeper"] = self.io.take_console(console_pair[0],
                                                                   bool(config.get("OpenStdin")))
        if self.rec["HostConfig"].get("NetworkMode") == "slirp4netns":
            self._start_slirp()
        self.rc.start()

    def _record_started(self, warnings: list[str]) -> None:
        """Running: the record saved, the exit watched, the event sent, health checks scheduled."""
        assert self.rc is not None
        st = self.state
        st.update(Status="running", Running=True, Paused=False, Restarting=False, OOMKilled=False,
                  Dead=False, Pid=self.rc.pid, ExitCode=0, Error="", StartedAt=now_text())
        self.rec["Sandbox"].update(StartTime=self.rc.start_time, BootId=boot_id(), HasBeenStarted=True,
                                   ManualStop=False, LastStart=time.monotonic(),
                                   Warnings=warnings + self.rc.warnings)
        if "Health" in st or health_config(self.rec) is not None:
            self.health.reset()
        self.save()
        self.host.loop.children[self.rc.pid] = self._on_exit
        self.event("start")
        self.health.schedule(first=True)

    @property
    def networked(self) -> bool:
        """On ``bridge``, a user network or another container's: the network manager wires it."""
        return (self.rec["HostConfig"].get("NetworkMode") or "none") not in ("none", "host", "slirp4netns")

    def _start_slirp(self) -> None:
        """Rootless: slirp4netns for the init's network namespace, before the init runs its command."""
        from ..network import slirp
        assert self.rc is not None
        info = slirp.start(self.rc.pid, str(self.dir), self.rec["HostConfig"].get("PortBindings") or {})
        self.rec["Sandbox"]["Slirp"] = info
        self.host.loop.children[info["Pid"]] = lambda status: None   # reaped; it ends with the container
        ns = self.rec["NetworkSettings"]
        ns["Ports"] = info.get("Ports") or {}
        ns.update(IPAddress=slirp.ADDRESS, Gateway=slirp.GATEWAY, IPPrefixLen=slirp.PREFIX)

    def _detach_network(self) -> None:
        slirp_info = self.rec["Sandbox"].pop("Slirp", None)
        if slirp_info:
            from ..network import slirp
            slirp.stop(slirp_info)
        if self.networked:
            with contextlib.suppress(SandboxError, OSError):
                self.host.network.detach(self.rec)

    def open_log(self) -> Any:
        """The json-file log writer (None for ``--log-driver none``)."""
        log_config = self.rec["HostConfig"].get("LogConfig") or {}
        if log_config.get("Type") == "none":
            return None
        from ..containers.logs import LogWriter
        from ..containers.options import parse_bytes
        opts = log_config.get("Config") or {}
        max_size = parse_bytes(opts.get("max-size") or "10m", "--log-opt max-size")
        max_files = int(opts.get("max-file") or 2)
        return LogWriter(self.dir / "container.log", max_size=max_size, max_files=max_files)

    def open_fifo_reader(self, name: str, stream: int) -> int:
        return self.io.open_fifo_reader(name, stream)

    def adopt_tty(self, keeper: int, start_time: int) -> None:
        self.io.adopt_tty(keeper, start_time, bool(self.rec["Config"].get("OpenStdin")))

    # ------------------------------------------------------------------ input and output

    def _deliver(self, stream: int, data: bytes) -> None:
        if self.log is not None:
            self.log.write("stdout" if stream == protocol.STDOUT else "stderr", data)
        for s in list(self.streams):
            s.send(stream, data)

    def drain(self) -> None:
        """Read whatever the pipes still hold (the container has exited)."""
        self.io.drain()
        if self.log is not None:
            self.log.flush()

    def write_stdin(self, data: bytes) -> None:
        self.io.write_stdin(data)

    def resize(self, height: int, width: int) -> None:
        self.io.resize(height, width)

    def _record_failed_start(self, e: SandboxError) -> None:
        code = 127 if isinstance(e, CommandNotFound) else 126 if isinstance(e, CommandNotExecutable) else 128
        self.state.update(ExitCode=code, Error=str(e))
        self.save()

    def _undo_start(self) -> None:
        if self.rc is not None:
            with contextlib.suppress(SandboxError, OSError):
                self.rc.delete(force=True)
            self.rc = None
        self.io.close()
        self._detach_network()
        with contextlib.suppress(SandboxError, OSError):
            setup.unmount_rootfs(self.dir)

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
        signum = parse_signal(signame)
        with contextlib.suppress(InvalidStateTransition):
            self.rc.kill(signum)
        self.event("kill", signal=str(signum))  # Docker's stop: kill (15), kill (9) after the timeout, die, stop
        if self.state.get("Paused"):
            self._thaw_quietly()  # a frozen task only acts on its signal once thawed
        if self.stop_timer is not None:
            self.stop_timer.cancel()
        if timeout is not None and timeout >= 0:
            self.stop_timer = self.host.loop.call_later(float(timeout), self._force_kill)

    def _force_kill(self) -> None:
        self.stop_timer = None
        if self.running and self.rc is not None:
            self.event("kill", signal=str(int(signal.SIGKILL)))
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
        code = exit_code_of(status)
        translate = getattr(self.rc, "exit_code", None)  # proot: its 255 for a signal we sent
        self.exited(translate(code) if translate is not None else code)

    def exited(self, code: int, error: str = "") -> None:
        if self.stop_timer is not None:
            self.stop_timer.cancel()
            self.stop_timer = None
        self.health.cancel()
        if self.pidfd is not None:
            self.host.loop.forget(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None
        self.io.wait_keeper()
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
        self.io.close()
        self._detach_network()
        with contextlib.suppress(SandboxError, OSError):
            setup.unmount_rootfs(self.dir)
        st = self.state
        st.update(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0,
                  ExitCode=code, OOMKilled=oom and code == 137, FinishedAt=now_text(), Error=error)
        if oom and code == 137:
            self.event("oom")
        self.event("die", exitCode=str(code))
        if self.stopping:
            self.event("stop")
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
            self.remove(force=True, volumes=True)
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
        self.health.cancel()
        for t in (self.restart_timer, self.stop_timer):
            if t is not None:
                t.cancel()

    # ------------------------------------------------------------------ removal

    def remove(self, *, force: bool, volumes: bool) -> None:
        """``rm``: kill it if asked to, release everything it holds, rename the record away.

        The record disappears in one step (a rename), waiters are answered
        at once, and the files are deleted when the supervisor is next idle.
        """
        if self.running:
            if not force:
                status = "paused" if self.state.get("Paused") else "running"
                raise Conflict(f"You cannot remove a {status} container {self.id}. Stop the container "
                               "before attempting removal or force remove",
                               hint=f"`sandbox stop {self.name}` first, or `sandbox rm -f {self.name}`")
            self.removing = True
            self._kill_now()
        self.removing = True
        if self.restart_timer is not None:
            self.restart_timer.cancel()
        self.state["Status"] = "removing"
        # What was asked, for a supervisor that finishes this removal after a kill -9 (adopt.py).
        self.rec["Sandbox"]["RemoveVolumes"] = volumes
        with contextlib.suppress(OSError):
            self.save()
        with contextlib.suppress(SandboxError, OSError):
            if self.rc is None:
                self.rc = self.host.runtime_for(self.rec).get(self.id)
            self.rc.delete(force=True)
        self.rc = None
        self.io.close()
        if self.log is not None:
            self.log.close()
            self.log = None
        setup.unmount_rootfs(self.dir)
        with contextlib.suppress(OSError, SandboxError):
            self.host.store.release(f"container-{self.id}")
        doomed = self.dir.with_name(f".removing-{self.id}")
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.dir, doomed)  # the record is gone in one step
        self.host.forget(self.id, int(self.state.get("ExitCode") or 0), str(self.state.get("Error") or ""))
        if volumes:
            remove_anonymous_volumes(self.host.volumes, self.rec)
        self.event("destroy")
        self.removed()  # answer `run --rm` and `wait` now; the files go when no client waits
        self.host.loop.delete_when_idle(doomed)

    def _kill_now(self) -> None:
        """SIGKILL everything in the container and handle its exit before returning."""
        rc = self.rc
        assert rc is not None
        pid = rc.pid
        callback = self.host.loop.children.pop(pid, None)
        with contextlib.suppress(SandboxError, OSError):
            cg = rc.cgroup
            if cg is not None and cg.exists():
                cg.kill()
            else:
                rc.kill(signal.SIGKILL)
        status = self._wait_reaping_others(pid) if callback is not None else None
        code = exit_code_of(status) if status is not None else 137
        self.exited(code)

    def _wait_reaping_others(self, pid: int) -> int | None:
        """waitpid(pid) that reaps the supervisor's other children meanwhile.

        An init whose pid namespace other containers joined (``--pid container:``)
        only finishes dying once their killed processes are reaped, and we are
        their parent (zap_pid_ns_processes in kernel/pid_namespace.c): a plain
        blocking waitpid would wait for ever.
        """
        while True:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return None
            if done == pid:
                return status
            self.host.loop.reap()
            time.sleep(0.005)

    # ------------------------------------------------------------------ exec

    def exec(self, cfg: dict[str, Any], sink: Any, *, done: Callable[[int, bytes], None] | None = None,
             conn: Any = None, stdin: bool = False, timeout: float | None = None) -> execs.ExecSession:
        """Start docker's exec ``cfg`` in this running container; its output goes to ``sink``."""
        if not self.running or self.rc is None:
            raise InvalidStateTransition(f"container {self.id} is not running", state=self.state["Status"],
                                         hint=f"start it first: `sandbox start {self.name}`")
        if self.state.get("Paused"):
            raise InvalidStateTransition(f"container {self.id} is paused, unpause the container before exec",
                                         state="paused", hint=f"`sandbox unpause {self.name}`")
        if not cfg.get("Cmd"):
            raise UsageError("exec needs a command", hint="for example: sandbox exec NAME ls /")
        process = execs.exec_process(self.rc.spec["process"], cfg, self.dir / "rootfs",
                                     self.host.facts.bounding_set)
        return execs.spawn(self.host.loop, self.host.execs, self.rc, process, sink, done=done, conn=conn,
                           stdin=stdin, timeout=timeout)

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
        self.restart_timer = self.host.loop.call_later(delay, self._restart_now)

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


def remove_anonymous_volumes(volumes: Any, rec: dict[str, Any]) -> None:
    """``rm -v``: the anonymous volumes the container ``rec`` mounts (named ones stay, as in Docker)."""
    for m in rec.get("Mounts") or []:
        if m.get("Type") == "volume" and volumes.is_anonymous(m["Name"]):
            with contextlib.suppress(SandboxError, OSError):
                volumes.remove(m["Name"])
