"""A ``POST /containers/create`` body as the engine's Config, HostConfig and NetworkingConfig.

The body is already Docker's shape, but a client may leave out any field,
send ``null``, or spell a capability as ``CAP_NET_ADMIN``; so each field
goes through the same checks as a ``sandbox run`` flag: the body becomes
docker-py's keywords for :func:`~sandbox.containers.keywords.config_from_kwargs`
(one place of validation for the CLI, the Python API and this API), and the
fields only a Config carries (Cmd, Entrypoint, Env, Tty...) are set after.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from .http import ApiError


def _int(value: Any, field: str) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(400, f"invalid {field}: {value!r} is not a number")
    return int(value)


def _list(value: Any, field: str) -> list[Any]:
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise ApiError(400, f"invalid {field}: expected a list, got {type(value).__name__}")
    return value


def host_kwargs(host: dict[str, Any]) -> dict[str, Any]:
    """HostConfig as docker-py's ``containers.create`` keywords."""
    if not isinstance(host, dict):
        raise ApiError(400, "invalid HostConfig: expected an object")
    restart = host.get("RestartPolicy") or {}
    log = host.get("LogConfig") or {}
    kw: dict[str, Any] = {
        "volumes": _list(host.get("Binds"), "HostConfig.Binds"),
        "mounts": _list(host.get("Mounts"), "HostConfig.Mounts"),
        "tmpfs": host.get("Tmpfs") or {},
        "mem_limit": _int(host.get("Memory"), "Memory") or None,
        "memswap_limit": _int(host.get("MemorySwap"), "MemorySwap") or None,
        "mem_reservation": _int(host.get("MemoryReservation"), "MemoryReservation") or None,
        "nano_cpus": _int(host.get("NanoCpus"), "NanoCpus") or None,
        "cpu_shares": _int(host.get("CpuShares"), "CpuShares") or None,
        "cpu_period": _int(host.get("CpuPeriod"), "CpuPeriod") or None,
        "cpu_quota": _int(host.get("CpuQuota"), "CpuQuota") or None,
        "cpuset_cpus": host.get("CpusetCpus") or None,
        "cpuset_mems": host.get("CpusetMems") or None,
        "mem_swappiness": _int(host.get("MemorySwappiness"), "MemorySwappiness"),
        "pids_limit": _int(host.get("PidsLimit"), "PidsLimit") or None,
        "read_only": bool(host.get("ReadonlyRootfs")),
        "cap_add": _list(host.get("CapAdd"), "CapAdd"), "cap_drop": _list(host.get("CapDrop"), "CapDrop"),
        "privileged": bool(host.get("Privileged")),
        "security_opt": _list(host.get("SecurityOpt"), "SecurityOpt"),
        "pid_mode": host.get("PidMode") or "", "ipc_mode": host.get("IpcMode") or "",
        "uts_mode": host.get("UTSMode") or "",
        "devices": _list(host.get("Devices"), "Devices"),
        "ulimits": _list(host.get("Ulimits"), "Ulimits"),
        "init": host.get("Init"),
        "restart_policy": {"Name": restart.get("Name") or "no",
                           "MaximumRetryCount": int(restart.get("MaximumRetryCount") or 0)},
        "runtime": host.get("Runtime") or "sandbox",
        "network_mode": host.get("NetworkMode") or "default",
        "ports": host.get("PortBindings") or {},
        "publish_all_ports": bool(host.get("PublishAllPorts")),
        "auto_remove": bool(host.get("AutoRemove")),
        "log_config": {"Type": log.get("Type") or "json-file", "Config": log.get("Config") or {}},
        "group_add": _list(host.get("GroupAdd"), "GroupAdd"),
        "shm_size": _int(host.get("ShmSize"), "ShmSize") or None,
        "sysctls": host.get("Sysctls") or {},
        "oom_score_adj": _int(host.get("OomScoreAdj"), "OomScoreAdj"),
        "oom_kill_disable": bool(host.get("OomKillDisable")),
        "dns": _list(host.get("Dns"), "Dns"), "dns_search": _list(host.get("DnsSearch"), "DnsSearch"),
        "dns_opt": _list(host.get("DnsOptions"), "DnsOptions"),
        "extra_hosts": _list(host.get("ExtraHosts"), "ExtraHosts"),
    }
    if kw["memswap_limit"] == -1 or host.get("MemorySwap") == -1:
        kw["memswap_limit"] = -1
    return kw


def create_request(body: Any, name: str | None) -> dict[str, Any]:
    """The supervisor's ``create_named`` request for a ``POST /containers/create`` body."""
    from ..containers.keywords import config_from_kwargs
    if not isinstance(body, dict):
        raise ApiError(400, "invalid create request: the body must be a JSON object")
    image = body.get("Image")
    if not image:
        raise ApiError(400, "Config cannot be empty in order to create a container (no Image)")
    host = body.get("HostConfig") or {}
    cmd = body.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    entrypoint = body.get("Entrypoint")
    if isinstance(entrypoint, str):
        entrypoint = [entrypoint]
    exposed = list((body.get("ExposedPorts") or {}).keys())
    try:
        config, hostconfig, checked_name = config_from_kwargs(
            image, cmd, name=name or None, environment=_list(body.get("Env"), "Env"),
            working_dir=body.get("WorkingDir") or None, user=body.get("User") or None,
            hostname=body.get("Hostname") or None, domainname=body.get("Domainname") or None,
            entrypoint=entrypoint if entrypoint is not None else None,
            labels=body.get("Labels") or {}, stop_signal=body.get("StopSignal") or None,
            stop_timeout=body.get("StopTimeout"), healthcheck=body.get("Healthcheck"),
            stdin_open=bool(body.get("OpenStdin")), tty=bool(body.get("Tty")),
            mac_address=body.get("MacAddress") or None, expose=exposed, **host_kwargs(host))
    except UsageError as e:
        raise ApiError(400, str(e)) from None
    config.update(AttachStdin=bool(body.get("AttachStdin")), AttachStdout=bool(body.get("AttachStdout", True)),
                  AttachStderr=bool(body.get("AttachStderr", True)), StdinOnce=bool(body.get("StdinOnce")))
    if body.get("Volumes"):
        config["Volumes"] = {**(config.get("Volumes") or {}), **body["Volumes"]}
    if entrypoint == []:
        config["Entrypoint"] = []
    networking = body.get("NetworkingConfig") or {}
    return {"image": image, "config": config, "host_config": hostconfig, "name": checked_name,
            "networking_config": {"EndpointsConfig": dict(networking.get("EndpointsConfig") or {})},
            "command_given": cmd is not None}
