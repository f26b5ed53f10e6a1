"""``stop``, ``kill``, ``pause``, ``unpause``, ``restart``, ``rm``, ``wait``, ``rename``, ``update``."""

from __future__ import annotations

from typing import Any

from .run import for_each


def register(sub: Any) -> None:
    p = sub.add_parser("stop", help="Stop one or more running containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-t", "--time", "--timeout", type=int, dest="timeout", default=None,
                   help="seconds to wait before killing the container")
    p.add_argument("-s", "--signal", default=None, help="signal to send (default: the container's stop signal)")
    p.set_defaults(func=lambda e, a, o: for_each(a.containers, lambda r: e.containers.get(r).stop(a.timeout, a.signal), o))

    p = sub.add_parser("kill", help="Kill one or more running containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-s", "--signal", default="KILL", help="signal to send (default KILL)")
    p.set_defaults(func=lambda e, a, o: for_each(a.containers, lambda r: e.containers.get(r).kill(a.signal), o))

    for verb, help_text in (("pause", "Pause all processes within one or more containers"),
                            ("unpause", "Unpause all processes within one or more containers")):
        p = sub.add_parser(verb, help=help_text)
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
        p.set_defaults(func=(lambda v: lambda e, a, o: for_each(
            a.containers, lambda r: getattr(e.containers.get(r), v)(), o))(verb))

    p = sub.add_parser("restart", help="Restart one or more containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-t", "--time", "--timeout", type=int, dest="timeout", default=None)
    p.set_defaults(func=lambda e, a, o: for_each(a.containers, lambda r: e.containers.get(r).restart(a.timeout), o))

    p = sub.add_parser("rm", help="Remove one or more containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-f", "--force", action="store_true", help="force the removal of a running container (SIGKILL)")
    p.add_argument("-v", "--volumes", action="store_true", help="remove anonymous volumes of the container")
    p.set_defaults(func=lambda e, a, o: for_each(
        a.containers, lambda r: e.containers.get(r).remove(force=a.force, v=a.volumes), o))

    p = sub.add_parser("wait", help="Block until one or more containers stop, then print their exit codes")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=run_wait)

    p = sub.add_parser("rename", help="Rename a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("new_name", metavar="NEW_NAME")
    p.set_defaults(func=lambda e, a, o: e.containers.get(a.container).rename(a.new_name) or 0)

    p = sub.add_parser("update", help="Update configuration of one or more containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-m", "--memory")
    p.add_argument("--memory-swap")
    p.add_argument("--memory-reservation")
    p.add_argument("--cpus")
    p.add_argument("-c", "--cpu-shares", type=int)
    p.add_argument("--cpu-period", type=int)
    p.add_argument("--cpu-quota", type=int)
    p.add_argument("--cpuset-cpus")
    p.add_argument("--pids-limit", type=int)
    p.add_argument("--restart")
    p.set_defaults(func=run_update)


def run_wait(engine: Any, args: Any, out: Any) -> int:
    def one(ref: str) -> None:
        result = engine.containers.get(ref).wait()
        out.write(f"{result['StatusCode']}\n")
    return for_each(args.containers, one, out, echo=False)


def run_update(engine: Any, args: Any, out: Any) -> int:
    from ..errors import UsageError
    kwargs: dict[str, Any] = {}
    for flag, key in (("memory", "mem_limit"), ("memory_swap", "memswap_limit"),
                      ("memory_reservation", "mem_reservation"), ("cpu_shares", "cpu_shares"),
                      ("cpu_period", "cpu_period"), ("cpu_quota", "cpu_quota"),
                      ("cpuset_cpus", "cpuset_cpus"), ("pids_limit", "pids_limit"),
                      ("restart", "restart_policy")):
        value = getattr(args, flag)
        if value is not None:
            kwargs[key] = int(value) if flag == "memory_swap" and value == "-1" else value
    if args.cpus is not None:
        from ..containers.options import parse_cpus
        kwargs["nano_cpus"] = parse_cpus(args.cpus, "--cpus")
    if not kwargs:
        raise UsageError("you must provide one or more flags when using this command",
                         hint="for example: sandbox update --memory 64m NAME")
    from .quick import warn
    return for_each(args.containers, lambda r: warn(engine.containers.get(r).update(**kwargs)), out)
