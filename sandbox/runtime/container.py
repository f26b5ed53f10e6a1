"""The runtime's life cycle: create, start, state, kill, pause, resume, exec, delete.

This is the caller's side of :mod:`sandbox.runtime.init`, following the OCI
runtime spec's runtime.md: ``create`` sets the container up completely and
leaves its init blocked on an exec fifo; ``start`` opens the fifo, and the init
execs the user's program.  Each container has a state directory below the
runtime root (``/run/sandbox-runtime/<id>`` by default, tmpfs, so a reboot
forgets containers that cannot survive it anyway) holding ``state.json`` and,
until started, ``exec.fifo``.

The status is never stored; it is read from the kernel each time, as runc does:

    stopped   the init pid is gone, a zombie, or a different process (start time)
    paused    the cgroup is frozen
    created   the exec fifo still exists (start removes it)
    running   otherwise

``Runtime`` is the library API the supervisor calls (no new interpreter per
container); ``python -m sandbox.runtime`` is the same API behind runc's verbs.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import cgroups, kernel
from ..errors import (CgroupError, CommandNotExecutable, CommandNotFound, ContainerExists,
                      ContainerNotFound, ContainerStartError, InvalidSpec, InvalidStateTransition,
                      KernelError, UsageError)

from . import config as config_mod
from . import devices as devices_mod
from . import rootfs as fs
from . import init as init_mod

_ID = re.compile(r"^[\w+\-.]+$")
#: Namespace type -> file in /proc/PID/ns.
NS_FILES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
            "user": "user", "cgroup": "cgroup", "time": "time"}


def default_root() -> str:
    """Where container state lives: /run/sandbox-runtime as root, $XDG_RUNTIME_DIR otherwise."""
    if os.geteuid() == 0:
        return "/run/sandbox-runtime"
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/sandbox-runtime-{os.getuid()}"
    return os.path.join(base, "sandbox-runtime")


def _now() -> str:
    t = time.time_ns()
    stamp = _dt.datetime.fromtimestamp(t // 10**9, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{t % 10**9:09d}Z"


def proc_stat_fields(pid: int) -> list[bytes] | None:
    """/proc/PID/stat from field 3 (the state) on, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    return data[data.rindex(b")") + 2:].split()


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot): a pid plus this names one process."""
    fields = proc_stat_fields(pid)
    if fields is None or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


@dataclass
class Container:
    """One container as the runtime knows it (see the module docstring for its status)."""

    runtime: Runtime
    id: str
    pid: int
    start_time: int
    bundle: str
    created: str
    spec: dict[str, Any]
    cgroup_name: str | None = None
    cgroup_version: str | None = None
    warnings: list[str] = field(default_factory=list)
    _cgroup: cgroups.Cgroup | None = field(default=None, repr=False, compare=False)

    @property
    def state_dir(self) -> str:
        return os.path.join(self.runtime.root, self.id)

    @property
    def fifo(self) -> str:
        return os.path.join(self.state_dir, "exec.fifo")

    @property
    def cgroup(self) -> cgroups.Cgroup | None:
        if self.cgroup_name is None:
            return None
        if self._cgroup is None:
            self._cgroup = self.runtime.open_cgroup(self.cgroup_name, self.cgroup_version)
        return self._cgroup

    # ------------------------------------------------------------------ status

    def alive(self) -> bool:
        return self.pid > 0 and process_start_time(self.pid) == self.start_time

    @property
    def status(self) -> str:
        if not self.alive():
            return "stopped"
        cg = self.cgroup
        if cg is not None and cg.exists():
            try:
                if cg.frozen:
                    return "paused"
            except CgroupError:
                pass
        if os.path.exists(self.fifo):
            return "created"
        return "running"

    def state(self) -> dict[str, Any]:
        """The runtime spec's state object (runtime.md#state), plus runc's extra keys."""
        status = self.status
        state = {
            "ociVersion": self.spec.get("ociVersion", "1.1.0"),
            "id": self.id,
            "pid": self.pid if status != "stopped" else 0,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.spec["root"]["path"],
            "created": self.created,
            "owner": "",
        }
        if self.spec.get("annotations"):      # OPTIONAL; runc leaves it out when empty
            state["annotations"] = dict(self.spec["annotations"])
        return state

    def _need(self, action: str, *allowed: str) -> str:
        status = self.status
        if status not in allowed:
            hints = {"stopped": "it has stopped; delete it and create it again",
                     "running": "it is already running", "paused": "it is paused; resume it first",
                     "created": "it has not been started yet"}
            raise InvalidStateTransition(f"cannot {action} container {self.id}: {hints[status]}",
                                         state=status)
        return status

    # ------------------------------------------------------------------ verbs

    def start(self) -> None:
        """Let the created container exec its program (runtime.md "start")."""
        self._need("start", "created")
        fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            _wait_readable(fd, self.pid, what=f"container {self.id} to start")
            if not os.read(fd, 1):
                raise ContainerStartError("start", f"the init of container {self.id} exited before start")
        finally:
            os.close(fd)
        os.unlink(self.fifo)
        self.runtime.run_hooks(self, "poststart", fatal=False)

    def kill(self, sig: int | str = signal.SIGTERM, *, all_processes: bool = False) -> None:
        """Send ``sig`` to the init (or to every process in the cgroup)."""
        signum = parse_signal(sig)
        self._need("kill", "created", "running", "paused")
        if all_processes and self.cgroup is not None:
            for pid in self.cgroup.pids():
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass
            return
        send_signal(self.pid, self.start_time, signum)

    def pause(self) -> None:
        self._need("pause", "running", "created")
        self._need_cgroup("pause").freeze()

    def resume(self) -> None:
        self._need("resume", "paused")
        self._need_cgroup("resume").thaw()

    def _need_cgroup(self, action: str) -> cgroups.Cgroup:
        cg = self.cgroup
        if cg is None:
            raise CgroupError(f"cannot {action} container {self.id}: it has no cgroup",
                              hint="pausing needs the freezer of a cgroup the runtime created"
                              + ("; rootless, that takes a cgroup delegated to this user (systemd's Delegate=yes)"
                                 if kernel.in_user_namespace() else ""))
        return cg

    def pids(self) -> list[int]:
        cg = self.cgroup
        if cg is not None and cg.exists():
            return cg.pids()
        return [self.pid] if self.alive() else []

    def delete(self, *, force: bool = False) -> None:
        """Remove the container; running or paused ones only with ``force`` (SIGKILL first)."""
        status = self.status
        if status in ("running", "paused") and not force:
            raise InvalidStateTransition(
                f"cannot delete container {self.id} that is not stopped: {status}", state=status,
                hint="stop it first (kill), or delete with --force")
        if status != "stopped":
            self._kill_all()
        cg = self.cgroup
        if cg is not None:
            _remove_cgroup(cg)
        self.runtime.run_hooks(self, "poststop", fatal=False)
        _unmount_host_mounts(self.state_dir, self.spec["root"]["path"])
        _remove_tree(self.state_dir)

    def _kill_all(self) -> None:
        cg = self.cgroup
        if cg is not None and cg.exists():
            cg.kill()
        else:
            send_signal(self.pid, self.start_time, signal.SIGKILL)
        _wait_gone(self.pid, self.start_time, 5.0)

    def exec(self, process: Mapping[str, Any], *, stdio: tuple[int, int, int] | None = None,
             console_socket: str | socket.socket | None = None, preserve_fds: int = 0) -> int:
        """Run ``process`` (an OCI process object) in the running container; returns its pid.

        It joins every namespace of the init and its cgroup, and gets the
        container's seccomp filter; capabilities, user, env and cwd are its own.
        """
        self._need("exec in", "running", "created")
        config_mod._check_process(dict(process), "process")
        process = dict(process)
        for warning in config_mod.drop_unknown_capabilities(process):
            print(f"sandbox-runtime: warning: {warning}", file=sys.stderr)
        spec = dict(self.spec)
        linux = dict(spec.get("linux") or {})
        linux["namespaces"] = [{"type": ns["type"], "path": f"/proc/{self.pid}/ns/{NS_FILES[ns['type']]}"}
                               for ns in linux.get("namespaces") or []]
        for key in ("sysctl", "maskedPaths", "readonlyPaths"):
            linux.pop(key, None)
        spec.update(linux=linux, mounts=[], hooks={}, hostname=None, domainname=None)
        spec["root"] = dict(spec["root"], readonly=False)
        pid, _ = self.runtime._spawn(self.id, spec, dict(process), fifo_path=None,
                                     cgroup=self.cgroup, stdio=stdio, console_socket=console_socket,
                                     preserve_fds=preserve_fds, is_exec=True,
                                     exec_root=None if _own_mount_namespace(self.spec)
                                     else f"/proc/{self.pid}/root")
        return pid


def parse_signal(sig: int | str) -> int:
    """9, "9", "KILL" or "SIGKILL" as a signal number (runc's and docker's spellings)."""
    if isinstance(sig, int):
        return sig
    text = str(sig).strip().upper()
    if text.isdigit():
        return int(text)
    name = text if text.startswith("SIG") else "SIG" + text
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise UsageError(f"invalid signal: {sig}", hint="use a name such as TERM or KILL, or a number") from None


def send_signal(pid: int, start_time: int, signum: int) -> None:
    """Signal exactly the process (pid, start time): a pidfd, so a reused pid is never hit."""
    try:
        pidfd = kernel.pidfd_open(pid)
    except KernelError:
        raise InvalidStateTransition(f"cannot signal process {pid}: it has exited", state="stopped") from None
    try:
        if process_start_time(pid) != start_time:
            raise InvalidStateTransition(f"cannot signal process {pid}: it has exited", state="stopped")
        kernel.pidfd_send_signal(pidfd, signum)
    finally:
        os.close(pidfd)


def _wait_readable(fd: int, pid: int, *, what: str, timeout: float | None = None) -> None:
    """Poll ``fd`` until readable, giving up when ``pid`` exits (it would never write)."""
    try:
        pidfd = kernel.pidfd_open(pid)
    except KernelError:
        pidfd = None
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            events = dict(poller.poll(100))
            if events.get(fd):
                return
            if pidfd is None or events.get(pidfd):
                raise ContainerStartError("start", f"the container's init exited while waiting for {what}")
            if deadline is not None and time.monotonic() > deadline:
                raise ContainerStartError("start", f"timed out waiting for {what}")
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _kill_and_wait(pid: int) -> None:
    """SIGKILL a container init that may already be gone, and wait until it is."""
    start = process_start_time(pid)
    if start is None:
        return
    try:
        send_signal(pid, start, signal.SIGKILL)
    except InvalidStateTransition:
        return
    _wait_gone(pid, start, 5.0)


def _remove_cgroup(cg: cgroups.Cgroup) -> None:
    """Remove the group; a process that slipped in (a fork racing the kill) is killed first."""
    try:
        cg.destroy()
    except CgroupError:
        cg.kill()
        cg.destroy()


def _wait_gone(pid: int, start_time: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_start_time(pid) == start_time:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


#: In a container's state directory: the mounts below its rootfs before it
#: was created, when it has no mount namespace of its own (see rootfs.unmount_below).
HOST_MOUNTS = "host-mounts.json"


def _own_mount_namespace(spec: Mapping[str, Any]) -> bool:
    """Whether the container gets a mount namespace (new, or joined by path)."""
    return any(ns.get("type") == "mount" for ns in (spec.get("linux") or {}).get("namespaces") or [])


def _unmount_host_mounts(state_dir: str, rootfs: str | None) -> None:
    """Take away the mounts a container without a mount namespace made in ours."""
    try:
        with open(os.path.join(state_dir, HOST_MOUNTS)) as f:
            keep = json.load(f)
    except (OSError, ValueError):
        return
    if rootfs:
        fs.unmount_below(rootfs, keep)


def _remove_tree(path: str) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)


class Runtime:
    """Containers under one state root; the library face of ``python -m sandbox.runtime``."""

    def __init__(self, root: str | None = None) -> None:
        self.root = os.path.abspath(root or default_root())
        #: (step, ms) of the last init, in checklist order: where start-up time went.
        self.last_timings: list[tuple[str, float]] = []
        self._openers: dict[str | None, Callable[[str], cgroups.Cgroup]] = {}
        self._creating_bundle = ""

    def open_cgroup(self, name: str, version: str | None = None) -> cgroups.Cgroup:
        """A handle on group ``name``, the hierarchy looked up once per runtime."""
        opener = self._openers.get(version)
        if opener is None:
            opener = self._openers[version] = cgroups.cgroup_opener(version=version, parent=None)
        return opener(name)

    # ------------------------------------------------------------------ lookup

    def get(self, container_id: str) -> Container:
        path = os.path.join(self.root, container_id, "state.json")
        if not _ID.match(container_id):
            raise ContainerNotFound(f"container {container_id} does not exist")
        try:
            with open(path) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise ContainerNotFound(f"container {container_id} does not exist",
                                    hint=f"`list` shows the containers under {self.root}") from None
        return Container(self, data["id"], data["pid"], data["startTime"], data["bundle"],
                         data["created"], data["config"], data.get("cgroupName"),
                         data.get("cgroupVersion"))

    def containers(self) -> list[Container]:
        """Every container under the root, sorted by id (ones being created are skipped)."""
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            try:
                out.append(self.get(name))
            except (ContainerNotFound, ValueError, KeyError):
                continue  # being created, or left by a killed create
        return out

    def discard(self, container_id: str, spec: Mapping[str, Any] | None = None) -> None:
        """Remove whatever exists of ``container_id``, also what a killed ``create`` left half-made.

        ``create`` undoes itself on an error, but not when the process running
        it is SIGKILLed (the engine's supervisor, ``kill -9``): a state
        directory without ``state.json`` stays, on which every later create of
        that id fails with ContainerExists and which :meth:`get` cannot see,
        and so does the cgroup, with the init in it when it had been forked.
        ``spec`` (the bundle's config) names the cgroup when it sets
        ``cgroupsPath``.  Nothing existing is fine.
        """
        try:
            self.get(container_id).delete(force=True)
            return
        except (ContainerNotFound, ValueError, KeyError):
            pass
        state_dir = os.path.join(self.root, container_id)
        if not _ID.match(container_id) or not os.path.isdir(state_dir):
            return   # create makes the state directory before anything else
        path = ((spec or {}).get("linux") or {}).get("cgroupsPath")
        cg = self.open_cgroup(path.strip("/") if path else f"sandbox/{container_id}")
        if cg.exists():
            cg.kill()
            _remove_cgroup(cg)
        _unmount_host_mounts(state_dir, ((spec or {}).get("root") or {}).get("path"))
        _remove_tree(state_dir)

    # ------------------------------------------------------------------ create

    def create(self, container_id: str, bundle: str, *, stdio: tuple[int, int, int] | None = None,
               console_socket: str | socket.socket | None = None, pid_file: str | None = None,
               preserve_fds: int = 0, no_pivot: bool = False,
               spec: dict[str, Any] | None = None) -> Container:
        """Set up the container of ``bundle`` and leave it waiting for start.

        ``spec`` skips reading ``config.json`` (the engine passes the dict it
        just wrote); it is checked all the same.  On any failure nothing is
        left: no process, cgroup, mount or state directory.
        """
        if not _ID.match(container_id):
            raise UsageError(f"invalid container id {container_id!r}",
                             hint="use letters, digits and _ + - . only")
        bundle = os.path.abspath(bundle)
        spec = config_mod.check(spec, bundle) if spec is not None else config_mod.load(bundle)
        self._creating_bundle = bundle  # for the createRuntime hooks' state
        self._creating_rootfs = spec["root"]["path"]
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        state_dir = os.path.join(self.root, container_id)
        try:
            os.mkdir(state_dir, 0o711)
        except FileExistsError:
            raise ContainerExists(f"container with id {container_id} exists",
                                  hint="pick another id, or delete the old container first") from None
        cg: cgroups.Cgroup | None = None
        pid = 0
        try:
            fifo = os.path.join(state_dir, "exec.fifo")
            os.mkfifo(fifo, 0o622)
            # Not the umask's 0600: the init opens it after switching to the
            # container's user, who may be anyone (runc's mode too).
            os.chmod(fifo, 0o622)
            if not _own_mount_namespace(spec):
                # Its mounts go into our namespace: remember what was there, for delete.
                _write_json(os.path.join(state_dir, HOST_MOUNTS),
                            fs.mounts_below(spec["root"]["path"]))
            cg, warnings = self._make_cgroup(container_id, spec)
            warnings += config_mod.drop_unknown_capabilities(spec["process"])
            pid, init_warnings = self._spawn(container_id, spec, spec["process"], fifo_path=fifo,
                                             cgroup=cg, stdio=stdio, console_socket=console_socket,
                                             preserve_fds=preserve_fds, no_pivot=no_pivot)
            start_time = process_start_time(pid)
            if start_time is None:
                raise ContainerStartError("create", "the container's init exited during create")
            container = Container(self, container_id, pid, start_time, bundle, _now(), spec,
                                  cg.name if cg else None, cg.version if cg else None,
                                  [*warnings, *init_warnings])
            _write_json(os.path.join(state_dir, "state.json"), {
                "id": container_id, "pid": pid, "startTime": start_time, "bundle": bundle,
                "created": container.created, "config": spec, "cgroupName": container.cgroup_name,
                "cgroupVersion": container.cgroup_version})
            if pid_file:
                _write_pid_file(pid_file, pid)
            return container
        except BaseException:
            self._undo_create(pid, cg, state_dir)
            raise

    def _undo_create(self, pid: int, cg: cgroups.Cgroup | None, state_dir: str) -> None:
        if pid:
            _kill_and_wait(pid)
        if cg is not None:
            _remove_cgroup(cg)
        _unmount_host_mounts(state_dir, self._creating_rootfs)
        _remove_tree(state_dir)

    def _make_cgroup(self, container_id: str, spec: Mapping[str, Any]
                     ) -> tuple[cgroups.Cgroup | None, list[str]]:
        linux = spec.get("linux") or {}
        path = linux.get("cgroupsPath")
        if path and ":" in path:
            raise InvalidSpec("linux.cgroupsPath", f"{path!r} is a systemd slice path, and this "
                              "runtime drives cgroupfs directly", hint="use a path such as /sandbox/ID")
        name = path.strip("/") if path else f"sandbox/{container_id}"
        try:
            resources, warnings = cgroups.resources_from_oci(linux.get("resources") or {})
        except CgroupError as e:
            raise InvalidSpec("linux.resources", Exception.__str__(e), hint=e.hint) from None
        rules = devices_mod.cgroup_rules((linux.get("resources") or {}).get("devices"),
                                         linux.get("devices"))
        try:
            cg = self.open_cgroup(name)
            cg.create()
        except (CgroupError, PermissionError) as e:
            limits = [k for k, v in vars(resources).items() if v is not None]
            if limits and not kernel.in_user_namespace():
                raise
            if limits:  # rootless without a delegated cgroup: run, and say so (Docker's rootless does too)
                flags = ", ".join("--" + k.replace("_", "-") for k in limits)
                return None, [f"rootless: limits not applied ({flags}): no cgroup is delegated to "
                              "this user; on a cgroup v2 host systemd delegates one (systemd-run --user "
                              "-p Delegate=yes, or Delegate=yes for user@.service)"]
            if kernel.in_user_namespace():
                return None, []  # rootless without delegation: nothing was asked for, so nothing to say
            return None, [f"no cgroup: {e}; the container runs without limits or pause"]
        try:
            warnings += cg.apply(resources)
            warnings += cg.apply_devices(rules)
            warnings += devices_mod.shut_out(rules, linux.get("devices") or [])
        except BaseException:
            cg.destroy()
            raise
        return cg, warnings

    # ------------------------------------------------------------------ the fork

    def _spawn(self, container_id: str, spec: dict[str, Any], process: dict[str, Any], *,
               fifo_path: str | None, cgroup: cgroups.Cgroup | None,
               stdio: tuple[int, int, int] | None, console_socket: str | socket.socket | None,
               preserve_fds: int, no_pivot: bool = False, is_exec: bool = False,
               exec_root: str | None = None) -> tuple[int, list[str]]:
        """Fork the init (see :mod:`init`) and follow its messages until it is ready."""
        seccomp = (spec.get("linux") or {}).get("seccomp")
        try:
            program = init_mod.compile_seccomp(seccomp) if seccomp else None
        except KernelError as e:
            raise InvalidSpec("linux.seccomp", str(e)) from None
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        ack_r, ack_w = os.pipe2(os.O_CLOEXEC)
        console = None
        if process.get("terminal") and isinstance(console_socket, socket.socket):
            console = console_socket.dup()  # a connected socket (the supervisor's socketpair)
        elif process.get("terminal") and isinstance(console_socket, str) and console_socket:
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                console.connect(console_socket)
            except OSError as e:
                console.close()
                for fd in (sync_r, sync_w, ack_r, ack_w):
                    os.close(fd)
                raise UsageError(f"cannot connect to console socket {console_socket}: {e.strerror}") from None
        # The init moves itself into a v1 cgroup (fast, see Cgroup.self_join_files)
        # unless it lives in a user namespace, where host cgroup files are not its own.
        flags, joins = init_mod.namespace_flags(spec)
        in_userns = bool(flags & kernel.CLONE_NEWUSER) or "user" in joins
        join_files = tuple(cgroup.self_join_files()) if cgroup is not None and not in_userns else ()
        args = init_mod.InitArgs(
            spec=spec, sync_fd=sync_w, ack_fd=ack_r, fifo_path=fifo_path,
            in_cgroup=cgroup is not None and not join_files, join_files=join_files,
            seccomp_bpf=program, stdio=stdio,
            console_fd=console.fileno() if console else None, preserve_fds=preserve_fds,
            no_pivot=no_pivot, process=process, is_exec=is_exec, exec_root=exec_root)
        child = os.fork()
        if child == 0:
            try:
                os.close(sync_r)
                os.close(ack_w)
            finally:
                init_mod.stage_one(args)
        os.close(sync_w)
        os.close(ack_r)
        if console:
            console.close()
        init_pid = 0
        try:
            with os.fdopen(sync_r, "rb", buffering=0) as pipe:
                reader = _Lines(pipe.fileno())
                while True:
                    msg = reader.next()
                    if msg is None:
                        raise ContainerStartError("create", "the container's init exited without "
                                                  "saying why (killed, or out of memory?)")
                    if "userns" in msg:
                        _ack(ack_w, b"1" if _write_id_maps(msg["userns"], spec) else b"0")
                    elif "pid" in msg:
                        init_pid = msg["pid"]
                        if cgroup is not None and not join_files:
                            _join_cgroup(init_pid, cgroup, ack_w)
                        else:
                            _ack(ack_w, b"1")   # PID 1 waits for this (see init._await_cgroup)
                    elif "hooks" in msg:
                        ok = self.run_hooks_for(container_id, spec, init_pid, "createRuntime")
                        _ack(ack_w, b"1" if ok else b"0")
                    elif "ready" in msg:
                        self.last_timings = [tuple(t) for t in msg.get("timings") or []]
                        return init_pid, list(msg.get("warnings") or [])
                    elif "error" in msg:
                        raise _start_error(msg)
        except BaseException:
            if init_pid:
                _kill_and_wait(init_pid)
            raise
        finally:
            os.close(ack_w)
            _reap(child)

    # ------------------------------------------------------------------ hooks

    def run_hooks(self, container: Container, stage: str, *, fatal: bool) -> bool:
        return self.run_hooks_for(container.id, container.spec, container.pid, stage, fatal=fatal,
                                  status=container.status, bundle=container.bundle)

    def run_hooks_for(self, container_id: str, spec: Mapping[str, Any], pid: int, stage: str, *,
                      fatal: bool = True, status: str = "creating", bundle: str | None = None) -> bool:
        """Run the hooks of ``stage`` with the state on stdin (config.md#posix-platform-hooks)."""
        hooks = list((spec.get("hooks") or {}).get(stage) or [])
        if stage == "createRuntime":
            hooks = list((spec.get("hooks") or {}).get("prestart") or []) + hooks
        state = json.dumps({"ociVersion": spec.get("ociVersion"), "id": container_id, "pid": pid,
                            "status": status, "bundle": bundle or self._creating_bundle,
                            "annotations": spec.get("annotations") or {}})
        for hook in hooks:
            try:
                subprocess.run([hook["path"], *(hook.get("args") or [hook["path"]])[1:]],
                               input=state.encode(), env=dict(e.split("=", 1) for e in hook.get("env") or []),
                               timeout=hook.get("timeout"), check=True, executable=hook["path"],
                               stdout=subprocess.DEVNULL)
            except (OSError, subprocess.SubprocessError) as e:
                if fatal:
                    return False
                os.write(2, f"warning: {stage} hook {hook['path']} failed: {e}\n".encode())
        return True


class _Lines:
    """JSON lines from a pipe, read without Python's buffering games."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

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


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _write_pid_file(path: str, pid: int) -> None:
    _write_atomic(path, str(pid).encode())


def _write_json(path: str, data: Any) -> None:
    _write_atomic(path, json.dumps(data, separators=(",", ":")).encode())


def _write_atomic(path: str, data: bytes) -> None:
    """Temp file + rename: a reader sees the old file or the new one, never half of one.

    No fsync: runtime state lives on tmpfs (/run) and dies with the boot anyway.
    """
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)

