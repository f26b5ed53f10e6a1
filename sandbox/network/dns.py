"""The embedded name server: 127.0.0.11 inside every container on a user network, as Docker's.

Why a DNS server and not just /etc/hosts: busybox's ``nslookup`` (and any
program that speaks DNS itself) ignores /etc/hosts, and a hosts file is
written once, while the containers on a network come and go.  So each
container on a user-defined network gets a UDP socket bound to
127.0.0.11:53 *inside its own network namespace*, made and served by the
supervisor's loop.  A question is answered from the live state: the names,
network aliases and short ids of the containers on the asker's networks (a
container started later is found at once, one that left is gone at once).
Anything else is forwarded, from the host's namespace, to the resolvers in
the host's /etc/resolv.conf (a loopback resolver such as systemd-resolved's
127.0.0.53 works too, which it would not from inside the container), and
the answer relayed back.

Only the parts of RFC 1035 a stub resolver uses: one question, A answers
(AAAA and other types get an empty answer for a known name, so a resolver
does not wait for them), PTR for our addresses, NXDOMAIN or SERVFAIL.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import time
from typing import Any, Protocol
from collections.abc import Callable

ADDRESS = "127.0.0.11"
TTL = 600
FORWARD_TIMEOUT = 3.0

TYPE_A, TYPE_PTR, TYPE_AAAA = 1, 12, 28
RCODE_OK, RCODE_SERVFAIL, RCODE_NXDOMAIN = 0, 2, 3

#: name (lower case, no trailing dot) -> addresses, for the asking container; None: not ours.
Lookup = Callable[[str], "list[str] | None"]
#: address -> name, for PTR questions about our containers.
Reverse = Callable[[str], "str | None"]


class EventLoop(Protocol):
    """What the name server needs of the supervisor's loop (:class:`sandbox.supervisor.loop.Loop`)."""

    def add_reader(self, fd: int, fn: Callable[[], None]) -> None: ...

    def forget(self, fd: int) -> None: ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> Any: ...


class Question:
    __slots__ = ("id", "flags", "name", "qtype", "qclass", "end")

    def __init__(self, qid: int, flags: int, name: str, qtype: int, qclass: int, end: int) -> None:
        self.id, self.flags, self.name, self.qtype, self.qclass, self.end = qid, flags, name, qtype, qclass, end


def parse_question(data: bytes) -> Question | None:
    """The query's id and its (first) question; None for anything we cannot read."""
    if len(data) < 12:
        return None
    qid, flags, qdcount = struct.unpack_from("!HHH", data, 0)
    if flags & 0x8000 or qdcount < 1:     # a response, or no question
        return None
    labels, off = [], 12
    while True:
        if off >= len(data):
            return None
        n = data[off]
        off += 1
        if n == 0:
            break
        if n & 0xC0 or off + n > len(data):
            return None   # no compression in a question we were sent
        labels.append(data[off:off + n].decode("ascii", "replace"))
        off += n
    if off + 4 > len(data):
        return None
    qtype, qclass = struct.unpack_from("!HH", data, off)
    return Question(qid, flags, ".".join(labels).lower().rstrip("."), qtype, qclass, off + 4)


def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.strip(".").split("."):
        raw = label.encode("idna") if label else b""
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def answer(query: bytes, q: Question, rcode: int, a_records: list[str] = (),  # type: ignore[assignment]
           ptr: str | None = None) -> bytes:
    """A response to ``query``: its question echoed, our answers after it."""
    flags = 0x8000 | 0x0400 | (q.flags & 0x0100) | 0x0080 | rcode   # QR, AA, RD copied, RA
    answers = b""
    count = 0
    for addr in a_records:
        answers += struct.pack("!HHHIH", 0xC00C, TYPE_A, 1, TTL, 4) + socket.inet_aton(addr)
        count += 1
    if ptr:
        rdata = _encode_name(ptr)
        answers += struct.pack("!HHHIH", 0xC00C, TYPE_PTR, 1, TTL, len(rdata)) + rdata
        count += 1
    header = struct.pack("!HHHHHH", q.id, flags, 1, count, 0, 0)
    return header + query[12:q.end] + answers


def _reverse_name(name: str) -> str | None:
    """``5.0.222.10.in-addr.arpa`` -> ``10.222.0.5``."""
    if not name.endswith(".in-addr.arpa"):
        return None
    parts = name[: -len(".in-addr.arpa")].split(".")
    if len(parts) != 4:
        return None
    try:
        return str(ipaddress.IPv4Address(".".join(reversed(parts))))
    except ValueError:
        return None


def host_resolvers(path: str = "/etc/resolv.conf") -> list[str]:
    """The ``nameserver`` lines of the host's resolv.conf (IPv4 only)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver":
                    with contextlib.suppress(OSError):
                        socket.inet_aton(words[1])
                        out.append(words[1])
    except OSError:
        pass
    return out


class NameServer:
    """One container's 127.0.0.11: a socket in its namespace, answered on the supervisor's loop."""

    def __init__(self, loop: EventLoop, sock: socket.socket, lookup: Lookup, reverse: Reverse,
                 upstream: Callable[[], list[str]] = host_resolvers) -> None:
        self.loop, self.sock, self.lookup, self.reverse, self.upstream = loop, sock, lookup, reverse, upstream
        self._forwards: dict[int, tuple[socket.socket, tuple[str, int], float]] = {}
        loop.add_reader(sock.fileno(), self._on_query)

    def _on_query(self) -> None:
        for _ in range(64):   # a burst, then let the loop serve others
            try:
                data, peer = self.sock.recvfrom(4096)
            except BlockingIOError:
                return
            except OSError:
                return
            self.handle(data, peer)

    def handle(self, data: bytes, peer: tuple[str, int]) -> None:
        q = parse_question(data)
        if q is None:
            return
        reply = self.resolve(data, q)
        if reply is not None:
            self._send(reply, peer)
        else:
            self._forward(data, peer)

    def resolve(self, data: bytes, q: Question) -> bytes | None:
        """Our answer, or None when the name is not ours (then it is forwarded)."""
        if q.qtype == TYPE_PTR:
            addr = _reverse_name(q.name)
            name = self.reverse(addr) if addr else None
            return answer(data, q, RCODE_OK, ptr=name) if name else None
        addresses = self.lookup(q.name)
        if addresses is None:
            return None
        return answer(data, q, RCODE_OK, addresses if q.qtype == TYPE_A else [])

    def _send(self, reply: bytes, peer: tuple[str, int]) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendto(reply, peer)

    def _forward(self, data: bytes, peer: tuple[str, int]) -> None:
        servers = self.upstream()
        q = parse_question(data)
        if not servers:
            if q is not None:
                self._send(answer(data, q, RCODE_SERVFAIL), peer)
            return
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        try:
            out.connect((servers[0], 53))
            out.send(data)
        except OSError:
            out.close()
            if q is not None:
                self._send(answer(data, q, RCODE_SERVFAIL), peer)
            return
        fd = out.fileno()
        self._forwards[fd] = (out, peer, time.monotonic())
        self.loop.add_reader(fd, lambda: self._on_upstream(fd))
        self.loop.call_later(FORWARD_TIMEOUT, lambda: self._expire(fd, data))

    def _on_upstream(self, fd: int) -> None:
        entry = self._forwards.pop(fd, None)
        if entry is None:
            return
        out, peer, _ = entry
        self.loop.forget(fd)
        try:
            reply = out.recv(4096)
        except OSError:
            reply = b""
        out.close()
        if reply:
            self._send(reply, peer)

    def _expire(self, fd: int, data: bytes) -> None:
        entry = self._forwards.pop(fd, None)
        if entry is None:
            return
        out, peer, _ = entry
        self.loop.forget(fd)
        out.close()
        q = parse_question(data)
        if q is not None:
            self._send(answer(data, q, RCODE_SERVFAIL), peer)

    def close(self) -> None:
        self.loop.forget(self.sock.fileno())
        self.sock.close()
        for fd, (out, _, _) in list(self._forwards.items()):
            self.loop.forget(fd)
            out.close()
        self._forwards.clear()

