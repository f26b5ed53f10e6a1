"""Spare inits: PID 1 of a fresh PID namespace, forked ahead of time and parked until a create takes it.

A create used to fork twice on its critical path (:mod:`.init`): the caller
(the supervisor, about 40 MB of Python: 2.4 ms to fork) forks stage one,
which unshares the namespaces (0.7 ms, most of it the network namespace) and
forks again into the new PID namespace (2.1 ms).  A spare has done all of
that before it is needed::

    caller ── fork ── S1   lets go of the caller's descriptors, unshares the PID,
                      │    network, IPC and UTS namespaces, brings up loopback
                      └─ S2   PID 1 of the new PID namespace: parks on its channel
    take:    the caller sends the init's arguments (JSON) and its stdio (SCM_RIGHTS)
             over the channel; S2 does what stage one would have (cgroup files,
             stdio, exec fifo, OOM score, the mount namespace), reports its pid and
             goes on as stage two.  From its ``pid`` message on, the caller
             follows it exactly as a forked init (:mod:`.spawn`).

The mount namespace is unshared only when S2 is taken: one made earlier would
not see the rootfs the caller mounts just before the create.  A create takes
the spare only when the namespaces it makes are the spare's (plus mount and
cgroup), when it joins none but a network namespace (a bridge network's, made
by the supervisor: S2 joins it when taken) and makes no user namespace;
otherwise it forks as before.  The next spare is made for the namespaces the
last create asked for.  Making the
next one is the caller's work while the taken one sets itself up (see
:class:`SparePool`).

A parked spare holds none of its caller's descriptors (the caller's socket
and store lock go with the caller, as for a blocked init, see
:func:`.process.let_go_of_inherited_fds`), and it watches a pidfd of its
caller: when the caller dies, ``kill -9`` included, the spare exits.  Closing
the channel lets it go too.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import json
import os
import select
import signal
import socket
from typing import Any

from .. import kernel
from ..errors import KernelError
from . import init as init_mod
from .process import let_go_of_inherited_fds
from .steps import TIMINGS, InitArgs, fail_and_exit, send, step

#: What a spare unshares ahead of time; the rest of a create's namespaces come when it is taken.
AHEAD = kernel.CLONE_NEWPID | kernel.CLONE_NEWNET | kernel.CLONE_NEWIPC | kernel.CLONE_NEWUTS
#: ... which may only be these.
AT_TAKE = kernel.CLONE_NEWNS | kernel.CLONE_NEWCGROUP
#: The largest arguments message: a spec without its seccomp rules is a few KiB, the
#: compiled filter about 10 (base64).  A unix socket's send buffer (212992 bytes by
#: default) bounds one datagram anyway; a bigger one goes to a forked init instead.
MAX_MESSAGE = 192 * 1024
#: Seconds S1 may take to report (a fork and an unshare: a few milliseconds).
REPORT_TIMEOUT = 5.0


class Spare:
    """The caller's handle on one parked init."""

    def __init__(self, first: int, sync_r: int, chan: socket.socket, flags: int) -> None:
        self.first, self.sync_r, self.chan, self.flags = first, sync_r, chan, flags
        self.pid = 0          # S2's pid, from S1's report (read when taken)
        self.start: int | None = None    # ... and its start time: pid + start time name it
        self.failed = False
        self.stuck = False    # S1 never reported: still alive, so still ours to kill
        self._buf = b""

    def report(self) -> bool:
        """Read S1's one line (its "spare" pid, or why it could not make one); whether it is usable."""
        if self.pid or self.failed:
            return not self.failed
        while b"\n" not in self._buf:
            if not select.select([self.sync_r], [], [], REPORT_TIMEOUT)[0]:
                self.failed = self.stuck = True     # S1 is stuck (it takes a millisecond or two)
                return False
            chunk = os.read(self.sync_r, 4096)
            if not chunk:
                self.failed = True
                return False
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        self.pid = int(json.loads(line).get("spare") or 0)
        self.failed = self.pid <= 0
        if not self.failed:
            from .procs import process_start_time
            self.start = process_start_time(self.pid)
        return not self.failed

    def send(self, args: InitArgs, fds: list[int]) -> bool:
        """Hand the spare its init's arguments and descriptors; False when it is gone."""
        linux = args.spec.get("linux") or {}
        spec = args.spec
        if linux.get("seccomp"):
            # The init only asks whether there is a filter; the program is compiled already.
            spec = dict(spec, linux=dict(linux, seccomp=True))
        message = json.dumps({
            "pid": self.pid, "spec": spec, "process": args.process, "fifo_path": args.fifo_path,
            "in_cgroup": args.in_cgroup, "join_files": list(args.join_files),
            "seccomp": base64.b64encode(args.seccomp_bpf).decode() if args.seccomp_bpf is not None else None,
            "stdio": args.stdio is not None, "console": args.console_fd is not None,
            "no_pivot": args.no_pivot}).encode()
        if len(message) > MAX_MESSAGE:
            return False
        try:
            socket.send_fds(self.chan, [message], fds)
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Let go of the spare and wait until it has exited (it does when its channel closes);
        reap it when it is ours (PID 1 is reparented to the nearest subreaper: the supervisor)."""
        known = self.report()
        self.chan.close()
        os.close(self.sync_r)
        if self.stuck:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.first, signal.SIGKILL)    # unreaped, so its pid is not anyone else's
        reap_quietly(self.first)
        if known:
            from .procs import process_start_time, wait_gone
            start = process_start_time(self.pid)
            if start is not None and start == self.start:
                # Not left to the closed channel alone: a process that holds a copy of
                # our end (a fork of ours that has not let go yet) would keep it parked.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                wait_gone(self.pid, start, REPORT_TIMEOUT)
            try:
                os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pass


def reap_quietly(pid: int) -> None:
    """waitpid a child that has exited or is about to, which the caller's loop may have reaped."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def make(flags: int) -> Spare:
    """Fork a spare for the namespaces ``flags`` (a subset of :data:`AHEAD`); it reports when taken."""
    watch = kernel.pidfd_open(os.getpid())      # readable once this process has exited
    try:
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except BaseException:
        os.close(watch)
        raise
    child = os.fork()
    if child == 0:
        _first(flags, sync_w, theirs.fileno(), watch)
    os.close(sync_w)
    os.close(watch)
    theirs.close()
    return Spare(child, sync_r, mine, flags)


def _first(flags: int, sync_w: int, chan: int, watch: int) -> None:
    """S1: no descriptor of the caller's, the namespaces, loopback, then fork PID 1 and report it."""
    try:
        gc.disable()      # nothing of the caller's may be finalised here (its fds are /dev/null now)
        let_go_of_inherited_fds({sync_w, chan, watch})
        try:
            kernel.set_name("sandbox-spare")      # PID 1 inherits it: what ps shows while it is parked
        except (OSError, KernelError):
            pass
        kernel.unshare(flags)
        if flags & kernel.CLONE_NEWNET:
            kernel.interface_up("lo")
        pid = os.fork()
        if pid == 0:
            _park(flags, sync_w, chan, watch)
        send(sync_w, spare=pid)
    except BaseException as e:
        fail_and_exit(sync_w, e)
    os._exit(0)


def _park(flags: int, sync_w: int, chan: int, watch: int) -> None:
    """S2: wait to be taken (or for the caller to go), then become the container's init."""
    try:
        poller = select.poll()
        poller.register(chan, select.POLLIN)
        poller.register(watch, select.POLLIN)
        while True:
            ready = dict(poller.poll())
            if watch in ready:
                os._exit(0)           # the caller is gone
            if chan in ready:
                break
        sock = socket.socket(fileno=chan)
        data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 8, socket.MSG_CMSG_CLOEXEC)
        sock.detach()
        if not data:
            os._exit(0)               # the channel closed: let go
        os.close(watch)
        args, pid = _arguments(json.loads(data), fds, sync_w, chan, flags)
    except BaseException as e:
        fail_and_exit(sync_w, e)
    _taken(args, pid)


def _arguments(msg: dict[str, Any], fds: list[int], sync_w: int, chan: int,
               flags: int) -> tuple[InitArgs, int]:
    stdio = tuple(fds[:3]) if msg["stdio"] else None
    console = fds[3 if msg["stdio"] else 0] if msg["console"] else None
    seccomp = msg.get("seccomp")
    args = InitArgs(spec=msg["spec"], sync_fd=sync_w, ack_fd=chan, fifo_path=msg["fifo_path"],
                    in_cgroup=bool(msg["in_cgroup"]), join_files=tuple(msg["join_files"]),
                    seccomp_bpf=base64.b64decode(seccomp) if seccomp is not None else None,
                    stdio=stdio,  # type: ignore[arg-type]
                    console_fd=console, no_pivot=bool(msg["no_pivot"]), process=msg["process"],
                    loopback_up=bool(flags & kernel.CLONE_NEWNET))
    return args, int(msg["pid"])


def _taken(args: InitArgs, pid: int) -> None:
    """What stage one does after forking, for a spare: then stage two, which never returns."""
    try:
        TIMINGS.clear()
        init_mod.open_host_files(args)
        if args.stdio is not None:
            for fd in set(args.stdio):
                if fd > 2:
                    os.close(fd)
        flags, joins = init_mod.namespace_flags(args.spec)
        if "network" in joins:
            with step("join network namespace"):
                fd = os.open(joins["network"], os.O_RDONLY | os.O_CLOEXEC)
                try:
                    kernel.setns(fd, kernel.CLONE_NEWNET)
                finally:
                    os.close(fd)
        if flags & kernel.CLONE_NEWNS:
            with step("create namespaces"):
                kernel.unshare(kernel.CLONE_NEWNS)   # the cgroup namespace waits for stage two
        send(args.sync_fd, pid=pid)
    except BaseException as e:
        fail_and_exit(args.sync_fd, e)
    init_mod.stage_two(args)


class SparePool:
    """At most one spare, kept for the namespaces the last create made.

    :meth:`take` hands it to a create that fits and remembers what to make
    next; :meth:`refill` makes it, and is called while the taken init sets
    itself up (the caller would only wait then).  ``made``, ``taken`` and
    ``missed`` count what happened, for tests and benchmarks.
    """

    def __init__(self) -> None:
        self.spare: Spare | None = None
        self.want: int | None = None
        self.made = self.taken = self.missed = 0
        self.broken = ""          # why spares are off (pidfd_open or unshare refused)

    @staticmethod
    def fits(flags: int, joins: dict[str, str]) -> bool:
        """Whether a spare can be the init of a create that makes namespaces ``flags`` and joins
        ``joins``: a new PID namespace, nothing but :data:`AHEAD` and :data:`AT_TAKE`, and at
        most a network namespace to join (a bridge network's, which the supervisor made)."""
        return set(joins) <= {"network"} and not flags & ~(AHEAD | AT_TAKE) \
            and bool(flags & kernel.CLONE_NEWPID)

    def take(self, flags: int, joins: dict[str, str]) -> Spare | None:
        """The parked spare, when it fits a create of namespaces ``flags``; else None (fork)."""
        fits = self.fits(flags, joins)
        self.want = flags & AHEAD if fits and not self.broken else None
        spare, self.spare = self.spare, None
        if spare is not None and fits and spare.flags == flags & AHEAD:
            if spare.report():
                return spare
            self.broken = "a spare init failed to set itself up"
        if spare is not None:
            spare.close()
        self.missed += 1
        return None

    def hand_over(self, spare: Spare, args: InitArgs, fds: list[int]) -> bool:
        """Send a taken spare its init's arguments; False (the spare let go) when it cannot
        take them: it died while parked, or they are too big for one message."""
        if spare.send(args, fds):
            self.taken += 1
            return True
        spare.close()
        self.missed += 1
        return False

    def wanted(self) -> bool:
        return self.spare is None and self.want is not None

    def refill(self) -> None:
        """Make the spare :meth:`take` asked for (one fork); failing turns spares off."""
        if not self.wanted():
            return
        assert self.want is not None
        try:
            self.spare = make(self.want)
            self.made += 1
        except (OSError, KernelError) as e:
            self.broken = str(e)
            self.want = None

    def close(self) -> None:
        """Let the parked spare go (the caller's way out), and wait until it has."""
        spare, self.spare = self.spare, None
        self.want = None
        if spare is not None:
            spare.close()
