"""Published ports: docker's ``-p`` syntax, and holding a host port for a container.

``-p [hostip:][hostport:]containerport[/tcp|udp]`` with ranges on either
side (``8000-8002:80-82``; a host range for one container port means "any
one of these").  Parsing is pure and cheap: a cold ``sandbox run`` does it
before anything else.

A published port is made by DNAT rules (:mod:`firewall`), which take packets
before any socket sees them.  So that no other program can later open the
same port and be silently shadowed, and so that "port in use" is found
before the container starts, the supervisor also binds a socket to each
published host port and keeps it for as long as the rules exist: the
kernel's own port table is the reservation (docker-proxy does the same by
listening).  When the bind fails, :func:`who_holds` names the process.
"""

from __future__ import annotations

import errno
import os
import socket
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any

from ..errors import PortInUse, UsageError

PROTOCOLS = ("tcp", "udp")


def _bad(text: str, why: str) -> UsageError:
    return UsageError(f'invalid argument "{text}" for "-p, --publish" flag: {why}',
                      hint="use [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp], e.g. 8080:80 or 127.0.0.1:8080:80")


def _port_range(text: str, what: str, original: str) -> tuple[int, int]:
    first, sep, last = text.partition("-")
    try:
        lo = int(first)
        hi = int(last) if sep else lo
    except ValueError:
        raise _bad(original, f"invalid {what}: {text}") from None
    for p in (lo, hi):
        if not 1 <= p <= 65535:
            raise _bad(original, f"invalid {what}: {p} is not a port (1-65535)")
    if hi < lo:
        raise _bad(original, f"invalid {what}: the range {text} ends before it starts")
    return lo, hi


def parse_publish(text: str) -> list[tuple[str, dict[str, str]]]:
    """One ``-p`` value as ``[("80/tcp", {"HostIp": ..., "HostPort": ...}), ...]`` (one per container port)."""
    spec, _, proto = str(text).partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise _bad(text, f"invalid proto: {proto}")
    if spec.startswith("["):
        raise _bad(text, "IPv6 host addresses are not supported")
    parts = spec.split(":")
    if len(parts) > 3:
        raise _bad(text, "too many colons")
    ip, host = "", ""
    if len(parts) == 3:
        ip, host, container = parts
    elif len(parts) == 2:
        host, container = parts
    else:
        container = parts[0]
    if ip:
        import ipaddress   # only here: a cold `sandbox run -p 80` does not pay for it
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise _bad(text, f"invalid IP address: {ip}") from None
    c_lo, c_hi = _port_range(container, "containerPort", text)
    if not host:
        return [(f"{p}/{proto}", {"HostIp": ip, "HostPort": ""}) for p in range(c_lo, c_hi + 1)]
    h_lo, h_hi = _port_range(host, "hostPort", text)
    n = c_hi - c_lo + 1
    if h_hi - h_lo + 1 == n:
        return [(f"{c_lo + i}/{proto}", {"HostIp": ip, "HostPort": str(h_lo + i)}) for i in range(n)]
    if n == 1:
        return [(f"{c_lo}/{proto}", {"HostIp": ip, "HostPort": f"{h_lo}-{h_hi}"})]
    raise _bad(text, f"port ranges don't match in length: {host} and {container}")


def split_key(key: str) -> tuple[int, str]:
    """``"80/tcp"`` -> (80, "tcp")."""
    port, _, proto = key.partition("/")
    return int(port), (proto or "tcp")


class Reservation:
    """A bound socket on a host port, held while the port is published."""

    def __init__(self, sock: socket.socket, ip: str, port: int, proto: str) -> None:
        self.sock, self.ip, self.port, self.proto = sock, ip, port, proto

    def close(self) -> None:
        self.sock.close()


def reserve(ip: str, host_port: str, proto: str) -> Reservation:
    """Bind ``ip:host_port`` (any free port for "", the first free one of a range "a-b")."""
    address = ip or "0.0.0.0"
    if not host_port:
        candidates = [0]
    elif "-" in host_port:
        lo, _, hi = host_port.partition("-")
        candidates = list(range(int(lo), int(hi) + 1))
    else:
        candidates = [int(host_port)]
    last: OSError | None = None
    for port in candidates:
        sock = socket.socket(socket.AF_INET, (socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
                             | socket.SOCK_CLOEXEC)
        try:
            sock.bind((address, port))
        except OSError as e:
            sock.close()
            last = e
            continue
        return Reservation(sock, ip or "0.0.0.0", sock.getsockname()[1], proto)
    assert last is not None
    if last.errno == errno.EADDRINUSE:
        port_text = host_port if "-" in host_port else str(candidates[0])
        holder = who_holds(int(candidates[0]), proto) if len(candidates) == 1 else None
        raise PortInUse(f"Bind for {address}:{port_text}/{proto} failed: port is already allocated"
                        + (f" (held by {holder})" if holder else ""),
                        hint="stop what holds it, or publish another host port (-p OTHER:CONTAINERPORT)")
    if last.errno == errno.EADDRNOTAVAIL:
        raise UsageError(f"cannot publish on {address}: this host has no such address",
                         hint="use an address of this host, or leave the address out") from None
    raise PortInUse(f"cannot reserve {address}:{host_port or 'a port'}/{proto}: {os.strerror(last.errno or 0)}",
                    hint="publish another host port")


def _socket_inodes(port: int, proto: str) -> set[str]:
    """Inodes of sockets bound to ``port`` (any address), from /proc/net/{tcp,udp}{,6}."""
    inodes: set[str] = set()
    for name in (proto, proto + "6"):
        try:
            with open(f"/proc/net/{name}") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        if proto == "udp" or fields[3] == "0A":   # TCP: only listeners hold a port
                            inodes.add(fields[9])
        except (OSError, StopIteration, ValueError):
            continue
    return inodes


def who_holds(port: int, proto: str = "tcp") -> str | None:
    """"pid 123 (nginx)" for the process with a socket on ``port``, if this process may look."""
    inodes = {f"socket:[{i}]" for i in _socket_inodes(port, proto) if i != "0"}
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    with open(f"/proc/{pid}/comm") as f:
                        return f"pid {pid} ({f.read().strip()})"
        except OSError:
            continue
    return "another process"


def bindings_text(ports: dict[str, Any] | None) -> str:
    """docker ps's PORTS column: ``0.0.0.0:18080->80/tcp, 443/tcp``."""
    out: list[str] = []
    for key in sorted(ports or {}, key=lambda k: (split_key(k)[0], k)):
        bound = (ports or {}).get(key) or []
        if not bound:
            out.append(key)
        for b in bound:
            out.append(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{key}")
    return ", ".join(out)
