"""Rootless networking: slirp4netns gives a container's own network namespace a way out, and ports in.

A user cannot wire a veth to a bridge in the host's network namespace, so
rootless mode (where ``slirp4netns`` is installed) gives each container an
empty network namespace of its own and a slirp4netns process beside it, as
Podman does: a TAP device ``tap0`` at 10.0.2.100/24 inside, with 10.0.2.2 as
the gateway and 10.0.2.3 as the name server (slirp forwards both to the
host's own), all of it a user-mode TCP/IP stack in that process, so no
privilege is needed.  Published ports are slirp's host forwards, asked for
over its API socket: a connection to the host port is accepted by
slirp4netns and replayed inside.  ``--disable-host-loopback`` keeps the
container from reaching the host's 127.0.0.1 through 10.0.2.2, as Docker's
rootless mode does.

The supervisor starts it between the runtime's create and start (the init
exists, its network namespace too, and nothing runs yet), records its pid and
start time in the container's record (a supervisor that restarts leaves it
running with the container and finds it there), and kills it when the
container ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
from typing import Any

from ..errors import NetworkError

ADDRESS, GATEWAY, DNS, PREFIX = "10.0.2.100", "10.0.2.2", "10.0.2.3", 24
MODE = "slirp4netns"
READY_TIMEOUT = 10.0


def available() -> bool:
    """slirp4netns is installed and this user may open /dev/net/tun (0666 on Debian; some hosts make it 0600)."""
    return shutil.which("slirp4netns") is not None and os.access("/dev/net/tun", os.R_OK | os.W_OK)


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def start(pid: int, state_dir: str, port_bindings: dict[str, Any]) -> dict[str, Any]:
    """slirp4netns for the network namespace of ``pid``; its pid, start time, socket and the bound ports."""
    binary = shutil.which("slirp4netns")
    if binary is None:
        raise NetworkError("rootless networking needs slirp4netns", hint="apt install slirp4netns, or --network host")
    sock = _socket_path(state_dir)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock)
    ready_r, ready_w = os.pipe()
    ready_w = _high(ready_w)
    argv = [binary, "--configure", "--mtu=65520", "--disable-host-loopback", "--api-socket", sock,
            "--ready-fd", "3", str(pid), "tap0"]
    devnull = _high(os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC))
    log = _high(os.open(os.path.join(state_dir, "slirp.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                        0o600))
    try:
        # posix_spawn, not subprocess: a Popen object would reap it behind the supervisor's back.
        child = os.posix_spawn(binary, argv, dict(os.environ), setsid=True, file_actions=[
            (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, log, 1), (os.POSIX_SPAWN_DUP2, log, 2),
            (os.POSIX_SPAWN_DUP2, ready_w, 3)])
    finally:
        for fd in (devnull, log, ready_w):
            os.close(fd)
    info: dict[str, Any] = {"Pid": child, "StartTime": _start_time(child), "Socket": sock}
    try:
        readable, _, _ = select.select([ready_r], [], [], READY_TIMEOUT)
        if not readable or not os.read(ready_r, 1):
            raise NetworkError("slirp4netns did not bring up the container's network"
                               + (f" in {READY_TIMEOUT:.0f} s" if not readable else "") + f": {_last_line(state_dir)}",
                               hint="check that /dev/net/tun is readable and writable by you")
        info["Ports"] = _forward_ports(sock, port_bindings)
    except BaseException:
        stop(info)
        raise
    finally:
        os.close(ready_r)
    return info


def _socket_path(state_dir: str) -> str:
    """The API socket: in the container's directory, or a short private directory when that path is
    longer than a unix socket's 108 bytes (a home's store often is)."""
    path = os.path.join(state_dir, "slirp.sock")
    if len(path.encode()) < 100:
        return path
    short = os.path.join(os.environ.get("XDG_RUNTIME_DIR") or "/tmp", f"sandbox-slirp-{_outer_uid()}")
    os.makedirs(short, mode=0o700, exist_ok=True)
    return os.path.join(short, os.path.basename(state_dir.rstrip("/"))[:24] + ".sock")


def _outer_uid() -> int:
    """The user's uid as the host knows it: in the rootless namespace getuid() is 0 for everyone."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/uid_map") as f:
            for line in f:
                inner, outer, _ = (int(x) for x in line.split())
                if inner == os.getuid():
                    return outer
    return os.getuid()


def _high(fd: int) -> int:
    """``fd`` moved to 10 or above (close-on-exec): a spawn's dup2 onto 0-3 must never be dup2(n, n),
    which keeps close-on-exec and so closes the descriptor the child was to get."""
    import fcntl
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


def _last_line(state_dir: str) -> str:
    try:
        with open(os.path.join(state_dir, "slirp.log"), errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return "it left no log"
    return lines[-1] if lines else "it said nothing"


def _forward_ports(sock: str, port_bindings: dict[str, Any]) -> dict[str, Any]:
    """``-p HOST:CONTAINER`` as slirp host forwards: NetworkSettings.Ports."""
    ports: dict[str, Any] = {}
    for key, bindings in (port_bindings or {}).items():
        port, _, proto = key.partition("/")
        proto = proto or "tcp"
        ports[key] = []
        for b in bindings or [{}]:
            host_ip = b.get("HostIp") or "0.0.0.0"
            host_port = int(b.get("HostPort") or 0) or _free_port(host_ip, proto)
            answer = _api(sock, {"execute": "add_hostfwd", "arguments": {
                "proto": proto, "host_addr": host_ip, "host_port": host_port, "guest_port": int(port)}})
            if "error" in answer:
                raise NetworkError(f"cannot publish port {host_ip}:{host_port} for {key}: "
                                   f"{answer['error'].get('desc', answer['error'])}",
                                   hint="pick another host port, or leave it out for a free one")
            ports[key].append({"HostIp": host_ip, "HostPort": str(host_port)})
    return ports


def _free_port(host_ip: str, proto: str) -> int:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host_ip, 0))
        return int(s.getsockname()[1])


def _api(sock: str, request: dict[str, Any]) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(sock)
        s.sendall(json.dumps(request).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return dict(json.loads(data or b"{}"))


def stop(info: dict[str, Any] | None) -> None:
    """End the container's slirp4netns (only the process recorded: a reused pid is left alone)."""
    if not info or not info.get("Pid"):
        return
    pid = int(info["Pid"])
    if info.get("StartTime") is not None and _start_time(pid) != info["StartTime"]:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if info.get("Socket"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(info["Socket"]))


def endpoint() -> dict[str, Any]:
    """NetworkSettings.Networks["slirp4netns"]: the addresses slirp4netns always gives."""
    return {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "", "EndpointID": "",
            "Gateway": GATEWAY, "IPAddress": ADDRESS, "IPPrefixLen": PREFIX, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None}
