"""``python -m sandbox.runtime``: runc's command line over :class:`Runtime`.

The verbs, flags, output and exit codes follow runc 1.1 so tools written for
runc (containerd-style shims, the OCI runtime-tools validation suite, a
student's shell history) can drive this runtime: errors go to stderr as one
line and exit 1; ``run`` and ``exec`` exit with the container process's status
(128 + signal when it was killed).

    create [-b BUNDLE] [--console-socket S] [--pid-file F] [--no-pivot] [--preserve-fds N] ID
    start ID | state ID | pause ID | resume ID
    kill [-a] ID [SIGNAL] | delete [-f] ID
    run [-b BUNDLE] [-d] [--console-socket S] [--pid-file F] ID
    exec [-p process.json | COMMAND...] [-t] [-d] [-e K=V] [--cwd D] [-u UID[:GID]] ID
    list [-q] [-f table|json] | ps [-f table|json] ID [ps options]
    spec [-b BUNDLE] [--rootless]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from .. import kernel
from ..errors import SandboxError, UsageError
from .container import Container, Runtime
from .procs import parse_signal


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sandbox-runtime", description="An OCI runtime with runc's command line.")
    p.add_argument("--root", help="state directory (default /run/sandbox-runtime)")
    p.add_argument("--debug", action="store_true", help="ignored, for runc compatibility")
    p.add_argument("--log", help="ignored, for runc compatibility")
    p.add_argument("--log-format", help="ignored, for runc compatibility")
    p.add_argument("--systemd-cgroup", action="store_true", help="not supported (cgroupfs only)")
    sub = p.add_subparsers(dest="verb", metavar="COMMAND")
    sub.required = True

    def cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text)

    for name in ("create", "run"):
        c = cmd(name, "create a container" if name == "create" else "create and start a container")
        c.add_argument("-b", "--bundle", default=".")
        c.add_argument("--console-socket")
        c.add_argument("--pid-file")
        c.add_argument("--no-pivot", action="store_true")
        c.add_argument("--no-new-keyring", action="store_true")
        c.add_argument("--preserve-fds", type=int, default=0)
        if name == "run":
            c.add_argument("-d", "--detach", action="store_true")
        c.add_argument("id")
    for name, text in (("start", "start a created container"), ("state", "print a container's state"),
                       ("pause", "freeze every process of a container"),
                       ("resume", "thaw a paused container")):
        cmd(name, text).add_argument("id")
    k = cmd("kill", "send a signal to a container's init")
    k.add_argument("-a", "--all", action="store_true")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="SIGTERM")
    d = cmd("delete", "delete a container")
    d.add_argument("-f", "--force", action="store_true")
    d.add_argument("id")
    ls = cmd("list", "list containers")
    ls.add_argument("-q", "--quiet", action="store_true")
    ls.add_argument("-f", "--format", choices=("table", "json"), default="table")
    ps = cmd("ps", "list a container's processes")
    ps.add_argument("-f", "--format", choices=("table", "json"), default="table")
    ps.add_argument("id")
    ps.add_argument("ps_args", nargs=argparse.REMAINDER)
    e = cmd("exec", "run a process in a running container")
    e.add_argument("-p", "--process")
    e.add_argument("--console-socket")
    e.add_argument("-d", "--detach", action="store_true")
    e.add_argument("--pid-file")
    e.add_argument("-t", "--tty", action="store_true")
    e.add_argument("--cwd")
    e.add_argument("-e", "--env", action="append", default=[])
    e.add_argument("-u", "--user")
    e.add_argument("-c", "--cap", action="append", default=[])
    e.add_argument("--no-new-privs", action="store_true")
    e.add_argument("--preserve-fds", type=int, default=0)
    e.add_argument("id")
    e.add_argument("command", nargs=argparse.REMAINDER)
    s = cmd("spec", "write a default config.json (Docker's defaults) into the bundle")
    s.add_argument("-b", "--bundle", default=".")
    s.add_argument("--rootless", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.systemd_cgroup:
            raise UsageError("--systemd-cgroup is not supported: this runtime drives cgroupfs directly")
        runtime = Runtime(args.root)
        return int(VERBS[args.verb](runtime, args) or 0)
    except SandboxError as e:
        sys.stderr.write(f"sandbox-runtime: {e}\n")
        return 1
    except KeyboardInterrupt:
        return 130


# --------------------------------------------------------------------------- verbs

def _create(rt: Runtime, a: argparse.Namespace) -> int:
    c = rt.create(a.id, a.bundle, console_socket=a.console_socket, pid_file=a.pid_file,
                  preserve_fds=a.preserve_fds, no_pivot=a.no_pivot)
    _warn(c)
    return 0


def _run(rt: Runtime, a: argparse.Namespace) -> int:
    if not a.detach:
        # The container's init is a grandchild: be its reaper to learn its exit status.
        kernel.set_child_subreaper(True)
    c = rt.create(a.id, a.bundle, console_socket=a.console_socket, pid_file=a.pid_file,
                  preserve_fds=a.preserve_fds, no_pivot=a.no_pivot)
    _warn(c)
    try:
        c.start()
    except BaseException:
        c.delete(force=True)
        raise
    if a.detach:
        return 0
    status = _wait_forwarding(c.pid)
    c.delete(force=True)
    return status


def _wait_forwarding(pid: int) -> int:
    """Wait for ``pid``, passing on the signals a terminal sends us (runc's signal proxy)."""
    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                 signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in forwarded:
        signal.signal(sig, forward)
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if done == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) \
                else 128 + os.WTERMSIG(status)


def _start(rt: Runtime, a: argparse.Namespace) -> int:
    rt.get(a.id).start()
    return 0


def _state(rt: Runtime, a: argparse.Namespace) -> int:
    print(json.dumps(rt.get(a.id).state(), indent=2))
    return 0


def _kill(rt: Runtime, a: argparse.Namespace) -> int:
    rt.get(a.id).kill(parse_signal(a.signal), all_processes=a.all)
    return 0


def _delete(rt: Runtime, a: argparse.Namespace) -> int:
    rt.get(a.id).delete(force=a.force)
    return 0


def _pause(rt: Runtime, a: argparse.Namespace) -> int:
    rt.get(a.id).pause()
    return 0


def _resume(rt: Runtime, a: argparse.Namespace) -> int:
    rt.get(a.id).resume()
    return 0


def _list(rt: Runtime, a: argparse.Namespace) -> int:
    containers = rt.containers()
    if a.quiet:
        for c in containers:
            print(c.id)
    elif a.format == "json":
        print(json.dumps([c.state() for c in containers]))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        for c in containers:
            s = c.state()
            rows.append((c.id, str(s["pid"]), s["status"], c.bundle, c.created, "root"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return 0


def _ps(rt: Runtime, a: argparse.Namespace) -> int:
    pids = rt.get(a.id).pids()
    if a.format == "json":
        print(json.dumps(pids, separators=(",", ":")))
        return 0
    out = subprocess.run(["ps", *(a.ps_args or ["-ef"])], capture_output=True, text=True, check=False)
    lines = out.stdout.splitlines()
    if not lines:
        raise UsageError(f"ps failed: {out.stderr.strip()}")
    header = lines[0].split()
    if "PID" not in header:
        raise UsageError("the ps output has no PID column", hint="keep -o pid in the ps options")
    column = header.index("PID")
    print(lines[0])
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            print(line)
    return 0


def _exec(rt: Runtime, a: argparse.Namespace) -> int:
    c = rt.get(a.id)
    process = _exec_process(c, a)
    if not a.detach:
        kernel.set_child_subreaper(True)
    pid = c.exec(process, console_socket=a.console_socket, preserve_fds=a.preserve_fds)
    if a.pid_file:
        with open(a.pid_file, "w") as f:
            f.write(str(pid))
    if a.detach:
        return 0
    return _wait_forwarding(pid)


def _exec_process(c: Container, a: argparse.Namespace) -> dict[str, Any]:
    if a.process:
        try:
            with open(a.process) as f:
                loaded: dict[str, Any] = json.load(f)
                return loaded
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read process file {a.process}: {e}") from None
    if not a.command:
        raise UsageError("exec needs a command or --process", hint="e.g. exec ID sh -c 'echo hi'")
    process = json.loads(json.dumps(c.spec["process"]))
    process["args"] = list(a.command)
    process["terminal"] = bool(a.tty)
    process["env"] = list(process.get("env") or []) + list(a.env)
    if a.cwd:
        process["cwd"] = a.cwd
    if a.user:
        uid, _, gid = a.user.partition(":")
        if not uid.isdigit() or not (gid or "0").isdigit():
            raise UsageError(f"invalid --user {a.user!r}", hint="use numbers: UID or UID:GID")
        process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if a.no_new_privs:
        process["noNewPrivileges"] = True
    caps = process.setdefault("capabilities", {})
    for cap in a.cap:
        for kind in ("bounding", "effective", "permitted", "inheritable"):
            caps.setdefault(kind, [])
            if cap not in caps[kind]:
                caps[kind].append(cap)
    return process


def _spec(rt: Runtime, a: argparse.Namespace) -> int:
    from ..cgroups import detect
    from .spec import ContainerOptions, default_spec

    opts = ContainerOptions(args=["sh"], hostname="sandbox", rootless=a.rootless,
                            uid_mappings=[(0, os.getuid(), 1)] if a.rootless else [],
                            gid_mappings=[(0, os.getgid(), 1)] if a.rootless else [])
    version = detect()
    spec = default_spec("rootfs", opts, host_bounding_set=kernel.host_bounding_set(),
                        cgroup_version=version if version in ("v1", "v2") else "v2")
    path = os.path.join(a.bundle, "config.json")
    if os.path.exists(path):
        raise UsageError(f"File {path} exists. Remove it first or use another bundle")
    with open(path, "w") as f:
        json.dump(spec, f, indent=2)
    return 0


def _warn(c: Container) -> None:
    for w in c.warnings:
        sys.stderr.write(f"sandbox-runtime: warning: {w}\n")


VERBS = {"create": _create, "run": _run, "start": _start, "state": _state, "kill": _kill,
         "delete": _delete, "pause": _pause, "resume": _resume, "list": _list, "ps": _ps,
         "exec": _exec, "spec": _spec}
