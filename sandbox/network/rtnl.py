"""Links, addresses and routes over rtnetlink, with pyroute2.

Two ways in, for two kinds of work:

* :class:`Netlink` is the hot path of a container start: one raw
  ``NETLINK_ROUTE`` socket (made in whichever network namespace it must act
  in), messages encoded with pyroute2's own classes, queued and sent
  together, the acks read back with nothing decoded but the error codes.
  pyroute2's synchronous ``IPRoute`` runs an asyncio loop per call (about
  0.5 ms each here); a veth, an address, a route and two links up are then
  more than the whole container start the issue allows the bridge to add.
* The module functions use ``IPRoute`` for everything that is not on that
  path: bridges, the host's routes when a subnet is chosen, dumps for views
  and clean-up.

Every failure is a :class:`~sandbox.errors.NetworkError` naming the
operation, the interface and the errno.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from typing import Any

from ..errors import NetworkError

NETLINK_ROUTE = 0
_HDR = struct.Struct("=LHHLL")       # nlmsghdr: length, type, flags, seq, pid
_IFINDEX = struct.Struct("=BxHiII")  # ifinfomsg after the header: family, type, index, flags, change

_HINTS = {
    errno.EPERM: "changing network interfaces needs root (CAP_NET_ADMIN)",
    errno.EEXIST: "an interface or address of that name already exists",
    errno.ENODEV: "no such network interface",
    errno.ENETUNREACH: "the gateway is not on a directly connected network",
}


def _error(what: str, err: int) -> NetworkError:
    return NetworkError(f"{what}: {os.strerror(err)}", errno=err,
                        hint=_HINTS.get(err, "see `ip link` and `ip route` for the current state"))


class Netlink:
    """One rtnetlink socket, with a queue of requests sent together and acked together."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        if sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock = sock
        self.sock.bind((0, 0))
        self._seq = 0
        self._pending: dict[int, str] = {}
        self._out: list[bytes] = []

    def queue(self, msg: Any, mtype: int, flags: int, what: str) -> None:
        """Encode ``msg`` (a pyroute2 message) as request ``mtype``; ``what`` names it in errors."""
        from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
        self._seq += 1
        msg["header"]["type"] = mtype
        msg["header"]["flags"] = flags | NLM_F_REQUEST | NLM_F_ACK
        msg["header"]["sequence_number"] = self._seq
        msg.encode()
        self._out.append(bytes(msg.data))
        self._pending[self._seq] = what

    def commit(self) -> None:
        """Send every queued request, read every ack; the first failure is raised."""
        data, self._out = b"".join(self._out), []
        if not data:
            return
        try:
            self.sock.send(data)
        except OSError as e:
            self._pending.clear()
            raise _error("netlink send", e.errno or errno.EIO) from None
        first: NetworkError | None = None
        while self._pending:
            reply = self.sock.recv(65536)
            for seq, err in _acks(reply):
                what = self._pending.pop(seq, None)
                if what is not None and err and first is None:
                    first = _error(what, err)
        if first is not None:
            raise first

    def link_index(self, name: str) -> int:
        """The index of interface ``name`` in this socket's namespace (0 when there is none)."""
        from pyroute2.netlink import NLM_F_REQUEST
        from pyroute2.netlink.rtnl import RTM_GETLINK
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
        msg = ifinfmsg()
        msg["attrs"] = [("IFLA_IFNAME", name)]
        self._seq += 1
        msg["header"].update(type=RTM_GETLINK, flags=NLM_F_REQUEST, sequence_number=self._seq)
        msg.encode()
        self.sock.send(bytes(msg.data))
        reply = self.sock.recv(65536)
        _, mtype, _, _, _ = _HDR.unpack_from(reply, 0)
        if mtype == 2:  # NLMSG_ERROR: no such link
            return 0
        return int(_IFINDEX.unpack_from(reply, _HDR.size)[2])

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _acks(data: bytes) -> list[tuple[int, int]]:
    """(sequence number, errno) of every NLMSG_ERROR (an ack is errno 0) in a reply."""
    out, off = [], 0
    while off + _HDR.size <= len(data):
        length, mtype, _, seq, _ = _HDR.unpack_from(data, off)
        if mtype == 2:
            (err,) = struct.unpack_from("=i", data, off + _HDR.size)
            out.append((seq, -err))
        off += (length + 3) & ~3
        if length == 0:
            break
    return out


# --------------------------------------------------------------------------- messages

def queue_veth(nl: Netlink, host_name: str, master: int, peer_name: str, peer_netns_fd: int,
               peer_mac: str | None, mtu: int = 1500) -> None:
    """A veth pair: ``host_name`` up on bridge ``master``, ``peer_name`` made inside the netns.

    The peer is created directly in the container's namespace (IFLA_NET_NS_FD
    in the peer's attributes): one request, no move afterwards.
    """
    from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL
    from pyroute2.netlink.rtnl import RTM_NEWLINK
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    peer: list[tuple[str, Any]] = [("IFLA_IFNAME", peer_name), ("IFLA_NET_NS_FD", peer_netns_fd),
                                   ("IFLA_MTU", mtu)]
    if peer_mac:
        peer.append(("IFLA_ADDRESS", peer_mac))
    msg = ifinfmsg()
    msg["flags"], msg["change"] = 1, 1   # IFF_UP
    msg["attrs"] = [("IFLA_IFNAME", host_name), ("IFLA_MASTER", master), ("IFLA_MTU", mtu),
                    ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_DATA", {
                        "attrs": [("VETH_INFO_PEER", {"attrs": peer})]})]})]
    nl.queue(msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, f"create veth {host_name} <-> {peer_name}")


def queue_link_up(nl: Netlink, index: int, name: str) -> None:
    from pyroute2.netlink.rtnl import RTM_NEWLINK
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    msg = ifinfmsg()
    msg["index"], msg["flags"], msg["change"] = index, 1, 1
    nl.queue(msg, RTM_NEWLINK, 0, f"set {name} up")


def queue_address(nl: Netlink, index: int, name: str, address: str, prefixlen: int) -> None:
    from pyroute2.netlink import NLM_F_CREATE, NLM_F_REPLACE
    from pyroute2.netlink.rtnl import RTM_NEWADDR
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    net = ipaddress.ip_network(f"{address}/{prefixlen}", strict=False)
    msg = ifaddrmsg()
    msg["family"], msg["prefixlen"], msg["index"] = socket.AF_INET, prefixlen, index
    msg["attrs"] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address),
                    ("IFA_BROADCAST", str(net.broadcast_address))]
    nl.queue(msg, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, f"add {address}/{prefixlen} to {name}")


def queue_default_route(nl: Netlink, gateway: str, index: int) -> None:
    from pyroute2.netlink import NLM_F_CREATE, NLM_F_REPLACE
    from pyroute2.netlink.rtnl import RTM_NEWROUTE
    from pyroute2.netlink.rtnl.rtmsg import rtmsg
    msg = rtmsg()
    msg["family"], msg["dst_len"], msg["table"] = socket.AF_INET, 0, 254
    msg["proto"], msg["scope"], msg["type"] = 3, 0, 1   # boot, universe, unicast
    msg["attrs"] = [("RTA_GATEWAY", gateway), ("RTA_OIF", index), ("RTA_TABLE", 254)]
    nl.queue(msg, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, f"add default route via {gateway}")


def queue_delete_link(nl: Netlink, index: int, name: str) -> None:
    from pyroute2.netlink.rtnl import RTM_DELLINK
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    msg = ifinfmsg()
    msg["index"] = index
    nl.queue(msg, RTM_DELLINK, 0, f"delete {name}")


# --------------------------------------------------------------------------- the slow path (IPRoute)

def _ipr() -> Any:
    from pyroute2 import IPRoute
    return IPRoute()


def host_networks() -> dict[str, ipaddress.IPv4Network]:
    """Every IPv4 prefix this host routes or has an address in: description -> network.

    The main routing table's routes (not the default route) and every
    interface address, so a new subnet can avoid them all.
    """
    out: dict[str, ipaddress.IPv4Network] = {}
    with _ipr() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for route in ipr.get_routes(family=socket.AF_INET):
            dst, length = route.get_attr("RTA_DST"), route["dst_len"]
            if dst is None or length == 0 or route.get_attr("RTA_TABLE") not in (254, None):
                continue
            dev = names.get(route.get_attr("RTA_OIF"), "?")
            net = ipaddress.IPv4Network(f"{dst}/{length}", strict=False)
            if not net.is_loopback:
                out[f"route {net} dev {dev}"] = net
        for addr in ipr.get_addr(family=socket.AF_INET):
            net = ipaddress.IPv4Network(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}", strict=False)
            if not net.is_loopback:
                out[f"address {net} of {names.get(addr['index'], '?')}"] = net
    return out


def links() -> dict[str, dict[str, Any]]:
    """name -> {index, kind, alias, master, state, mac} for every interface of the host's namespace."""
    out: dict[str, dict[str, Any]] = {}
    with _ipr() as ipr:
        for link in ipr.get_links():
            info = link.get_attr("IFLA_LINKINFO")
            out[link.get_attr("IFLA_IFNAME")] = {
                "index": link["index"], "kind": info.get_attr("IFLA_INFO_KIND") if info else None,
                "alias": link.get_attr("IFLA_IFALIAS") or "", "master": link.get_attr("IFLA_MASTER"),
                "state": link.get_attr("IFLA_OPERSTATE"), "mac": link.get_attr("IFLA_ADDRESS")}
    return out


def aliased(prefix: str) -> list[str]:
    """Interfaces whose alias starts with ``prefix``, read from /sys (no netlink, no pyroute2)."""
    out: list[str] = []
    try:
        names = os.listdir("/sys/class/net")
    except OSError:
        return out
    for name in names:
        try:
            with open(f"/sys/class/net/{name}/ifalias") as f:
                if f.read().strip().startswith(prefix):
                    out.append(name)
        except OSError:
            continue
    return out


def ensure_bridge(name: str, gateway: str, prefixlen: int, alias: str) -> int:
    """The bridge ``name`` with ``gateway/prefixlen`` on it, up, marked with ``alias``; its index.

    Made if missing; an existing one gets the address added if a reboot or a
    hand took it away.  Loopback traffic DNATed to a container leaves the
    host with a 127.x source, which the kernel drops on a non-loopback device
    unless ``route_localnet`` is on for it: we set it on our bridge only.
    """
    from pyroute2.netlink.exceptions import NetlinkError
    try:
        with _ipr() as ipr:
            found = ipr.link_lookup(ifname=name)
            if not found:
                ipr.link("add", ifname=name, kind="bridge")
                found = ipr.link_lookup(ifname=name)
            index = int(found[0])
            ipr.link("set", index=index, ifalias=alias)
            have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index,
                                                                                    family=socket.AF_INET)}
            if (gateway, prefixlen) not in have:
                net = ipaddress.ip_network(f"{gateway}/{prefixlen}", strict=False)
                ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen,
                         broadcast=str(net.broadcast_address))
            ipr.link("set", index=index, state="up")
    except NetlinkError as e:
        raise _error(f"set up bridge {name}", e.code) from None
    _write_sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")
    return index


def delete_link(name: str) -> bool:
    """Remove interface ``name`` (a bridge, or a veth and its peer with it); False if it was not there."""
    from pyroute2.netlink.exceptions import NetlinkError
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return False
        try:
            ipr.link("del", index=found[0])
        except NetlinkError as e:
            if e.code == errno.ENODEV:
                return False
            raise _error(f"delete {name}", e.code) from None
    return True


def _write_sysctl(path: str, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise _error(f"open {path}", e.errno or errno.EIO) from None
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise _error(f"write {value} to {path}", e.errno or errno.EIO) from None
    finally:
        os.close(fd)


def read_sysctl(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


write_sysctl = _write_sysctl
