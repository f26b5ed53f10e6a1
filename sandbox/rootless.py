"""Rootless mode: one user namespace per user, held open by a tiny process, joined by every command.

Podman's model.  An unprivileged user gets a user namespace in which they are
root (uid 0 is their own uid; uids 1..n are their ranges in /etc/subuid,
mapped by the setuid ``newuidmap``/``newgidmap`` when both exist, else only
uid 0 is mapped) and a mount namespace of its own.  Inside, overlay mounts,
pivot_root and every namespace but the host's cgroup tree and network are
theirs, so the engine runs as it does for root.  Files the engine writes as
"root" are the user's own on disk; files owned by uid N in an image are owned
by the user's N-th subordinate uid, as under Podman.

The namespace must outlive any one command, so a holder process (``sleep
infinity`` after the namespaces are made; its pid and start time in
``$XDG_RUNTIME_DIR/sandbox/rootless.pid``) keeps it.  A command joins it with
setns(2), which the kernel allows only to a single-threaded process: the CLI
joins at start, a plain script when it makes its first :class:`~sandbox.Engine`,
and a Jupyter kernel must be started inside (``python -m sandbox.rootless --
CMD`` wraps any command; ``sandbox kernel install`` writes a kernelspec that
does).  The supervisor and containers are children of a joined process, so
they are inside too.  ``SANDBOX_ROOTLESS`` (the holder's pid) tells children
they are inside.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import SandboxError

ENV = "SANDBOX_ROOTLESS"


#: What a container needs from unshare(2) (the user namespace is added when not root).
_CONTAINER_NAMESPACES = ("mount", "uts", "ipc", "pid", "network")


def probe_unshare(user: bool) -> str | None:
    """None if a child process can make a container's namespaces; else the error it met.

    Tried, not guessed from sysctls: Docker's seccomp profile, a missing
    capability, a kernel built without user namespaces and a container that
    forbids nesting all refuse unshare(2) in different ways.  The child only
    calls unshare and exits, so forking from a threaded kernel is safe.
    """
    from .kernel import namespaces as ns
    flags = 0
    for name in _CONTAINER_NAMESPACES:
        flags |= ns.NAMESPACES[name]
    if user:
        flags |= ns.CLONE_NEWUSER
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(r)
            ns.unshare(flags)
        except BaseException as e:
            # The errno's text: the kernel module's message adds a hint for root, wrong here.
            err = getattr(e, "errno", None)
            os.write(w, (f"unshare(2): {os.strerror(err)}" if err else str(e)).encode(errors="replace")[:1000])
            code = 1
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        error = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    return error or f"the probe ended with status {status}"


def id_ranges(path: str, user: str, uid: int) -> tuple[tuple[int, int], ...]:
    """The ``user:start:count`` (or ``uid:start:count``) lines of /etc/subuid or /etc/subgid."""
    ranges = []
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[0] in (user, str(uid)) and parts[1].isdigit() and parts[2].isdigit():
                ranges.append((int(parts[1]), int(parts[2])))
    return tuple(ranges)


def user_name(uid: int) -> str:
    import pwd
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def state_dir() -> Path:
    """Where the holder's pid file lives: $XDG_RUNTIME_DIR/sandbox, else a private dir in /tmp."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "sandbox"
    return Path(f"/tmp/sandbox-rootless-{os.getuid()}")


def inside() -> bool:
    """Is this process in the user's rootless namespace (joined, or a child of a joined process)?"""
    holder = os.environ.get(ENV)
    if not holder or not holder.isdigit():
        return False
    try:
        return os.stat(f"/proc/{holder}/ns/user").st_ino == os.stat("/proc/self/ns/user").st_ino
    except OSError:
        return False


def _start_time(pid: int) -> int | None:
    """The start time of a live ``pid`` (None if it is gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def holder_pid() -> int | None:
    """The running holder's pid, or None (no pid file, or its process is gone)."""
    try:
        pid, start = (int(x) for x in (state_dir() / "rootless.pid").read_text().split())
    except (OSError, ValueError):
        return None
    return pid if _start_time(pid) == start else None


def _write_map(pid: int, kind: str, own: int, ranges: tuple[tuple[int, int], ...], tool: str | None) -> None:
    """uid_map/gid_map of ``pid``: 0 -> ``own`` and 1.. -> the subordinate ranges when a tool can map them."""
    if ranges and tool:
        args, inside_id = [tool, str(pid), "0", str(own), "1"], 1
        for start, count in ranges:
            args += [str(inside_id), str(start), str(count)]
            inside_id += count
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode == 0:
            return
        # Under no_new_privs (TLJH's NoNewPrivileges=yes, Kubernetes' allowPrivilegeEscalation:
        # false) the setuid tool cannot act: map the user's own id alone, as with no ranges.
        sys.stderr.write(f"WARNING: {os.path.basename(tool)} refused to map {kind}s "
                         f"({r.stderr.strip() or 'exit ' + str(r.returncode)}); only your own {kind} is "
                         f"mapped (no_new_privs set? check /etc/sub{kind} and that {tool} is setuid root)\n")
    if kind == "gid":
        Path(f"/proc/{pid}/setgroups").write_text("deny")  # required before an unprivileged gid_map
    Path(f"/proc/{pid}/{kind}_map").write_text(f"0 {own} 1\n")


def _make_holder() -> int:
    """Fork the holder: it unshares user+mount namespaces, waits to be mapped, then sleeps forever."""
    from .kernel import mounts, namespaces as ns
    found = _ranges_and_tools()
    ready_r, ready_w = os.pipe()   # child -> parent: unshared (or the error)
    go_r, go_w = os.pipe()         # parent -> child: mapped, go on
    sleep = shutil.which("sleep") or "/bin/sleep"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the holder
        try:
            os.close(ready_r)
            os.close(go_w)
            os.setsid()
            ns.unshare(ns.CLONE_NEWUSER | ns.CLONE_NEWNS)
            os.write(ready_w, b"ok")
            if os.read(go_r, 2) != b"ok":
                os._exit(1)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            # The host's mounts still reach us; ours stay here.
            mounts.mount(None, "/", None, mounts.MS_REC | mounts.MS_SLAVE)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.closerange(3, 1 << 16)
            os.execv(sleep, [sleep, "infinity"])
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.write(ready_w, str(e).encode(errors="replace")[:1000] or b"failed")
        os._exit(1)
    os.close(ready_w)
    os.close(go_r)
    try:
        answer = os.read(ready_r, 1000)
        if answer != b"ok":
            raise SandboxError(f"cannot make a user namespace: {answer.decode(errors='replace')}",
                               hint="rootless mode needs unprivileged user namespaces "
                                    "(sysctl user.max_user_namespaces > 0)")
        _write_map(pid, "uid", os.getuid(), found.subuids, found.newuidmap)
        _write_map(pid, "gid", os.getgid(), found.subgids, found.newgidmap)
        os.write(go_w, b"ok")
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(ready_r)
        os.close(go_w)
    # It runs on, re-parented to init when we exit; wait until it is sleeping in
    # its namespaces, so a command joining right away finds them mapped.
    start = _start_time(pid)
    d = state_dir()
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = d / f"rootless.pid.{os.getpid()}"
    tmp.write_text(f"{pid} {start}\n")
    os.replace(tmp, d / "rootless.pid")
    return pid


def _reap_later(pid: int) -> None:
    """The holder is our child until we exit: reap it if it dies first, so it is no zombie."""
    def wait() -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    # A daemon thread after setns is fine: setns needs one thread only while it runs.
    threading.Thread(target=wait, daemon=True, name="rootless-holder").start()


def join() -> None:
    """Move this process into the user's rootless namespace, making it if none runs.

    Only a single-threaded process can; a threaded one (a Jupyter kernel) gets
    an error that says how to start it inside.
    """
    from .kernel import namespaces as ns
    if inside():
        return
    if threading.active_count() > 1:
        raise SandboxError("this process has threads, so it cannot join the rootless user namespace",
                           hint="start it inside: python -m sandbox.rootless -- COMMAND, or for Jupyter "
                                "install the kernel with `sandbox kernel install` and pick it")
    pid = holder_pid()
    made = pid is None
    if pid is None:
        pid = _make_holder()
    cwd = os.getcwd()  # read before: setns(CLONE_NEWNS) resets the cwd to the namespace's root
    user = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    mnt = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        ns.setns(user, ns.CLONE_NEWUSER)
        ns.setns(mnt, ns.CLONE_NEWNS)
    finally:
        os.close(user)
        os.close(mnt)
    try:
        os.chdir(cwd)  # keep ours (a kernel started in the notebook's folder must stay there)
    except OSError:
        pass
    os.environ[ENV] = str(pid)
    if made:
        _reap_later(pid)


def wanted() -> bool:
    """Should this process be in the rootless namespace?  (Not root, and user namespaces work.)"""
    if os.geteuid() == 0 or inside():
        return False
    if holder_pid() is not None:
        return True
    return _userns_works()


@functools.cache
def _userns_works() -> bool:
    return probe_unshare(user=True) is None


@dataclass(frozen=True)
class _Ranges:
    subuids: tuple[tuple[int, int], ...]
    subgids: tuple[tuple[int, int], ...]
    newuidmap: str | None
    newgidmap: str | None


def _ranges_and_tools() -> _Ranges:
    """The user's subordinate ranges and the setuid tools that map them (Podman's sources)."""
    name = user_name(os.getuid())
    return _Ranges(id_ranges("/etc/subuid", name, os.getuid()), id_ranges("/etc/subgid", name, os.getgid()),
                   shutil.which("newuidmap"), shutil.which("newgidmap"))


def join_if_wanted() -> str | None:
    """Join when this process should be inside and can; else why it is not (None: fine as it is)."""
    if not wanted():
        return None
    if threading.active_count() > 1:
        return ("this process has threads, so it cannot join the rootless user namespace: start it "
                "inside (python -m sandbox.rootless -- COMMAND; for Jupyter, the kernel from "
                "`sandbox kernel install`)")
    join()
    return None


def stop() -> bool:
    """End the holder (``sandbox system rootless stop``); containers still running keep the namespace."""
    pid = holder_pid()
    if pid is None:
        return False
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        (state_dir() / "rootless.pid").unlink()
    return True


def install_kernel(name: str = "python3", display: str = "Python 3 (sandbox)") -> str:
    """Write a Jupyter kernelspec for this user whose kernel starts inside the namespace; its directory.

    Named ``python3`` by default, so the labs (and any notebook) get it without
    choosing: it goes where Jupyter looks first (the virtual environment when
    the user may write there, else their own data dir).  As root, or where
    rootless mode is not wanted, the wrapper simply execs the kernel.
    """
    import json
    import tempfile
    from jupyter_client.kernelspec import KernelSpecManager
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "sandbox.rootless", "--", sys.executable, "-m", "ipykernel_launcher",
                     "-f", "{connection_file}"],
            "display_name": display, "language": "python", "metadata": {"debugger": True}}, indent=1))
        # jupyter_core 5 prefers a virtual environment's kernelspecs to the user's: write into the
        # environment when it is one and ours to change, else into the user's data dir.
        kernels = Path(sys.prefix, "share", "jupyter", "kernels")
        if sys.prefix != sys.base_prefix and os.access(kernels if kernels.exists() else sys.prefix, os.W_OK):
            return str(KernelSpecManager().install_kernel_spec(tmp, name, prefix=sys.prefix))
        return str(KernelSpecManager().install_kernel_spec(tmp, name, user=True))


def main(argv: list[str] | None = None) -> int:
    """``python -m sandbox.rootless [--] COMMAND...``: run COMMAND inside the namespace (exec, no wait).

    ``--install-kernel [NAME]`` writes the Jupyter kernelspec (see :func:`install_kernel`).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--install-kernel"]:
        print(f"installed kernelspec in {install_kernel(*args[1:2])}")
        return 0
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m sandbox.rootless [--] COMMAND [ARG...]", file=sys.stderr)
        return 2
    if wanted():
        try:
            join()
        except SandboxError as e:
            print(f"Error: {e}", file=sys.stderr)
            return 125
    os.execvp(args[0], args)
    return 127  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
