"""Network test helpers: a network namespace playing "the internet", and what the host looks like.

The tests only ever send traffic to loopback, to the host's own addresses,
or to addresses inside namespaces they created: "the internet" is a network
namespace made here (``ip netns add``) with a veth to the host, a route,
a small HTTP server that answers with the address it saw the request come
from -- so a test can check that outbound traffic was masqueraded -- and a
name server that answers every A question with INET_ANSWER.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

INET_HOST = "198.51.100.1"      # TEST-NET-2: the host's end of the veth
INET_ADDR = "198.51.100.2"      # the "internet" server

#: What the "internet" name server answers for every A question.
INET_ANSWER = "203.0.113.7"

_SERVER = r'''
import http.server, socket, socketserver, struct, sys, threading
def dns(addr, answer):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    while True:
        q, peer = s.recvfrom(512)
        end = 12
        while q[end]:
            end += q[end] + 1
        end += 5
        rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(answer)
        s.sendto(q[:2] + b"\x81\x80" + q[4:6] + b"\x00\x01\x00\x00\x00\x00" + q[12:end] + rr, peer)
threading.Thread(target=dns, args=(sys.argv[1], sys.argv[3]), daemon=True).start()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (self.client_address[0] + "\n").encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
socketserver.TCPServer.allow_reuse_address = True
with socketserver.TCPServer((sys.argv[1], int(sys.argv[2])), H) as s:
    print("ready", flush=True)
    s.serve_forever()
'''


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Internet:
    """``ip netns add``, a veth to it, and an HTTP server on INET_ADDR:8080 that says who asked."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000:05d}"
        self.ns, self.host_if = f"sbtest-inet-{tag}", f"sbtinet{tag}"
        self.port = 8080
        # The first `ip netns add` makes /run/netns a mount point of its own; undo that at the end.
        self._mounted_runnetns = not _is_mountpoint("/run/netns")
        ip("netns", "add", self.ns)
        try:
            ip("link", "add", self.host_if, "type", "veth", "peer", "name", "inet0", "netns", self.ns)
            ip("addr", "add", f"{INET_HOST}/24", "dev", self.host_if)
            ip("link", "set", self.host_if, "up")
            ip("-n", self.ns, "addr", "add", f"{INET_ADDR}/24", "dev", "inet0")
            ip("-n", self.ns, "link", "set", "inet0", "up")
            ip("-n", self.ns, "link", "set", "lo", "up")
            self.server = subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, "-c", _SERVER,
                                            INET_ADDR, str(self.port), INET_ANSWER], stdout=subprocess.PIPE,
                                           text=True)
            assert self.server.stdout is not None and self.server.stdout.readline().strip() == "ready"
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://{INET_ADDR}:{self.port}/"

    def stop(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.kill()
            server.wait()
        ip("link", "del", self.host_if, check=False)
        ip("netns", "del", self.ns, check=False)
        if self._mounted_runnetns and _is_mountpoint("/run/netns") and not os.listdir("/run/netns"):
            subprocess.run(["umount", "/run/netns"], check=False)


@pytest.fixture
def internet():
    """An :class:`Internet` for one test, taken down after it."""
    inet = Internet()
    try:
        yield inet
    finally:
        inet.stop()


def _is_mountpoint(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def host_address() -> str | None:
    """An IPv4 address of this host that is not loopback and not one of our bridges."""
    out = json.loads(ip("-j", "-4", "addr").stdout)
    for link in out:
        name = link.get("ifname", "")
        if name == "lo" or name.startswith(("sandbox", "sbr-", "sbtinet")):
            continue
        for a in link.get("addr_info", []):
            if a.get("scope") == "global":
                return str(a["local"])
    return None


def veths_named(prefix: str = "sbv") -> list[str]:
    return sorted(n for n in os.listdir("/sys/class/net") if n.startswith(prefix))


def wait_gone(names: list[str], timeout: float = 5.0) -> list[str]:
    """The kernel removes a dead namespace's veths in the background: wait for them to go."""
    deadline = time.monotonic() + timeout
    left = [n for n in names if os.path.exists(f"/sys/class/net/{n}")]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [n for n in left if os.path.exists(f"/sys/class/net/{n}")]
    return left
