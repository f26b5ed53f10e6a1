"""One ``docker run`` flag value at a time, checked, in Docker's words.

Sizes, durations, CPUs, ulimits, restart policies, devices, env and label
files, security options, volumes, mounts and ports.  Each parser takes what
a user typed (or a docker-py keyword's value) and the flag's name, and
refuses a bad value with Docker's wording (``invalid argument "12QB" for
"-m, --memory" flag: ...``) and a fix.  Kept apart from :mod:`.options`,
which puts the values together into Config and HostConfig; the supervisor,
``update`` and the builder use some of them alone.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any

from ..errors import UsageError

VALID_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgt]?)(i?b)?$", re.IGNORECASE)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")

_DUR_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def bad_value(value: Any, flag: str, why: str, hint: str) -> UsageError:
    return UsageError(f'invalid argument "{value}" for "{flag}" flag: {why}', hint=hint)


def parse_bytes(text: str | int, flag: str) -> int:
    """"32m", "1g", "512k", "100b", "1.5g" or a number of bytes (docker's RAMInBytes)."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text).strip())
    if not m:
        raise bad_value(text, flag, f"invalid size: '{text}'",
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
        raise bad_value(text, flag, f'time: invalid duration "{text}"', "use a duration such as 30s, 1m30s or 500ms")
    return total


def parse_cpus(text: str | float, flag: str = "--cpus") -> int:
    try:
        value = float(text)
        if not math.isfinite(value):  # "nan" and "inf" parse as floats but are no count
            raise ValueError(text)
    except (TypeError, ValueError):
        raise bad_value(text, flag, "failed to parse as a decimal number",
                   "give a number of CPUs such as 0.5 or 2") from None
    if value < 0:
        raise bad_value(text, flag, "CPU count cannot be negative", "give a number of CPUs such as 0.5 or 2")
    return int(round(value * 1e9))


def parse_int(value: Any, flag: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(float("inf"))
        raise bad_value(value, flag, f'strconv.ParseInt: parsing "{value}": invalid syntax', "give a whole number") from None


def parse_ulimit(text: str) -> dict[str, Any]:
    name, sep, values = str(text).partition("=")
    if not sep or not name:
        raise bad_value(text, "--ulimit", "invalid ulimit argument", "use NAME=SOFT[:HARD], e.g. nofile=1024:2048")
    soft_t, _, hard_t = values.partition(":")
    try:
        soft = int(soft_t)
        hard = int(hard_t) if hard_t else soft
    except ValueError:
        raise bad_value(text, "--ulimit", "invalid ulimit value", "use numbers, or -1 for unlimited") from None
    from ..runtime.spec import RLIMIT_NAMES
    if name.lower() not in {n.lower().removeprefix("rlimit_") for n in RLIMIT_NAMES}:
        raise bad_value(text, "--ulimit", f"invalid ulimit type: {name}",
                   "use one of: " + ", ".join(sorted(n.lower().removeprefix("rlimit_") for n in RLIMIT_NAMES)))
    if soft != -1 and hard != -1 and soft > hard:
        raise bad_value(text, "--ulimit", f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}",
                   "lower the soft limit")
    return {"Name": name.lower(), "Soft": soft, "Hard": hard}


def parse_restart(text: str) -> dict[str, Any]:
    name, _, count = str(text).partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure", ""):
        raise bad_value(text, "--restart", f"invalid restart policy: {name}",
                   "use no, always, unless-stopped or on-failure[:N]")
    if count and name != "on-failure":
        raise bad_value(text, "--restart", f"maximum retry count cannot be used with restart policy '{name}'",
                   "only on-failure takes a count")
    try:
        n = int(count) if count else 0
    except ValueError:
        raise bad_value(text, "--restart", "maximum retry count must be an integer", "on-failure:3") from None
    return {"Name": name or "no", "MaximumRetryCount": n}


def parse_device(text: str) -> dict[str, str]:
    parts = str(text).split(":")
    host = parts[0]
    container = parts[1] if len(parts) > 1 and parts[1].startswith("/") else host
    perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
    if not host.startswith("/") or len(parts) > 3 or not perms or set(perms) - set("rwm"):
        raise bad_value(text, "--device", "invalid device specification",
                   "use /dev/HOST[:/dev/CONTAINER[:rwm]]")
    return {"PathOnHost": host, "PathInContainer": container, "CgroupPermissions": perms}


def parse_env_file(path: str) -> list[str]:
    """docker's env-file: NAME=VALUE lines, # comments, a bare NAME takes the host's value."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path, or not UTF-8
        raise UsageError(f"open {path}: {_reason(e)}", hint="check the --env-file path") from None
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


def _reason(e: OSError | ValueError) -> str:
    return (e.strerror if isinstance(e, OSError) else None) or str(e)


def parse_security_opts(opts: Iterable[str]) -> list[str]:
    out = []
    for opt in opts:
        key, sep, value = opt.partition("=") if "=" in opt else opt.partition(":")
        if key == "no-new-privileges":
            if value and value.lower() not in ("true", "false"):
                raise bad_value(opt, "--security-opt", "invalid no-new-privileges value", "true or false")
            out.append("no-new-privileges" if value.lower() in ("", "true") else "no-new-privileges=false")
        elif key == "seccomp":
            if value == "unconfined":
                out.append("seccomp=unconfined")
            elif value.lstrip().startswith("{"):
                # The API's form: the docker CLI reads the file and sends the profile itself.
                try:
                    profile = json.loads(value)
                except ValueError as e:
                    raise UsageError(f"decoding seccomp profile failed: {e}",
                                     hint="the profile must be JSON in Docker's format") from None
                out.append("seccomp=" + json.dumps(profile, separators=(",", ":")))
            else:
                try:
                    with open(value, encoding="utf-8") as f:
                        profile = json.load(f)
                except OSError as e:
                    raise UsageError(f"opening seccomp profile ({value}) failed: {e.strerror}",
                                     hint="give a JSON profile file, or seccomp=unconfined") from None
                except ValueError as e:  # not JSON, not UTF-8, or a NUL byte in the path
                    raise UsageError(f"decoding seccomp profile ({value}) failed: {e}",
                                     hint="the file must be a JSON seccomp profile (Docker's format)") from None
                out.append("seccomp=" + json.dumps(profile, separators=(",", ":")))
        elif key in ("label", "apparmor"):
            out.append(opt)  # accepted; this engine has no LSM support to apply them
        else:
            raise bad_value(opt, "--security-opt", f"invalid --security-opt: {opt!r}",
                       "use no-new-privileges, seccomp=unconfined or seccomp=FILE")
    return out


def _volume_name_ok(name: str) -> bool:
    return bool(VALID_NAME.match(name))


def parse_volume(text: str) -> tuple[str | None, str | None]:
    """-v: ("bind or volume string for Binds", None) or (None, anonymous target)."""
    parts = str(text).split(":")
    if len(parts) == 1:
        target = parts[0]
        if not target.startswith("/"):
            raise bad_value(text, "-v, --volume", "invalid volume specification", "use /container/path, "
                       "NAME:/container/path or /host/path:/container/path[:ro]")
        return None, os.path.normpath(target)
    if len(parts) > 3:
        raise bad_value(text, "-v, --volume", "invalid volume specification", "HOST:CONTAINER[:ro|rw]")
    src, dst = parts[0], parts[1]
    opts = parts[2] if len(parts) == 3 else ""
    if not dst.startswith("/"):
        raise bad_value(text, "-v, --volume", f"invalid mount config: mount path must be absolute: {dst}",
                   "the container path must start with /")
    for o in filter(None, opts.split(",")):
        if o not in ("ro", "rw", "z", "Z", "private", "rprivate", "shared", "rshared", "slave", "rslave",
                     "nocopy"):
            raise bad_value(text, "-v, --volume", f"invalid mode: {o}", "use ro or rw")
    if src.startswith(("./", "../", "~")) or src in (".", ".."):
        src = os.path.abspath(os.path.expanduser(src))
    if not src.startswith("/") and not _volume_name_ok(src):
        raise bad_value(text, "-v, --volume", f'"{src}" includes invalid characters for a local volume name',
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
        raise bad_value(text, "--mount", f"invalid mount type {kind!r}", "use type=bind, type=volume or type=tmpfs")
    target = next((fields.pop(k) for k in ("target", "destination", "dst") if k in fields), None)
    if not target:
        raise bad_value(text, "--mount", "target is required", "add target=/path/in/container")
    source = next((fields.pop(k) for k in ("source", "src") if k in fields), "")
    ro = next((fields.pop(k) for k in ("readonly", "ro") if k in fields), "false")
    m: dict[str, Any] = {"Type": kind, "Source": source, "Target": os.path.normpath(target),
                         "ReadOnly": ro.lower() in ("true", "1", "")}
    if kind == "bind":
        if not source.startswith("/"):
            raise bad_value(text, "--mount", "invalid mount config for type \"bind\": source must be an absolute path",
                       "use source=/host/path")
        if "bind-propagation" in fields:
            m["BindOptions"] = {"Propagation": fields.pop("bind-propagation")}
    elif kind == "tmpfs":
        if source:
            raise bad_value(text, "--mount", "invalid mount config for type \"tmpfs\": source not allowed", "drop source=")
        topts: dict[str, Any] = {}
        if "tmpfs-size" in fields:
            topts["SizeBytes"] = parse_bytes(fields.pop("tmpfs-size"), "--mount tmpfs-size")
        if "tmpfs-mode" in fields:
            mode = fields.pop("tmpfs-mode")
            if not re.fullmatch(r"[0-7]+", mode) or int(mode, 8) > 0o7777:
                raise bad_value(text, "--mount", f"invalid tmpfs-mode {mode!r}", "give octal permissions such as 1777")
            topts["Mode"] = int(mode, 8)
        if topts:
            m["TmpfsOptions"] = topts
    else:
        if source and not _volume_name_ok(source):
            raise bad_value(text, "--mount", f'"{source}" includes invalid characters for a local volume name',
                       'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed')
        vopts = {k[len("volume-"):]: fields.pop(k) for k in list(fields) if k.startswith("volume-")}
        if vopts:
            m["VolumeOptions"] = vopts
    fields.pop("consistency", None)
    if fields:
        raise bad_value(text, "--mount", f"unexpected key '{next(iter(fields))}'",
                   "keys: type, source, target, readonly, bind-propagation, tmpfs-size, tmpfs-mode")
    return m


def parse_port(text: str) -> tuple[str, list[dict[str, str]]]:
    """One ``-p`` value of a single container port -> ("80/tcp", [{"HostIp", "HostPort"}]).

    The whole syntax, ranges included, is :func:`sandbox.network.ports.parse_publish`.
    """
    from ..network.ports import parse_publish
    pairs = parse_publish(text)
    if len(pairs) != 1:
        raise bad_value(text, "-p, --publish", "a range publishes several ports",
                        "use sandbox.network.ports.parse_publish for ranges")
    return pairs[0][0], [pairs[0][1]]


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


def parse_labels(items: Iterable[str] | dict[str, str] | None, files: Iterable[str] = ()) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        k, _, v = line.partition("=")
                        out[k] = v
        except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path, or not UTF-8
            raise UsageError(f"open {path}: {_reason(e)}", hint="check the --label-file path") from None
    if isinstance(items, dict):
        out.update({str(k): str(v) for k, v in items.items()})
    else:
        for item in items or []:
            k, _, v = str(item).partition("=")
            out[k] = v
    return out
