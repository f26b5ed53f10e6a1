"""Subnets and addresses: choosing a network's subnet, handing out its addresses, and MACs.

A bridge network needs a subnet that nothing on the host already routes:
the host's own networks, Docker's ``docker0`` (172.17.0.0/16 by default)
and Podman's (10.88.0.0/16, user networks from 10.89.0.0/24).  So a subnet
is picked from the store's address pools (Docker's ``default-address-pools``
setting, ours by default: /24s of 10.222.0.0/16), skipping every prefix that
overlaps a route in the host's routing table, an address on one of its
interfaces, another network of this store, or those well-known ranges.

:class:`Pool` is the IPAM of one network: a set of taken addresses kept in
the network's record (the supervisor is the only writer, so two clients can
never get the same address).  The network address, the gateway and the
broadcast address are never handed out; the lowest free address is.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

from ..errors import UsageError

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address

#: Our default pool: /24 networks out of 10.222.0.0/16 (Docker's daemon.json shape).
DEFAULT_POOLS: list[dict[str, object]] = [{"base": "10.222.0.0/16", "size": 24}]

#: Ranges other engines use by default: never chosen automatically, even when idle now.
RESERVED = [IPv4Network("172.17.0.0/16"), IPv4Network("10.88.0.0/16"), IPv4Network("10.89.0.0/16")]


def parse_subnet(text: str, what: str = "--subnet") -> IPv4Network:
    """``10.1.0.0/24`` as a network; host bits set or IPv6 are refused with the fix."""
    try:
        net = ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        raise UsageError(f"invalid {what} {text!r}: not a network in CIDR form",
                         hint="write it like 10.30.0.0/24") from None
    if not isinstance(net, IPv4Network):
        raise UsageError(f"invalid {what} {text}: only IPv4 networks are supported",
                         hint="give an IPv4 subnet such as 10.30.0.0/24")
    if str(net) != str(text).strip() and "/" in str(text):
        raise UsageError(f"invalid {what} {text}: it has host bits set (the network is {net})",
                         hint=f"use {net}")
    if net.prefixlen > 30:
        raise UsageError(f"invalid {what} {text}: a /{net.prefixlen} has no room for containers",
                         hint="use a /30 or larger network, e.g. a /24")
    return net


def parse_address(text: str, what: str) -> IPv4Address:
    try:
        addr = ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise UsageError(f"invalid {what} {text!r}: not an IP address", hint="write it like 10.30.0.5") from None
    if not isinstance(addr, IPv4Address):
        raise UsageError(f"invalid {what} {text}: only IPv4 is supported", hint="give an IPv4 address")
    return addr


def gateway_of(subnet: IPv4Network, gateway: str | None = None) -> IPv4Address:
    """The bridge's address: the one given (inside the subnet), else the first host address."""
    if gateway:
        gw = parse_address(gateway, "--gateway")
        if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
            raise UsageError(f"invalid --gateway {gateway}: it is not a host address of the subnet {subnet}",
                             hint=f"pick an address inside {subnet}, e.g. {subnet.network_address + 1}")
        return gw
    return subnet.network_address + 1


def pool_subnets(pools: Iterable[dict[str, object]]) -> Iterator[IPv4Network]:
    """Every candidate subnet of the pools, in order (each ``base`` cut into /``size`` pieces)."""
    for pool in pools:
        base = parse_subnet(str(pool["base"]), "address pool base")
        size = int(str(pool.get("size") or 24))
        if size < base.prefixlen:
            raise UsageError(f"address pool {base}: size /{size} is larger than the pool",
                             hint="give a size at least the pool's own prefix length")
        yield from base.subnets(new_prefix=size)


def choose_subnet(pools: Iterable[dict[str, object]], in_use: Iterable[IPv4Network]) -> IPv4Network:
    """The first pool subnet overlapping nothing in ``in_use`` nor the well-known ranges."""
    taken = list(in_use) + RESERVED
    for candidate in pool_subnets(pools):
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise UsageError("no free subnet is left in the address pools",
                     hint="remove unused networks (`sandbox network prune`), or give --subnet, "
                          "or add a pool under \"default-address-pools\" in the store's settings.json")


def check_free(subnet: IPv4Network, in_use: dict[str, IPv4Network]) -> None:
    """Refuse a subnet (given with --subnet) that overlaps a route or another network."""
    for owner, net in in_use.items():
        if subnet.overlaps(net):
            raise UsageError(f"invalid --subnet {subnet}: it overlaps {net} ({owner})",
                             hint="choose a subnet that no network and no route of this host uses")


def mac_for(address: IPv4Address) -> str:
    """A locally administered MAC made from the address, as Docker does (02:42 + the 4 bytes)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)


def parse_mac(text: str) -> str:
    parts = str(text).strip().lower().replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise UsageError(f"invalid --mac-address {text!r}", hint="write six hex bytes, e.g. 02:42:0a:de:00:05")
    if int(parts[0], 16) & 1:
        raise UsageError(f"invalid --mac-address {text}: it is a multicast address",
                         hint="the first byte must be even, e.g. 02:...")
    return ":".join(parts)


class Pool:
    """The addresses of one network: which are taken, and by whom (an endpoint id)."""

    def __init__(self, subnet: IPv4Network, gateway: IPv4Address, taken: dict[str, str]) -> None:
        self.subnet, self.gateway = subnet, gateway
        #: address text -> holder (an endpoint id); the record keeps this dict itself
        self.taken = taken

    def _unusable(self, addr: IPv4Address) -> bool:
        return addr in (self.subnet.network_address, self.subnet.broadcast_address, self.gateway)

    def allocate(self, holder: str, wanted: str | None = None) -> IPv4Address:
        """Give ``holder`` the address it asks for (if free and usable) or the lowest free one."""
        if wanted:
            addr = parse_address(wanted, "--ip")
            if addr not in self.subnet or self._unusable(addr):
                raise UsageError(f"invalid --ip {wanted}: it is not a free host address of {self.subnet}",
                                 hint=f"pick an address inside {self.subnet} other than the gateway "
                                      f"{self.gateway}")
            owner = self.taken.get(str(addr))
            if owner is not None and owner != holder:
                raise UsageError(f"Address already in use: {wanted} is taken on {self.subnet}",
                                 hint="pick another --ip, or leave it out to get a free one")
            self.taken[str(addr)] = holder
            return addr
        for addr in self.subnet.hosts():
            if not self._unusable(addr) and str(addr) not in self.taken:
                self.taken[str(addr)] = holder
                return addr
        raise UsageError(f"no free address is left in {self.subnet}",
                         hint="remove stopped containers, or use a network with a larger subnet")

    def release(self, holder: str) -> list[str]:
        """Free every address ``holder`` has; returns them."""
        gone = [a for a, h in self.taken.items() if h == holder]
        for a in gone:
            del self.taken[a]
        return gone
