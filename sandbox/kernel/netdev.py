"""Network interfaces: bring one up (``lo`` in a new network namespace).

Separate because it is the only network call here, and deliberately not
netlink: the container's init makes it between fork and exec, where importing
a netlink library (pyroute2 takes about 250 ms) would cost every container
start.  https://man7.org/linux/man-pages/man7/netdevice.7.html
"""

from __future__ import annotations

import errno as _errno

from ._libc import _fail

__all__ = ["interface_up"]

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def interface_up(name: str = "lo") -> None:
    """Bring network interface ``name`` up in the calling process's network namespace.

    A new network namespace has only ``lo``, and it is down: ``ping 127.0.0.1``
    fails until something raises it, which Docker (and runc for a fresh netns)
    does.  SIOCSIFFLAGS on a datagram socket is two ioctls, far cheaper than a
    netlink library for this one job.  https://man7.org/linux/man-pages/man7/netdevice.7.html
    """
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        request = struct.pack("16sH14x", name.encode(), 0)
        try:
            flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | _IFF_UP))
        except OSError as e:
            raise _fail("ioctl(SIOCSIFFLAGS)", name, e.errno or _errno.EIO,
                        {_errno.ENODEV: "no such network interface in this namespace",
                         _errno.EPERM: "needs CAP_NET_ADMIN in the network namespace"}) from None
