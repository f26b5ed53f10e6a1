"""Reading and checking an OCI bundle's ``config.json`` before anything is made.

The runtime's promise is "bad input leaves nothing behind", and the cheapest
way to keep it is to refuse bad input before the first fork, mount or cgroup:
every check here is pure (or only looks at paths), and each failure raises
:class:`~sandbox.errors.InvalidSpec` naming the JSON path of the field
(``process.capabilities.bounding[3]``) and, where it can, the fix.

What is checked (runtime-spec v1.x, config.md and config-linux.md): the
required fields and their types, absolute mount destinations, known namespace
types and existing namespace paths, rlimit names, seccomp
actions, operators and syscall names, device types and device rules, id
mappings.  A ``linux.devices`` entry the rules deny is not refused: runc makes
the node all the same, and so does this runtime, with a warning
(:mod:`.devices`); an unknown capability name is a warning too, as the
spec asks (:func:`drop_unknown_capabilities`).  What the host cannot do (a capability
outside its bounding set, an rlimit above the hard limit) is not an error
here: the init clamps it and says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from .. import kernel
from ..cgroups.devices import DeviceRuleSet
from ..errors import InvalidResources, InvalidSpec
from .spec import RLIMIT_NAMES

#: Namespace type (OCI) -> the clone flag.
NAMESPACE_FLAGS: dict[str, int] = {
    "pid": kernel.CLONE_NEWPID, "network": kernel.CLONE_NEWNET, "mount": kernel.CLONE_NEWNS,
    "ipc": kernel.CLONE_NEWIPC, "uts": kernel.CLONE_NEWUTS, "user": kernel.CLONE_NEWUSER,
    "cgroup": kernel.CLONE_NEWCGROUP, "time": kernel.CLONE_NEWTIME,
}

CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

#: Syscalls newer than the libseccomp of a stable distribution (2.5.x): a
#: profile naming them is right, the library just cannot resolve them yet, so
#: they are skipped (as runc does with every unknown name) instead of refused.
RECENT_SYSCALLS = frozenset({
    "cachestat", "fchmodat2", "map_shadow_stack", "futex_wake", "futex_wait", "futex_requeue",
    "statmount", "listmount", "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules",
    "mseal", "setxattrat", "getxattrat", "listxattrat", "removexattrat", "open_tree_attr",
    "uretprobe",
})

_MOUNT_TYPES_NEED_SOURCE = {"bind", "none", ""}


def load(bundle: str) -> dict[str, Any]:
    """The checked ``config.json`` of ``bundle`` with ``root.path`` made absolute."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise InvalidSpec("", f"no config.json in bundle {bundle}",
                          hint="a bundle is a directory with config.json and a rootfs; "
                               "`python -m sandbox.runtime spec` writes a default one") from None
    except OSError as e:
        raise InvalidSpec("", f"cannot read {path}: {e.strerror}") from None
    try:
        spec = json.loads(data)
    except ValueError as e:
        raise InvalidSpec("", f"{path} is not valid JSON: {e}",
                          hint="check the file with `python -m json.tool config.json`") from None
    return check(spec, bundle)


def check(spec: Any, bundle: str) -> dict[str, Any]:
    """Check ``spec`` field by field; returns it with ``root.path`` absolute."""
    _need_type(spec, dict, "", "a JSON object")
    version = _field(spec, "ociVersion", str, "")
    if not version.startswith("1."):
        raise InvalidSpec("ociVersion", f"{version!r} is not a 1.x runtime-spec version")
    root = _field(spec, "root", dict, "")
    rootfs = _field(root, "path", str, "root")
    rootfs = os.path.normpath(os.path.join(os.path.abspath(bundle), rootfs))
    if not os.path.isdir(rootfs):
        raise InvalidSpec("root.path", f"rootfs {rootfs} does not exist or is not a directory",
                          hint="unpack an image there first (umoci unpack, or `sandbox export | tar -x`)")
    root["path"] = rootfs
    _optional(root, "readonly", bool, "root")
    _check_process(_field(spec, "process", dict, ""))
    for i, m in enumerate(_optional(spec, "mounts", list, "") or []):
        _check_mount(m, f"mounts[{i}]")
    for key in ("hostname", "domainname"):
        _optional(spec, key, str, "")
    _optional(spec, "annotations", dict, "")
    _check_hooks(_optional(spec, "hooks", dict, ""))
    _check_linux(_optional(spec, "linux", dict, "") or {})
    return spec


# --------------------------------------------------------------------------- helpers

def _where(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer",
               bool: "true or false"}


def _need_type(value: Any, kind: type, where: str, what: str | None = None) -> None:
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise InvalidSpec(where, f"must be {what or _TYPE_NAMES.get(kind, kind.__name__)}, "
                                 f"not {json.dumps(value)[:60]}")


def _field(obj: Mapping[str, Any], key: str, kind: type, parent: str) -> Any:
    where = _where(parent, key)
    if key not in obj:
        raise InvalidSpec(where, "is required but missing")
    _need_type(obj[key], kind, where)
    return obj[key]


def _optional(obj: Mapping[str, Any], key: str, kind: type, parent: str) -> Any:
    if obj.get(key) is None:
        return None
    _need_type(obj[key], kind, _where(parent, key))
    return obj[key]


def _strings(value: Any, where: str) -> list[str]:
    _need_type(value, list, where)
    for i, item in enumerate(value):
        _need_type(item, str, f"{where}[{i}]")
    return list(value)


# --------------------------------------------------------------------------- process

def _check_process(process: dict[str, Any], where: str = "process") -> None:
    args = _strings(_field(process, "args", list, where), f"{where}.args")
    if not args or not args[0]:
        raise InvalidSpec(f"{where}.args", "must name a command", hint='e.g. ["sh", "-c", "echo hi"]')
    cwd = _field(process, "cwd", str, where)
    if not cwd.startswith("/"):
        raise InvalidSpec(f"{where}.cwd", f"{cwd!r} is not an absolute path")
    _strings(process.get("env") or [], f"{where}.env")
    _optional(process, "terminal", bool, where)
    _optional(process, "noNewPrivileges", bool, where)
    _optional(process, "oomScoreAdj", int, where)
    user = _field(process, "user", dict, where)
    for key in ("uid", "gid"):
        value = _field(user, key, int, f"{where}.user")
        if value < 0:
            raise InvalidSpec(f"{where}.user.{key}", "must not be negative")
    for i, gid in enumerate(_optional(user, "additionalGids", list, f"{where}.user") or []):
        _need_type(gid, int, f"{where}.user.additionalGids[{i}]")
    _optional(user, "umask", int, f"{where}.user")
    caps = _optional(process, "capabilities", dict, where) or {}
    for name in CAPABILITY_SETS:
        _strings(caps.get(name) or [], f"{where}.capabilities.{name}")
    for i, limit in enumerate(_optional(process, "rlimits", list, where) or []):
        _check_rlimit(limit, f"{where}.rlimits[{i}]")


def drop_unknown_capabilities(process: dict[str, Any], where: str = "process") -> list[str]:
    """Take names this kernel's table lacks out of ``process.capabilities``; a warning each.

    config.md: a capability that cannot be mapped or granted MUST be logged as
    a warning, and runtimes SHOULD NOT fail for it (runc: "ignoring unknown or
    unavailable capabilities").  A typo is therefore a warning too, naming the
    field, and not an error.
    """
    if not isinstance(process.get("capabilities"), dict):
        return []
    caps = process["capabilities"] = dict(process["capabilities"])   # the caller's stays as it was
    warnings = []
    for name in CAPABILITY_SETS:
        listed = caps.get(name)
        if not listed:
            continue
        unknown = [(i, c) for i, c in enumerate(listed) if c not in kernel.CAPS]
        for i, cap in unknown:
            warnings.append(f"{where}.capabilities.{name}[{i}]: unknown capability {cap!r}, ignored "
                            "(names are as in capabilities(7), e.g. CAP_NET_ADMIN)")
        if unknown:
            caps[name] = [c for c in listed if c in kernel.CAPS]
    return warnings


def _check_rlimit(limit: Any, where: str) -> None:
    _need_type(limit, dict, where)
    kind = _field(limit, "type", str, where)
    if not kind.startswith("RLIMIT_") or kind[7:].lower() not in RLIMIT_NAMES:
        raise InvalidSpec(f"{where}.type", f"unknown resource limit {kind!r}",
                          hint="e.g. RLIMIT_NOFILE; see getrlimit(2)")
    soft = _field(limit, "soft", int, where)
    hard = _field(limit, "hard", int, where)
    if soft > hard:
        raise InvalidSpec(where, f"soft limit {soft} is above the hard limit {hard}")


# --------------------------------------------------------------------------- mounts and hooks

def _check_mount(m: Any, where: str) -> None:
    _need_type(m, dict, where)
    dest = _field(m, "destination", str, where)
    if not dest.startswith("/"):
        raise InvalidSpec(f"{where}.destination", f"{dest!r} is not an absolute path")
    kind = _optional(m, "type", str, where) or ""
    source = _optional(m, "source", str, where)
    options = _strings(m.get("options") or [], f"{where}.options")
    is_bind = kind in _MOUNT_TYPES_NEED_SOURCE and ("bind" in options or "rbind" in options)
    if kind == "bind" and not is_bind:
        m["options"] = ["rbind", *options]
        is_bind = True
    if is_bind:
        if not source:
            raise InvalidSpec(f"{where}.source", "a bind mount needs a source path")
        if not os.path.exists(source):
            raise InvalidSpec(f"{where}.source", f"bind source {source} does not exist",
                              hint="create it on the host first, or fix the path")
    elif not kind:
        raise InvalidSpec(f"{where}.type", "is required unless the mount is a bind mount")


def _check_hooks(hooks: dict[str, Any] | None) -> None:
    for stage, entries in (hooks or {}).items():
        where = f"hooks.{stage}"
        if stage in ("createContainer", "startContainer"):
            raise InvalidSpec(where, "hooks that run inside the container's namespaces are not "
                              "supported by this runtime", hint="use createRuntime/poststart "
                              "hooks, or runc for this bundle")
        if stage not in ("prestart", "createRuntime", "poststart", "poststop"):
            raise InvalidSpec(where, "unknown hook stage")
        _need_type(entries, list, where)
        for i, hook in enumerate(entries):
            _need_type(hook, dict, f"{where}[{i}]")
            path = _field(hook, "path", str, f"{where}[{i}]")
            if not path.startswith("/"):
                raise InvalidSpec(f"{where}[{i}].path", f"{path!r} is not an absolute path")
            _strings(hook.get("args") or [], f"{where}[{i}].args")
            _strings(hook.get("env") or [], f"{where}[{i}].env")
            _optional(hook, "timeout", int, f"{where}[{i}]")


# --------------------------------------------------------------------------- linux

def _check_linux(linux: dict[str, Any]) -> None:
    _check_namespaces(_optional(linux, "namespaces", list, "linux") or [])
    for key in ("uidMappings", "gidMappings"):
        for i, entry in enumerate(_optional(linux, key, list, "linux") or []):
            _need_type(entry, dict, f"linux.{key}[{i}]")
            for part in ("containerID", "hostID", "size"):
                _field(entry, part, int, f"linux.{key}[{i}]")
    devices = _optional(linux, "devices", list, "linux") or []
    for i, device in enumerate(devices):
        _check_device(device, f"linux.devices[{i}]")
    resources = _optional(linux, "resources", dict, "linux") or {}
    rules = _optional(resources, "devices", list, "linux.resources") or []
    for i, rule in enumerate(rules):
        _check_device_rule(rule, f"linux.resources.devices[{i}]")
    if rules:
        try:
            DeviceRuleSet.from_rules(rules)
        except InvalidResources as e:
            raise InvalidSpec("linux.resources.devices", Exception.__str__(e), hint=e.hint) from None
    _optional(linux, "cgroupsPath", str, "linux")
    sysctl = _optional(linux, "sysctl", dict, "linux") or {}
    for key, value in sysctl.items():
        _need_type(value, str, f"linux.sysctl.{key}")
        if "/" in key or ".." in key.split("."):
            raise InvalidSpec(f"linux.sysctl.{key}", "is not a sysctl name")
    for key in ("maskedPaths", "readonlyPaths"):
        for i, path in enumerate(_strings(linux.get(key) or [], f"linux.{key}")):
            if not path.startswith("/"):
                raise InvalidSpec(f"linux.{key}[{i}]", f"{path!r} is not an absolute path")
    propagation = _optional(linux, "rootfsPropagation", str, "linux")
    if propagation and propagation not in ("private", "rprivate", "slave", "rslave", "shared",
                                           "rshared", "unbindable", "runbindable"):
        raise InvalidSpec("linux.rootfsPropagation", f"unknown propagation {propagation!r}")
    seccomp = _optional(linux, "seccomp", dict, "linux")
    if seccomp is not None:
        _check_seccomp(seccomp)


def _check_namespaces(namespaces: list[Any]) -> None:
    seen: set[str] = set()
    for i, ns in enumerate(namespaces):
        where = f"linux.namespaces[{i}]"
        _need_type(ns, dict, where)
        kind = _field(ns, "type", str, where)
        if kind not in NAMESPACE_FLAGS:
            raise InvalidSpec(f"{where}.type", f"unknown namespace type {kind!r}",
                              hint=f"one of {', '.join(NAMESPACE_FLAGS)}")
        if kind in seen:
            raise InvalidSpec(f"{where}.type", f"namespace {kind!r} is listed twice")
        seen.add(kind)
        path = _optional(ns, "path", str, where)
        if path and not os.path.exists(path):
            raise InvalidSpec(f"{where}.path", f"namespace file {path} does not exist",
                              hint="has the process that owned it exited? use /proc/PID/ns/TYPE "
                                   "of a running process or a bind-mounted namespace")


def _check_device(device: Any, where: str) -> None:
    _need_type(device, dict, where)
    path = _field(device, "path", str, where)
    if not path.startswith("/dev/"):
        raise InvalidSpec(f"{where}.path", f"{path!r} is not below /dev")
    kind = _field(device, "type", str, where)
    if kind not in ("c", "u", "b", "p"):
        raise InvalidSpec(f"{where}.type", f"unknown device type {kind!r}",
                          hint="c (character), b (block), u (unbuffered) or p (FIFO)")
    if kind != "p":
        _field(device, "major", int, where)
        _field(device, "minor", int, where)
    for key in ("fileMode", "uid", "gid"):
        _optional(device, key, int, where)


def _check_device_rule(rule: Any, where: str) -> None:
    _need_type(rule, dict, where)
    _field(rule, "allow", bool, where)
    kind = _optional(rule, "type", str, where)
    if kind is not None and kind not in ("a", "c", "b"):
        raise InvalidSpec(f"{where}.type", f"unknown device rule type {kind!r}", hint="a, c or b")
    for key in ("major", "minor"):
        _optional(rule, key, int, where)
    access = _optional(rule, "access", str, where) or "rwm"
    if not access or set(access) - set("rwm"):
        raise InvalidSpec(f"{where}.access", f"{access!r} is not a combination of r, w and m")


#: Profiles already checked in this process (as canonical JSON): the engine
#: gives every container the same few, and checking 400 names costs 0.4 ms.
_checked_profiles: set[str] = set()


def _check_seccomp(seccomp: dict[str, Any]) -> None:
    key = json.dumps(seccomp, sort_keys=True)
    if key in _checked_profiles:
        return
    _check_seccomp_fields(seccomp)
    _checked_profiles.add(key)


def _check_seccomp_fields(seccomp: dict[str, Any]) -> None:
    where = "linux.seccomp"
    _check_action(_field(seccomp, "defaultAction", str, where), f"{where}.defaultAction")
    for i, arch in enumerate(_strings(seccomp.get("architectures") or [], f"{where}.architectures")):
        if arch not in kernel.SECCOMP_ARCHES:
            raise InvalidSpec(f"{where}.architectures[{i}]", f"unknown architecture {arch!r}",
                              hint="e.g. SCMP_ARCH_X86_64")
    for i, rule in enumerate(_optional(seccomp, "syscalls", list, where) or []):
        rw = f"{where}.syscalls[{i}]"
        _need_type(rule, dict, rw)
        for j, name in enumerate(_strings(_field(rule, "names", list, rw), f"{rw}.names")):
            if not kernel.seccomp_syscall_known(name) and name not in RECENT_SYSCALLS:
                raise InvalidSpec(f"{rw}.names[{j}]", f"unknown system call {name!r}",
                                  hint="check the spelling against syscalls(2)")
        _check_action(_field(rule, "action", str, rw), f"{rw}.action")
        for j, arg in enumerate(_optional(rule, "args", list, rw) or []):
            aw = f"{rw}.args[{j}]"
            _need_type(arg, dict, aw)
            index = _field(arg, "index", int, aw)
            if not 0 <= index <= 5:
                raise InvalidSpec(f"{aw}.index", f"{index} is not an argument index (0-5)")
            _field(arg, "value", int, aw)
            if _field(arg, "op", str, aw) not in kernel.SECCOMP_OPS:
                raise InvalidSpec(f"{aw}.op", f"unknown operator {arg['op']!r}",
                                  hint=f"one of {', '.join(kernel.SECCOMP_OPS)}")


def _check_action(action: str, where: str) -> None:
    if action not in kernel.SECCOMP_ACTIONS:
        raise InvalidSpec(where, f"unknown seccomp action {action!r}",
                          hint=f"one of {', '.join(kernel.SECCOMP_ACTIONS)}")


def namespace_flags(spec: Mapping[str, Any]) -> tuple[int, dict[str, str]]:
    """(flags of the namespaces to create, {type: path} of those to join)."""
    flags = 0
    joins: dict[str, str] = {}
    for ns in spec.get("linux", {}).get("namespaces") or []:
        if ns.get("path"):
            joins[ns["type"]] = ns["path"]
        else:
            flags |= NAMESPACE_FLAGS[ns["type"]]
    return flags, joins
