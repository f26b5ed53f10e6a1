"""The container's init: what runs between fork() and execve().

The runtime forks twice, as runc's nsexec does, because a new PID namespace
only applies to children::

    caller (supervisor, runtime CLI)
      └─ stage 1   joins the cgroup, joins namespaces by path, unshares the
         │         user namespace (the caller writes its id maps), then the rest
         └─ stage 2   PID 1 of the new PID namespace: the checklist below, then
                      blocks on the exec fifo until ``start``, then execs

Stage 1 reports stage 2's pid and exits, so stage 2 is adopted by the
nearest subreaper (the supervisor) or by init, exactly like runc's container
process.  Both stages are forked children of a single-threaded caller, so
unshare(CLONE_NEWUSER) and setns into a mount namespace are allowed.

Every message to the caller is one JSON line on the sync pipe: ``pid``,
``userns`` (write my id maps), ``hooks`` (run the createRuntime/prestart
hooks, the rootfs is ready), ``ready`` (created; warnings), or ``error``
with the step that failed.  A failed step ends the init with exit status 1 and
the caller removes what it made; the namespaces and mounts of the init go
away with it.
"""

from __future__ import annotations

import json
import fcntl  # here, not in _setup_console: after pivot_root the host's stdlib is out of reach
import os
import termios
import resource
import signal
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from .. import kernel
# load_bpf runs after pivot_root, where the host's files (this package's among them) are
# out of reach: seccomp, which sandbox.kernel loads on first use, is imported here, before the fork.
from ..kernel import seccomp as _seccomp_topic  # noqa: F401
from ..errors import KernelError
from . import rootfs as fs
from .config import namespace_flags

#: Signals Python or the init changed; execve resets handlers but not SIG_IGN.
_RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                  signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)

#: Namespace types in the order stage 1 joins them: the user namespace first,
#: so the others are joined with the privileges it gives (runc's nsexec order).
_JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "mount", "cgroup", "time")

_RLIM_INFINITY_SPEC = 2**64 - 1


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


def _fail_and_exit(sync_fd: int, e: BaseException) -> NoReturn:
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


# --------------------------------------------------------------------------- stage 1

def stage_one(args: InitArgs) -> NoReturn:
    """In the first child: cgroup, namespaces, then fork PID 1.  Never returns."""
    try:
        spec = args.spec
        if args.join_files:
            with step("join cgroup"):
                # Opened now: after joining a running container's mount namespace
                # (exec) the host's /sys/fs/cgroup paths are out of sight.
                args.join_fds = tuple(os.open(p, os.O_WRONLY | os.O_CLOEXEC) for p in args.join_files)
        with step("stdio"):
            if args.stdio is not None:
                for target, fd in enumerate(args.stdio):
                    if fd != target:
                        os.dup2(fd, target)
        if args.fifo_path is not None:
            with step("open exec fifo"):
                # An O_PATH handle now: after pivot_root, or as another user in
                # a user namespace, the state directory is out of reach.
                args.fifo_fd = os.open(args.fifo_path, os.O_PATH | os.O_CLOEXEC)
        process = args.process or spec["process"]
        if process.get("oomScoreAdj") is not None:
            with step("oom_score_adj"):
                # Before the user namespace: inside it the file is not ours to write.
                _write_file("/proc/self/oom_score_adj", str(process["oomScoreAdj"]))
        flags, joins = namespace_flags(spec)
        # Open every namespace file first: once in the new mount namespace,
        # /proc is the container's and the paths would name other processes.
        handles = {}
        for kind in _JOIN_ORDER:
            if kind in joins:
                with step(f"open {kind} namespace"):
                    handles[kind] = os.open(joins[kind], os.O_RDONLY | os.O_CLOEXEC)
        for kind, fd in handles.items():
            with step(f"join {kind} namespace"):
                kernel.setns(fd, NAMESPACE_CLONE[kind])
            os.close(fd)
        if flags & kernel.CLONE_NEWUSER:
            with step("create user namespace"):
                kernel.unshare(kernel.CLONE_NEWUSER)
                send(args.sync_fd, userns=os.getpid())
                if os.read(args.ack_fd, 1) != b"1":
                    raise StepFailed("create user namespace", "the runtime could not write the "
                                     "uid/gid maps", None)
                # Become the namespace's root, with its full capabilities.
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
        with step("create namespaces"):
            # The cgroup namespace waits for stage 2, which must be in its cgroup first.
            rest = flags & ~(kernel.CLONE_NEWUSER | kernel.CLONE_NEWCGROUP)
            if rest:
                kernel.unshare(rest)
        with step("fork init"):
            pid = os.fork()
        if pid == 0:
            stage_two(args)
        send(args.sync_fd, pid=pid)
    except BaseException as e:
        _fail_and_exit(args.sync_fd, e)
    os._exit(0)


NAMESPACE_CLONE = {
    "pid": kernel.CLONE_NEWPID, "network": kernel.CLONE_NEWNET, "mount": kernel.CLONE_NEWNS,
    "ipc": kernel.CLONE_NEWIPC, "uts": kernel.CLONE_NEWUTS, "user": kernel.CLONE_NEWUSER,
    "cgroup": kernel.CLONE_NEWCGROUP, "time": kernel.CLONE_NEWTIME,
}


# --------------------------------------------------------------------------- stage 2

def stage_two(args: InitArgs) -> NoReturn:
    """PID 1 of the container: the checklist, the fifo, execve.  Never returns."""
    try:
        warnings: list[str] = []
        spec = args.spec
        process = args.process or spec["process"]
        flags, joins = namespace_flags(spec)
        in_userns = bool(flags & kernel.CLONE_NEWUSER) or "user" in joins or kernel.in_user_namespace()
        if args.join_fds:
            with step("join cgroup"):
                # Itself, first thing: see Cgroup.self_join_files for why not the caller.
                for fd in args.join_fds:
                    os.write(fd, b"0")
                    os.close(fd)
        with step("setsid"):
            os.setsid()  # its own session: a terminal can become the controlling one
        _catch_stop_signals()
        fifo_fd = args.fifo_fd
        # runc's three cases: a new mount namespace (pivot_root), one joined by
        # path (set up and pivot_root there too), none (the mounts are made in
        # the caller's namespace and the process is chrooted; delete unmounts them).
        own_mounts = not args.is_exec
        if own_mounts:
            _prepare_rootfs(args, spec, flags, in_userns,
                            host_ns=not (flags & kernel.CLONE_NEWNS) and "mount" not in joins)
        elif args.exec_root:
            with step("chroot"):
                os.chroot(args.exec_root)
                os.chdir("/")
        _await_cgroup(args, flags)
        if flags & kernel.CLONE_NEWNET:
            with step("bring up loopback"):
                kernel.interface_up("lo")
        if process.get("terminal"):
            with step("console"):
                _setup_console(args.console_fd)
        with step("hostname"):
            if spec.get("hostname"):
                kernel.sethostname(spec["hostname"])
            if spec.get("domainname"):
                kernel.setdomainname(spec["domainname"])
        linux = spec.get("linux", {})
        for key, value in (linux.get("sysctl") or {}).items():
            with step(f"sysctl {key}"):
                _write_file("/proc/sys/" + key.replace(".", "/"), value)
        # Before masking: readonly paths and masks may cover each other's parents.
        if own_mounts:
            for path in linux.get("readonlyPaths") or []:
                with step(f"read-only path {path}"):
                    fs.readonly_path(path)
            with fs.empty_file() as empty:
                for path in linux.get("maskedPaths") or []:
                    with step(f"masked path {path}"):
                        fs.mask_path(path, empty)
            if spec.get("root", {}).get("readonly"):
                with step("read-only rootfs"):
                    fs.readonly_root()
        with step("rlimits"):
            _set_rlimits(process.get("rlimits") or [], warnings)
        _exec_process(args, spec, process, fifo_fd, warnings)
    except BaseException as e:
        _fail_and_exit(args.sync_fd, e)


def _prepare_rootfs(args: InitArgs, spec: dict[str, Any], flags: int, in_userns: bool, *,
                    host_ns: bool = False) -> None:
    root = spec["root"]["path"]
    linux = spec.get("linux", {})
    if not host_ns:      # the host's propagation is not ours to change
        with step("mount propagation"):
            fs.set_propagation(spec)
            fs.make_parent_private(root)
    with step("bind rootfs"):
        fs.bind_rootfs(root)
    for m in _cgroup_mounts_last(spec.get("mounts") or []):
        if m.get("type") in ("cgroup", "cgroup2"):
            _await_cgroup(args, flags)  # the mount shows the container's own group
        with step(f"mount {m.get('type') or 'bind'} on {m['destination']}"):
            fs.mount_entry(root, m, new_cgroupns=bool(flags & kernel.CLONE_NEWCGROUP),
                           in_userns=in_userns)
    mounts = spec.get("mounts") or []
    # /dev bound from the host (--privileged with --device-cgroup-rule, or a
    # hand-written bundle) already has its nodes; otherwise make them.
    dev_is_bind = any(os.path.normpath(m["destination"]) == "/dev" and
                      {"bind", "rbind"} & set(m.get("options") or []) for m in mounts)
    if not dev_is_bind:
        with step("devices"):
            fs.create_devices(root, linux.get("devices") or [], in_userns=in_userns)
        with step("/dev links"):
            private_pts = any(os.path.normpath(m["destination"]) == "/dev/pts"
                              and "newinstance" in (m.get("options") or []) for m in mounts)
            fs.create_dev_links(root, ptmx=private_pts)
    _await_cgroup(args, flags)
    _run_parent_hooks(args, spec)
    with step("pivot_root"):
        if host_ns:
            os.chroot(root)
            os.chdir("/")
        elif args.no_pivot:
            fs.chroot_into(root)
        else:
            fs.pivot_root(root)
    propagation = linux.get("rootfsPropagation")
    if propagation and not host_ns:
        with step(f"root propagation {propagation}"):
            fs.set_root_propagation(propagation)   # after pivot_root, which refuses a shared root


def _cgroup_mounts_last(mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The mounts with the cgroup ones moved to the end, where that changes nothing.

    They are the only ones that must wait for the caller to move us into our
    cgroup; mounting everything else first lets that move overlap more work.
    Nothing may be mounted below a cgroup mount, or the order is kept.
    """
    groups = [m for m in mounts if m.get("type") in ("cgroup", "cgroup2")]
    rest = [m for m in mounts if m.get("type") not in ("cgroup", "cgroup2")]
    below = any(os.path.normpath(m["destination"]).startswith(os.path.normpath(g["destination"]) + "/")
                for g in groups for m in rest)
    return list(mounts) if below else rest + groups


_cgroup_done = False


def _await_cgroup(args: InitArgs, flags: int) -> None:
    """Wait (once) for the caller's answer to stage one's "pid" message.

    Where the caller moves this process into its cgroup (in a user namespace,
    or on v2), it answers after the move, done while this process set up its
    mounts.  Either way only then may the cgroup namespace be created, since
    it is rooted at the current group.
    """
    global _cgroup_done
    if _cgroup_done:
        return
    _cgroup_done = True
    # Always an answer, even when PID 1 moved itself: it also says that the
    # runtime has PID 1's pid from stage one, so "hooks" and "ready" never
    # overtake it (stage one and PID 1 write to the same pipe).
    with step("join cgroup" if args.in_cgroup else "runtime ack"):
        if os.read(args.ack_fd, 1) != b"1":
            raise StepFailed("join cgroup", "the runtime could not move the init into its cgroup",
                             None)
    if flags & kernel.CLONE_NEWCGROUP:
        with step("create cgroup namespace"):
            fs.remember_cgroups()  # the /sys/fs/cgroup binds need the real paths
            kernel.unshare(kernel.CLONE_NEWCGROUP)


def _run_parent_hooks(args: InitArgs, spec: dict[str, Any]) -> None:
    """createRuntime/prestart hooks run in the runtime's namespace, before pivot_root."""
    hooks = spec.get("hooks") or {}
    if hooks.get("prestart") or hooks.get("createRuntime"):
        with step("createRuntime hooks"):
            send(args.sync_fd, hooks="createRuntime")
            answer = os.read(args.ack_fd, 1)
            if answer != b"1":
                raise StepFailed("createRuntime hooks", "a createRuntime or prestart hook failed",
                                 None)


def _catch_stop_signals() -> None:
    # Until exec this process is PID 1 of its namespace: the kernel drops
    # signals it has no handler for (pid_namespaces(7)), so `kill TERM` of a
    # created container would do nothing.  Give them a handler that exits.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, lambda signum, _frame: os._exit(128 + signum))


def _write_file(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _setup_console(console_fd: int | None) -> None:
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


def _set_rlimits(limits: list[dict[str, Any]], warnings: list[str]) -> None:
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


# --------------------------------------------------------------------------- the process

def _exec_process(args: InitArgs, spec: dict[str, Any], process: dict[str, Any],
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
            _let_go_of_inherited_fds(keep | {args.sync_fd, args.ack_fd, fifo_fd})
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


def _let_go_of_inherited_fds(keep: set[int]) -> None:
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


_compiled: dict[str, bytes] = {}


def compile_seccomp(seccomp: dict[str, Any]) -> bytes:
    """The BPF program for an OCI ``linux.seccomp`` section, compiled once per process."""
    key = json.dumps(seccomp, sort_keys=True)
    program = _compiled.get(key)
    if program is None:
        program = _compiled[key] = _seccomp_filter(seccomp).compile()
    return program


def _seccomp_filter(seccomp: dict[str, Any]) -> kernel.SeccompFilter:
    filt = kernel.SeccompFilter(seccomp["defaultAction"], errno_ret=seccomp.get("defaultErrnoRet"))
    for arch in seccomp.get("architectures") or []:
        filt.add_arch(arch)
    for rule in seccomp.get("syscalls") or []:
        conds = [(a["index"], a["op"], a["value"], a.get("valueTwo", 0)) for a in rule.get("args") or []]
        for name in rule["names"]:
            filt.add_rule(rule["action"], name, conds, errno_ret=rule.get("errnoRet"))
    return filt


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
