"""The network package's logic, without touching the host: subnets, IPAM, -p, DNS wire format, rules, /etc files."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from sandbox.errors import PortInUse, UsageError
from sandbox.network import addresses, dns, etcfiles, firewall, ports

N = ipaddress.IPv4Network


# ----------------------------------------------------------------- subnets

def test_choose_subnet_skips_routes_and_well_known_ranges():
    pools = [{"base": "10.222.0.0/16", "size": 24}]
    assert addresses.choose_subnet(pools, []) == N("10.222.0.0/24")
    assert addresses.choose_subnet(pools, [N("10.222.0.0/23"), N("10.222.2.128/25")]) == N("10.222.3.0/24")
    # Docker's and Podman's defaults are never picked, even when nothing uses them now
    assert addresses.choose_subnet([{"base": "172.16.0.0/12", "size": 16}], []) == N("172.16.0.0/16")
    assert addresses.choose_subnet([{"base": "172.17.0.0/16", "size": 24}, {"base": "10.30.0.0/24", "size": 24}],
                                   []) == N("10.30.0.0/24")


def test_choose_subnet_full_pool_says_how_to_get_one():
    with pytest.raises(UsageError, match="no free subnet") as e:
        addresses.choose_subnet([{"base": "10.9.0.0/24", "size": 24}], [N("10.9.0.0/16")])
    assert "--subnet" in str(e.value)


@pytest.mark.parametrize("text,why", [("10.1.0.0", "10.1.0.0/32"), ("10.1.0.5/24", "host bits"),
                                      ("nonsense", "CIDR"), ("fd00::/64", "IPv4"), ("10.0.0.0/31", "no room")])
def test_bad_subnets_are_refused_with_the_fix(text, why):
    with pytest.raises(UsageError) as e:
        addresses.parse_subnet(text)
    assert why in str(e.value) or "room" in str(e.value)


def test_gateway_must_be_a_host_address_of_the_subnet():
    net = N("10.30.0.0/24")
    assert str(addresses.gateway_of(net)) == "10.30.0.1"
    assert str(addresses.gateway_of(net, "10.30.0.254")) == "10.30.0.254"
    for bad in ("10.31.0.1", "10.30.0.0", "10.30.0.255"):
        with pytest.raises(UsageError, match="not a host address"):
            addresses.gateway_of(net, bad)


def test_overlapping_subnet_names_what_it_overlaps():
    with pytest.raises(UsageError, match=r"overlaps 10.0.0.0/8 \(route 10.0.0.0/8 dev eth0\)"):
        addresses.check_free(N("10.30.0.0/24"), {"route 10.0.0.0/8 dev eth0": N("10.0.0.0/8")})


# ----------------------------------------------------------------- IPAM

def test_pool_hands_out_the_lowest_free_address_never_twice():
    pool = addresses.Pool(N("10.30.0.0/29"), ipaddress.IPv4Address("10.30.0.1"), {})
    got = [str(pool.allocate(f"ep{i}")) for i in range(5)]
    assert got == ["10.30.0.2", "10.30.0.3", "10.30.0.4", "10.30.0.5", "10.30.0.6"]
    with pytest.raises(UsageError, match="no free address"):
        pool.allocate("ep9")
    assert pool.release("ep1") == ["10.30.0.3"]
    assert str(pool.allocate("ep7")) == "10.30.0.3"


def test_pool_static_addresses():
    pool = addresses.Pool(N("10.30.0.0/24"), ipaddress.IPv4Address("10.30.0.1"), {})
    assert str(pool.allocate("a", "10.30.0.50")) == "10.30.0.50"
    with pytest.raises(UsageError, match="already in use"):
        pool.allocate("b", "10.30.0.50")
    for bad in ("10.30.0.1", "10.31.0.5", "10.30.0.255", "banana"):
        with pytest.raises(UsageError):
            pool.allocate("c", bad)
    assert "10.30.0.50" in pool.taken and pool.taken["10.30.0.50"] == "a"


def test_mac_from_address_is_dockers():
    assert addresses.mac_for(ipaddress.IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"
    assert addresses.parse_mac("02-42-AC-11-00-02") == "02:42:ac:11:00:02"
    for bad in ("01:00:5e:00:00:01", "02:42", "zz:42:ac:11:00:02"):
        with pytest.raises(UsageError):
            addresses.parse_mac(bad)


# ----------------------------------------------------------------- -p

@pytest.mark.parametrize("text,expected", [
    ("80", [("80/tcp", {"HostIp": "", "HostPort": ""})]),
    ("18080:80", [("80/tcp", {"HostIp": "", "HostPort": "18080"})]),
    ("127.0.0.1:18080:80/udp", [("80/udp", {"HostIp": "127.0.0.1", "HostPort": "18080"})]),
    ("127.0.0.1::80", [("80/tcp", {"HostIp": "127.0.0.1", "HostPort": ""})]),
    ("8000-8001:80-81", [("80/tcp", {"HostIp": "", "HostPort": "8000"}),
                         ("81/tcp", {"HostIp": "", "HostPort": "8001"})]),
    ("8000-8009:80", [("80/tcp", {"HostIp": "", "HostPort": "8000-8009"})]),
    ("53-54/udp", [("53/udp", {"HostIp": "", "HostPort": ""}), ("54/udp", {"HostIp": "", "HostPort": ""})]),
])
def test_publish_syntax(text, expected):
    assert ports.parse_publish(text) == expected


@pytest.mark.parametrize("text,why", [("70000:80", "70000 is not a port"), ("80:0", "0 is not a port"),
                                      ("a:80", "invalid hostPort"), ("80/sctp2", "invalid proto"),
                                      ("8000-8002:80-81", "don't match"), ("1.2.3:80:80", "invalid IP"),
                                      ("90-80:80", "ends before")])
def test_bad_publish_values_name_the_problem(text, why):
    with pytest.raises(UsageError) as e:
        ports.parse_publish(text)
    assert why in str(e.value)


def test_reserve_picks_a_free_port_and_refuses_a_taken_one():
    r = ports.reserve("127.0.0.1", "", "tcp")
    try:
        assert r.port > 0
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = holder.getsockname()[1]
        try:
            with pytest.raises(PortInUse) as e:
                ports.reserve("127.0.0.1", str(taken), "tcp")
            assert str(taken) in str(e.value) and "pid" in str(e.value)   # who holds it
        finally:
            holder.close()
    finally:
        r.close()


def test_ports_column():
    assert ports.bindings_text({"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}], "443/tcp": None}) == \
        "0.0.0.0:18080->80/tcp, 443/tcp"


# ----------------------------------------------------------------- DNS

def _query(name: str, qtype: int = dns.TYPE_A, qid: int = 0x1234) -> bytes:
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".")) + b"\x00"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", qtype, 1)


def _answers(reply: bytes) -> tuple[int, int, list[str]]:
    qid, flags, _, ancount, _, _ = struct.unpack_from("!HHHHHH", reply)
    q = dns.parse_question(reply[:12].replace(reply[2:4], b"\x01\x00") + reply[12:])
    assert q is not None
    off, out = q.end, []
    for _ in range(ancount):
        _, rtype, _, _, length = struct.unpack_from("!HHHIH", reply, off)
        off += 12
        if rtype == dns.TYPE_A:
            out.append(socket.inet_ntoa(reply[off:off + 4]))
        off += length
    return qid, flags & 0xF, out


def test_question_parsing():
    q = dns.parse_question(_query("Web.Example."))
    assert q is not None and q.name == "web.example" and q.qtype == dns.TYPE_A and q.id == 0x1234
    assert dns.parse_question(b"\x00" * 5) is None
    assert dns.parse_question(_query("web")[:-2]) is None


class _FakeLoop:
    def __init__(self):
        self.readers = {}

    def add_reader(self, fd, fn):
        self.readers[fd] = fn

    def forget(self, fd):
        self.readers.pop(fd, None)

    def call_later(self, delay, fn):
        return None


def test_name_server_answers_ours_and_forwards_the_rest():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    names = {"web": ["10.30.0.2", "10.30.0.3"]}
    ns = dns.NameServer(_FakeLoop(), server, names.get, lambda a: "web.net" if a == "10.30.0.2" else None,
                        upstream=lambda: [])
    try:
        query = _query("web")
        reply = ns.resolve(query, dns.parse_question(query))
        assert _answers(reply) == (0x1234, dns.RCODE_OK, ["10.30.0.2", "10.30.0.3"])
        aaaa = _query("web", dns.TYPE_AAAA)
        assert _answers(ns.resolve(aaaa, dns.parse_question(aaaa))) == (0x1234, dns.RCODE_OK, [])
        ptr = _query("2.0.30.10.in-addr.arpa", dns.TYPE_PTR)
        assert ns.resolve(ptr, dns.parse_question(ptr)) is not None
        other = _query("example.org")
        assert ns.resolve(other, dns.parse_question(other)) is None      # not ours: forwarded
        ns.handle(other, client.getsockname())                           # no upstream: SERVFAIL at once
        assert _answers(client.recv(512))[1] == dns.RCODE_SERVFAIL
    finally:
        ns.close()
        client.close()


# ----------------------------------------------------------------- rules

def test_ruleset_is_one_replacement_of_our_table():
    rs = firewall.ruleset("sandbox_x", [firewall.Bridge("sb0", "10.30.0.0/24"),
                                        firewall.Bridge("sbr-1", "10.30.1.0/24", internal=True)],
                          [firewall.Forward("", 18080, "tcp", "10.30.0.2", 80)])["nftables"]
    assert rs[:3] == [{"add": {"table": {"family": "ip", "name": "sandbox_x"}}},
                      {"delete": {"table": {"family": "ip", "name": "sandbox_x"}}},
                      {"add": {"table": {"family": "ip", "name": "sandbox_x"}}}]
    rules = [c["add"]["rule"] for c in rs if "rule" in c.get("add", {})]
    dnat = [r for r in rules if any("dnat" in e for e in r["expr"])]
    assert {r["chain"] for r in dnat} == {"prerouting", "output"}
    masq = [r for r in rules if r["chain"] == "postrouting" and
            any(e.get("match", {}).get("op") == "!=" for e in r["expr"])]
    assert len(masq) == 1          # outbound NAT for sb0 only: the internal network gets none
    assert any(r["chain"] == "forward" and firewall._REFUSE in r["expr"] for r in rules)
    # nothing to do: the table goes
    assert firewall.ruleset("sandbox_x", [], []) == {"nftables": rs[:2]}


# ----------------------------------------------------------------- /etc files

def test_hosts_and_resolv_as_docker_writes_them(monkeypatch):
    hosts = etcfiles.hosts_text("web", "", "bridge", ["db:10.0.0.9"], ["10.30.0.2"])
    assert "10.30.0.2\tweb\n" in hosts and hosts.endswith("10.0.0.9\tdb\n") and "127.0.0.1\tlocalhost" in hosts
    monkeypatch.setattr(etcfiles, "_host_resolv",
                        lambda: "nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch lab.example\n")
    assert etcfiles.resolv_text("bridge", False, [], [], []) == "nameserver 192.0.2.53\nsearch lab.example\n"
    assert etcfiles.resolv_text("mynet", True, [], [], []) == \
        "nameserver 127.0.0.11\nsearch lab.example\noptions ndots:0\n"
    assert etcfiles.resolv_text("bridge", False, ["9.9.9.9"], ["x"], ["ndots:2"]) == \
        "nameserver 9.9.9.9\nsearch x\noptions ndots:2\n"
