"""``--runtime proot``: containers without namespaces, through ptrace path translation (proot).

Where unshare(2) is refused (Binder, a container with Docker's seccomp
profile) the only way to give a process the image's root filesystem is to
translate its paths: proot traces it with ptrace(2) and rewrites every path in
every system call, the way udocker's P modes work.  Nothing is isolated:
the process sees the host's processes, network, hostname and users; only its
``/`` is the image's.  The supervisor uses this runtime for every container
when the machine is in ``no-namespaces`` mode (see :mod:`sandbox.hostinfo`),
and as any user with ``--runtime proot``.

The container's bundle is the same one our runtime and runc get; this module
turns it into a proot command line:

* ``root.path`` -> ``-r``, ``process.cwd`` -> ``-w``, uid 0 -> ``-0`` (proot
  fakes root for the process), another user -> ``-i UID:GID``;
* the host's ``/proc``, ``/sys`` and ``/dev`` are bound (proc, sysfs, devpts,
  mqueue and /dev tmpfs mounts cannot be made), bind mounts (volumes, the
  container's hosts, hostname and resolv.conf) become ``-b SRC:DEST``, a
  tmpfs becomes a directory of the container's own, bound;
* ``process.env`` is proot's environment, which the traced process inherits;
  rlimits are set on the waiting shim (prlimit) before proot starts.

``create`` starts a shell shim in a new session that waits on a pipe; ``start``
writes to it and the shim execs proot, so the created state exists as it
does for a real runtime.  The shim's pid is the container's pid: the
supervisor reaps it.  proot exits with the traced process's code, but with
255 when it died of a signal: a signal this module sent maps back to
128+signal, as Docker reports it; one the process raised itself stays 255.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
from dataclasses import dataclass, field
from typing import Any

from ..errors import ContainerNotFound, ContainerStartError, UsageError
from ..runtime.container import process_start_time

#: Mounts a traced process gets from the host, whatever the spec says.
HOST_BINDS = ("/proc", "/sys", "/dev")
_KERNEL_FS = {"proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2"}

#: The shim: wait for ``start`` on fd 3, then become proot (no Python: it is in every container's start).
_SHIM = 'read _ <&3; exec 3<&-; exec "$@"'


def proot_binary() -> str:
    path = shutil.which("proot")
    if path is None:
        raise UsageError("containers here run through proot, which is not installed",
                         hint="apt install proot (Binder: add proot to apt.txt)")
    return path


def proot_argv(spec: dict[str, Any], state_dir: str) -> tuple[list[str], list[str]]:
    """The proot command line for ``spec``, and warnings for what it cannot give."""
    process = spec["process"]
    root = spec["root"]["path"]
    argv = [proot_binary(), "-r", root, "-w", process.get("cwd") or "/"]
    user = process.get("user") or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    argv += ["-0"] if uid == 0 else ["-i", f"{uid}:{gid}"]
    for host in HOST_BINDS:
        argv += ["-b", host]
    warnings: list[str] = []
    for n, m in enumerate(spec.get("mounts") or []):
        dest, kind = m["destination"], m.get("type", "bind")
        options = m.get("options") or []
        if kind in _KERNEL_FS or any(dest == h or dest.startswith(h + "/") for h in HOST_BINDS):
            continue  # the host's, bound above
        if kind == "bind" or "bind" in options or "rbind" in options:
            argv += ["-b", f"{m['source']}:{dest}"]
        elif kind == "tmpfs":
            own = os.path.join(state_dir, f"tmpfs-{n}")
            os.makedirs(own, exist_ok=True)
            argv += ["-b", f"{own}:{dest}"]
        else:
            warnings.append(f"proot: the {kind} mount at {dest} is not made (it needs namespaces)")
    limits = _asked_limits((spec.get("linux") or {}).get("resources") or {})
    if limits:
        warnings.append(f"no namespaces: limits not applied ({', '.join(limits)}): cgroups need root or "
                        "a user namespace, which this machine refuses")
    if (spec.get("root") or {}).get("readonly"):
        warnings.append("proot: the root file system is not read-only (that needs a mount namespace)")
    args = process.get("args") or []
    if not args:
        raise UsageError("the container has no command to run", hint="give one, or an image with CMD")
    return argv + list(args), warnings  # (proot takes no "--": the command starts at its first non-option)


#: linux.resources fields a user sets, and the flag that set them.
_LIMIT_FLAGS = (("memory", "limit", "--memory"), ("memory", "reservation", "--memory-reservation"),
                ("cpu", "quota", "--cpus/--cpu-quota"), ("cpu", "shares", "--cpu-shares"),
                ("cpu", "cpus", "--cpuset-cpus"), ("pids", "limit", "--pids-limit"))


def _asked_limits(resources: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(flag for section, key, flag in _LIMIT_FLAGS
                              if (resources.get(section) or {}).get(key) not in (None, 0, "")))


@dataclass
class ProotContainer:
    """One container under proot, with the face of :class:`sandbox.runtime.container.Container`."""

    runtime: ProotRuntime
    id: str
    pid: int
    spec: dict[str, Any]
    start_fd: int = -1
    warnings: list[str] = field(default_factory=list)
    signalled: int = 0
    exec_pids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.start_time = process_start_time(self.pid) if self.pid else None

    @property
    def cgroup(self) -> Any:
        return None

    def start(self) -> None:
        if self.start_fd < 0:
            raise ContainerStartError("start", f"container {self.id} was not created by this supervisor")
        try:
            os.write(self.start_fd, b"go\n")
        except BrokenPipeError:
            raise ContainerStartError("start", f"the shim of container {self.id} exited before start") from None
        finally:
            os.close(self.start_fd)
            self.start_fd = -1

    def kill(self, signum: int) -> None:
        """Signal the traced process (the first child of proot), or the whole session for SIGKILL.

        proot passes no signal on, and a traced process outlives a killed proot,
        so SIGKILL goes to the container's process group (the shim's session).
        """
        self.signalled = int(signum)
        target = self._traced()
        with contextlib.suppress(ProcessLookupError):
            if signum == signal.SIGKILL or target is None:
                os.killpg(self.pid, signum)
            else:
                os.kill(target, signum)

    def _traced(self) -> int | None:
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                children = f.read().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def exit_code(self, code: int) -> int:
        """proot's 255 for a signal death becomes 128+N when we sent signal N."""
        return 128 + self.signalled if code == 255 and self.signalled else code

    def pause(self) -> None:
        raise UsageError("pause needs a cgroup freezer, and containers here run without namespaces or cgroups",
                         hint="run the engine as root, or rootless where user namespaces are allowed")

    resume = pause

    def delete(self, force: bool = False) -> None:
        if self.start_fd >= 0:
            os.close(self.start_fd)
            self.start_fd = -1
        if force:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        shutil.rmtree(self.runtime.state(self.id), ignore_errors=True)
        for pid in (self.pid, *self.exec_pids):
            _remove_proot_tmp(pid)

    def exec(self, process: dict[str, Any], *, stdio: tuple[int, int, int] | None = None,
             console_socket: socket.socket | None = None) -> int:
        """A second proot over the same root: ``docker exec`` (no namespaces to join)."""
        spec = {**self.spec, "process": process}
        argv, _ = proot_argv(spec, self.runtime.state(self.id))
        pid, start_fd = self.runtime.spawn(argv, process, stdio, console_socket)
        self.exec_pids.append(pid)
        with contextlib.suppress(BrokenPipeError):
            os.write(start_fd, b"go\n")
        os.close(start_fd)
        return pid


class ProotRuntime:
    """Containers as proot processes; a little state per container for a supervisor that restarts."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.last_warnings: list[str] = []

    def state(self, container_id: str) -> str:
        return os.path.join(self.root, container_id)

    def create(self, container_id: str, bundle: str, *, stdio: tuple[int, int, int] | None = None,
               spec: dict[str, Any] | None = None, console_socket: socket.socket | None = None) -> ProotContainer:
        spec = spec or _load_spec(bundle)
        state = self.state(container_id)
        os.makedirs(state, mode=0o700, exist_ok=True)
        try:
            argv, warnings = proot_argv(spec, state)
            pid, start_fd = self.spawn(argv, spec["process"], stdio, console_socket)
            warnings += self.last_warnings
            with open(os.path.join(state, "state.json"), "w") as f:
                json.dump({"pid": pid, "bundle": bundle}, f)
        except BaseException:
            shutil.rmtree(state, ignore_errors=True)
            raise
        return ProotContainer(self, container_id, pid, spec, start_fd, warnings)

    def spawn(self, argv: list[str], process: dict[str, Any], stdio: tuple[int, int, int] | None,
              console_socket: socket.socket | None) -> tuple[int, int]:
        """posix_spawn the shim in a session of its own: (pid, the fd that starts it).

        posix_spawn, not subprocess: a Popen object reaps its child when it is
        collected, which would take the exit status from the supervisor's loop.
        """
        env = dict(e.split("=", 1) for e in process.get("env") or [] if "=" in e)
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        actions: list[tuple[Any, ...]] = []
        closing: list[int] = []
        pty_fd = -1
        if console_socket is not None:
            master, pty_fd = os.openpty()
            closing.append(pty_fd)
            try:
                socket.send_fds(console_socket, [b"pty"], [master])
            finally:
                os.close(master)
            stdio = (pty_fd, pty_fd, pty_fd)
        assert stdio is not None
        for target, fd in enumerate(stdio):
            if fd == target:  # dup2(n, n) would keep close-on-exec: give the child a copy from above
                import fcntl
                fd = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
                closing.append(fd)
            actions.append((os.POSIX_SPAWN_DUP2, fd, target))
        # Always through the shim: the rlimits are set on it before proot starts.
        start_r, start_w = os.pipe()
        start_r = _high(start_r)   # never dup2(3, 3): that keeps close-on-exec and the shim would not wait
        actions.append((os.POSIX_SPAWN_DUP2, start_r, 3))
        closing.append(start_r)
        os.set_inheritable(start_w, False)
        argv = ["/bin/sh", "-c", _SHIM, "sh", *argv]
        try:
            pid = os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True)
        except OSError as e:
            if start_w >= 0:
                os.close(start_w)
            raise ContainerStartError("create", f"cannot start {argv[0]}: {e.strerror}") from None
        finally:
            for fd in closing:
                os.close(fd)
        self.last_warnings = _apply_rlimits(pid, process.get("rlimits") or [])
        return pid, start_w

    def discard(self, container_id: str, spec: dict[str, Any] | None = None) -> None:
        shutil.rmtree(self.state(container_id), ignore_errors=True)

    def get(self, container_id: str) -> ProotContainer:
        """The container a previous supervisor started (its shim or proot still runs, or not)."""
        try:
            with open(os.path.join(self.state(container_id), "state.json")) as f:
                state = json.load(f)
        except (OSError, ValueError):
            raise ContainerNotFound(f"proot has no container {container_id}") from None
        return ProotContainer(self, container_id, int(state["pid"]), _load_spec(state["bundle"]))


def _apply_rlimits(pid: int, rlimits: list[dict[str, Any]]) -> list[str]:
    """The spec's rlimits on the waiting shim (prlimit(2)), clamped to what may be set; warnings."""
    warnings = []
    for r in rlimits:
        kind = getattr(resource, str(r.get("type", "")), None)
        if kind is None:
            continue
        soft, hard = int(r.get("soft", 0)), int(r.get("hard", 0))
        try:
            resource.prlimit(pid, kind, (soft, hard))
        except (ValueError, PermissionError):  # above the hard limit we have: clamp, as the runtime does
            _, have = resource.getrlimit(kind)
            top = have if have != resource.RLIM_INFINITY else max(soft, hard)
            with contextlib.suppress(ValueError, OSError):
                resource.prlimit(pid, kind, (min(soft, top), min(hard, top)))
            warnings.append(f"{r.get('type')} clamped to {top} (the most this process may grant)")
        except ProcessLookupError:
            break
    return warnings


def _high(fd: int) -> int:
    """``fd`` moved to 10 or above, close-on-exec (see network.slirp._high)."""
    import fcntl
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


def _remove_proot_tmp(pid: int) -> None:
    """proot's scratch directory (``$TMPDIR/prooted-PID-XXXXXX``, a directory or its loader), which a killed proot leaves.

    Telling proot where to put it (PROOT_TMP_DIR) would show in the
    container's environment, so it goes where proot puts it and is swept here.
    """
    import glob
    for path in glob.glob(os.path.join(os.environ.get("TMPDIR") or "/tmp", f"prooted-{pid}-*")):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:  # its loader, a file
            with contextlib.suppress(OSError):
                os.unlink(path)


def _load_spec(bundle: str) -> dict[str, Any]:
    with open(os.path.join(bundle, "config.json")) as f:
        return dict(json.load(f))
