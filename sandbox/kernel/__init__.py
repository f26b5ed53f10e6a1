"""The only package that calls libc through ctypes.

Every wrapper raises :class:`sandbox.errors.KernelError` keeping the errno, the
operation and the path, so a failure reads like ``mount overlay on /x: invalid
argument`` instead of a bare ``OSError``; where a common cause is known the
error's ``hint`` says it (no root, a threaded process, ...).

The runtime uses these in runc's order (see runc's ``libcontainer/standard_init_linux.go``)::

    unshare / setns        namespaces first: everything after acts inside them
    mount, pivot_root      the root file system, in the new mount namespace
    sethostname            in the new UTS namespace
    set_no_new_privs       before seccomp, so loading the filter needs no CAP_SYS_ADMIN
    capabilities           bounding set, then capset, then ambient
    load_bpf               seccomp last before exec: the filter would block the steps above
                           (SeccompFilter.compile builds it once, in the caller)

One module per topic; arrows point down only (a topic imports ``_libc`` and at
most a topic listed above it)::

    _libc        libc loaded once, errno -> KernelError helpers, syscall numbers
    namespaces   clone flags, unshare, setns, ns_inode, sethostname, setdomainname
    mounts       mount flags and OCI options, mount, umount, pivot_root
    process      prctl: no_new_privs, pdeathsig, subreaper, name, dumpable, keepcaps;
                 close-on-exec marking
    caps         capability names and masks, bounding and ambient sets, capget, capset
                 (prctl from process)
    pidfd        pidfd_open, pidfd_send_signal, pidfd_getfd, exit status
    ids          setresuid, setresgid, setgroups, mknod
    netdev       interface_up (loopback up, two ioctls)
    resolve      openat2, open_in_root, open_beneath: paths that cannot leave a directory
    seccomp      libseccomp filters (the library loaded on first use), load_bpf (prctl from process)
    bpf          bpf(2) for cgroup v2 device programs
    nftables     firewall rules through libnftables' JSON API (the library loaded on first use)

``kernel.NAME`` and ``from sandbox.kernel import NAME`` work for every name in
``__all__``; a caller may also import a topic itself (``from sandbox.kernel import mounts``).
Importing the package loads every topic but three: seccomp, bpf and nftables
load on the first use of one of their names (a profile checked or compiled, a
cgroup v2 device program attached, a firewall table written), so a command
that only mounts never pays for them.
The other topics stay eager because a container's init calls them after
pivot_root, when the host's files are out of reach and nothing more can be
imported; the init's one lazy topic, seccomp (``load_bpf``), is imported by
``sandbox/runtime/init.py`` before it forks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _libc, caps, ids, mounts, namespaces, netdev, pidfd, process, resolve
from ._libc import *  # noqa: F403
from .caps import *  # noqa: F403
from .ids import *  # noqa: F403
from .mounts import *  # noqa: F403
from .namespaces import *  # noqa: F403
from .netdev import *  # noqa: F403
from .pidfd import *  # noqa: F403
from .process import *  # noqa: F403
from .resolve import *  # noqa: F403

#: The public names of the topics loaded on first use (their modules' ``__all__``; a test checks).
_LAZY: dict[str, tuple[str, ...]] = {
    "seccomp": ("SECCOMP_ACTIONS", "SECCOMP_OPS", "SECCOMP_ARCHES", "seccomp_available",
                "seccomp_syscall_known", "seccomp_action", "SeccompArg", "SeccompFilter", "load_bpf"),
    "bpf": ("BPF_PROG_TYPE_CGROUP_DEVICE", "BPF_CGROUP_DEVICE", "BPF_F_ALLOW_OVERRIDE",
            "BPF_F_ALLOW_MULTI", "bpf_prog_load", "bpf_prog_attach", "bpf_prog_detach",
            "bpf_prog_query", "bpf_prog_get_fd_by_id"),
    "nftables": ("nft_run",),
}
_LAZY_TOPIC = {name: topic for topic, names in _LAZY.items() for name in names}

__all__ = [*_libc.__all__, *namespaces.__all__, *mounts.__all__, *process.__all__, *caps.__all__,
           *pidfd.__all__, *ids.__all__, *netdev.__all__, *resolve.__all__, *_LAZY["seccomp"], *_LAZY["bpf"],
           *_LAZY["nftables"]]

if TYPE_CHECKING:
    from .bpf import *  # noqa: F403
    from .nftables import *  # noqa: F403
    from .seccomp import *  # noqa: F403
else:
    # Hidden from mypy: it checks every kernel.NAME against the star imports above
    # instead of typing a misspelt name as Any.
    def __getattr__(name: str) -> Any:
        topic = _LAZY_TOPIC.get(name)
        if topic is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        # __import__ rather than importlib.import_module: -X importtime shows it.
        module = __import__(f"{__name__}.{topic}", fromlist=[topic])
        # All of the topic's names at once, so later look-ups are plain attribute reads
        # (also in a forked child); a name already set here (a test's monkeypatch) stays.
        namespace = globals()
        for each in _LAZY[topic]:
            namespace.setdefault(each, getattr(module, each))
        return namespace[name]

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(__all__))
