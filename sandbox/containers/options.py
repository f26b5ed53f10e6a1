"""``docker create``/``run`` flags and docker-py keywords, as Docker's Config and HostConfig.

Both the command line (:func:`add_create_flags` + :func:`config_from_args`)
and the Python API (:func:`config_from_kwargs`) end in the same two dicts,
shaped and named exactly as ``docker inspect`` shows them (bytes, NanoCpus,
durations in nanoseconds), so a cell, a terminal and a script behave alike
and ``inspect`` reads like Docker's.  Every bad value is refused here, with
Docker's wording and a fix, before anything is created.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
from typing import Any, Iterable

from ..errors import UsageError

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgt]?)(i?b)?$", re.IGNORECASE)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DUR_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_CPUSET = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
RUNTIMES = ("sandbox", "runc")


def _bad(value: Any, flag: str, why: str, hint: str) -> UsageError:
    return UsageError(f'invalid argument "{value}" for "{flag}" flag: {why}', hint=hint)


def parse_bytes(text: str | int, flag: str) -> int:
    """"32m", "1g", "512k", "100b", "1.5g" or a number of bytes (docker's RAMInBytes)."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text).strip())
    if not m:
        raise _bad(text, flag, f"invalid size: '{text}'",
                   "use a number with an optional unit b, k, m or g, such as 32m")
    unit = m.group(2).lower()
    return int(float(m.group(1)) * {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30,
                                     "t": 1 << 40}[unit])


def parse_duration(text: str | int, flag: str) -> int:
    """Go durations ("30s", "1m30s", "500ms") in nanoseconds."""
    if isinstance(text, int):
        return text
    value = str(text).strip()
    pos, total = 0, 0
    for m in _DURATION.finditer(value):
        if m.start() != pos:
            break
        total += int(float(m.group(1)) * _DUR_NS[m.group(2)])
        pos = m.end()
    if not value or pos != len(value):
        if value == "0":
            return 0
        raise _bad(text, flag, f'time: invalid duration "{text}"', "use a duration such as 30s, 1m30s or 500ms")
    return total


def parse_cpus(text: str | float, flag: str = "--cpus") -> int:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise _bad(text, flag, "failed to parse as a decimal number",
                   "give a number of CPUs such as 0.5 or 2") from None
    if value < 0:
        raise _bad(text, flag, "CPU count cannot be negative", "give a number of CPUs such as 0.5 or 2")
    return int(round(value * 1e9))


def parse_ulimit(text: str) -> dict[str, Any]:
    name, sep, values = str(text).partition("=")
    if not sep or not name:
        raise _bad(text, "--ulimit", "invalid ulimit argument", "use NAME=SOFT[:HARD], e.g. nofile=1024:2048")
    soft_t, _, hard_t = values.partition(":")
    try:
        soft = int(soft_t)
        hard = int(hard_t) if hard_t else soft
    except ValueError:
        raise _bad(text, "--ulimit", "invalid ulimit value", "use numbers, or -1 for unlimited") from None
    from ..runtime.spec import RLIMIT_NAMES
    if name.lower() not in {n.lower().removeprefix("rlimit_") for n in RLIMIT_NAMES}:
        raise _bad(text, "--ulimit", f"invalid ulimit type: {name}",
                   "use one of: " + ", ".join(sorted(n.lower().removeprefix("rlimit_") for n in RLIMIT_NAMES)))
    if soft != -1 and hard != -1 and soft > hard:
        raise _bad(text, "--ulimit", f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}",
                   "lower the soft limit")
    return {"Name": name.lower(), "Soft": soft, "Hard": hard}


def parse_restart(text: str) -> dict[str, Any]:
    name, _, count = str(text).partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure", ""):
        raise _bad(text, "--restart", f"invalid restart policy: {name}",
                   "use no, always, unless-stopped or on-failure[:N]")
    if count and name != "on-failure":
        raise _bad(text, "--restart", f"maximum retry count cannot be used with restart policy '{name}'",
                   "only on-failure takes a count")
    try:
        n = int(count) if count else 0
    except ValueError:
        raise _bad(text, "--restart", "maximum retry count must be an integer", "on-failure:3") from None
    return {"Name": name or "no", "MaximumRetryCount": n}


def parse_device(text: str) -> dict[str, str]:
    parts = str(text).split(":")
    host = parts[0]
    container = parts[1] if len(parts) > 1 and parts[1].startswith("/") else host
    perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
    if not host.startswith("/") or len(parts) > 3 or not perms or set(perms) - set("rwm"):
        raise _bad(text, "--device", "invalid device specification",
                   "use /dev/HOST[:/dev/CONTAINER[:rwm]]")
    return {"PathOnHost": host, "PathInContainer": container, "CgroupPermissions": perms}


def parse_env_file(path: str) -> list[str]:
    """docker's env-file: NAME=VALUE lines, # comments, a bare NAME takes the host's value."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError(f"open {path}: {e.strerror}", hint="check the --env-file path") from None
    out = []
    for n, raw in enumerate(lines, 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not name or " " in name.strip() or "\t" in name:
            raise UsageError(f"{path}:{n}: variable '{name}' contains whitespaces",
                             hint="write NAME=VALUE, one per line")
        if sep:
            out.append(f"{name}={value}")
        elif name in os.environ:
            out.append(f"{name}={os.environ[name]}")
    return out


def parse_security_opts(opts: Iterable[str]) -> list[str]:
    out = []
    for opt in opts:
        key, sep, value = opt.partition("=") if "=" in opt else opt.partition(":")
        if key == "no-new-privileges":
            if value and value.lower() not in ("true", "false"):
                raise _bad(opt, "--security-opt", "invalid no-new-privileges value", "true or false")
            out.append("no-new-privileges" if value.lower() in ("", "true") else "no-new-privileges=false")
        elif key == "seccomp":
            if value == "unconfined":
                out.append("seccomp=unconfined")
            else:
                try:
                    with open(value, encoding="utf-8") as f:
                        profile = json.load(f)
                except OSError as e:
                    raise UsageError(f"opening seccomp profile ({value}) failed: {e.strerror}",
                                     hint="give a JSON profile file, or seccomp=unconfined") from None
                except ValueError as e:
                    raise UsageError(f"decoding seccomp profile ({value}) failed: {e}",
                                     hint="the file must be a JSON seccomp profile (Docker's format)") from None
                out.append("seccomp=" + json.dumps(profile, separators=(",", ":")))
        elif key in ("label", "apparmor"):
            out.append(opt)  # accepted; this engine has no LSM support to apply them
        else:
            raise _bad(opt, "--security-opt", f"invalid --security-opt: {opt!r}",
                       "use no-new-privileges, seccomp=unconfined or seccomp=FILE")
    return out


def _volume_name_ok(name: str) -> bool:
    return bool(_NAME.match(name))


def parse_volume(text: str) -> tuple[str | None, str | None]:
    """-v: ("bind or volume string for Binds", None) or (None, anonymous target)."""
    parts = str(text).split(":")
    if len(parts) == 1:
        target = parts[0]
        if not target.startswith("/"):
            raise _bad(text, "-v, --volume", "invalid volume specification", "use /container/path, "
                       "NAME:/container/path or /host/path:/container/path[:ro]")
        return None, os.path.normpath(target)
    if len(parts) > 3:
        raise _bad(text, "-v, --volume", "invalid volume specification", "HOST:CONTAINER[:ro|rw]")
    src, dst = parts[0], parts[1]
    opts = parts[2] if len(parts) == 3 else ""
    if not dst.startswith("/"):
        raise _bad(text, "-v, --volume", f"invalid mount config: mount path must be absolute: {dst}",
                   "the container path must start with /")
    for o in filter(None, opts.split(",")):
        if o not in ("ro", "rw", "z", "Z", "private", "rprivate", "shared", "rshared", "slave", "rslave",
                     "nocopy"):
            raise _bad(text, "-v, --volume", f"invalid mode: {o}", "use ro or rw")
    if src.startswith(("./", "../", "~")) or src in (".", ".."):
        src = os.path.abspath(os.path.expanduser(src))
    if not src.startswith("/") and not _volume_name_ok(src):
        raise _bad(text, "-v, --volume", f'"{src}" includes invalid characters for a local volume name',
                   'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed; a host path must be absolute')
    bind = f"{os.path.normpath(src) if src.startswith('/') else src}:{os.path.normpath(dst)}"
    return (bind + (f":{opts}" if opts else "")), None


def parse_mount(text: str) -> dict[str, Any]:
    fields: dict[str, str] = {}
    for item in str(text).split(","):
        key, sep, value = item.partition("=")
        fields[key.strip().lower()] = value.strip() if sep else "true"
    kind = fields.pop("type", "volume")
    if kind not in ("bind", "volume", "tmpfs"):
        raise _bad(text, "--mount", f"invalid mount type {kind!r}", "use type=bind, type=volume or type=tmpfs")
    target = next((fields.pop(k) for k in ("target", "destination", "dst") if k in fields), None)
    if not target:
        raise _bad(text, "--mount", "target is required", "add target=/path/in/container")
    source = next((fields.pop(k) for k in ("source", "src") if k in fields), "")
    ro = next((fields.pop(k) for k in ("readonly", "ro") if k in fields), "false")
    m: dict[str, Any] = {"Type": kind, "Source": source, "Target": os.path.normpath(target),
                         "ReadOnly": ro.lower() in ("true", "1", "")}
    if kind == "bind":
        if not source.startswith("/"):
            raise _bad(text, "--mount", "invalid mount config for type \"bind\": source must be an absolute path",
                       "use source=/host/path")
        if "bind-propagation" in fields:
            m["BindOptions"] = {"Propagation": fields.pop("bind-propagation")}
    elif kind == "tmpfs":
        if source:
            raise _bad(text, "--mount", "invalid mount config for type \"tmpfs\": source not allowed", "drop source=")
        topts: dict[str, Any] = {}
        if "tmpfs-size" in fields:
            topts["SizeBytes"] = parse_bytes(fields.pop("tmpfs-size"), "--mount tmpfs-size")
        if "tmpfs-mode" in fields:
            topts["Mode"] = int(fields.pop("tmpfs-mode"), 8)
        if topts:
            m["TmpfsOptions"] = topts
    else:
        if source and not _volume_name_ok(source):
            raise _bad(text, "--mount", f'"{source}" includes invalid characters for a local volume name',
                       'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed')
        vopts = {k[len("volume-"):]: fields.pop(k) for k in list(fields) if k.startswith("volume-")}
        if vopts:
            m["VolumeOptions"] = vopts
    fields.pop("consistency", None)
    if fields:
        raise _bad(text, "--mount", f"unexpected key '{next(iter(fields))}'",
                   "keys: type, source, target, readonly, bind-propagation, tmpfs-size, tmpfs-mode")
    return m


def parse_port(text: str) -> tuple[str, list[dict[str, str]]]:
    """-p [ip:]host:container[/proto] | container[/proto] -> ("80/tcp", [{"HostIp","HostPort"}])."""
    spec, _, proto = str(text).partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise _bad(text, "-p, --publish", f"invalid proto: {proto}", "use tcp or udp")
    parts = spec.rsplit(":", 2)
    if len(parts) == 1:
        ip, host, container = "", "", parts[0]
    elif len(parts) == 2:
        ip, (host, container) = "", parts
    else:
        ip, host, container = parts
    if not container.isdigit() or (host and not host.replace("-", "").isdigit()):
        raise _bad(text, "-p, --publish", "invalid port specification",
                   "use HOSTPORT:CONTAINERPORT, e.g. 8080:80")
    return f"{container}/{proto}", [{"HostIp": ip, "HostPort": host}]


def normalize_caps(caps: Iterable[str], flag: str) -> list[str]:
    caps = list(caps)
    if not caps:
        return []   # without loading the kernel and spec modules (a cold `sandbox run`)
    from ..kernel import CAPS
    from ..runtime.spec import normalize_capability
    out = []
    for c in caps:
        name = normalize_capability(c)
        if name != "ALL" and name not in CAPS:
            raise UsageError(f'invalid {flag}: unknown capability: "{name}"',
                             hint="capability names are listed in capabilities(7), e.g. NET_ADMIN or SYS_TIME")
        out.append(name)
    return out


def _labels(items: Iterable[str] | dict[str, str] | None, files: Iterable[str] = ()) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        k, _, v = line.partition("=")
                        out[k] = v
        except OSError as e:
            raise UsageError(f"open {path}: {e.strerror}", hint="check the --label-file path") from None
    if isinstance(items, dict):
        out.update({str(k): str(v) for k, v in items.items()})
    else:
        for item in items or []:
            k, _, v = str(item).partition("=")
            out[k] = v
    return out


# --------------------------------------------------------------------------- the flags

def add_create_flags(p: argparse.ArgumentParser) -> None:
    """Every ``docker create``/``run`` flag this engine knows, with docker's spellings."""
    a = p.add_argument
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
    a("-m", "--memory", help="memory limit")
    a("--memory-swap", help="swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    a("--memory-reservation", help="memory soft limit")
    a("--cpus", help="number of CPUs")
    a("-c", "--cpu-shares", help="CPU shares (relative weight)")
    a("--cpu-period", help="limit CPU CFS period")
    a("--cpu-quota", help="limit CPU CFS quota")
    a("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    a("--pids-limit", help="tune container pids limit (set -1 for unlimited)")
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
    a("--network", "--net", dest="network", default="default", help="connect a container to a network (none, host)")
    a("-p", "--publish", action="append", default=[], help="publish a container's port(s) to the host")
    a("--expose", action="append", default=[], help="expose a port or a range of ports")
    a("--dns", action="append", default=[], help="set custom DNS servers")
    a("--dns-search", action="append", default=[], help="set custom DNS search domains")
    a("--add-host", action="append", default=[], help="add a custom host-to-IP mapping (host:ip)")
    a("--log-driver", default="json-file", help="logging driver for the container (json-file or none)")
    a("--log-opt", action="append", default=[], help="log driver options (max-size, max-file)")
    a("--group-add", action="append", default=[], help="add additional groups to join")
    a("--shm-size", help="size of /dev/shm")
    a("--sysctl", action="append", default=[], help="sysctl options")
    a("--oom-score-adj", help="tune host's OOM preferences (-1000 to 1000)")
    a("--oom-kill-disable", action="store_true", help="disable OOM killer")


def _int(value: Any, flag: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _bad(value, flag, f'strconv.ParseInt: parsing "{value}": invalid syntax', "give a whole number") from None


def config_from_args(args: argparse.Namespace, image: str, command: list[str]) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """Config, HostConfig and the name from parsed ``create``/``run`` flags."""
    env: list[str] = []
    for path in args.env_file:
        env += parse_env_file(path)
    for e in args.env:
        env.append(e if "=" in e else (f"{e}={os.environ[e]}" if e in os.environ else None) or e)
    env = [e for e in env if "=" in e]
    healthcheck: dict[str, Any] | None = None
    if args.no_healthcheck:
        healthcheck = {"Test": ["NONE"]}
    elif args.health_cmd:
        healthcheck = {"Test": ["CMD-SHELL", args.health_cmd],
                       "Interval": parse_duration(args.health_interval or 0, "--health-interval"),
                       "Timeout": parse_duration(args.health_timeout or 0, "--health-timeout"),
                       "StartPeriod": parse_duration(args.health_start_period or 0, "--health-start-period"),
                       "StartInterval": parse_duration(args.health_start_interval or 0, "--health-start-interval"),
                       "Retries": _int(args.health_retries or 0, "--health-retries")}
    log_opts = dict(o.partition("=")[::2] for o in args.log_opt)
    kwargs: dict[str, Any] = dict(
        environment=env, volumes=args.volume, mounts=[parse_mount(m) for m in args.mount],
        tmpfs=dict(t.partition(":")[::2] for t in args.tmpfs), working_dir=args.workdir, user=args.user,
        hostname=args.hostname, domainname=args.domainname,
        entrypoint=(shlex.split(args.entrypoint) or [""]) if args.entrypoint is not None else None,
        mem_limit=args.memory, memswap_limit=args.memory_swap, mem_reservation=args.memory_reservation,
        nano_cpus=parse_cpus(args.cpus) if args.cpus is not None else None,
        cpu_shares=_int(args.cpu_shares, "-c, --cpu-shares") if args.cpu_shares is not None else None,
        cpu_period=_int(args.cpu_period, "--cpu-period") if args.cpu_period is not None else None,
        cpu_quota=_int(args.cpu_quota, "--cpu-quota") if args.cpu_quota is not None else None,
        cpuset_cpus=args.cpuset_cpus,
        pids_limit=_int(args.pids_limit, "--pids-limit") if args.pids_limit is not None else None,
        read_only=args.read_only, cap_add=args.cap_add, cap_drop=args.cap_drop, privileged=args.privileged,
        security_opt=args.security_opt, pid_mode=args.pid, ipc_mode=args.ipc, uts_mode=args.uts,
        devices=args.device, ulimits=[parse_ulimit(u) for u in args.ulimit], init=args.init,
        stop_signal=args.stop_signal,
        stop_timeout=_int(args.stop_timeout, "--stop-timeout") if args.stop_timeout is not None else None,
        restart_policy=parse_restart(args.restart), healthcheck=healthcheck, runtime=args.runtime,
        labels=_labels(args.label, args.label_file), network_mode=args.network,
        ports={}, auto_remove=args.rm, stdin_open=args.interactive, tty=args.tty, name=args.name,
        log_config={"Type": args.log_driver, "Config": log_opts}, group_add=args.group_add,
        shm_size=args.shm_size, sysctls=dict(s.partition("=")[::2] for s in args.sysctl),
        oom_score_adj=_int(args.oom_score_adj, "--oom-score-adj") if args.oom_score_adj is not None else None,
        oom_kill_disable=args.oom_kill_disable, dns=args.dns, dns_search=args.dns_search,
        extra_hosts=args.add_host, detach=args.detach, attach=args.attach)
    for p in args.publish:
        port, binding = parse_port(p)
        kwargs["ports"].setdefault(port, []).extend(binding)
    for e in args.expose:
        kwargs.setdefault("expose", []).append(e)
    return config_from_kwargs(image, command or None, **kwargs)


#: docker-py keyword -> what it means here.
_KNOWN = {"environment", "volumes", "mounts", "tmpfs", "working_dir", "user", "hostname", "domainname",
          "entrypoint", "mem_limit", "memswap_limit", "mem_reservation", "nano_cpus", "cpu_shares",
          "cpu_period", "cpu_quota", "cpuset_cpus", "pids_limit", "read_only", "cap_add", "cap_drop",
          "privileged", "security_opt", "pid_mode", "ipc_mode", "uts_mode", "devices", "ulimits", "init",
          "stop_signal", "stop_timeout", "restart_policy", "healthcheck", "runtime", "labels",
          "network_mode", "network", "ports", "auto_remove", "remove", "stdin_open", "tty", "name", "log_config",
          "group_add", "shm_size", "sysctls", "oom_score_adj", "oom_kill_disable", "dns", "dns_search",
          "extra_hosts", "detach", "attach", "env_file", "expose", "cpus"}


def config_from_kwargs(image: str, command: str | list[str] | None = None,
                       **kw: Any) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """Config, HostConfig and the name from docker-py's ``containers.create/run`` keywords."""
    unknown = set(kw) - _KNOWN
    if unknown:
        raise UsageError(f"unknown argument(s): {', '.join(sorted(unknown))}",
                         hint="see help(engine.containers.run) for the accepted keywords")
    name = kw.get("name")
    if name is not None and not _NAME.match(str(name).lstrip("/")):
        raise UsageError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                         hint="pick a name of letters, digits, _ . and -")
    cmd = shlex.split(command) if isinstance(command, str) else (list(command) if command is not None else None)
    env_in = kw.get("environment") or []
    env = [f"{k}={v}" for k, v in env_in.items()] if isinstance(env_in, dict) else list(env_in)
    for path in kw.get("env_file") or []:
        env = parse_env_file(path) + env
    entrypoint = kw.get("entrypoint")
    if isinstance(entrypoint, str):
        entrypoint = shlex.split(entrypoint) or [""]
    if entrypoint == [""]:
        entrypoint = []
    binds: list[str] = []
    anon: dict[str, Any] = {}
    vols = kw.get("volumes") or []
    if isinstance(vols, dict):
        for host_path, spec in vols.items():
            mode = spec.get("mode", "rw") if isinstance(spec, dict) else "rw"
            target = spec["bind"] if isinstance(spec, dict) else spec
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
    memory = parse_bytes(kw["mem_limit"], "-m, --memory") if kw.get("mem_limit") not in (None, "") else 0
    swap_in = kw.get("memswap_limit")
    swap = -1 if swap_in in (-1, "-1") else (parse_bytes(swap_in, "--memory-swap") if swap_in not in (None, "") else 0)
    if swap > 0 and memory and swap < memory:
        raise UsageError("Minimum memoryswap limit should be larger than memory limit, see usage",
                         hint="--memory-swap is memory plus swap: give at least the --memory value")
    if swap and not memory:
        raise UsageError("You should always set the Memory limit when using Memoryswap limit, see usage",
                         hint="add --memory")
    cpuset = kw.get("cpuset_cpus")
    if cpuset and not _CPUSET.match(str(cpuset)):
        raise _bad(cpuset, "--cpuset-cpus", "invalid format", "use a list such as 0-2,4")
    nano = kw.get("nano_cpus")
    if kw.get("cpus") is not None:
        nano = parse_cpus(kw["cpus"])
    runtime = kw.get("runtime") or "sandbox"
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown or invalid runtime name: {runtime}", hint="use --runtime sandbox or runc")
    ipc, pid, uts = kw.get("ipc_mode") or "", kw.get("pid_mode") or "", kw.get("uts_mode") or ""
    if uts not in ("", "host"):
        raise _bad(uts, "--uts", "invalid UTS mode", "only --uts host is supported")
    for mode, flag in ((pid, "--pid"), (ipc, "--ipc")):
        if mode not in ("", "host", "private", "shareable") and not mode.startswith("container:"):
            raise _bad(mode, flag, "invalid mode", "use host")
    network = kw.get("network_mode") or kw.get("network") or "default"
    if network not in ("default", "none", "host", "bridge") and not network.startswith("container:"):
        raise UsageError(f"network {network} not found", hint="use --network none or --network host")
    restart = kw.get("restart_policy") or {"Name": "no", "MaximumRetryCount": 0}
    if isinstance(restart, str):
        restart = parse_restart(restart)
    auto_remove = bool(kw.get("auto_remove") or kw.get("remove"))
    if auto_remove and restart.get("Name") not in ("no", "", None):
        raise UsageError("Conflicting options: --restart and --rm", hint="pick one of them")
    hc = kw.get("healthcheck")
    if hc is not None and "Test" not in hc:  # docker-py spells them in lower case
        test = hc.get("test")
        hc = {"Test": ["CMD-SHELL", test] if isinstance(test, str) else list(test or ["NONE"]),
              "Interval": int(hc.get("interval") or 0), "Timeout": int(hc.get("timeout") or 0),
              "StartPeriod": int(hc.get("start_period") or 0), "Retries": int(hc.get("retries") or 0)}
    exposed: dict[str, Any] = {}
    for e in kw.get("expose") or []:
        p, _, proto = str(e).partition("/")
        exposed[f"{p}/{proto or 'tcp'}"] = {}
    port_bindings: dict[str, list[dict[str, str]]] = {}
    for key, value in (kw.get("ports") or {}).items():
        port = key if "/" in str(key) else f"{key}/tcp"
        exposed[port] = {}
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                port_bindings.setdefault(port, []).append(item)
            elif isinstance(item, tuple):
                port_bindings.setdefault(port, []).append({"HostIp": item[0], "HostPort": str(item[1])})
            elif item is not None:
                port_bindings.setdefault(port, []).append({"HostIp": "", "HostPort": str(item)})
    tty = bool(kw.get("tty"))
    stdin_open = bool(kw.get("stdin_open"))
    attach = [a.lower() for a in kw.get("attach") or []]
    detach = bool(kw.get("detach"))
    log_config = kw.get("log_config") or {"Type": "json-file", "Config": {}}
    if log_config.get("Type") not in ("json-file", "none"):
        raise UsageError(f"logging driver {log_config.get('Type')!r} is not available",
                         hint="use --log-driver json-file or none")
    log_opts = dict(log_config.get("Config") or {})
    for key in log_opts:
        if key not in ("max-size", "max-file"):
            raise UsageError(f"unknown log opt '{key}' for json-file log driver", hint="max-size or max-file")
    if "max-size" in log_opts:
        parse_bytes(log_opts["max-size"], "--log-opt max-size")
    log_opts.setdefault("max-size", "10m")
    log_opts.setdefault("max-file", "2")
    ulimits = [u if isinstance(u, dict) else parse_ulimit(u) for u in kw.get("ulimits") or []]
    devices = [d if isinstance(d, dict) else parse_device(d) for d in kw.get("devices") or []]
    mounts = [m if "Type" in m else parse_mount(",".join(f"{k}={v}" for k, v in m.items()))
              for m in (kw.get("mounts") or [])]
    stop_signal = kw.get("stop_signal")
    if stop_signal:
        from ..runtime.container import parse_signal
        parse_signal(stop_signal)
    config: dict[str, Any] = {
        "Hostname": kw.get("hostname") or "", "Domainname": kw.get("domainname") or "",
        "User": kw.get("user") or "",
        "AttachStdin": (stdin_open and not detach) if not attach else "stdin" in attach,
        "AttachStdout": (not detach) if not attach else "stdout" in attach,
        "AttachStderr": (not detach) if not attach else "stderr" in attach,
        "ExposedPorts": exposed or None, "Tty": tty, "OpenStdin": stdin_open,
        "StdinOnce": stdin_open and not detach, "Env": env, "Cmd": cmd, "Healthcheck": hc,
        "Image": image, "Volumes": anon or None, "WorkingDir": kw.get("working_dir") or "",
        "Entrypoint": entrypoint, "Labels": _labels(kw.get("labels")), "StopSignal": stop_signal,
        "StopTimeout": kw.get("stop_timeout"),
    }
    host: dict[str, Any] = {
        "Binds": binds or None, "Mounts": mounts or None, "Tmpfs": dict(kw.get("tmpfs") or {}) or None,
        "NetworkMode": network, "PortBindings": port_bindings or None, "RestartPolicy": restart,
        "AutoRemove": auto_remove,
        "CapAdd": normalize_caps(kw.get("cap_add") or [], "CapAdd") or None,
        "CapDrop": normalize_caps(kw.get("cap_drop") or [], "CapDrop") or None,
        "Privileged": bool(kw.get("privileged")), "ReadonlyRootfs": bool(kw.get("read_only")),
        "SecurityOpt": parse_security_opts(kw.get("security_opt") or []) or None,
        "UTSMode": uts, "PidMode": pid, "IpcMode": ipc,
        "Memory": memory, "MemorySwap": swap,
        "MemoryReservation": parse_bytes(kw["mem_reservation"], "--memory-reservation")
        if kw.get("mem_reservation") not in (None, "") else 0,
        "NanoCpus": int(nano or 0), "CpuShares": int(kw.get("cpu_shares") or 0),
        "CpuPeriod": int(kw.get("cpu_period") or 0), "CpuQuota": int(kw.get("cpu_quota") or 0),
        "CpusetCpus": cpuset or "", "PidsLimit": kw.get("pids_limit"),
        "Devices": devices or None, "Ulimits": ulimits or None, "Init": kw.get("init"),
        "Runtime": runtime, "LogConfig": {"Type": log_config["Type"], "Config": log_opts},
        "GroupAdd": [str(g) for g in kw.get("group_add") or []] or None,
        "ShmSize": parse_bytes(kw["shm_size"], "--shm-size") if kw.get("shm_size") else 0,
        "Sysctls": dict(kw.get("sysctls") or {}) or None,
        "OomScoreAdj": int(kw.get("oom_score_adj") or 0), "OomKillDisable": bool(kw.get("oom_kill_disable")),
        "Dns": list(kw.get("dns") or []), "DnsSearch": list(kw.get("dns_search") or []),
        "ExtraHosts": list(kw.get("extra_hosts") or []) or None,
    }
    if host["OomScoreAdj"] and not -1000 <= host["OomScoreAdj"] <= 1000:
        raise UsageError(f"Invalid value {host['OomScoreAdj']}, range for oom score adj is [-1000, 1000]")
    return config, host, (str(name).lstrip("/") if name else None)
