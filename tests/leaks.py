"""Snapshots of the kernel state a test could leak, and their difference.

``snapshot()`` records mount points, named network namespaces, veth
interfaces, bridges and nftables tables of ours (marked "sandbox store ..."
and named ``sandbox_*``), the host's ``ip_forward`` setting, cgroup
directories with "sandbox" in their path, and processes
that belong to the tests (children of this process, and processes that name
one of the given roots in their command line, environment or working
directory).  ``diff(before, after)`` lists what appeared in between, one
human-readable line each.  Only this process's mount and network namespaces
are looked at; that is where a leak would stay behind.
"""

from __future__ import annotations

import array
import collections
import dataclasses
import fcntl
import os
import socket
import struct

CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP_DEPTH = 4
# Empty parent cgroups an engine may keep on purpose, as Docker keeps /docker.
CGROUP_PARENTS = {"sandbox", "sandbox.slice"}


@dataclasses.dataclass(frozen=True)
class Process:
    pid: int
    start: int  # start time in clock ticks since boot: pid + start is unique
    state: str
    cmdline: str

    def __str__(self) -> str:
        zombie = " (zombie, never reaped)" if self.state == "Z" else ""
        return f"pid {self.pid}{zombie}: {self.cmdline}"


@dataclasses.dataclass(frozen=True)
class Snapshot:
    mounts: tuple[str, ...]          # mount points, a sorted multiset
    netns: frozenset[str]            # entries of /run/netns
    veths: frozenset[str]            # veth interface names
    bridges: frozenset[str]          # interfaces a store marked as its own (IFLA_IFALIAS "sandbox store ...")
    nft_tables: frozenset[str]       # nftables tables named sandbox_*
    ip_forward: str                  # /proc/sys/net/ipv4/ip_forward
    cgroups: frozenset[str]          # cgroup directories containing "sandbox"
    processes: frozenset[Process]


def _unescape(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    if "\\" not in path:
        return path
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1:i + 4].isdigit():
            out.append(chr(int(path[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points in mount order (a path stacked twice appears twice)."""
    with open(mountinfo) as f:
        return [_unescape(line.split()[4]) for line in f if line.strip()]


def mounts_below(root: str) -> list[str]:
    """Mount points at or below ``root``, in mount order."""
    root = os.path.realpath(root).rstrip("/")
    return [m for m in mount_points() if m == root or m.startswith(root + "/")]


def _netns() -> frozenset[str]:
    try:
        return frozenset(os.listdir("/run/netns"))
    except FileNotFoundError:
        return frozenset()


def _driver(ifname: str) -> str | None:
    """The interface's driver name via the ETHTOOL_GDRVINFO ioctl, or None."""
    SIOCETHTOOL, ETHTOOL_GDRVINFO = 0x8946, 0x00000003
    info = array.array("B", struct.pack("I", ETHTOOL_GDRVINFO) + bytes(192))
    addr, _ = info.buffer_info()
    ifreq = struct.pack("16sP", ifname.encode()[:15], addr)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)
    except OSError:
        return None
    return info.tobytes()[4:36].split(b"\0", 1)[0].decode(errors="replace")


def _veths() -> frozenset[str]:
    found = set()
    try:
        names = os.listdir("/sys/class/net")
    except FileNotFoundError:
        return frozenset()
    for name in names:
        driver = _driver(name)
        if driver is not None:
            if driver == "veth":
                found.add(name)
            continue
        # No ethtool answer: a peer-linked device (veth) has iflink != ifindex.
        try:
            base = f"/sys/class/net/{name}"
            with open(f"{base}/iflink") as a, open(f"{base}/ifindex") as b:
                if a.read().strip() != b.read().strip() and \
                        not os.path.exists(f"{base}/device"):
                    found.add(name)
        except OSError:
            pass
    return frozenset(found)


def _cgroups(root: str = CGROUP_ROOT, depth: int = CGROUP_DEPTH) -> frozenset[str]:
    found = set()

    def walk(path: str, level: int) -> None:
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for e in entries:
            # Skip symlinks such as cpu -> cpu,cpuacct on cgroup v1.
            if not e.is_dir(follow_symlinks=False):
                continue
            if "sandbox" in e.path[len(root):]:
                found.add(e.path)
            if level < depth:
                walk(e.path, level + 1)

    walk(root, 1)
    return frozenset(found)


def _read(path: str, mode: str = "rb") -> bytes:
    with open(path, mode) as f:
        return f.read()


def _processes(roots: tuple[str, ...]) -> frozenset[Process]:
    me = os.getpid()
    roots = tuple(os.path.realpath(r).rstrip("/") for r in roots if r)
    stat: dict[int, tuple[int, int, str]] = {}  # pid -> (ppid, start, state)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = _read(f"/proc/{entry}/stat").decode(errors="replace")
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()
        stat[int(entry)] = (int(fields[1]), int(fields[19]), fields[0])

    def mentions_root(pid: int) -> bool:
        if not roots:
            return False
        try:
            blobs = [_read(f"/proc/{pid}/cmdline").replace(b"\0", b" ")]
        except OSError:
            return False
        try:
            blobs.append(os.readlink(f"/proc/{pid}/cwd").encode())
        except OSError:
            pass
        try:
            env = _read(f"/proc/{pid}/environ").split(b"\0")
            blobs += [v for v in env if v.startswith(b"SANDBOX_ROOT=")]
        except OSError:
            pass
        return any(r.encode() in b for r in roots for b in blobs)

    # The rootless tier's namespace holder is the session's own (Podman's pause process): the
    # session stops it at its end, where the session-wide check then looks (tests/conftest.py).
    holder = os.environ.get("SANDBOX_ROOTLESS", "")
    keep = {me} | ({int(holder)} if holder.isdigit() else set())
    chosen = {pid for pid, (ppid, _, _) in stat.items()
              if pid not in keep and (ppid == me or mentions_root(pid))}
    # ... and everything below them.
    children = collections.defaultdict(list)
    for pid, (ppid, _, _) in stat.items():
        children[ppid].append(pid)
    todo = list(chosen)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in chosen and child != me:
                chosen.add(child)
                todo.append(child)

    out = set()
    for pid in chosen:
        try:
            cmd = _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").strip()
            cmd = cmd.decode(errors="replace") or f"[{_read(f'/proc/{pid}/comm').decode().strip()}]"
        except OSError:
            cmd = "?"
        _, start, state = stat[pid]
        out.add(Process(pid, start, state, cmd[:200]))
    return frozenset(out)


def _our_interfaces() -> frozenset[str]:
    out = set()
    try:
        names = os.listdir("/sys/class/net")
    except OSError:
        return frozenset()
    for name in names:
        try:
            with open(f"/sys/class/net/{name}/ifalias") as f:
                if f.read().startswith("sandbox store "):
                    out.add(name)
        except OSError:
            continue
    return frozenset(out)


def _nft_tables() -> frozenset[str]:
    """Tables named sandbox_* (through the engine's own libnftables binding; none when it is missing)."""
    if os.geteuid() != 0 or os.environ.get("SANDBOX_ROOTLESS"):
        return frozenset()   # a user (the rootless tier) can make none in the host's namespace
    try:
        from sandbox.network.firewall import _FAMILY
        from sandbox.kernel import nftables
        listing = nftables.nft_run({"nftables": [{"list": {"tables": {"family": _FAMILY}}}]})
    except Exception:  # noqa: BLE001 - no library, no rules of ours
        return frozenset()
    return frozenset(t["table"]["name"] for t in listing.get("nftables", [])
                     if "table" in t and t["table"]["name"].startswith("sandbox_"))


def _ip_forward() -> str:
    try:
        return _read("/proc/sys/net/ipv4/ip_forward", "r").strip()  # type: ignore[union-attr]
    except OSError:
        return "?"


def snapshot(roots: tuple[str, ...] | list[str] = ()) -> Snapshot:
    """The leakable kernel state now.

    ``roots`` are paths (store roots, a temp directory holding them) whose
    processes count as the tests' own; ``$SANDBOX_ROOT`` is always included.
    """
    roots = tuple(roots) + ((os.environ["SANDBOX_ROOT"],)
                            if os.environ.get("SANDBOX_ROOT") else ())
    return Snapshot(
        mounts=tuple(sorted(mount_points())),
        netns=_netns(),
        veths=_veths(),
        bridges=_our_interfaces(),
        nft_tables=_nft_tables(),
        ip_forward=_ip_forward(),
        cgroups=_cgroups(),
        processes=_processes(roots),
    )


def _cgroup_is_idle_parent(path: str) -> bool:
    if os.path.basename(path) not in CGROUP_PARENTS:
        return False
    try:
        if any(e.is_dir(follow_symlinks=False) for e in os.scandir(path)):
            return False
        for name in ("cgroup.procs", "tasks"):
            p = os.path.join(path, name)
            if os.path.exists(p) and _read(p).strip():
                return False
    except OSError:
        return True  # gone by now
    return True


def diff(before: Snapshot, after: Snapshot) -> list[str]:
    """Human-readable lines for everything in ``after`` that ``before`` lacks."""
    lines = []
    extra_mounts = collections.Counter(after.mounts) - collections.Counter(before.mounts)
    for m in sorted(extra_mounts.elements()):
        lines.append(f"mount left behind: {m}")
    for n in sorted(after.netns - before.netns):
        lines.append(f"network namespace left behind: /run/netns/{n}")
    for v in sorted(after.veths - before.veths):
        lines.append(f"veth interface left behind: {v}")
    for b in sorted(after.bridges - before.bridges):
        lines.append(f"network interface of a store left behind: {b}")
    for t in sorted(after.nft_tables - before.nft_tables):
        lines.append(f"nftables table left behind: ip {t}")
    if after.ip_forward != before.ip_forward:
        lines.append(f"net.ipv4.ip_forward left at {after.ip_forward} (was {before.ip_forward})")
    for c in sorted(after.cgroups - before.cgroups):
        if not _cgroup_is_idle_parent(c):
            lines.append(f"cgroup left behind: {c}")
    for p in sorted(after.processes - before.processes, key=lambda p: p.pid):
        lines.append(f"process left running: {p}")
    return lines
