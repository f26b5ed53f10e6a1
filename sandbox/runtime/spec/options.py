"""What ``docker run`` asks for, as the generator's input: :class:`ContainerOptions`.

The knobs are the flags' meaning, not their spelling (the engine parses the
flags and resolves user names first), with Docker's defaults: a 64 MiB
``/dev/shm``, tini as ``--init``.  Kept apart from the generator so that a
caller (the engine, ``python -m sandbox.runtime spec``, a test) can build the
options without reading how each part of ``config.json`` is made.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Where ``--init`` puts the init binary inside the container (Docker's path).
INIT_PATH_IN_CONTAINER = "/sbin/docker-init"

#: The host's init binary (Debian package ``tini``; static, so any image can run it).
DEFAULT_INIT_BINARY = "/usr/bin/tini-static"

#: Docker's default ``--shm-size``.
DEFAULT_SHM_SIZE = 64 * 1024 * 1024


@dataclass
class ResourceLimits:
    """cgroup limits, in docker's units (bytes, shares, microseconds).

    ``memory_swap`` is memory + swap like ``--memory-swap``: None means twice
    ``memory`` (Docker's default), -1 unlimited.  ``memory_swappiness`` None
    keeps the parent's; ``oom_kill_disable`` is ``--oom-kill-disable``.
    """

    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    memory_swappiness: int | None = None
    oom_kill_disable: bool = False
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None


@dataclass
class ContainerOptions:
    """Every ``docker run`` knob that ends up in ``config.json``.

    Names are resolved by the caller: ``user`` is ``"uid[:gid]"`` in numbers
    (the engine looks names up in the image's /etc/passwd), ``hostname`` is
    the short id when the user gave none.  Lists of strings use docker's
    syntax (``cap_add=["NET_ADMIN"]``, ``devices=["/dev/fuse:/dev/fuse:rwm"]``).
    """

    args: list[str] = field(default_factory=list)
    env: list[str] | Mapping[str, str] = field(default_factory=list)
    cwd: str = "/"
    user: str = "0:0"
    additional_gids: list[int] = field(default_factory=list)
    hostname: str = ""
    domainname: str = ""
    terminal: bool = False
    readonly_rootfs: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    no_new_privileges: bool = False
    #: "default", "unconfined", or a profile in Docker's JSON format.
    seccomp: str | dict[str, Any] = "default"
    #: Namespaces shared with the host: any of "pid", "ipc", "uts", "network".
    host_namespaces: Collection[str] = ()
    #: Join this network namespace (``/proc/PID/ns/net``, a bind-mounted netns).
    netns_path: str | None = None
    #: Join other namespaces by path, e.g. {"ipc": "/proc/123/ns/ipc"} (``--ipc container:ID``).
    namespace_paths: Mapping[str, str] = field(default_factory=dict)
    #: "private" or "host"; None: private (Docker: private on v2, host on v1).
    cgroupns: str | None = None
    #: Extra mounts: dicts with destination, type, source, options.
    mounts: list[dict[str, Any]] = field(default_factory=list)
    #: ``--tmpfs``: destination -> "opt,opt" (may be "").
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    shm_size: int = DEFAULT_SHM_SIZE
    #: ``--device host[:container[:perms]]``.
    devices: list[str] = field(default_factory=list)
    #: ``--ulimit``: (name, soft, hard); -1 means unlimited.
    ulimits: list[tuple[str, int, int]] = field(default_factory=list)
    sysctls: Mapping[str, str] = field(default_factory=dict)
    init: bool = False
    init_path: str = DEFAULT_INIT_BINARY
    stop_signal: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    cgroups_path: str | None = None
    resources: ResourceLimits = field(default_factory=ResourceLimits)
    oom_score_adj: int = 0
    #: Add a user namespace with these maps: (container_id, host_id, size).
    rootless: bool = False
    uid_mappings: list[tuple[int, int, int]] = field(default_factory=list)
    gid_mappings: list[tuple[int, int, int]] = field(default_factory=list)
