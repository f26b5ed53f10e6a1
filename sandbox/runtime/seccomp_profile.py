"""Docker's default seccomp policy, built in code, as an OCI ``linux.seccomp`` object.

seccomp lets a process tell the kernel "from now on, refuse these system calls".
A container's root user is still root on the same kernel as the host, so the
engine installs a filter just before it executes the container's program.  Like
Docker's, the filter is an *allowlist*: every call not named below fails with
``EPERM`` ("operation not permitted"), and a new kernel's new system calls stay
refused until someone has checked that they are safe.

What a container cannot call by default, and why (each group in one line):

* mount, umount2, pivot_root, the new mount API (fsopen, fsconfig, fsmount,
  fspick, move_mount, open_tree, mount_setattr): changing the file system tree
  is how a container would reach the host's files.  Needs CAP_SYS_ADMIN.
* unshare, setns, clone/clone3 with namespace flags: new namespaces (above all a
  new user namespace) open a large, bug-prone kernel surface.  Needs CAP_SYS_ADMIN.
* keyctl, add_key, request_key: the kernel keyring is not namespaced, so a
  container could read or fill keys of the host.  Never allowed.
* bpf, perf_event_open: load programs into the kernel / watch the whole machine.
  Need CAP_BPF or CAP_PERFMON (or CAP_SYS_ADMIN).
* init_module, finit_module, delete_module: a kernel module runs as the kernel
  itself.  Needs CAP_SYS_MODULE.
* kexec_load, kexec_file_load: replace the running kernel.  Never allowed.
* reboot: reboots the host, not the container.  Needs CAP_SYS_BOOT.
* settimeofday, clock_settime, stime: the clock is shared with the host.  Needs
  CAP_SYS_TIME (adjtimex stays allowed: reading the clock state uses it, and the
  kernel itself refuses changes without CAP_SYS_TIME).
* kcmp, pidfd_getfd, process_madvise: inspect or steal from other processes.
  Need CAP_SYS_PTRACE (ptrace and process_vm_readv/writev are allowed on kernels
  4.8 and newer, where ptrace can no longer bypass seccomp, as Docker does).
* acct: process accounting is host-wide.  Needs CAP_SYS_PACCT.
* iopl, ioperm: direct hardware port access.  Needs CAP_SYS_RAWIO.
* get_mempolicy, set_mempolicy, mbind, move_pages, migrate_pages: NUMA memory
  placement affects the whole machine.  Need CAP_SYS_NICE.
* syslog: reads the kernel log, which leaks host addresses.  Needs CAP_SYSLOG.
* open_by_handle_at: opens files by handle, ignoring the container's root (the
  2014 "shocker" escape).  Needs CAP_DAC_READ_SEARCH.
* quotactl, lookup_dcookie, fanotify_init/fanotify_mark, sethostname,
  setdomainname: host-wide administration.  Need CAP_SYS_ADMIN.
* vhangup: hangs up the terminal.  Needs CAP_SYS_TTY_CONFIG.
* swapon, swapoff, userfaultfd, io_uring_*: host-wide memory or a history of
  kernel exploits (Docker 25 dropped io_uring from its list).  Never allowed.
* personality other than the five harmless values: some personalities turn off
  address randomisation.  Only 0x0, 0x8, 0x20000, 0x20008, 0xffffffff (query).
* socket(AF_VSOCK, ...): talks to the hypervisor, outside any network namespace.
* obsolete calls (uselib, _sysctl, nfsservctl, vm86, create_module, ustat, ...):
  unused by modern programs and a place where old bugs live.

``clone3`` fails with ``ENOSYS`` instead of ``EPERM``: a filter cannot look into
the structure clone3 takes, so the profile pretends clone3 does not exist and
glibc falls back to ``clone``, whose flags argument it can check.

The rules are written in Docker's own profile format (``includes``/``excludes``
by capability, architecture and kernel version) and go through
:func:`from_docker_profile`, the same converter that reads a user's
``--security-opt seccomp=FILE``.  Syscall names of every architecture the
filter covers are listed (``fcntl64``, ``socketcall``, ...); a filter loader must
skip names its architecture does not have, as runc does.

Reference: seccomp(2), Documentation/userspace-api/seccomp_filter.rst, the OCI
runtime spec ``config-linux.md#seccomp`` and docs.docker.com/engine/security/seccomp/.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import UsageError
from ..kernel import (CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID,
                      CLONE_NEWUSER, CLONE_NEWUTS)

ERRNO_EPERM = 1
ERRNO_ENOSYS = 38

# The clone flags that create namespaces (values kept in one place: sandbox.kernel.namespaces).
CLONE_NAMESPACE_FLAGS = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC
                         | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

#: personality(2) values a normal program uses: PER_LINUX, PER_LINUX32,
#: UNAME26, UNAME26|PER_LINUX32, and 0xffffffff which only queries.
ALLOWED_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

AF_VSOCK = 40

ACTIONS = frozenset({
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
})
OPERATORS = frozenset({
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
    "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
})

#: Docker's architecture names (Go's GOARCH, "x86" for 386) -> the seccomp
#: architectures a filter for that host covers (native first, then the
#: compat ABIs a binary could use to slip past a native-only filter).
ARCHITECTURES: dict[str, tuple[str, ...]] = {
    "amd64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "arm64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "x86": ("SCMP_ARCH_X86",),
    "arm": ("SCMP_ARCH_ARM",),
    "ppc64le": ("SCMP_ARCH_PPC64LE",),
    "s390x": ("SCMP_ARCH_S390X", "SCMP_ARCH_S390"),
    "riscv64": ("SCMP_ARCH_RISCV64",),
}

_ARCH_ALIASES = {
    "x86_64": "amd64", "amd64": "amd64", "x64": "amd64",
    "aarch64": "arm64", "arm64": "arm64",
    "i386": "x86", "i486": "x86", "i586": "x86", "i686": "x86", "x86": "x86", "386": "x86",
    "armv7l": "arm", "armv6l": "arm", "armhf": "arm", "arm": "arm",
    "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
}


def native_arch(arch: str | None = None) -> str:
    """Docker's name for ``arch`` (``uname -m`` style or Go style); the host's when None."""
    machine = (arch or platform.machine()).lower()
    try:
        return _ARCH_ALIASES[machine]
    except KeyError:
        raise UsageError(f"seccomp: unsupported architecture {machine!r}",
                         hint="known: " + ", ".join(sorted(_ARCH_ALIASES))) from None


# ---------------------------------------------------------------------------
# The allowlist, by topic.  32-bit and time64 names are listed too: the filter
# also covers the host's compat ABIs (SCMP_ARCH_X86 on x86_64, ARM on arm64).

_FILES = (
    "access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range",
    "creat", "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
    "fallocate", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
    "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fremovexattr",
    "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
    "ftruncate64", "futimesat", "getcwd", "getdents", "getdents64", "getxattr", "lchown",
    "lchown32", "lgetxattr", "link", "linkat", "listxattr", "llistxattr", "_llseek",
    "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "mkdir", "mkdirat", "mknod",
    "mknodat", "name_to_handle_at", "newfstatat", "open", "openat", "openat2", "read",
    "readahead", "readlink", "readlinkat", "readv", "pread64", "preadv", "preadv2", "pwrite64",
    "pwritev", "pwritev2", "removexattr", "rename", "renameat", "renameat2", "rmdir",
    "sendfile", "sendfile64", "setxattr", "splice", "stat", "stat64", "statfs", "statfs64",
    "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "tee", "truncate",
    "truncate64", "umask", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64",
    "utimes", "vmsplice", "write", "writev", "cachestat",
)
_MEMORY = (
    "brk", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret",
    "mincore", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mremap", "mseal",
    "msync", "munlock", "munlockall", "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect",
    "remap_file_pages",
)
_PROCESSES = (
    "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "getcpu",
    "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups",
    "getgroups32", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getresgid",
    "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage",
    "getsid", "get_thread_area", "gettid", "getuid", "getuid32", "ioprio_get", "ioprio_set",
    "kill", "pidfd_open", "pidfd_send_signal", "prctl", "prlimit64", "process_mrelease",
    "rseq", "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval",
    "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr", "sched_setparam",
    "sched_setscheduler", "sched_yield", "seccomp", "setfsgid", "setfsgid32", "setfsuid",
    "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setpgid", "setpriority",
    "setregid", "setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32",
    "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid", "set_thread_area",
    "set_tid_address", "setuid", "setuid32", "tgkill", "tkill", "ugetrlimit", "vfork", "wait4",
    "waitid", "waitpid", "landlock_add_rule", "landlock_create_ruleset",
    "landlock_restrict_self",
)
_SIGNALS_AND_TIME = (
    "adjtimex", "alarm", "clock_adjtime", "clock_adjtime64", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "getitimer", "gettimeofday", "nanosleep", "pause",
    "restart_syscall", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo", "setitimer", "sigaltstack", "signalfd", "signalfd4", "sigprocmask",
    "sigreturn", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
    "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "sysinfo", "uname",
)
_WAITING_AND_IPC = (
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "futex",
    "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel",
    "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_setup",
    "io_submit", "ioctl", "ipc", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl",
    "msgget", "msgrcv", "msgsnd", "_newselect", "pipe", "pipe2", "poll", "ppoll",
    "ppoll_time64", "pselect6", "pselect6_time64", "select", "semctl", "semget", "semop",
    "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget", "getrandom",
)
_SOCKETS = (  # socket itself has its own rule (no AF_VSOCK)
    "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt",
    "listen", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send",
    "sendmmsg", "sendmsg", "sendto", "setsockopt", "shutdown", "socketcall", "socketpair",
)

#: Allowed for every container, whatever its capabilities.
ALLOWED_SYSCALLS: frozenset[str] = frozenset(
    _FILES + _MEMORY + _PROCESSES + _SIGNALS_AND_TIME + _WAITING_AND_IPC + _SOCKETS)

#: Allowed only on some architectures (Docker's names, see ARCHITECTURES).
ARCH_SYSCALLS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("amd64", "x32"), ("arch_prctl",)),
    (("amd64", "x32", "x86"), ("modify_ldt",)),
    (("arm", "arm64"), ("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2",
                        "breakpoint", "cacheflush", "set_tls")),
    (("ppc64le",), ("sync_file_range2", "swapcontext")),
    (("riscv64",), ("riscv_flush_icache",)),
)

_NEW_MOUNT_API = ("fsconfig", "fsmount", "fsopen", "fspick", "mount_setattr", "move_mount",
                  "open_tree")

#: capability -> the calls it unlocks.  A call listed under two capabilities
#: (bpf, perf_event_open, syslog) is allowed when the container has either.
CAPABILITY_SYSCALLS: dict[str, tuple[str, ...]] = {
    "CAP_SYS_ADMIN": ("mount", "umount", "umount2", "pivot_root", *_NEW_MOUNT_API, "unshare",
                      "setns", "clone", "clone3", "bpf", "perf_event_open", "fanotify_init",
                      "fanotify_mark", "lookup_dcookie", "quotactl", "quotactl_fd",
                      "sethostname", "setdomainname", "syslog"),
    "CAP_SYS_PTRACE": ("ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
                       "pidfd_getfd", "process_madvise"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "CAP_SYS_MODULE": ("init_module", "finit_module", "delete_module"),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_NICE": ("get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind",
                     "move_pages", "migrate_pages"),
    "CAP_SYSLOG": ("syslog",),
    "CAP_BPF": ("bpf",),
    "CAP_PERFMON": ("perf_event_open",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
}

#: Allowed without CAP_SYS_PTRACE from this kernel on (4.8 closed the ptrace
#: seccomp bypass), as Docker does.
PTRACE_MIN_KERNEL = "4.8"

#: Refused even with every capability (only ``seccomp=unconfined`` lifts them).
NEVER_ALLOWED = (
    "keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load", "swapon", "swapoff",
    "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "uselib",
    "_sysctl", "nfsservctl", "vm86", "vm86old", "create_module", "get_kernel_syms",
    "query_module", "ustat", "sysfs", "bdflush",
)


def docker_default_profile() -> dict[str, Any]:
    """The default policy in Docker's profile format (what ``seccomp=FILE`` reads)."""
    allow = "SCMP_ACT_ALLOW"
    rules: list[dict[str, Any]] = [{"names": sorted(ALLOWED_SYSCALLS), "action": allow}]
    rules.append({"names": ["ptrace", "process_vm_readv", "process_vm_writev"], "action": allow,
                  "includes": {"minKernel": PTRACE_MIN_KERNEL}})
    rules.append({"names": ["socket"], "action": allow,
                  "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}]})
    rules += [{"names": ["personality"], "action": allow,
               "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]}
              for value in ALLOWED_PERSONALITIES]
    rules += [{"names": list(names), "action": allow, "includes": {"arches": list(arches)}}
              for arches, names in ARCH_SYSCALLS]
    rules += [{"names": list(names), "action": allow, "includes": {"caps": [cap]}}
              for cap, names in CAPABILITY_SYSCALLS.items()]
    # Without CAP_SYS_ADMIN: clone only without namespace flags (arg 0 on all
    # architectures but s390, which swaps the first two arguments), and clone3
    # "does not exist" so that libc falls back to clone.
    rules.append({"names": ["clone"], "action": allow,
                  "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                            "op": "SCMP_CMP_MASKED_EQ"}],
                  "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}})
    rules.append({"names": ["clone"], "action": allow,
                  "args": [{"index": 1, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                            "op": "SCMP_CMP_MASKED_EQ"}],
                  "includes": {"arches": ["s390", "s390x"]},
                  "excludes": {"caps": ["CAP_SYS_ADMIN"]}})
    rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ERRNO_ENOSYS,
                  "excludes": {"caps": ["CAP_SYS_ADMIN"]}})
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": ERRNO_EPERM,
        "archMap": [{"architecture": arches[0], "subArchitectures": list(arches[1:])}
                    for arches in ARCHITECTURES.values()],
        "syscalls": rules,
    }


def default_profile(capabilities: Iterable[str], arch: str | None = None, *,
                    kernel: str | None = None) -> dict[str, Any]:
    """Docker's default policy for a container with ``capabilities`` (its bounding set).

    ``arch`` is the host architecture (``x86_64``, ``aarch64``, ... ; the host's
    when None) and ``kernel`` the kernel release (``platform.release()`` when
    None), which decides the ptrace rule.
    """
    return from_docker_profile(docker_default_profile(), capabilities, arch, kernel=kernel)


def from_docker_profile(profile: Mapping[str, Any], capabilities: Iterable[str],
                        arch: str | None = None, *, kernel: str | None = None) -> dict[str, Any]:
    """Turn a profile in Docker's JSON format into an OCI ``linux.seccomp`` object.

    Follows moby's ``profiles/seccomp``: ``archMap`` picks the host's entry and
    its sub-architectures (or ``architectures`` is taken as it is); a rule is
    kept when all its ``includes.caps`` are in ``capabilities``, the host is in
    ``includes.arches`` and the kernel is at least ``includes.minKernel``, and
    dropped when any ``excludes.caps`` is held or the host is in
    ``excludes.arches``.  A malformed profile raises :class:`UsageError`.
    """
    where = "seccomp profile"
    native = native_arch(arch)
    caps = {_cap_name(c) for c in capabilities}
    release = kernel if kernel is not None else platform.release()
    if not isinstance(profile, Mapping):
        raise UsageError(f"{where}: expected a JSON object, got {type(profile).__name__}")
    default_action = profile.get("defaultAction")
    _check_action(default_action, f"{where}: defaultAction")
    if profile.get("architectures") and profile.get("archMap"):
        raise UsageError(f"{where}: use either 'architectures' or 'archMap', not both")
    out: dict[str, Any] = {"defaultAction": default_action,
                           "architectures": _architectures(profile, native)}
    for key in ("defaultErrnoRet", "flags", "listenerPath", "listenerMetadata"):
        if profile.get(key) is not None:
            out[key] = profile[key]
    rules = profile.get("syscalls") or []
    if not isinstance(rules, list):
        raise UsageError(f"{where}: 'syscalls' must be a list")
    out["syscalls"] = [_oci_rule(rule, i, where)
                       for i, rule in enumerate(rules)
                       if _applies(rule, native, caps, release, f"{where}: syscalls[{i}]")]
    return out


def _architectures(profile: Mapping[str, Any], native: str) -> list[str]:
    if profile.get("architectures"):
        return list(profile["architectures"])
    wanted = ARCHITECTURES.get(native, ())
    for entry in profile.get("archMap") or []:
        if wanted and entry.get("architecture") == wanted[0]:
            return [entry["architecture"], *(entry.get("subArchitectures") or [])]
    return []


def _applies(rule: Mapping[str, Any], native: str, caps: set[str], kernel: str,
             where: str) -> bool:
    if not isinstance(rule, Mapping):
        raise UsageError(f"{where}: expected an object")
    excludes = rule.get("excludes") or {}
    if native in (excludes.get("arches") or []):
        return False
    if any(_cap_name(c) in caps for c in excludes.get("caps") or []):
        return False
    if excludes.get("minKernel") and _kernel_at_least(kernel, excludes["minKernel"], where):
        return False
    includes = rule.get("includes") or {}
    if includes.get("arches") and native not in includes["arches"]:
        return False
    if not all(_cap_name(c) in caps for c in includes.get("caps") or []):
        return False
    if includes.get("minKernel") and not _kernel_at_least(kernel, includes["minKernel"], where):
        return False
    return True


def _oci_rule(rule: Mapping[str, Any], index: int, where: str) -> dict[str, Any]:
    where = f"{where}: syscalls[{index}]"
    if rule.get("name") and rule.get("names"):
        raise UsageError(f"{where}: use either 'name' or 'names', not both")
    names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
    if not names:
        raise UsageError(f"{where}: a rule needs 'names'")
    _check_action(rule.get("action"), f"{where}: action")
    out: dict[str, Any] = {"names": names, "action": rule["action"]}
    if rule.get("errnoRet") is not None:
        out["errnoRet"] = int(rule["errnoRet"])
    if rule.get("args"):
        out["args"] = [_oci_arg(arg, f"{where}: args") for arg in rule["args"]]
    return out


def _oci_arg(arg: Mapping[str, Any], where: str) -> dict[str, Any]:
    op = arg.get("op")
    if op not in OPERATORS:
        raise UsageError(f"{where}: unknown operator {op!r}",
                         hint="use one of " + ", ".join(sorted(OPERATORS)))
    index = int(arg.get("index", 0))
    if not 0 <= index <= 5:
        raise UsageError(f"{where}: argument index {index} is not in 0..5")
    out = {"index": index, "value": int(arg.get("value", 0)), "op": op}
    if arg.get("valueTwo") is not None or op == "SCMP_CMP_MASKED_EQ":
        out["valueTwo"] = int(arg.get("valueTwo") or 0)
    return out


def _check_action(action: Any, where: str) -> None:
    if action not in ACTIONS:
        raise UsageError(f"{where}: unknown action {action!r}",
                         hint="use one of " + ", ".join(sorted(ACTIONS)))


def _cap_name(name: str) -> str:
    name = name.upper()
    return name if name.startswith("CAP_") else "CAP_" + name


def _version(text: str) -> tuple[int, ...]:
    match = re.match(r"(\d+)(?:\.(\d+))?", text.strip())
    if not match:
        raise ValueError(text)
    return tuple(int(part or 0) for part in match.groups())


def _kernel_at_least(kernel: str, minimum: str, where: str) -> bool:
    try:
        wanted = _version(minimum)
    except ValueError:
        raise UsageError(f"{where}: minKernel {minimum!r} is not a version like '4.8'") from None
    try:
        return _version(kernel) >= wanted
    except ValueError:
        return False


# ---------------------------------------------------------------------------
# Reading a filter back: which action would the kernel take?  For tests and for
# labs that explain a refusal ("why did mount fail?").

def syscall_action(seccomp: Mapping[str, Any] | None, name: str,
                   args: Sequence[int] = ()) -> tuple[str, int | None]:
    """The action (and errno) ``seccomp`` gives ``name`` called with ``args``.

    The first rule naming the call whose argument conditions all hold decides;
    otherwise the default action does.  ``None`` (no filter) allows everything.
    """
    if seccomp is None:
        return "SCMP_ACT_ALLOW", None
    for rule in seccomp.get("syscalls", []):
        if name in rule["names"] and all(_arg_holds(a, args) for a in rule.get("args", [])):
            errno = rule.get("errnoRet", seccomp.get("defaultErrnoRet", ERRNO_EPERM)) \
                if rule["action"] == "SCMP_ACT_ERRNO" else None
            return rule["action"], errno
    action = seccomp["defaultAction"]
    errno = seccomp.get("defaultErrnoRet", ERRNO_EPERM) if action == "SCMP_ACT_ERRNO" else None
    return action, errno


def is_allowed(seccomp: Mapping[str, Any] | None, name: str, args: Sequence[int] = ()) -> bool:
    """True when ``seccomp`` lets ``name`` through with ``args``."""
    return syscall_action(seccomp, name, args)[0] == "SCMP_ACT_ALLOW"


def _arg_holds(cond: Mapping[str, Any], args: Sequence[int]) -> bool:
    mask = (1 << 64) - 1
    actual = (args[cond["index"]] if cond["index"] < len(args) else 0) & mask
    value = int(cond["value"]) & mask
    op = cond["op"]
    if op == "SCMP_CMP_MASKED_EQ":
        return actual & value == int(cond.get("valueTwo", 0)) & mask
    compare = {
        "SCMP_CMP_NE": actual != value, "SCMP_CMP_EQ": actual == value,
        "SCMP_CMP_LT": actual < value, "SCMP_CMP_LE": actual <= value,
        "SCMP_CMP_GT": actual > value, "SCMP_CMP_GE": actual >= value,
    }
    return compare[op]
