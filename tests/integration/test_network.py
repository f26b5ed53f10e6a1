"""Networking end to end: bridges, veth pairs, names, published ports and NAT, on the real kernel.

Every test runs real busybox containers through the supervisor of a
per-module store and checks what the kernel and the containers see (their
interfaces, routes, DNS answers, a page fetched over a published port, the
address a server in a namespace of ours saw).  Traffic only goes to
loopback, the host's own addresses, and namespaces the tests made.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from sandbox.errors import (ContainerNotFound, NetworkInUse, NetworkNotFound, PortInUse,
                            SandboxError, UsageError)
from tests.integration.container_env import engine, stop_supervisor  # noqa: F401
from tests.integration.net_env import (INET_ADDR, INET_ANSWER, INET_HOST, host_address, ip, veths_named,
                                       wait_gone)
from tests.integration.net_env import internet  # noqa: F401 - a fixture

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="networking needs root")

WEB = ("mkdir -p /www && echo hello-$(hostname) > /www/index.html && "
       "exec httpd -f -p {port} -h /www")


def sh(engine, script, **kw):
    r = engine.run("busybox", ["sh", "-c", script], **kw)
    return r.exit_code, r.output.decode(), r.stderr.decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url, timeout=5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def web(engine, port=80, **kw):
    c = engine.containers.run("busybox", ["sh", "-c", WEB.format(port=port)], detach=True, **kw)
    c.reload()
    return c


def wait_http(engine, url, network, tries=50):
    """From a container on ``network``: the page at ``url`` (the server may still be starting)."""
    code, out, err = sh(engine, f"for i in $(seq {tries}); do wget -q -O- {url} && exit 0; sleep 0.1; done; exit 1",
                        network_mode=network)
    return code, out


def cli(engine, *argv, check=True):
    env = dict(os.environ, SANDBOX_ROOT=str(engine.root))
    proc = subprocess.run([sys.executable, "-m", "sandbox", *argv], capture_output=True, text=True, env=env,
                          timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"sandbox {' '.join(argv)} -> {proc.returncode}\n{proc.stderr}")
    return proc


# --------------------------------------------------------------------------- the default bridge

def test_default_bridge_gives_an_address_a_route_and_etc_files(engine):
    bridge = engine.networks.get("bridge").attrs
    subnet = ipaddress.ip_network(bridge["IPAM"]["Config"][0]["Subnet"])
    gateway = bridge["IPAM"]["Config"][0]["Gateway"]
    code, out, _ = sh(engine, "ip -4 -o addr show eth0; ip route; cat /etc/hosts; hostname")
    assert code == 0
    addr = out.split()[3].split("/")[0]
    assert ipaddress.ip_address(addr) in subnet
    assert f"default via {gateway} dev eth0" in out
    assert f"{addr}\t" in out                      # the container's own address in /etc/hosts
    # the bridge's subnet overlaps no other route of the host
    routes = json.loads(ip("-j", "-4", "route").stdout)
    name = bridge["Options"]["com.docker.network.bridge.name"]
    for r in routes:
        if r.get("dst") not in (None, "default") and r.get("dev") != name:
            assert not ipaddress.ip_network(r["dst"]).overlaps(subnet), r
    assert name not in ("docker0", "podman0", "cni-podman0")


def test_inspect_shows_the_address_and_it_is_released(engine):
    c = engine.containers.run("busybox", ["sleep", "30"], detach=True)
    try:
        c.reload()
        ns = c.attrs["NetworkSettings"]
        assert ns["IPAddress"] and ns["Networks"]["bridge"]["IPAddress"] == ns["IPAddress"]
        assert ns["Networks"]["bridge"]["MacAddress"].startswith("02:42:")
        net = engine.networks.get("bridge").attrs
        assert net["Containers"][c.id]["IPv4Address"].startswith(ns["IPAddress"] + "/")
        veth = "sbv" + ns["Networks"]["bridge"]["EndpointID"][:12]
        assert os.path.exists(f"/sys/class/net/{veth}")
    finally:
        c.remove(force=True)
    assert not wait_gone([veth])
    assert c.id not in engine.networks.get("bridge").attrs["Containers"]


def test_addresses_are_never_handed_out_twice(engine):
    found, errors = [], []

    def start():
        try:
            c = engine.containers.run("busybox", ["sleep", "20"], detach=True)
            c.reload()
            found.append((c, c.attrs["NetworkSettings"]["IPAddress"]))
        except SandboxError as e:   # pragma: no cover - shown if it happens
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors
        addrs = [a for _, a in found]
        assert len(set(addrs)) == len(addrs) == 8
    finally:
        for c, _ in found:
            c.remove(force=True)


# --------------------------------------------------------------------------- user networks

def test_containers_on_a_user_network_find_each_other_by_name(engine):
    net = engine.networks.create("lab-names")
    other = engine.networks.create("lab-other")
    server = web(engine, 8080, name="web", network="lab-names",
                 networking_config={"lab-names": {"Aliases": ["web-alias"]}})
    try:
        web_ip = server.attrs["NetworkSettings"]["Networks"]["lab-names"]["IPAddress"]
        code, out = wait_http(engine, "http://web:8080/", "lab-names")
        assert code == 0 and out.startswith("hello-")
        code, out = wait_http(engine, "http://web-alias:8080/", "lab-names")
        assert code == 0
        code, out, _ = sh(engine, "nslookup web", network_mode="lab-names")
        assert code == 0 and web_ip in out
        code, out, _ = sh(engine, f"nslookup {server.id[:12]}", network_mode="lab-names")
        assert code == 0 and web_ip in out
        # resolv.conf points at the embedded server
        code, out, _ = sh(engine, "cat /etc/resolv.conf", network_mode="lab-names")
        assert "nameserver 127.0.0.11" in out
        # another network can neither resolve nor reach it
        code, out, _ = sh(engine, f"nc -w 1 {web_ip} 8080 </dev/null && echo reached", network_mode="lab-other")
        assert "reached" not in out
        code, out, _ = sh(engine, "nslookup web", network_mode="lab-other")
        assert web_ip not in out
        # a container that joins later is found at once; one that left is gone at once
        late = engine.containers.run("busybox", ["sleep", "30"], detach=True, name="late", network="lab-names")
        late.reload()
        late_ip = late.attrs["NetworkSettings"]["Networks"]["lab-names"]["IPAddress"]
        code, out, _ = sh(engine, "nslookup late", network_mode="lab-names")
        assert late_ip in out
        late.remove(force=True)
        code, out, _ = sh(engine, "nslookup late", network_mode="lab-names")
        assert late_ip not in out
    finally:
        server.remove(force=True)
        net.remove()
        other.remove()
    with pytest.raises(NetworkNotFound):
        engine.networks.get("lab-names")


def test_network_inspect_and_ls_have_dockers_shape(engine):
    net = engine.networks.create("lab-shape", subnet="10.231.7.0/24", gateway="10.231.7.254",
                                 labels={"course": "intro"})
    try:
        c = engine.containers.run("busybox", ["sleep", "30"], detach=True, network="lab-shape",
                                  networking_config={"lab-shape": {"IPAMConfig": {"IPv4Address": "10.231.7.50"}}})
        a = engine.networks.get("lab-shape").attrs
        assert a["IPAM"]["Config"] == [{"Subnet": "10.231.7.0/24", "Gateway": "10.231.7.254"}]
        assert a["Driver"] == "bridge" and a["Scope"] == "local" and a["Labels"] == {"course": "intro"}
        assert a["Containers"][c.id]["IPv4Address"] == "10.231.7.50/24"
        code, out, _ = sh(engine, "ip route", network_mode="lab-shape")
        assert "default via 10.231.7.254" in out
        ls = cli(engine, "network", "ls", "--filter", "label=course=intro", "--format", "{{.Name}} {{.Driver}}")
        assert ls.stdout.split() == ["lab-shape", "bridge"]
        ids = cli(engine, "network", "ls", "-q").stdout.split()
        assert net.short_id in ids and len(ids) >= 4          # bridge, host, none and ours
        fmt = cli(engine, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "lab-shape")
        assert fmt.stdout.strip() == "10.231.7.0/24"
        with pytest.raises(NetworkInUse, match="active endpoints"):
            net.remove()
        c.remove(force=True)
    finally:
        net.remove()


def test_connect_and_disconnect_a_running_container(engine):
    a, b = engine.networks.create("lab-a"), engine.networks.create("lab-b")
    try:
        target = engine.containers.run("busybox", ["sleep", "30"], detach=True, name="target", network="lab-b")
        c = engine.containers.run("busybox", ["sleep", "30"], detach=True, name="roamer", network="lab-a")
        b.connect(c, aliases=["roaming"])
        out = c.exec_run(["sh", "-c", "ip -o -4 addr; nslookup target"]).output.decode()
        assert "eth1" in out
        target.reload()
        assert target.attrs["NetworkSettings"]["Networks"]["lab-b"]["IPAddress"] in out
        code, out, _ = sh(engine, "nslookup roaming", network_mode="lab-b")
        assert code == 0
        b.disconnect(c)
        out = c.exec_run(["ip", "-o", "link"]).output.decode()
        assert "eth1" not in out
        with pytest.raises(SandboxError, match="not connected"):
            b.disconnect(c)
        c.remove(force=True)
        target.remove(force=True)
    finally:
        a.remove()
        b.remove()


# --------------------------------------------------------------------------- published ports

def test_a_published_port_answers_from_loopback_the_host_and_other_containers(engine):
    port = free_port()
    c = web(engine, 80, name="pub", ports={"80/tcp": port})
    try:
        assert fetch(f"http://127.0.0.1:{port}/").startswith("hello-")
        addr = host_address()
        if addr:
            assert fetch(f"http://{addr}:{port}/").startswith("hello-")
        gateway = engine.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
        code, out = wait_http(engine, f"http://{gateway}:{port}/", "bridge")      # hairpin
        assert code == 0 and out.startswith("hello-")
        if addr:
            code, out = wait_http(engine, f"http://{addr}:{port}/", "bridge")
            assert code == 0
        assert cli(engine, "port", "pub").stdout.strip() == f"80/tcp -> 0.0.0.0:{port}"
        ps = cli(engine, "ps", "--format", "{{.Ports}}", "--filter", "name=pub").stdout.strip()
        assert ps == f"0.0.0.0:{port}->80/tcp"
        c.reload()
        assert c.attrs["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    finally:
        c.remove(force=True)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)


def test_publish_all_picks_free_ports(engine):
    proc = cli(engine, "run", "-d", "-P", "--expose", "80", "--name", "pall", "busybox", "sh", "-c",
               WEB.format(port=80))
    try:
        line = cli(engine, "port", "pall", "80").stdout.strip()
        host_port = int(line.rsplit(":", 1)[1])
        assert host_port > 0
        assert fetch(f"http://127.0.0.1:{host_port}/").startswith("hello-")
    finally:
        cli(engine, "rm", "-f", proc.stdout.strip())


def test_a_taken_host_port_is_refused_before_the_container_starts(engine):
    holder = socket.socket()
    holder.bind(("0.0.0.0", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    before = veths_named()
    try:
        with pytest.raises(PortInUse) as e:
            engine.containers.run("busybox", ["true"], ports={"80/tcp": port}, remove=True)
        assert str(port) in str(e.value) and f"pid {os.getpid()}" in str(e.value)
        # a second container cannot take a port one of ours publishes either
        c = engine.containers.run("busybox", ["sleep", "30"], detach=True, name="holder2",
                                  ports={"81/tcp": free_port()})
        c.reload()
        taken = c.attrs["NetworkSettings"]["Ports"]["81/tcp"][0]["HostPort"]
        with pytest.raises(PortInUse, match="holder2"):
            engine.containers.run("busybox", ["true"], ports={"80/tcp": int(taken)}, remove=True)
        c.remove(force=True)
    finally:
        holder.close()
    assert not wait_gone([v for v in veths_named() if v not in before])


# --------------------------------------------------------------------------- outbound NAT

def test_outbound_nat_reaches_the_internet_as_the_host(engine, internet, tmp_path):
    code, out = wait_http(engine, internet.url, "bridge", tries=20)
    assert code == 0 and out.strip() == INET_HOST          # the server saw the host, not the container
    internal = engine.networks.create("lab-internal", internal=True)
    try:
        code, out, _ = sh(engine, f"timeout 5 wget -q -O- {internet.url}", network_mode="lab-internal")
        assert code != 0
    finally:
        internal.remove()
    (tmp_path / "Dockerfile").write_text(f"FROM busybox\nRUN wget -q -O /seen {internet.url}\nCMD cat /seen\n")
    image = engine.build(str(tmp_path), tags=["nat-build:1"])
    try:
        assert engine.run("nat-build:1").output.decode().strip() == INET_HOST
        (tmp_path / "Dockerfile").write_text(f"FROM busybox\nRUN --network=none wget -q -O /seen {internet.url}\n")
        with pytest.raises(SandboxError):
            engine.build(str(tmp_path), tags=["nat-build:2"], no_cache=True)
    finally:
        engine.images.remove(image.id, force=True)


def test_names_outside_the_network_are_forwarded(engine, internet):
    net = engine.networks.create("lab-forward")
    try:
        code, out, _ = sh(engine, "nslookup somewhere.example", network_mode="lab-forward", dns=[INET_ADDR])
        assert code == 0 and INET_ANSWER in out              # asked 127.0.0.11, answered by "the internet"
        code, out, _ = sh(engine, "cat /etc/resolv.conf", network_mode="lab-forward", dns=[INET_ADDR])
        assert "nameserver 127.0.0.11" in out               # the container still asks the embedded one
    finally:
        net.remove()


# --------------------------------------------------------------------------- none, host, container:

def test_none_host_and_container_modes(engine):
    code, out, _ = sh(engine, "ls /sys/class/net", network_mode="none")
    assert out.split() == ["lo"]
    code, out, _ = sh(engine, "readlink /proc/self/ns/net", network_mode="host")
    assert out.strip() == os.readlink("/proc/self/ns/net")
    first = engine.containers.run("busybox", ["sleep", "30"], detach=True, name="first")
    try:
        code, out, _ = sh(engine, "readlink /proc/self/ns/net; hostname", network_mode="container:first")
        first_ns = first.exec_run(["readlink", "/proc/self/ns/net"]).output.decode().strip()
        assert out.split()[0] == first_ns and out.split()[1] == first.attrs["Config"]["Hostname"]
        with pytest.raises(UsageError, match="conflicting options"):
            engine.containers.create("busybox", ["true"], network_mode="container:first", ports={"80/tcp": 8080})
    finally:
        first.remove(force=True)


# --------------------------------------------------------------------------- faults and bad input

def test_bad_network_input_is_refused_and_leaves_nothing(engine):
    before = {n.name for n in engine.networks.list()}
    taken = engine.networks.get("bridge").attrs["IPAM"]["Config"][0]["Subnet"]
    cases = [
        (dict(name="bad1", subnet=taken), "overlaps"),
        (dict(name="bad2", subnet="10.300.0.0/24"), "CIDR"),
        (dict(name="bad3", subnet="10.232.0.5/24"), "host bits"),
        (dict(name="bad4", subnet="10.232.1.0/24", gateway="10.232.2.1"), "not a host address"),
        (dict(name="bridge"), "pre-defined"),
        (dict(name="bad name"), "invalid network name"),
    ]
    for kwargs, why in cases:
        with pytest.raises(UsageError, match=why):
            engine.networks.create(**kwargs)
    assert {n.name for n in engine.networks.list()} == before
    net = engine.networks.create("lab-bad", subnet="10.232.3.0/24")
    try:
        with pytest.raises(UsageError, match="already exists"):
            engine.networks.create("lab-bad")
        with pytest.raises(UsageError, match="does not belong"):
            engine.containers.create("busybox", ["true"], network="lab-bad",
                                     networking_config={"lab-bad": {"IPAMConfig": {"IPv4Address": "10.9.9.9"}}})
        c = engine.containers.run("busybox", ["sleep", "30"], detach=True, network="lab-bad",
                                  networking_config={"lab-bad": {"IPAMConfig": {"IPv4Address": "10.232.3.9"}}})
        clash = engine.containers.create("busybox", ["true"], network="lab-bad",
                                         networking_config={"lab-bad": {"IPAMConfig": {"IPv4Address": "10.232.3.9"}}})
        with pytest.raises(UsageError, match="already in use"):
            clash.start()
        clash.remove()
        with pytest.raises(NetworkNotFound):
            engine.networks.get("no-such-net")
        with pytest.raises(NetworkNotFound):
            engine.containers.create("busybox", ["true"], network="no-such-net")
        with pytest.raises(ContainerNotFound):
            net.connect("no-such-container")
        with pytest.raises(UsageError, match="not a port"):
            cli_error(engine, "run", "--rm", "-p", "70000:80", "busybox", "true")
        c.remove(force=True)
    finally:
        net.remove()
    assert not os.path.exists(f"/sys/class/net/sbr-{net.id[:11]}")


def cli_error(engine, *argv):
    """The CLI's error for ``argv`` as the exception the parser raises (one line, no traceback)."""
    from sandbox import cli as sandbox_cli
    return sandbox_cli.run_argv(list(argv), engine=engine)


def test_networks_survive_a_killed_supervisor_and_rules_come_back(engine):
    net = engine.networks.create("lab-crash")
    port = free_port()
    server = web(engine, 80, name="crashweb", network="lab-crash", ports={"80/tcp": port})
    try:
        assert fetch(f"http://127.0.0.1:{port}/").startswith("hello-")
        pid = engine.supervisor.status()["pid"]
        os.kill(pid, 9)
        # the kernel keeps forwarding while no supervisor runs
        assert fetch(f"http://127.0.0.1:{port}/").startswith("hello-")
        # rules lost by hand come back with the next supervisor
        subprocess.run(["nft", "delete", "table", "ip", _table(engine)], check=True)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
        engine.ensure_supervisor()
        assert fetch(f"http://127.0.0.1:{port}/").startswith("hello-")
        code, out = wait_http(engine, "http://crashweb/", "lab-crash")     # its name server is back too
        assert code == 0
    finally:
        server.remove(force=True)
        net.remove()
    stop_supervisor(engine)
    assert not _table_exists(engine)
    assert not [n for n in os.listdir("/sys/class/net") if n.startswith(("sbr-", "sbv"))]


def _table(engine) -> str:
    from sandbox.network.firewall import table_name
    return table_name(str(engine.root))


def _table_exists(engine) -> bool:
    from sandbox.network import firewall
    return firewall.exists(_table(engine))
