"""The ``linux`` section: namespaces, id mappings, devices, resources, sysctls, masked paths, seccomp.

Also the checks of namespace options that must fail before anything is
built (:func:`check_namespaces`), since which namespaces are private decides
which sysctls may be set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...errors import UsageError
from .. import seccomp_profile
from .devices import device_config
from .options import ContainerOptions, ResourceLimits

#: Namespaces a container gets, in the order a runtime should list them.
NAMESPACES = ("pid", "network", "ipc", "uts", "mount", "cgroup")

#: Hidden from the container (a /dev/null bind for files, an empty read-only
#: tmpfs for directories): they leak host details or poke hardware.
#: /proc/kcore is the host's memory; /proc/keys the host's keyrings;
#: /proc/timer_list and sched_debug reveal host tasks; /sys/firmware holds
#: ACPI tables and EFI variables; powercap gives RAPL energy counters, a side
#: channel (CVE-2020-8694).  A runtime skips paths that do not exist.
MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)

#: Visible but read-only: writing there would change the host kernel
#: (/proc/sys sysctls, /proc/sysrq-trigger can reboot the machine).
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)

#: sysctls that are namespaced, and which namespace must be private for them
#: (moby ``opts.ValidateSysctl``); all others would change the host.
_SYSCTL_IPC = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
               "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")

_SYSCTL_UTS = ("kernel.domainname", "kernel.hostname")


def check_namespaces(opts: ContainerOptions) -> None:
    """Refuse host namespaces, joins and cgroupns modes that cannot be made."""
    known = {"pid", "ipc", "uts", "network"}
    unknown = set(opts.host_namespaces) - known
    if unknown:
        raise UsageError(f"cannot share namespace(s) {', '.join(sorted(unknown))} with the host",
                         hint="host namespaces can be: " + ", ".join(sorted(known)))
    joins = dict(opts.namespace_paths)
    if opts.netns_path:
        joins["network"] = opts.netns_path
    for kind in joins:
        if kind not in NAMESPACES and kind != "user":
            raise UsageError(f"cannot join a {kind!r} namespace",
                             hint="known: " + ", ".join(NAMESPACES + ("user",)))
        if kind in opts.host_namespaces:
            raise UsageError(f"the {kind} namespace cannot be both the host's and {joins[kind]}")
    if opts.cgroupns not in (None, "private", "host"):
        raise UsageError(f"invalid cgroupns mode {opts.cgroupns!r}",
                         hint="use 'private' or 'host'")


def linux_config(opts: ContainerOptions, caps: list[str], cgroup_version: str, arch: str | None,
                 kernel: str | None,
                 host_device_list: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """The ``linux`` section of config.json for ``opts``."""
    linux: dict[str, Any] = {"namespaces": _namespaces(opts, cgroup_version)}
    if opts.rootless:
        if not opts.uid_mappings or not opts.gid_mappings:
            raise UsageError("rootless mode needs uid and gid mappings",
                             hint="map at least container id 0 to your own uid and gid")
        linux["uidMappings"] = _id_mappings(opts.uid_mappings)
        linux["gidMappings"] = _id_mappings(opts.gid_mappings)
    devices, rules = device_config(opts, host_device_list)
    linux["devices"] = devices
    linux["resources"] = _resources(opts.resources, rules)
    if opts.cgroups_path:
        linux["cgroupsPath"] = opts.cgroups_path
    sysctls = _sysctls(opts)
    if sysctls:
        linux["sysctl"] = sysctls
    if not opts.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    # --privileged turns the default filter off; a profile file the user
    # named explicitly still applies (as in Docker).
    if not opts.privileged or isinstance(opts.seccomp, Mapping):
        seccomp = _seccomp(opts.seccomp, caps, arch, kernel)
        if seccomp is not None:
            linux["seccomp"] = seccomp
    return linux


def _namespaces(opts: ContainerOptions, cgroup_version: str) -> list[dict[str, str]]:
    joins = dict(opts.namespace_paths)
    if opts.netns_path:
        joins["network"] = opts.netns_path
    cgroupns = opts.cgroupns or "private"
    out: list[dict[str, str]] = []
    if opts.rootless or "user" in joins:
        out.append(_namespace("user", joins.get("user")))
    for kind in NAMESPACES:
        if kind in opts.host_namespaces or (kind == "cgroup" and cgroupns == "host"):
            continue
        out.append(_namespace(kind, joins.get(kind)))
    return out


def _namespace(kind: str, path: str | None) -> dict[str, str]:
    return {"type": kind, "path": path} if path else {"type": kind}


def _id_mappings(mappings: Iterable[tuple[int, int, int]]) -> list[dict[str, int]]:
    return [{"containerID": c, "hostID": h, "size": s} for c, h, s in mappings]


def _resources(limits: ResourceLimits, device_rules: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"devices": device_rules}
    memory: dict[str, int] = {}
    if limits.memory:
        memory["limit"] = limits.memory
        swap = limits.memory_swap if limits.memory_swap is not None else 2 * limits.memory
        memory["swap"] = swap
        if swap != -1 and swap < limits.memory:
            raise UsageError("--memory-swap must be at least --memory",
                             hint="--memory-swap is memory plus swap; -1 means unlimited swap")
    elif limits.memory_swap not in (None, 0):
        raise UsageError("--memory-swap needs --memory")
    if limits.memory_reservation:
        memory["reservation"] = limits.memory_reservation
    if limits.memory_swappiness is not None:
        memory["swappiness"] = limits.memory_swappiness
    if limits.oom_kill_disable:
        memory["disableOOMKiller"] = True
    if memory:
        out["memory"] = memory
    cpu = {key: value for key, value in (("shares", limits.cpu_shares),
                                         ("quota", limits.cpu_quota),
                                         ("period", limits.cpu_period),
                                         ("cpus", limits.cpuset_cpus),
                                         ("mems", limits.cpuset_mems)) if value}
    if cpu:
        out["cpu"] = cpu
    if limits.pids_limit:
        out["pids"] = {"limit": limits.pids_limit}
    return out


def _sysctls(opts: ContainerOptions) -> dict[str, str]:
    host = set(opts.host_namespaces)
    for key in opts.sysctls:
        if key in _SYSCTL_IPC or key.startswith("fs.mqueue."):
            needs = "ipc"
        elif key in _SYSCTL_UTS:
            needs = "uts"
        elif key.startswith("net."):
            needs = "network"
        else:
            raise UsageError(f"sysctl {key!r} is not allowed: it is not namespaced and would "
                             "change the host", hint="only net.*, fs.mqueue.*, kernel.msg*/sem/shm* "
                             "and kernel.hostname/domainname can be set per container")
        if needs in host:
            raise UsageError(f"sysctl {key!r} cannot be set while sharing the host's {needs} "
                             f"namespace")
    return {k: str(v) for k, v in opts.sysctls.items()}


_DEFAULT_PROFILES: dict[tuple[tuple[str, ...], str | None, str | None], str] = {}


def _seccomp(choice: str | dict[str, Any], caps: list[str], arch: str | None,
             kernel: str | None) -> dict[str, Any] | None:
    if isinstance(choice, Mapping):
        return seccomp_profile.from_docker_profile(choice, caps, arch, kernel=kernel)
    if choice == "unconfined":
        return None
    if choice == "default":
        # The same few capability sets come back container after container: building the
        # profile from Docker's took 0.6 ms each time, reading back its JSON takes a tenth
        # of that (and every spec gets its own copy, which its caller may change).
        key = (tuple(caps), arch, kernel)
        text = _DEFAULT_PROFILES.get(key)
        if text is None:
            text = _DEFAULT_PROFILES[key] = json.dumps(seccomp_profile.default_profile(caps, arch, kernel=kernel))
        profile: dict[str, Any] = json.loads(text)
        return profile
    raise UsageError(f"invalid seccomp option {choice!r}",
                     hint="use 'default', 'unconfined' or a profile file (seccomp=FILE)")
