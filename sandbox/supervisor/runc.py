"""``--runtime runc``: the supervisor driving runc's command line instead of our runtime.

Everything above the runtime stays the same: the supervisor mounts the
rootfs, writes the same OCI bundle (``config.json``, Docker's defaults), holds
the same stdio fifos and logs, reaps, records and restarts.  Only the five
runtime operations change, to runc's verbs:

* ``runc create`` with the container's stdio as its own (runc hands them to
  the container's init; its own messages go to ``--log``, never to the
  container's output), or with ``--console-socket`` for a terminal: runc sends
  the pty master over that socket, and we forward it to the supervisor's
  socketpair so the rest of the code cannot tell the difference;
* ``runc start``, ``runc kill``, ``runc pause``/``resume``, ``runc delete``;
* ``runc exec --detach --process FILE`` for ``docker exec``.

runc's first process exits after ``create``; the container's init is
re-parented to the supervisor (the child subreaper), which reaps it as it
does ours.  Limits, stats, freezing for ``commit`` and ``update`` use the
cgroup runc made (the spec's ``cgroupsPath``) through our cgroup code.

Rootless (the supervisor in the user's namespace), runc is told so
(``--rootless true``) and the group is settled before it runs, as for our
runtime: made by us below the user's delegated cgroup v2 group, limits
applied, and named to runc by its full path; without a delegation the spec
has no ``cgroupsPath`` and no resources, which runc's rootless cgroup
manager takes as "no cgroup" (what ``runc spec --rootless`` writes), and
the container runs with the same one-line warning about limits.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any
from collections.abc import Callable

from ..errors import (CommandNotExecutable, CommandNotFound, ContainerNotFound, ContainerStartError,
                      SandboxError, UsageError)
from ..kernel import in_user_namespace
from ..runtime.container import no_cgroup, process_start_time


class RuncError(ContainerStartError):
    """runc refused or failed; the message is runc's own last error line."""


def runc_binary() -> str:
    path = shutil.which("runc")
    if path is None:
        raise UsageError("--runtime runc: runc is not installed", hint="apt install runc, or leave out --runtime")
    return path


class RuncRuntime:
    """runc under its own state root (``--root``), containers created from our bundles."""

    def __init__(self, root: str, open_cgroup: Callable[[str], Any]) -> None:
        self.root = root
        self.open_cgroup = open_cgroup
        self.log = os.path.join(root, "runc.log")
        #: the supervisor lives in the user's namespace for good (rootless mode)
        self.rootless = in_user_namespace()

    def _argv(self, *args: str) -> list[str]:
        rootless = ("--rootless", "true") if self.rootless else ()
        return [runc_binary(), "--root", self.root, "--log", self.log, "--log-format", "json", *rootless, *args]

    def _rootless_spec(self, container_id: str, bundle: str, spec: dict[str, Any]) -> tuple[dict[str, Any], Any,
                                                                                         list[str]]:
        """The spec runc gets in rootless mode, the group made for it (or None) and what to say about limits."""
        from ..runtime.resources import make_cgroup
        cg, warnings = make_cgroup(self.open_cgroup, container_id, spec)
        linux = dict(spec.get("linux") or {})
        linux.pop("resources", None)   # applied to our group already, or not to be had
        if cg is None:
            linux.pop("cgroupsPath", None)
        else:
            # Its full path: runc names a rootless group from the hierarchy's root, not from ours.
            from ..cgroups.v2 import V2Cgroup
            linux["cgroupsPath"] = "/" + (str(cg.path.relative_to(cg.mount)) if isinstance(cg, V2Cgroup) else cg.name)
        spec = {**spec, "linux": linux, "mounts": _rootless_mounts(spec)}
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        return spec, cg, warnings

    def run(self, *args: str, what: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        done = subprocess.run(self._argv(*args), capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise self.error(what, done.stderr)
        return done

    def error(self, what: str, stderr: str = "") -> ContainerStartError:
        lines = stderr.strip().splitlines()
        message = self._last_error() or (lines[-1] if lines else "runc failed")
        low = message.lower()
        if "executable file not found" in low or "no such file or directory" in low and "exec" in low:
            return CommandNotFound(what, f"runc: {message}")
        if "permission denied" in low and "exec" in low:
            return CommandNotExecutable(what, f"runc: {message}")
        return RuncError(what, f"runc: {message}")

    def _last_error(self) -> str:
        try:
            with open(self.log, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 8192))
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        for line in reversed(lines):
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("level") in ("error", "fatal"):
                    return str(entry.get("msg", "")).strip()
        return ""

    # ------------------------------------------------------------------ lifecycle

    def create(self, container_id: str, bundle: str, *, stdio: tuple[int, int, int] | None = None,
               spec: dict[str, Any] | None = None, console_socket: socket.socket | None = None) -> RuncContainer:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        pid_file = os.path.join(self.root, f"{container_id}.pid")
        args = ["create", "--bundle", bundle, "--pid-file", pid_file]
        listener = None
        sock_dir = None
        cg: Any = None
        warnings: list[str] = []
        try:
            if self.rootless:
                spec, cg, warnings = self._rootless_spec(container_id, bundle, spec or _load_spec(bundle))
            if console_socket is not None:
                sock_dir = tempfile.mkdtemp(prefix="sbx-runc-")   # short: unix socket paths are limited
                path = os.path.join(sock_dir, "console.sock")
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                listener.bind(path)
                listener.listen(1)
                listener.settimeout(0.05)
                args += ["--console-socket", path]
                proc = subprocess.Popen(self._argv(*args, container_id), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                self._forward_console(listener, proc, console_socket)
                _, err = proc.communicate()
            else:
                assert stdio is not None
                # The container inherits runc's stdio: its fifos, never a pipe of ours.
                proc = subprocess.Popen(self._argv(*args, container_id), stdin=stdio[0], stdout=stdio[1],
                                        stderr=stdio[2], text=True)
                proc.wait()
                err = ""
            if proc.returncode != 0:
                raise self.error("create", err or "")
            with open(pid_file) as f:
                pid = int(f.read().strip())
        except BaseException:
            self.run("delete", "--force", container_id, what="delete", check=False)
            if cg is not None:
                with contextlib.suppress(SandboxError, OSError):
                    cg.destroy()
            raise
        finally:
            if listener is not None:
                listener.close()
            if sock_dir is not None:
                shutil.rmtree(sock_dir, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pid_file)
        made = RuncContainer(self, container_id, pid, spec or _load_spec(bundle))
        made.warnings = warnings
        if cg is not None:
            made._cgroup = cg
        return made

    @staticmethod
    def _forward_console(listener: socket.socket, proc: subprocess.Popen[str], target: socket.socket) -> None:
        """Receive the pty master runc sends and hand it on to the supervisor's socketpair."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                if proc.poll() is not None:
                    return   # runc failed before sending a terminal; its error is in the log
                continue
            with conn:
                conn.settimeout(10)
                _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
            try:
                socket.send_fds(target, [b"pty"], fds[:1])
            finally:
                for fd in fds:
                    os.close(fd)
            return
        raise ContainerStartError("console", "runc did not send the container's terminal in 30 s")

    def discard(self, container_id: str, spec: dict[str, Any] | None = None) -> None:
        """Remove whatever runc has of ``container_id`` (:meth:`Runtime.discard`'s face; runc cleans up
        a create it was killed in itself)."""
        if os.path.isdir(os.path.join(self.root, container_id)):    # runc's state directory
            self.run("delete", "--force", container_id, what="delete", check=False)

    def get(self, container_id: str) -> RuncContainer:
        done = self.run("state", container_id, what="state", check=False)
        if done.returncode != 0:
            raise ContainerNotFound(f"runc has no container {container_id}")
        state = json.loads(done.stdout)
        return RuncContainer(self, container_id, int(state.get("pid") or 0), _load_spec(state["bundle"]))


class RuncContainer:
    """One runc container, with the face of :class:`sandbox.runtime.container.Container`."""

    def __init__(self, runtime: RuncRuntime, container_id: str, pid: int, spec: dict[str, Any]) -> None:
        self.runtime, self.id, self.pid, self.spec = runtime, container_id, pid, spec
        self.start_time = process_start_time(pid) if pid else None
        self.warnings: list[str] = []
        self._cgroup: Any = None

    @property
    def cgroup(self) -> Any:
        if self._cgroup is None:
            linux = self.spec.get("linux") or {}
            if self.runtime.rootless and not linux.get("cgroupsPath"):
                return None   # rootless without a delegated group: runc made none
            path = (linux.get("cgroupsPath") or f"/sandbox/{self.id}").strip("/")
            if self.runtime.rootless:
                # Our rootless groups are named below the delegated group, which the full path repeats.
                from ..cgroups import delegated
                own = delegated()
                if own.available and path.startswith(own.group.strip("/") + "/"):
                    path = path[len(own.group.strip("/")) + 1:]
            with contextlib.suppress(SandboxError, OSError):
                self._cgroup = self.runtime.open_cgroup(path)
        return self._cgroup

    def start(self) -> None:
        self.runtime.run("start", self.id, what="start")

    def kill(self, signum: int) -> None:
        done = self.runtime.run("kill", self.id, str(int(signum)), what="kill", check=False)
        if done.returncode != 0 and "not running" not in (done.stderr + self.runtime._last_error()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)   # runc forgot it (a killed supervisor): signal the pid we know

    def pause(self) -> None:
        if self.runtime.rootless and self.cgroup is None:
            raise no_cgroup("pause", self.id)   # what our runtime says, not runc's "cgroups not configured"
        self.runtime.run("pause", self.id, what="pause")

    def resume(self) -> None:
        if self.runtime.rootless and self.cgroup is None:
            raise no_cgroup("resume", self.id)
        self.runtime.run("resume", self.id, what="resume")

    def delete(self, force: bool = False) -> None:
        args = ["delete", "--force", self.id] if force else ["delete", self.id]
        self.runtime.run(*args, what="delete", check=False)

    def exec(self, process: dict[str, Any], *, stdio: tuple[int, int, int] | None = None,
             console_socket: socket.socket | None = None) -> int:
        rt = self.runtime
        with tempfile.TemporaryDirectory(prefix="sbx-exec-") as tmp:
            proc_file = os.path.join(tmp, "process.json")
            pid_file = os.path.join(tmp, "pid")
            with open(proc_file, "w") as f:
                json.dump(process, f)
            args = ["exec", "--detach", "--process", proc_file, "--pid-file", pid_file]
            if console_socket is not None:
                path = os.path.join(tmp, "c.sock")
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
                    listener.bind(path)
                    listener.listen(1)
                    listener.settimeout(0.05)
                    proc = subprocess.Popen(rt._argv(*args, "--console-socket", path, self.id),
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, text=True)
                    rt._forward_console(listener, proc, console_socket)
                    _, err = proc.communicate()
            else:
                assert stdio is not None
                proc = subprocess.Popen(rt._argv(*args, self.id), stdin=stdio[0], stdout=stdio[1], stderr=stdio[2],
                                        text=True)
                proc.wait()
                err = ""
            if proc.returncode != 0:
                raise rt.error("exec", err or "")
            with open(pid_file) as f:
                return int(f.read().strip())


def _rootless_mounts(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The spec's mounts as runc can make them in the user's namespace.

    sysfs can be mounted only by the owner of the network namespace: a
    container on the host's network (or one joined by path, whose owner this
    cannot tell) gets the host's /sys bound read-only instead, with nothing
    else under /sys, as runc's own rootless conversion (``runc spec
    --rootless``) writes it.  Our runtime makes the same choice when the mount
    is refused (:mod:`sandbox.runtime.rootfs`).
    """
    mounts = list(spec.get("mounts") or [])
    net = next((n for n in (spec.get("linux") or {}).get("namespaces") or [] if n.get("type") == "network"), None)
    if net is not None and not net.get("path"):
        return mounts   # a network namespace runc makes, in the user's namespace: sysfs is ours to mount
    kept = [m for m in mounts if not (m.get("destination") == "/sys" or str(m.get("destination")).startswith("/sys/"))]
    return kept + [{"destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}]


def _load_spec(bundle: str) -> dict[str, Any]:
    try:
        with open(os.path.join(bundle, "config.json")) as f:
            return dict(json.load(f))
    except (OSError, ValueError):
        return {"process": {"user": {"uid": 0, "gid": 0}, "capabilities": {}, "env": []}}
