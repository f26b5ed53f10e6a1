"""Network namespaces made by the supervisor before the container exists.

The supervisor makes a container's network namespace itself (``unshare``
into a new one, keep an fd to it, ``setns`` back), wires it up (veth, address,
route, name server) and hands the container its path, ``/proc/SELF/fd/N``:
the runtime's init -- ours or runc's -- joins it by path, as an OCI bundle
joins any namespace.  Nothing is mounted (no ``ip netns`` file to leak), and
when the container has exited and the fd is closed the kernel tears the
namespace down, veth pair included, in the background.

Sockets remember the namespace they were made in: the netlink socket and
the name server's socket are made while the supervisor is inside, then used
from the host's namespace.  The supervisor is single-threaded, so switching
its own network namespace for a moment is safe.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

from .. import kernel
from .rtnl import Netlink, write_sysctl


class NetNS:
    """A network namespace held open by an fd of the supervisor."""

    def __init__(self, fd: int, owned: bool = True) -> None:
        self.fd = fd
        self.owned = owned
        self.inode = os.fstat(fd).st_ino

    @property
    def path(self) -> str:
        """A path any process of this host can open to join it (the runtime's ``namespaces[].path``)."""
        return f"/proc/{os.getpid()}/fd/{self.fd}"

    @classmethod
    def create(cls) -> NetNS:
        """A new namespace with ``lo`` up and IPv6 off (our networks are IPv4 only, as Docker's default)."""
        with _host_kept() as host:
            kernel.unshare(kernel.CLONE_NEWNET)
            try:
                fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                kernel.interface_up("lo")
                with contextlib.suppress(Exception):
                    write_sysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1")
                    write_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1")
            finally:
                kernel.setns(host, kernel.CLONE_NEWNET)
        return cls(fd)

    @classmethod
    def of_process(cls, pid: int) -> NetNS:
        """The namespace process ``pid`` is in (an adopted container's), held by a new fd."""
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        return cls(fd, owned=False)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the block inside this namespace (make its sockets there), then come back."""
        with _host_kept() as host:
            kernel.setns(self.fd, kernel.CLONE_NEWNET)
            try:
                yield
            finally:
                kernel.setns(host, kernel.CLONE_NEWNET)

    def netlink(self) -> Netlink:
        """An rtnetlink socket acting inside this namespace."""
        with self.entered():
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        return Netlink(sock)

    def udp_socket(self, address: str, port: int) -> socket.socket:
        """A UDP socket bound to ``address:port`` inside this namespace (the embedded name server)."""
        with self.entered():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
            try:
                sock.bind((address, port))
            except OSError:
                sock.close()
                raise
        return sock

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@contextlib.contextmanager
def _host_kept() -> Iterator[int]:
    """An fd of the namespace we are in now, to come back to."""
    fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)
