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
import os
import signal
from typing import Any, NoReturn

from .. import kernel
# load_bpf runs after pivot_root, where the host's files (this package's among them) are
# out of reach: seccomp, which sandbox.kernel loads on first use, is imported here, before the fork.
from ..kernel import seccomp as _seccomp_topic  # noqa: F401
from . import rootfs as fs
from .config import namespace_flags
# The process's half of the checklist; imported before the fork like everything PID 1 runs.
from .process import exec_process, set_rlimits, setup_console
from .steps import InitArgs, StepFailed, fail_and_exit, send, step, write_file

#: Names that moved to .steps and .process, kept importable from here.
__all__ = ["InitArgs", "StepFailed", "NAMESPACE_CLONE", "compile_seccomp", "namespace_flags",
           "send", "stage_one", "stage_two", "step"]

#: Namespace types in the order stage 1 joins them: the user namespace first,
#: so the others are joined with the privileges it gives (runc's nsexec order).
_JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "mount", "cgroup", "time")


# --------------------------------------------------------------------------- stage 1

def stage_one(args: InitArgs) -> NoReturn:
    """In the first child: cgroup, namespaces, then fork PID 1.  Never returns."""
    try:
        spec = args.spec
        open_host_files(args)
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
        fail_and_exit(args.sync_fd, e)
    os._exit(0)


def open_host_files(args: InitArgs) -> None:
    """What must be opened or written while the host's paths are in view: the
    cgroup files PID 1 joins by, stdio, the exec fifo, the OOM score.  Stage one
    does this first; so does a spare init (:mod:`.spare`) when it is taken."""
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
    process = args.process or args.spec["process"]
    if process.get("oomScoreAdj") is not None:
        with step("oom_score_adj"):
            # Before the user namespace: inside it the file is not ours to write.
            write_file("/proc/self/oom_score_adj", str(process["oomScoreAdj"]))


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
        # runc's three cases: a new mount namespace (pivot_root), one joined by
        # path (set up and pivot_root there too), none (the mounts are made in
        # the caller's namespace and the process is chrooted; delete unmounts them).
        if not args.is_exec:
            _prepare_rootfs(args, spec, flags, in_userns,
                            host_ns=not (flags & kernel.CLONE_NEWNS) and "mount" not in joins)
        elif args.exec_root:
            with step("chroot"):
                os.chroot(args.exec_root)
                os.chdir("/")
        _await_cgroup(args, flags)
        _set_up_namespaces(args, spec, process, flags)
        if not args.is_exec:
            _protect_paths(spec)
        with step("rlimits"):
            set_rlimits(process.get("rlimits") or [], warnings)
        exec_process(args, spec, process, args.fifo_fd, warnings)
    except BaseException as e:
        fail_and_exit(args.sync_fd, e)


def _set_up_namespaces(args: InitArgs, spec: dict[str, Any], process: dict[str, Any],
                       flags: int) -> None:
    """After pivot_root: loopback, the console, hostname and sysctls of the new namespaces."""
    if flags & kernel.CLONE_NEWNET and not args.loopback_up:
        with step("bring up loopback"):
            kernel.interface_up("lo")
    if process.get("terminal"):
        with step("console"):
            setup_console(args.console_fd)
    with step("hostname"):
        if spec.get("hostname"):
            kernel.sethostname(spec["hostname"])
        if spec.get("domainname"):
            kernel.setdomainname(spec["domainname"])
    for key, value in (spec.get("linux", {}).get("sysctl") or {}).items():
        with step(f"sysctl {key}"):
            write_file("/proc/sys/" + key.replace(".", "/"), value)


def _protect_paths(spec: dict[str, Any]) -> None:
    """Read-only paths, then masked paths, then a read-only root (not for exec: they are made)."""
    linux = spec.get("linux", {})
    # Before masking: readonly paths and masks may cover each other's parents.
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


