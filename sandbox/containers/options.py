"""``docker create``/``run`` flags and docker-py keywords, as Docker's Config and HostConfig.

Both the command line (:func:`add_create_flags` + :func:`config_from_args`)
and the Python API (:func:`~sandbox.containers.keywords.config_from_kwargs`)
end in the same two dicts, shaped and named exactly as ``docker inspect``
shows them (bytes, NanoCpus, durations in nanoseconds), so a cell, a
terminal and a script behave alike and ``inspect`` reads like Docker's.
Every bad value is refused here, with Docker's wording and a fix, before
anything is created.  The flags are here; the keywords, which the flags
become on their way, in :mod:`.keywords`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any

from .keywords import _words, config_from_kwargs
from .parse import parse_duration, parse_env_file, parse_int, parse_labels, parse_restart, parse_ulimit

# Re-exported: ``options.parse_*`` and ``options.resources_from_update`` are this module's API (the CLI,
# the supervisor, the builder and the tests name them here), wherever they live.
from .keywords import resources_from_update  # noqa: F401
from .parse import (VALID_NAME, bad_value, normalize_caps, parse_bytes, parse_cpus,  # noqa: F401
                    parse_device, parse_mount, parse_port, parse_security_opts, parse_volume)

# --------------------------------------------------------------------------- the flags

def add_create_flags(p: argparse.ArgumentParser) -> None:
    """Every ``docker create``/``run`` flag this engine knows, with docker's spellings.

    Added group by group in the order ``--help`` lists them (the order they
    had when this was one list, so the help text is unchanged).
    """
    _run_flags(p.add_argument)
    _resource_flags(p.add_argument)
    _security_flags(p.add_argument)
    _lifecycle_flags(p.add_argument)
    _network_flags(p.add_argument)
    _host_flags(p.add_argument)


def _run_flags(a: Callable[..., Any]) -> None:
    """The command: attaching, name, environment, files, working directory, user, host name, entrypoint."""
    a("-d", "--detach", action="store_true", help="run container in background and print container ID")
    a("--rm", action="store_true", help="automatically remove the container when it exits")
    a("-i", "--interactive", action="store_true", help="keep STDIN open even if not attached")
    a("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    a("-a", "--attach", action="append", default=[], choices=["stdin", "stdout", "stderr", "STDIN", "STDOUT", "STDERR"])
    a("--name", help="assign a name to the container")
    a("-e", "--env", action="append", default=[], help="set environment variables")
    a("--env-file", action="append", default=[], help="read in a file of environment variables")
    a("-v", "--volume", action="append", default=[], help="bind mount a volume")
    a("--mount", action="append", default=[], help="attach a filesystem mount to the container")
    a("--tmpfs", action="append", default=[], help="mount a tmpfs directory")
    a("-w", "--workdir", help="working directory inside the container")
    a("-u", "--user", help="username or UID (format: <name|uid>[:<group|gid>])")
    a("-h", "--hostname", help="container host name")
    a("--domainname", help="container NIS domain name")
    a("--entrypoint", help="overwrite the default ENTRYPOINT of the image")

def _resource_flags(a: Callable[..., Any]) -> None:
    """cgroup limits: memory, CPU, cpuset, pids."""
    a("-m", "--memory", help="memory limit")
    a("--memory-swap", help="swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    a("--memory-reservation", help="memory soft limit")
    a("--memory-swappiness", help="tune container memory swappiness (0 to 100; -1: the host's)")
    a("--cpus", help="number of CPUs")
    a("-c", "--cpu-shares", help="CPU shares (relative weight)")
    a("--cpu-period", help="limit CPU CFS period")
    a("--cpu-quota", help="limit CPU CFS quota")
    a("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    a("--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
    a("--pids-limit", help="tune container pids limit (set -1 for unlimited)")

def _security_flags(a: Callable[..., Any]) -> None:
    """Privileges and namespaces: read-only root, capabilities, security options, devices, ulimits, init."""
    a("--read-only", action="store_true", help="mount the container's root filesystem as read only")
    a("--cap-add", action="append", default=[], help="add Linux capabilities")
    a("--cap-drop", action="append", default=[], help="drop Linux capabilities")
    a("--privileged", action="store_true", help="give extended privileges to this container")
    a("--security-opt", action="append", default=[], help="security options")
    a("--pid", default="", help="PID namespace to use")
    a("--ipc", default="", help="IPC mode to use")
    a("--uts", default="", help="UTS namespace to use")
    a("--device", action="append", default=[], help="add a host device to the container")
    a("--ulimit", action="append", default=[], help="ulimit options")
    a("--init", action="store_true", default=None, help="run an init inside the container that forwards signals and reaps processes")

def _lifecycle_flags(a: Callable[..., Any]) -> None:
    """Stopping, restarting, health checks, the runtime and labels."""
    a("--stop-signal", help="signal to stop the container")
    a("--stop-timeout", help="timeout (in seconds) to stop a container")
    a("--restart", default="no", help="restart policy to apply when a container exits")
    a("--health-cmd", help="command to run to check health")
    a("--health-interval", help="time between running the check (ms|s|m|h)")
    a("--health-timeout", help="maximum time to allow one check to run (ms|s|m|h)")
    a("--health-retries", help="consecutive failures needed to report unhealthy")
    a("--health-start-period", help="start period for the container to initialize")
    a("--health-start-interval", help="time between running the check during the start period")
    a("--no-healthcheck", action="store_true", help="disable any container-specified HEALTHCHECK")
    a("--runtime", default="sandbox", help="runtime to use for this container (sandbox or runc)")
    a("-l", "--label", action="append", default=[], help="set meta data on a container")
    a("--label-file", action="append", default=[], help="read in a line delimited file of labels")

def _network_flags(a: Callable[..., Any]) -> None:
    """Networks, addresses, published ports and name service."""
    a("--network", "--net", dest="network", default="default",
      help="connect a container to a network (bridge, NAME, none, host, container:NAME)")
    a("--network-alias", "--net-alias", dest="network_alias", action="append", default=[],
      help="add a network-scoped alias for the container")
    a("--ip", help="IPv4 address (e.g. 10.30.0.10) on a user-defined network")
    a("--mac-address", help="container MAC address (e.g. 02:42:0a:1e:00:0a)")
    a("-p", "--publish", action="append", default=[], help="publish a container's port(s) to the host")
    a("-P", "--publish-all", action="store_true", help="publish all exposed ports to random ports")
    a("--expose", action="append", default=[], help="expose a port or a range of ports")
    a("--dns", action="append", default=[], help="set custom DNS servers")
    a("--dns-search", action="append", default=[], help="set custom DNS search domains")
    a("--dns-option", "--dns-opt", dest="dns_option", action="append", default=[], help="set DNS options")
    a("--add-host", action="append", default=[], help="add a custom host-to-IP mapping (host:ip)")

def _host_flags(a: Callable[..., Any]) -> None:
    """Logging, groups, /dev/shm, sysctls and the OOM killer."""
    a("--log-driver", default="json-file", help="logging driver for the container (json-file or none)")
    a("--log-opt", action="append", default=[], help="log driver options (max-size, max-file)")
    a("--group-add", action="append", default=[], help="add additional groups to join")
    a("--shm-size", help="size of /dev/shm")
    a("--sysctl", action="append", default=[], help="sysctl options")
    a("--oom-score-adj", help="tune host's OOM preferences (-1000 to 1000)")
    a("--oom-kill-disable", action="store_true", help="disable OOM killer")


def config_from_args(args: argparse.Namespace, image: str,
                     command: list[str]) -> tuple[dict[str, Any], dict[str, Any], str | None, dict[str, Any]]:
    """Config, HostConfig, the name and the NetworkingConfig from parsed ``create``/``run`` flags."""
    env = _env_from_args(args.env_file, args.env)
    healthcheck = _healthcheck_from_args(args)
    log_opts = dict(o.partition("=")[::2] for o in args.log_opt)
    kwargs: dict[str, Any] = dict(
        environment=env, volumes=args.volume, mounts=[parse_mount(m) for m in args.mount],
        tmpfs=dict(t.partition(":")[::2] for t in args.tmpfs), working_dir=args.workdir, user=args.user,
        hostname=args.hostname, domainname=args.domainname,
        entrypoint=(_words(args.entrypoint, "--entrypoint") or [""]) if args.entrypoint is not None else None,
        mem_limit=args.memory, memswap_limit=args.memory_swap, mem_reservation=args.memory_reservation,
        nano_cpus=parse_cpus(args.cpus) if args.cpus is not None else None,
        cpu_shares=parse_int(args.cpu_shares, "-c, --cpu-shares") if args.cpu_shares is not None else None,
        cpu_period=parse_int(args.cpu_period, "--cpu-period") if args.cpu_period is not None else None,
        cpu_quota=parse_int(args.cpu_quota, "--cpu-quota") if args.cpu_quota is not None else None,
        cpuset_cpus=args.cpuset_cpus, cpuset_mems=args.cpuset_mems,
        mem_swappiness=parse_int(args.memory_swappiness, "--memory-swappiness")
        if args.memory_swappiness is not None else None,
        pids_limit=parse_int(args.pids_limit, "--pids-limit") if args.pids_limit is not None else None,
        read_only=args.read_only, cap_add=args.cap_add, cap_drop=args.cap_drop, privileged=args.privileged,
        security_opt=args.security_opt, pid_mode=args.pid, ipc_mode=args.ipc, uts_mode=args.uts,
        devices=args.device, ulimits=[parse_ulimit(u) for u in args.ulimit], init=args.init,
        stop_signal=args.stop_signal,
        stop_timeout=parse_int(args.stop_timeout, "--stop-timeout") if args.stop_timeout is not None else None,
        restart_policy=parse_restart(args.restart), healthcheck=healthcheck, runtime=args.runtime,
        labels=parse_labels(args.label, args.label_file), network_mode=args.network,
        ports={}, auto_remove=args.rm, stdin_open=args.interactive, tty=args.tty, name=args.name,
        log_config={"Type": args.log_driver, "Config": log_opts}, group_add=args.group_add,
        shm_size=args.shm_size, sysctls=dict(s.partition("=")[::2] for s in args.sysctl),
        oom_score_adj=parse_int(args.oom_score_adj, "--oom-score-adj") if args.oom_score_adj is not None else None,
        oom_kill_disable=args.oom_kill_disable, dns=args.dns, dns_search=args.dns_search,
        extra_hosts=args.add_host, detach=args.detach, attach=args.attach, dns_opt=args.dns_option,
        publish_all_ports=args.publish_all, mac_address=args.mac_address)
    from ..network.ports import parse_publish
    for p in args.publish:
        for port, binding in parse_publish(p):
            kwargs["ports"].setdefault(port, []).append(binding)
    for e in args.expose:
        kwargs.setdefault("expose", []).append(e)
    config, host, name = config_from_kwargs(image, command or None, **kwargs)
    return config, host, name, networking_config(host["NetworkMode"], args.network_alias, args.ip)


def networking_config(network: str, aliases: list[str], ip: str | None) -> dict[str, Any]:
    """The API's NetworkingConfig for ``--network-alias`` and ``--ip`` (checked by the supervisor)."""
    if not aliases and not ip:
        return {}
    name = "bridge" if network == "default" else network
    endpoint: dict[str, Any] = {"Aliases": list(aliases) or None,
                                "IPAMConfig": {"IPv4Address": ip} if ip else None}
    return {"EndpointsConfig": {name: endpoint}}


def _env_from_args(env_files: list[str], env: list[str]) -> list[str]:
    """``--env-file`` first, then ``-e``; a bare ``-e NAME`` takes the host's value, or is dropped."""
    out: list[str] = []
    for path in env_files:
        out += parse_env_file(path)
    for e in env:
        out.append(e if "=" in e else (f"{e}={os.environ[e]}" if e in os.environ else None) or e)
    return [e for e in out if "=" in e]


def _healthcheck_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """``--health-*`` and ``--no-healthcheck`` as docker's Healthcheck (durations in nanoseconds)."""
    if args.no_healthcheck:
        return {"Test": ["NONE"]}
    if not args.health_cmd:
        return None
    return {"Test": ["CMD-SHELL", args.health_cmd],
            "Interval": parse_duration(args.health_interval or 0, "--health-interval"),
            "Timeout": parse_duration(args.health_timeout or 0, "--health-timeout"),
            "StartPeriod": parse_duration(args.health_start_period or 0, "--health-start-period"),
            "StartInterval": parse_duration(args.health_start_interval or 0, "--health-start-interval"),
            "Retries": parse_int(args.health_retries or 0, "--health-retries")}
