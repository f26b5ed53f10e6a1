"""The container's process, set up by PID 1 after pivot_root: limits, user, capabilities, exec.

Everything here runs inside the container's root, where nothing can be
imported from the host: every module it needs is imported at the top, before
the runtime forks (``tests/unit/test_kernel_layout.py`` checks the kernel
names).  The order is runc's finalizeNamespace: rlimits; no_new_privs;
seccomp (before capabilities are dropped, when no_new_privs is off); bounding
set, keepcaps, groups, gid, uid, capset, ambient; cwd; the executable looked
up; fds closed on exec; ``ready``; the exec fifo; execve.
"""

from __future__ import annotations

import fcntl  # here, not in setup_console: after pivot_root the host's stdlib is out of reach
import os
import resource
import signal
import socket
import stat
import termios
from typing import Any, NoReturn

from .. import kernel
from .steps import TIMINGS, InitArgs, StepFailed, send, step

#: Signals Python or the init changed; execve resets handlers but not SIG_IGN.
_RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                  signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)

_RLIM_INFINITY_SPEC = 2**64 - 1


def setup_console(console_fd: int | None) -> None:
    """A pty whose master goes to the console socket and whose slave becomes stdio.

    Opened after pivot_root, so it is a pty of the container's own devpts
    instance; /dev/console is the slave, bind-mounted, as runc does.
    """
    if console_fd is None:
        raise StepFailed("console", "process.terminal is true but no console socket was given",
                         None, hint="pass --console-socket, or set process.terminal to false")
    master, slave = os.openpty()
    name = os.ttyname(slave)
    sock = socket.socket(fileno=os.dup(console_fd))
    try:
        socket.send_fds(sock, [name.encode()], [master])
    finally:
        sock.close()
    os.close(master)
    if os.path.exists("/dev") and not os.path.lexists("/dev/console"):
        os.close(os.open("/dev/console", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    if os.path.lexists("/dev/console"):
        kernel.mount(name, "/dev/console", None, kernel.MS_BIND)
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    if slave > 2:
        os.close(slave)


def set_rlimits(limits: list[dict[str, Any]], warnings: list[str]) -> None:
    for limit in limits:
        which = getattr(resource, limit["type"])
        soft, hard = (_rlim(limit["soft"]), _rlim(limit["hard"]))
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):
            # Raising a hard limit needs CAP_SYS_RESOURCE, which some hosts
            # never grant: clamp to what we have and say so.
            _, have = resource.getrlimit(which)
            if have != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > have):
                warnings.append(f"{limit['type']} hard limit {limit['hard']} is above this host's "
                                f"{have}; clamped to {have}")
                hard = have
            if have != resource.RLIM_INFINITY and (soft == resource.RLIM_INFINITY or soft > hard):
                soft = hard
            resource.setrlimit(which, (soft, hard))


def _rlim(value: int) -> int:
    return resource.RLIM_INFINITY if value >= _RLIM_INFINITY_SPEC or value < 0 else value


def exec_process(args: InitArgs, spec: dict[str, Any], process: dict[str, Any],
                  fifo_fd: int | None, warnings: list[str]) -> NoReturn:
    """no_new_privs, seccomp, user and capabilities, cwd, then wait for start and exec."""
    env = list(process.get("env") or [])
    seccomp = spec.get("linux", {}).get("seccomp")
    no_new_privs = bool(process.get("noNewPrivileges"))
    if no_new_privs:
        with step("no_new_privs"):
            kernel.set_no_new_privs()
    program = args.seccomp_bpf if seccomp else None
    if program is not None and not no_new_privs:
        with step("seccomp"):
            # Without no_new_privs loading a filter needs CAP_SYS_ADMIN:
            # load it while we still have it (runc does the same).
            kernel.load_bpf(program)
            program = None
    with step("user and capabilities"):
        _set_user_and_caps(process, warnings)
    with step("cwd"):
        cwd = process.get("cwd") or "/"
        try:
            os.chdir(cwd)
        except FileNotFoundError:
            os.makedirs(cwd, 0o755, exist_ok=True)
            os.chdir(cwd)
    path = _find_executable(process["args"][0], env, cwd)
    if program is not None:
        with step("seccomp"):
            kernel.load_bpf(program)  # as late as possible: the filter may forbid the steps above
    with step("close fds"):
        keep = set(range(3, 3 + args.preserve_fds))
        for fd in keep:
            os.set_inheritable(fd, True)
        kernel.mark_cloexec_from(3, keep | {args.sync_fd, args.ack_fd} | ({fifo_fd} if fifo_fd else set()))
        if fifo_fd is not None:
            let_go_of_inherited_fds(keep | {args.sync_fd, args.ack_fd, fifo_fd})
    send(args.sync_fd, ready=True, warnings=warnings, timings=TIMINGS)
    if fifo_fd is not None:
        with step("wait for start"):
            # Blocks until `start` opens the fifo for reading (runc's exec fifo).
            fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
            os.write(fd, b"0")
            os.close(fd)
            os.close(fifo_fd)
    with step("exec"):
        for sig in _RESET_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.umask(process.get("user", {}).get("umask", 0o022))
        try:
            os.execve(path, process["args"], dict(e.split("=", 1) if "=" in e else (e, "") for e in env))
        except OSError as e:
            kind = "notfound" if e.errno == 2 else "notexec"
            raise StepFailed("exec", f'exec: "{process["args"][0]}": {e.strerror}', e.errno, kind)
    raise AssertionError("unreachable")


def let_go_of_inherited_fds(keep: set[int]) -> None:
    """Point every fd >= 3 but ``keep`` at /dev/null before blocking for start.

    The init is a fork of the runtime's caller, the engine's supervisor, and
    holds a copy of each of its descriptors until execve closes them.  Blocked
    on the exec fifo it kept the supervisor's socket, its clients' connections
    and its store lock alive after a ``kill -9`` between create and start: the
    client of the start hung, and no new supervisor could take the store.
    /dev/null rather than close(): the numbers stay taken, so nothing that
    still holds one (a Python object, the signal wakeup fd) can write into a
    file opened later.  A seccomp profile that forbids this keeps the old way.
    """
    try:
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= 3 and fd != null and fd not in keep:
            try:
                os.dup2(null, fd, inheritable=False)
            except OSError:
                pass   # the fd of the listing itself, closed by now
    os.close(null)


def _set_user_and_caps(process: dict[str, Any], warnings: list[str]) -> None:
    """runc's finalizeNamespace: bounding set, keepcaps, groups, ids, capset, ambient."""
    caps = process.get("capabilities")
    user = process.get("user") or {}
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    last = kernel.last_cap()
    if caps is not None:
        bounding = set(caps.get("bounding") or [])
        for name, bit in kernel.CAPS.items():
            if bit <= last and name not in bounding and kernel.capbset_read(bit):
                kernel.capbset_drop(bit)  # needs CAP_SETPCAP: before capset drops it
    kernel.set_keepcaps(True)  # keep the permitted set across the switch to a non-zero uid
    groups = user.get("additionalGids")
    # A user namespace with "deny" in /proc/self/setgroups (one uid mapped, no newgidmap) refuses
    # setgroups(2) even to clear the list; runc skips it there unless groups are asked for.
    if groups or not _setgroups_denied():
        kernel.setgroups(list(groups or []))
    kernel.setresgid(gid, gid, gid)
    kernel.setresuid(uid, uid, uid)
    kernel.set_keepcaps(False)
    # Changing uid made us non-dumpable, so /proc/self/fd (the exec fifo) would
    # be closed to us; execve recomputes the flag from the program anyway.
    kernel.set_dumpable(True)
    if caps is None:
        return
    _, have, _ = kernel.capget()
    masks = {}
    for name in ("effective", "permitted", "inheritable"):
        wanted = kernel.caps_to_mask(c for c in caps.get(name) or [] if kernel.CAPS[c] <= kernel.last_cap())
        missing = wanted & ~have
        if missing and name == "permitted":
            warnings.append("capabilities not available on this host, left out: "
                            + ", ".join(sorted(kernel.caps_from_mask(missing))))
        masks[name] = wanted & have
    kernel.capset(masks["effective"] & masks["permitted"], masks["permitted"],
                  masks["inheritable"])
    kernel.cap_ambient_clear_all()
    for cap in caps.get("ambient") or []:
        bit = kernel.CAPS[cap]
        if masks["permitted"] >> bit & 1 and masks["inheritable"] >> bit & 1:
            kernel.cap_ambient_raise(bit)


def _setgroups_denied() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "deny"
    except OSError:
        return False


def _find_executable(command: str, env: list[str], cwd: str) -> str:
    """The path execve will run, found before `start` so a typo fails `create` (as in runc)."""
    if "/" in command:
        candidates = [command if command.startswith("/") else os.path.join(cwd, command)]
    else:
        search = next((e[5:] for e in env if e.startswith("PATH=")), None)
        if search is None:
            search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        candidates = [os.path.join(d or ".", command) for d in search.split(":")]
    denied = None
    for path in candidates:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            denied = f'exec: "{command}": is a directory'
            continue
        if not os.access(path, os.X_OK):
            denied = f'exec: "{command}": permission denied'
            continue
        return path
    if denied:
        raise StepFailed("exec", denied, 13, "notexec",
                         hint="the file must be executable for the container's user")
    where = "executable file not found in $PATH" if "/" not in command else "no such file or directory"
    raise StepFailed("exec", f'exec: "{command}": {where}', 2, "notfound",
                     hint="check the command's spelling and that the image contains it")
