"""docker-py's ``containers.create/run`` keywords as Docker's Config and HostConfig.

What :func:`~sandbox.containers.options.config_from_args` turns the command
line into, and what ``engine.containers.create``, the API daemon and the
builder's RUN steps pass directly: one checked step per group of keywords,
each refusing a bad value with Docker's wording and a fix, in a fixed order.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any

from ..errors import UsageError
from .parse import (VALID_NAME, bad_value, normalize_caps, parse_bytes, parse_cpus, parse_device, parse_env_file,
                    parse_int, parse_labels, parse_mount, parse_restart, parse_security_opts, parse_ulimit,
                    parse_volume)

_CPUSET = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")

RUNTIMES = ("sandbox", "runc", "proot")

#: docker-py keyword -> what it means here.
_KNOWN = {"environment", "volumes", "mounts", "tmpfs", "working_dir", "user", "hostname", "domainname",
          "entrypoint", "mem_limit", "memswap_limit", "mem_reservation", "nano_cpus", "cpu_shares",
          "cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems", "mem_swappiness", "pids_limit", "read_only", "cap_add", "cap_drop",
          "privileged", "security_opt", "pid_mode", "ipc_mode", "uts_mode", "devices", "ulimits", "init",
          "stop_signal", "stop_timeout", "restart_policy", "healthcheck", "runtime", "labels",
          "network_mode", "network", "ports", "auto_remove", "remove", "stdin_open", "tty", "name", "log_config",
          "group_add", "shm_size", "sysctls", "oom_score_adj", "oom_kill_disable", "dns", "dns_search",
          "extra_hosts", "detach", "attach", "env_file", "expose", "cpus", "dns_opt", "publish_all_ports",
          "mac_address"}

_LIST = (list, tuple)

#: docker-py's type of each keyword that is text, a list or a dict (numbers go
#: through :func:`parse_int`, flags through ``bool``); another type is refused
#: up front, with the keyword's name, instead of failing deep inside a step.
_KEYWORD_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("name", "hostname", "domainname", "working_dir", "cpuset_cpus", "cpuset_mems", "runtime",
                     "network_mode", "network", "pid_mode", "ipc_mode", "uts_mode", "mac_address"), (str,)),
    "user": (str, int), "stop_signal": (str, int), "entrypoint": (str, *_LIST),
    "mem_limit": (int, float, str), "memswap_limit": (int, float, str), "mem_reservation": (int, float, str),
    "shm_size": (int, float, str), "cpus": (int, float, str),
    "environment": (dict, *_LIST), "volumes": (dict, *_LIST), "labels": (dict, *_LIST),
    "extra_hosts": (dict, *_LIST), "restart_policy": (dict, str),
    **dict.fromkeys(("tmpfs", "sysctls", "ports", "healthcheck", "log_config"), (dict,)),
    **dict.fromkeys(("env_file", "mounts", "cap_add", "cap_drop", "security_opt", "devices", "ulimits", "dns",
                     "dns_opt", "dns_search", "group_add", "expose", "attach"), _LIST),
}

#: The types the items of a list keyword may have.
_ITEM_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("environment", "env_file", "entrypoint", "volumes", "cap_add", "cap_drop", "security_opt",
                     "dns", "dns_opt", "dns_search", "extra_hosts", "attach"), (str,)),
    "mounts": (dict,), "devices": (str, dict), "ulimits": (str, dict), "group_add": (str, int),
    "expose": (str, int),
}


def _check_types(command: Any, kw: dict[str, Any]) -> None:
    """Refuse a keyword (or one of its list items) of a type docker-py does not take."""
    def refuse(key: str, value: Any, types: tuple[type, ...]) -> UsageError:
        want = " or ".join(dict.fromkeys("list" if t is tuple else t.__name__ for t in types))
        return UsageError(f"{key}={value!r}: expected {want}, got {type(value).__name__}",
                          hint="see help(engine.containers.run) for the type of each keyword")

    for key, value in [("command", command), *kw.items()]:
        types = (str, *_LIST) if key == "command" else _KEYWORD_TYPES.get(key)
        if value is None or types is None:
            continue  # not given: each step has its default
        if isinstance(value, bool) or not isinstance(value, types):
            raise refuse(key, value, types)
        items = (str,) if key == "command" else _ITEM_TYPES.get(key)
        if items and isinstance(value, _LIST):
            for i, item in enumerate(value):
                if isinstance(item, bool) or not isinstance(item, items):
                    raise refuse(f"{key}[{i}]", item, items)


def _words(text: str, what: str) -> list[str]:
    """``text`` split as a shell would (``sh -c 'echo hi'``)."""
    try:
        return shlex.split(text)
    except ValueError as e:  # an unclosed quote, a trailing backslash
        raise UsageError(f"cannot split {what} {text!r} into words: {e}",
                         hint="close the quote, or give the command as a list") from None


def config_from_kwargs(image: str, command: str | list[str] | None = None,
                       **kw: Any) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """Config, HostConfig and the name from docker-py's ``containers.create/run`` keywords.

    One step per group of keywords, each refusing a bad value with Docker's
    wording; the steps run in a fixed order, so the same bad call always
    reports the same error.  Keys are in the order ``docker inspect`` shows.
    """
    unknown = set(kw) - _KNOWN
    if unknown:
        raise UsageError(f"unknown argument(s): {', '.join(sorted(unknown))}",
                         hint="see help(engine.containers.run) for the accepted keywords")
    _check_types(command, kw)
    name = _container_name(kw.get("name"))
    v = _checked_kwargs(command, kw)
    config = _config_section(image, kw, v)
    host = _host_section(kw, v)
    if host["OomScoreAdj"] and not -1000 <= host["OomScoreAdj"] <= 1000:
        raise UsageError(f"Invalid value {host['OomScoreAdj']}, range for oom score adj is [-1000, 1000]")
    return config, host, name


def _checked_kwargs(command: str | list[str] | None, kw: dict[str, Any]) -> dict[str, Any]:
    """The keywords that need more than a copy, checked and converted, in :func:`config_from_kwargs`'s order."""
    v: dict[str, Any] = {}
    v["cmd"] = _words(command, "the command") if isinstance(command, str) else \
        (list(command) if command is not None else None)
    v["env"] = _environment(kw.get("environment"), kw.get("env_file"))
    v["entrypoint"] = _entrypoint(kw.get("entrypoint"))
    v["binds"], v["anonymous"] = _volumes(kw.get("volumes") or [])
    v["memory"], v["swap"] = _memory(kw.get("mem_limit"), kw.get("memswap_limit"))
    v["cpuset"], v["nano"] = _cpus(kw.get("cpuset_cpus"), kw.get("nano_cpus"), kw.get("cpus"))
    v["runtime"] = _runtime(kw.get("runtime") or "sandbox")
    v["ipc"], v["pid"], v["uts"] = _namespace_modes(kw.get("ipc_mode") or "", kw.get("pid_mode") or "",
                                                    kw.get("uts_mode") or "")
    v["network"] = _network(kw.get("network_mode") or kw.get("network") or "default")
    v["restart"], v["auto_remove"] = _restart(kw.get("restart_policy"),
                                              bool(kw.get("auto_remove") or kw.get("remove")))
    v["healthcheck"] = _healthcheck(kw.get("healthcheck"))
    v["exposed"], v["port_bindings"] = _ports(kw.get("expose") or [], kw.get("ports") or {})
    v["stdin_open"], v["detach"] = bool(kw.get("stdin_open")), bool(kw.get("detach"))
    v["attach"] = _attach(kw.get("attach") or [], v["stdin_open"], v["detach"])
    v["log_config"] = _log_config(kw.get("log_config") or {"Type": "json-file", "Config": {}})
    v["ulimits"] = [u if isinstance(u, dict) else parse_ulimit(u) for u in kw.get("ulimits") or []]
    v["devices"] = [d if isinstance(d, dict) else parse_device(d) for d in kw.get("devices") or []]
    v["mounts"] = [m if "Type" in m else parse_mount(",".join(f"{key}={val}" for key, val in m.items()))
                   for m in (kw.get("mounts") or [])]
    v["stop_signal"] = _stop_signal(kw.get("stop_signal"))
    return v


def _config_section(image: str, kw: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    """Docker's Config (what the image and the container share) from the checked values."""
    config: dict[str, Any] = {
        "Hostname": kw.get("hostname") or "", "Domainname": kw.get("domainname") or "",
        "User": kw.get("user") or "", **v["attach"],
        "ExposedPorts": v["exposed"] or None, "Tty": bool(kw.get("tty")), "OpenStdin": v["stdin_open"],
        "StdinOnce": v["stdin_open"] and not v["detach"], "Env": v["env"], "Cmd": v["cmd"],
        "Healthcheck": v["healthcheck"], "Image": image, "Volumes": v["anonymous"] or None,
        "WorkingDir": kw.get("working_dir") or "", "Entrypoint": v["entrypoint"],
        "Labels": parse_labels(kw.get("labels")), "StopSignal": v["stop_signal"],
        "StopTimeout": parse_int(kw["stop_timeout"], "stop_timeout") if kw.get("stop_timeout") is not None else None,
    }
    if kw.get("mac_address"):
        from ..network.addresses import parse_mac
        config["MacAddress"] = parse_mac(kw["mac_address"])
    return config


def _host_section(kw: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    """Docker's HostConfig (what only this container gets of the host) from the checked values."""
    return {
        "Binds": v["binds"] or None, "Mounts": v["mounts"] or None, "Tmpfs": dict(kw.get("tmpfs") or {}) or None,
        "NetworkMode": v["network"], "PortBindings": v["port_bindings"] or None,
        "PublishAllPorts": bool(kw.get("publish_all_ports")), "RestartPolicy": v["restart"],
        "AutoRemove": v["auto_remove"], **_security_config(kw),
        "UTSMode": v["uts"], "PidMode": v["pid"], "IpcMode": v["ipc"],
        **_resource_config(kw, v["memory"], v["swap"], v["nano"], v["cpuset"]),
        "Devices": v["devices"] or None, "Ulimits": v["ulimits"] or None, "Init": kw.get("init"),
        "Runtime": v["runtime"], "LogConfig": v["log_config"], **_process_config(kw),
        "Dns": list(kw.get("dns") or []), "DnsOptions": list(kw.get("dns_opt") or []),
        "DnsSearch": list(kw.get("dns_search") or []),
        "ExtraHosts": _extra_hosts(kw.get("extra_hosts") or []) or None,
    }


#: ``update()`` keyword -> the HostConfig field it changes.
_UPDATE_FIELDS = {"mem_limit": "Memory", "memswap_limit": "MemorySwap", "mem_reservation": "MemoryReservation",
                  "cpu_shares": "CpuShares", "cpu_quota": "CpuQuota", "cpu_period": "CpuPeriod",
                  "nano_cpus": "NanoCpus", "cpuset_cpus": "CpusetCpus", "pids_limit": "PidsLimit",
                  "restart_policy": "RestartPolicy"}


def resources_from_update(kwargs: dict[str, Any]) -> dict[str, Any]:
    """docker-py's ``container.update(...)`` keywords as the HostConfig fields they change (not yet checked)."""
    resources: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key == "cpus":
            resources["NanoCpus"] = int(float(value) * 1e9)
        elif key not in _UPDATE_FIELDS:
            raise UsageError(f"update() got an unexpected keyword argument {key!r}")
        elif key in ("mem_limit", "memswap_limit", "mem_reservation") and value is not None:
            resources[_UPDATE_FIELDS[key]] = -1 if value == -1 else parse_bytes(value, "--" + key)
        elif key == "restart_policy" and isinstance(value, str):
            resources["RestartPolicy"] = parse_restart(value)
        else:
            resources[_UPDATE_FIELDS[key]] = value
    return resources


# --------------------------------------------------------------- the steps of config_from_kwargs, in order

def _container_name(name: Any) -> str | None:
    if name is not None and not VALID_NAME.match(str(name).lstrip("/")):
        raise UsageError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                         hint="pick a name of letters, digits, _ . and -")
    return str(name).lstrip("/") if name else None


def _environment(given: Any, env_files: Iterable[str] | None) -> list[str]:
    """``environment`` (a list or a dict) after the ``env_file`` files, which it overrides."""
    env_in = given or []
    env = [f"{k}={v}" for k, v in env_in.items()] if isinstance(env_in, dict) else list(env_in)
    for path in env_files or []:
        env = parse_env_file(path) + env
    return env


def _entrypoint(entrypoint: Any) -> Any:
    """A string is split as a shell would; ``""`` (or ``[""]``) clears the image's entrypoint."""
    if isinstance(entrypoint, str):
        entrypoint = _words(entrypoint, "the entrypoint") or [""]
    if entrypoint == [""]:
        entrypoint = []
    return entrypoint


def _volumes(vols: Any) -> tuple[list[str], dict[str, Any]]:
    """``-v`` strings or docker-py's ``{host: {"bind": target, "mode": mode}}``: (Binds, anonymous Volumes)."""
    binds: list[str] = []
    anon: dict[str, Any] = {}
    if isinstance(vols, dict):
        for host_path, spec in vols.items():
            mode = spec.get("mode", "rw") if isinstance(spec, dict) else "rw"
            target = spec.get("bind") if isinstance(spec, dict) else spec
            if not isinstance(target, str) or not isinstance(mode, str):
                raise UsageError(f"volumes={{{host_path!r}: {spec!r}}}: expected {{'bind': PATH, 'mode': 'rw' or 'ro'}}",
                                 hint="e.g. volumes={'/srv/data': {'bind': '/data', 'mode': 'ro'}}")
            vols_list = f"{host_path}:{target}:{mode}"
            bind, _ = parse_volume(vols_list)
            if bind is not None:   # always, for HOST:TARGET:MODE
                binds.append(bind)
    else:
        for v in vols:
            bind, target = parse_volume(v)
            if bind:
                binds.append(bind)
            elif target:
                anon[target] = {}
    return binds, anon


def _memory(mem_limit: Any, swap_in: Any) -> tuple[int, int]:
    """``--memory`` and ``--memory-swap`` in bytes (0: not set; swap -1: unlimited), checked together."""
    memory = parse_bytes(mem_limit, "-m, --memory") if mem_limit not in (None, "") else 0
    swap = -1 if swap_in in (-1, "-1") else (parse_bytes(swap_in, "--memory-swap") if swap_in not in (None, "") else 0)
    if swap > 0 and memory and swap < memory:
        raise UsageError("Minimum memoryswap limit should be larger than memory limit, see usage",
                         hint="--memory-swap is memory plus swap: give at least the --memory value")
    if swap and not memory:
        raise UsageError("You should always set the Memory limit when using Memoryswap limit, see usage",
                         hint="add --memory")
    return memory, swap


def _cpus(cpuset: Any, nano: Any, cpus: Any) -> tuple[Any, Any]:
    """``--cpuset-cpus`` checked, and NanoCpus (``cpus=`` wins over ``nano_cpus=``)."""
    if cpuset and not _CPUSET.match(str(cpuset)):
        raise bad_value(cpuset, "--cpuset-cpus", "invalid format", "use a list such as 0-2,4")
    if cpus is not None:
        nano = parse_cpus(cpus)
    return cpuset, nano


def _runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown or invalid runtime name: {runtime}", hint="use --runtime sandbox or runc")
    return runtime


def _namespace_modes(ipc: str, pid: str, uts: str) -> tuple[str, str, str]:
    """``--ipc``, ``--pid`` and ``--uts``: "" (private), host, or (ipc, pid) ``container:ID``."""
    if uts not in ("", "host"):
        raise bad_value(uts, "--uts", "invalid UTS mode", "only --uts host is supported")
    for mode, flag in ((pid, "--pid"), (ipc, "--ipc")):
        if mode not in ("", "host", "private", "shareable") and not mode.startswith("container:"):
            raise bad_value(mode, flag, "invalid mode", "use host")
    return ipc, pid, uts


def _network(network: str) -> str:
    """``--network``: a name is checked by the supervisor (networks are its), the form here."""
    name = network.partition(":")[2] if network.startswith("container:") else network
    if not name or not VALID_NAME.match(name):
        raise UsageError(f"invalid --network {network!r}",
                         hint="use bridge, none, host, container:NAME or the name of a network")
    return network


def _restart(restart: Any, auto_remove: bool) -> tuple[dict[str, Any], bool]:
    """The RestartPolicy, and ``--rm``, which no policy but "no" may go with."""
    restart = restart or {"Name": "no", "MaximumRetryCount": 0}
    if isinstance(restart, str):
        restart = parse_restart(restart)
    if auto_remove and restart.get("Name") not in ("no", "", None):
        raise UsageError("Conflicting options: --restart and --rm", hint="pick one of them")
    return restart, auto_remove


def _healthcheck(hc: Any) -> Any:
    """docker's Healthcheck as given, or docker-py's lower-case spelling of it."""
    if hc is not None and "Test" not in hc:  # docker-py spells them in lower case
        test = hc.get("test")
        if test is not None and not isinstance(test, (str, *_LIST)):
            raise UsageError(f"healthcheck test {test!r}: expected a command string or list",
                             hint="e.g. healthcheck={'test': 'curl -f http://localhost/', 'interval': 10**9}")
        hc = {"Test": ["CMD-SHELL", test] if isinstance(test, str) else list(test or ["NONE"]),
              **{key: parse_int(hc.get(word) or 0, f"healthcheck {word}") for key, word in (
                  ("Interval", "interval"), ("Timeout", "timeout"), ("StartPeriod", "start_period"),
                  ("Retries", "retries"))}}
    return hc


def _ports(expose: Iterable[Any], ports: dict[Any, Any]) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """ExposedPorts (``expose`` and every published port) and PortBindings (docker-py's ``ports`` shapes)."""
    exposed: dict[str, Any] = {}
    for e in expose:
        p, _, proto = str(e).partition("/")
        exposed[f"{p}/{proto or 'tcp'}"] = {}
    port_bindings: dict[str, list[dict[str, str]]] = {}
    for key, value in ports.items():
        port = key if "/" in str(key) else f"{key}/tcp"
        exposed[port] = {}
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                port_bindings.setdefault(port, []).append(item)
            elif isinstance(item, tuple):  # docker-py: (host ip, host port) or (host ip,)
                if len(item) not in (1, 2):
                    raise UsageError(f"ports={{{key!r}: {item!r}}}: expected (host ip, host port) or (host ip,)",
                                     hint="e.g. ports={'80/tcp': ('127.0.0.1', 8080)}")
                port_bindings.setdefault(port, []).append(
                    {"HostIp": str(item[0]), "HostPort": str(item[1]) if len(item) == 2 else ""})
            elif item is not None:
                port_bindings.setdefault(port, []).append({"HostIp": "", "HostPort": str(item)})
    return exposed, port_bindings


def _attach(streams: Iterable[str], stdin_open: bool, detach: bool) -> dict[str, bool]:
    """AttachStdin/Stdout/Stderr: ``-a``'s list, else all but stdin (which needs ``-i``), none detached."""
    attach = [a.lower() for a in streams]
    return {"AttachStdin": (stdin_open and not detach) if not attach else "stdin" in attach,
            "AttachStdout": (not detach) if not attach else "stdout" in attach,
            "AttachStderr": (not detach) if not attach else "stderr" in attach}


def _log_config(log_config: dict[str, Any]) -> dict[str, Any]:
    """LogConfig: json-file (with docker's default rotation, 10m x 2) or none."""
    if log_config.get("Type") not in ("json-file", "none"):
        raise UsageError(f"logging driver {log_config.get('Type')!r} is not available",
                         hint="use --log-driver json-file or none")
    if not isinstance(log_config.get("Config") or {}, dict):
        raise UsageError(f"log_config Config {log_config['Config']!r}: expected a dict of log options",
                         hint="e.g. {'Type': 'json-file', 'Config': {'max-size': '10m'}}")
    log_opts = dict(log_config.get("Config") or {})
    for key in log_opts:
        if key not in ("max-size", "max-file"):
            raise UsageError(f"unknown log opt '{key}' for json-file log driver", hint="max-size or max-file")
    if "max-size" in log_opts:
        parse_bytes(log_opts["max-size"], "--log-opt max-size")
    log_opts.setdefault("max-size", "10m")
    log_opts.setdefault("max-file", "2")
    return {"Type": log_config["Type"], "Config": log_opts}


def _stop_signal(stop_signal: Any) -> Any:
    if stop_signal:
        from ..runtime.container import parse_signal
        parse_signal(stop_signal)
    return stop_signal


def _security_config(kw: dict[str, Any]) -> dict[str, Any]:
    """CapAdd, CapDrop, Privileged, ReadonlyRootfs and SecurityOpt, in that order."""
    return {"CapAdd": normalize_caps(kw.get("cap_add") or [], "CapAdd") or None,
            "CapDrop": normalize_caps(kw.get("cap_drop") or [], "CapDrop") or None,
            "Privileged": bool(kw.get("privileged")), "ReadonlyRootfs": bool(kw.get("read_only")),
            "SecurityOpt": parse_security_opts(kw.get("security_opt") or []) or None}


def _resource_config(kw: dict[str, Any], memory: int, swap: int, nano: Any, cpuset: Any) -> dict[str, Any]:
    """The cgroup limits: Memory, MemorySwap, MemoryReservation, NanoCpus, CpuShares ... PidsLimit.

    MemorySwappiness is None unless set (Docker's -1 means the same: the parent's value).
    """
    mems = kw.get("cpuset_mems")
    if mems and not _CPUSET.match(str(mems)):
        raise bad_value(mems, "--cpuset-mems", "invalid format", "use a list such as 0-1")
    swappiness = kw.get("mem_swappiness")
    if swappiness is not None:
        try:
            swappiness = int(swappiness)
        except (TypeError, ValueError, OverflowError):
            raise bad_value(swappiness, "--memory-swappiness", "not a number", "use 0 to 100") from None
        if not -1 <= swappiness <= 100:
            raise UsageError(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100",
                             hint="0 avoids swapping, 100 swaps eagerly; -1 keeps the host's value")
        swappiness = None if swappiness == -1 else swappiness
    return {"Memory": memory, "MemorySwap": swap,
            "MemoryReservation": parse_bytes(kw["mem_reservation"], "--memory-reservation")
            if kw.get("mem_reservation") not in (None, "") else 0,
            "NanoCpus": parse_int(nano or 0, "nano_cpus"), "CpuShares": parse_int(kw.get("cpu_shares") or 0, "cpu_shares"),
            "CpuPeriod": parse_int(kw.get("cpu_period") or 0, "cpu_period"),
            "CpuQuota": parse_int(kw.get("cpu_quota") or 0, "cpu_quota"),
            "CpusetCpus": cpuset or "", "CpusetMems": str(mems or ""), "MemorySwappiness": swappiness,
            "PidsLimit": parse_int(kw["pids_limit"], "pids_limit") if kw.get("pids_limit") is not None else None}


def _process_config(kw: dict[str, Any]) -> dict[str, Any]:
    """GroupAdd, ShmSize, Sysctls, OomScoreAdj and OomKillDisable."""
    return {"GroupAdd": [str(g) for g in kw.get("group_add") or []] or None,
            "ShmSize": parse_bytes(kw["shm_size"], "--shm-size") if kw.get("shm_size") else 0,
            "Sysctls": dict(kw.get("sysctls") or {}) or None,
            "OomScoreAdj": parse_int(kw.get("oom_score_adj") or 0, "oom_score_adj"),
            "OomKillDisable": bool(kw.get("oom_kill_disable"))}


def _extra_hosts(hosts: Any) -> list[str]:
    """``--add-host`` strings, or docker-py's ``{hostname: ip}``, as ExtraHosts ("host:ip")."""
    if isinstance(hosts, dict):
        return [f"{host}:{ip}" for host, ip in hosts.items()]
    return list(hosts)
