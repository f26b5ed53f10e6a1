"""/etc/hosts and /etc/resolv.conf for a container, as Docker writes them.

* hosts: localhost and the IPv6 names, then the container's own addresses
  with its hostname (``127.0.1.1`` when it has none yet, as before a start
  on ``none``), then ``--add-host`` entries.  With ``--network host``: the
  host's own file.
* resolv.conf: on a user-defined network, the embedded name server
  (``nameserver 127.0.0.11``, ``options ndots:0``) with the host's search
  domains; elsewhere the host's file without loopback name servers (they
  cannot be reached from a container's own network namespace; Docker drops
  them too).  ``--dns``/``--dns-search``/``--dns-option`` (or the store's
  ``dns`` settings) replace what they name.
"""

from __future__ import annotations

import os

_BASE = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
         "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
         "ff02::2\tip6-allrouters\n")


def hosts_text(hostname: str, domainname: str, network_mode: str, extra_hosts: list[str],
               addresses: list[str] = ()) -> str:  # type: ignore[assignment]
    if network_mode == "host":
        try:
            with open("/etc/hosts") as f:
                text = f.read()
        except OSError:
            text = ""
    else:
        fqdn = f"{hostname}.{domainname}" if domainname else hostname
        names = f"{fqdn} {hostname}" if fqdn != hostname else hostname
        text = _BASE + "".join(f"{a}\t{names}\n" for a in (addresses or ["127.0.1.1"]))
    for entry in extra_hosts:
        name, _, ip = entry.partition(":")
        text += f"{ip}\t{name}\n"
    return text


def _host_resolv() -> str:
    try:
        with open("/etc/resolv.conf") as f:
            return f.read()
    except OSError:
        return ""


def _is_loopback(server: str) -> bool:
    return server.startswith("127.") or server == "::1"


def resolv_text(network_mode: str, embedded: bool, dns: list[str], dns_search: list[str],
                dns_options: list[str]) -> str:
    host = _host_resolv()
    if network_mode == "host" and not (dns or dns_search or dns_options):
        return host
    lines = host.splitlines()
    servers = [l.split()[1] for l in lines if l.startswith("nameserver") and len(l.split()) > 1]
    search = next((l.split()[1:] for l in lines if l.startswith(("search", "domain"))), [])
    options = next((l.split()[1:] for l in lines if l.startswith("options")), [])
    if embedded:
        servers, options = ["127.0.0.11"], ["ndots:0"] + [o for o in options if not o.startswith("ndots")]
    elif network_mode == "slirp4netns":
        servers = ["10.0.2.3"]   # slirp's own forwarder to the host's name servers (see network.slirp)
    elif network_mode != "host":
        servers = [s for s in servers if not _is_loopback(s)]
    if dns and not embedded:
        servers = list(dns)
    if dns_search:
        search = list(dns_search)
    if dns_options:
        options = list(dns_options)
    text = "".join(f"nameserver {s}\n" for s in servers)
    if search and search != ["."]:
        text += "search " + " ".join(search) + "\n"
    if options:
        text += "options " + " ".join(options) + "\n"
    return text


def write_in_place(path: str, text: str) -> None:
    """Rewrite a file without replacing it: a running container has it bind-mounted (same inode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        data = memoryview(text.encode())
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
