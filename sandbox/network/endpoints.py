"""What a running container holds on the networks: its endpoints, namespace, name server and ports.

Plain data, shared by every part of :class:`~sandbox.network.manager.NetworkManager`
(the records side keeps the table of attachments, the bridges side sizes
pools and firewall rules from it, the wiring side fills it in), so it sits
below all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import firewall
from .dns import NameServer
from .netns import NetNS
from .ports import Reservation


@dataclass
class Endpoint:
    """One container on one network."""
    network_id: str
    network: str
    endpoint_id: str
    ifname: str
    veth: str
    address: str
    prefixlen: int
    gateway: str
    mac: str
    aliases: list[str]


@dataclass
class Attachment:
    """What a running container holds: its namespace, endpoints, name server and ports."""
    netns: NetNS | None = None
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    dns: NameServer | None = None
    reservations: list[Reservation] = field(default_factory=list)
    forwards: list[firewall.Forward] = field(default_factory=list)


def veth_name(endpoint_id: str) -> str:
    """The host end's name: short (IFNAMSIZ is 16) and derived, so a restarted supervisor finds it again."""
    return "sbv" + endpoint_id[:12]


def user_network(rec: dict[str, Any]) -> bool:
    """A network made with ``network create``: those get the embedded name server."""
    return rec["Driver"] == "bridge" and rec["Name"] != "bridge"


def record_endpoints(rec: dict[str, Any], att: Attachment) -> None:
    """Write the attachment into ``rec``'s NetworkSettings, as ``docker inspect`` shows them."""
    ns = rec["NetworkSettings"]
    nets = ns.setdefault("Networks", {})
    for ep in att.endpoints.values():
        es = nets.setdefault(ep.network, {})
        es.update(NetworkID=ep.network_id, EndpointID=ep.endpoint_id, Gateway=ep.gateway,
                  IPAddress=ep.address, IPPrefixLen=ep.prefixlen, MacAddress=ep.mac,
                  IPv6Gateway="", GlobalIPv6Address="", GlobalIPv6PrefixLen=0)
        es.setdefault("Aliases", ep.aliases or None)
        es.setdefault("IPAMConfig", None)
        es.setdefault("Links", None)
        es.setdefault("DriverOpts", None)
    main = next((ep for ep in att.endpoints.values() if ep.network == "bridge"), None)
    ns.update(SandboxKey=att.netns.path if att.netns else "", SandboxID=str(att.netns.inode) if att.netns else "",
              Bridge="", HairpinMode=False, LinkLocalIPv6Address="", LinkLocalIPv6PrefixLen=0,
              SecondaryIPAddresses=None, SecondaryIPv6Addresses=None,
              EndpointID=main.endpoint_id if main else "", Gateway=main.gateway if main else "",
              IPAddress=main.address if main else "", IPPrefixLen=main.prefixlen if main else 0,
              MacAddress=main.mac if main else "", GlobalIPv6Address="", GlobalIPv6PrefixLen=0,
              IPv6Gateway="")
    ns.setdefault("Ports", {})
