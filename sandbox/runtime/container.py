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

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import cgroups, kernel
from ..errors import (CgroupError, ContainerExists, ContainerNotFound, ContainerStartError,
                      InvalidStateTransition, UsageError)

from . import config as config_mod
from . import rootfs as fs
from .procs import (kill_and_wait, parse_signal, proc_stat_fields, process_start_time,
                    send_signal, wait_gone, wait_readable)
from .resources import make_cgroup
from .spare import SparePool
from .spawn import spawn
from .state import (HOST_MOUNTS, default_root, now, own_mount_namespace, remove_cgroup, remove_tree,
                    unmount_host_mounts, write_json, write_pid_file)

#: Names other modules import from here (they moved to procs, state; kept working).
__all__ = ["Container", "Runtime", "NS_FILES", "HOST_MOUNTS", "default_root", "parse_signal",
           "proc_stat_fields", "process_start_time", "send_signal"]

_ID = re.compile(r"^[\w+\-.]+$")
#: Namespace type -> file in /proc/PID/ns.
NS_FILES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
            "user": "user", "cgroup": "cgroup", "time": "time"}


def no_cgroup(action: str, container_id: str) -> CgroupError:
    """The one-line refusal of pause/resume for a container without a cgroup (also runc's, rootless)."""
    return CgroupError(f"cannot {action} container {container_id}: it has no cgroup",
                       hint="pausing needs the freezer of a cgroup the runtime created"
                       + ("; rootless, that takes a cgroup delegated to this user (systemd's Delegate=yes)"
                          if kernel.in_user_namespace() and not cgroups.delegated().available else ""))


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
            wait_readable(fd, self.pid, what=f"container {self.id} to start")
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
            raise no_cgroup(action, self.id)
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
            remove_cgroup(cg)
        self.runtime.run_hooks(self, "poststop", fatal=False)
        unmount_host_mounts(self.state_dir, self.spec["root"]["path"])
        remove_tree(self.state_dir)

    def _kill_all(self) -> None:
        cg = self.cgroup
        if cg is not None and cg.exists():
            cg.kill()
        else:
            send_signal(self.pid, self.start_time, signal.SIGKILL)
        wait_gone(self.pid, self.start_time, 5.0)

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
                                     exec_root=None if own_mount_namespace(self.spec)
                                     else f"/proc/{self.pid}/root")
        return pid


class Runtime:
    """Containers under one state root; the library face of ``python -m sandbox.runtime``."""

    def __init__(self, root: str | None = None) -> None:
        self.root = os.path.abspath(root or default_root())
        #: (step, ms) of the last init, in checklist order: where start-up time went.
        self.last_timings: list[tuple[str, float]] = []
        self._openers: dict[str | None, Callable[[str], cgroups.Cgroup]] = {}
        #: The caller's deferred work, done while an init sets itself up (see spawn.spawn).
        self.while_waiting: Callable[[], bool] | None = None
        #: Inits forked ahead (see .spare); a long-lived caller (the supervisor) sets one.
        self.spares: SparePool | None = None
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
            remove_cgroup(cg)
        unmount_host_mounts(state_dir, ((spec or {}).get("root") or {}).get("path"))
        remove_tree(state_dir)

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
            if not own_mount_namespace(spec):
                # Its mounts go into our namespace: remember what was there, for delete.
                write_json(os.path.join(state_dir, HOST_MOUNTS),
                            fs.mounts_below(spec["root"]["path"]))
            cg, warnings = self._make_cgroup(container_id, spec)
            warnings += config_mod.drop_unknown_capabilities(spec["process"])
            pid, init_warnings = self._spawn(container_id, spec, spec["process"], fifo_path=fifo,
                                             cgroup=cg, stdio=stdio, console_socket=console_socket,
                                             preserve_fds=preserve_fds, no_pivot=no_pivot)
            start_time = process_start_time(pid)
            if start_time is None:
                raise ContainerStartError("create", "the container's init exited during create")
            container = Container(self, container_id, pid, start_time, bundle, now(), spec,
                                  cg.name if cg else None, cg.version if cg else None,
                                  [*warnings, *init_warnings])
            write_json(os.path.join(state_dir, "state.json"), {
                "id": container_id, "pid": pid, "startTime": start_time, "bundle": bundle,
                "created": container.created, "config": spec, "cgroupName": container.cgroup_name,
                "cgroupVersion": container.cgroup_version})
            if pid_file:
                write_pid_file(pid_file, pid)
            return container
        except BaseException:
            self._undo_create(pid, cg, state_dir)
            raise

    def _undo_create(self, pid: int, cg: cgroups.Cgroup | None, state_dir: str) -> None:
        if pid:
            kill_and_wait(pid)
        if cg is not None:
            remove_cgroup(cg)
        unmount_host_mounts(state_dir, self._creating_rootfs)
        remove_tree(state_dir)

    def _make_cgroup(self, container_id: str, spec: Mapping[str, Any]
                     ) -> tuple[cgroups.Cgroup | None, list[str]]:
        return make_cgroup(self.open_cgroup, container_id, spec)

    # ------------------------------------------------------------------ the fork

    def _spawn(self, container_id: str, spec: dict[str, Any], process: dict[str, Any], *,
               fifo_path: str | None, cgroup: cgroups.Cgroup | None,
               stdio: tuple[int, int, int] | None, console_socket: str | socket.socket | None,
               preserve_fds: int, no_pivot: bool = False, is_exec: bool = False,
               exec_root: str | None = None) -> tuple[int, list[str]]:
        """Fork the init (see :mod:`.spawn`); its pid and warnings once it is ready."""
        ready = spawn(container_id, spec, process, fifo_path=fifo_path, cgroup=cgroup, stdio=stdio,
                      console_socket=console_socket, preserve_fds=preserve_fds,
                      run_hooks=self.run_hooks_for, no_pivot=no_pivot, is_exec=is_exec,
                      exec_root=exec_root, while_waiting=self.while_waiting, spares=self.spares)
        self.last_timings = ready.timings
        return ready.pid, ready.warnings

    # ------------------------------------------------------------------ hooks

    def run_hooks(self, container: Container, stage: str, *, fatal: bool) -> bool:
        hooks = container.spec.get("hooks") or {}
        if not hooks.get(stage) and not (stage == "createRuntime" and hooks.get("prestart")):
            return True   # none: no state to build (its status reads the kernel twice per start)
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
