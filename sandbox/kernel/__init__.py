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
    seccomp      libseccomp filters (the library loaded on first use), load_bpf (prctl from process)
    bpf          bpf(2) for cgroup v2 device programs

``kernel.NAME`` and ``from sandbox.kernel import NAME`` work for every name in
``__all__``; a caller may also import a topic itself (``from sandbox.kernel import mounts``).
"""

from __future__ import annotations

from . import _libc, bpf, caps, ids, mounts, namespaces, netdev, pidfd, process, seccomp
from ._libc import *  # noqa: F403
from .bpf import *  # noqa: F403
from .caps import *  # noqa: F403
from .ids import *  # noqa: F403
from .mounts import *  # noqa: F403
from .namespaces import *  # noqa: F403
from .netdev import *  # noqa: F403
from .pidfd import *  # noqa: F403
from .process import *  # noqa: F403
from .seccomp import *  # noqa: F403

__all__ = [*_libc.__all__, *namespaces.__all__, *mounts.__all__, *process.__all__, *caps.__all__,
           *pidfd.__all__, *ids.__all__, *netdev.__all__, *seccomp.__all__, *bpf.__all__]
