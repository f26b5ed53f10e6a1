"""Network records on disk (``$SANDBOX_ROOT/networks/<id>.json``) and the store's network settings.

A record is ``docker network inspect``'s document (Name, Id, Driver, IPAM,
Internal, Options, Labels, ...) plus a private ``Sandbox`` section holding
the IPAM allocations (address -> endpoint id) and the bridge's interface
name.  Its ``Containers`` section is not stored: it is computed from the
containers' own records when asked, so it can never disagree with them.
Only the supervisor writes records (temp file + rename, like every record of
the store); ``host`` and ``none`` are records too, so ``network ls`` shows
them as Docker does.

Settings come from ``$SANDBOX_ROOT/settings.json`` when it exists, spelled as
in Docker's daemon.json: ``bip`` (the default bridge's address and prefix,
e.g. ``"10.30.0.1/24"``), ``bridge-name``, ``default-address-pools``
(``[{"base": "10.222.0.0/16", "size": 24}]``), ``dns``, ``dns-search`` and
``dns-opts`` (what containers get in resolv.conf instead of the host's).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any
from collections.abc import Iterator

from ..errors import AmbiguousReference, NetworkNotFound, UsageError
from .addresses import DEFAULT_POOLS

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
PREDEFINED = ("bridge", "host", "none")
DEFAULT_BRIDGE_NAME = "sandbox0"


def now_text() -> str:
    t = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 10**9)) + f".{t % 10**9:09d}Z"


class Settings:
    """The store's network settings (daemon.json's names), with our defaults."""

    def __init__(self, root: Path) -> None:
        data: dict[str, Any] = {}
        path = root / "settings.json"
        with contextlib.suppress(FileNotFoundError):
            try:
                data = json.loads(path.read_text())
            except ValueError as e:
                raise UsageError(f"{path}: not valid JSON ({e})", hint="fix or remove the file") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path}: must hold a JSON object", hint="e.g. {\"bip\": \"10.30.0.1/24\"}")
        self.bip: str | None = data.get("bip")
        self.bridge_name: str = data.get("bridge-name") or DEFAULT_BRIDGE_NAME
        self.pools: list[dict[str, Any]] = data.get("default-address-pools") or DEFAULT_POOLS
        self.dns: list[str] = list(data.get("dns") or [])
        self.dns_search: list[str] = list(data.get("dns-search") or [])
        self.dns_opts: list[str] = list(data.get("dns-opts") or [])


class NetworkStore:
    """The ``networks/`` directory of one store."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "networks"

    def path(self, nid: str) -> Path:
        return self.dir / f"{nid}.json"

    def save(self, rec: dict[str, Any]) -> None:
        from ..containers.records import write_json
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self.path(rec["Id"]), rec, durable=True)

    def delete(self, nid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(nid))

    def all(self) -> Iterator[dict[str, Any]]:
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return
        for name in names:
            if name.endswith(".json") and len(name) == 69:
                with contextlib.suppress(OSError, ValueError):
                    yield json.loads((self.dir / name).read_text())

    def find(self, ref: str, records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The network ``ref`` names: an id, a name, or a unique id prefix (Docker's order)."""
        recs = list(self.all()) if records is None else records
        for r in recs:
            if r["Id"] == ref:
                return r
        for r in recs:
            if r["Name"] == ref:
                return r
        matches = [r for r in recs if re.fullmatch(r"[0-9a-f]+", ref or "-") and r["Id"].startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise AmbiguousReference(f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)",
                                     hint="give more characters of the id, or the name")
        raise NetworkNotFound(f"network {ref} not found", hint="`sandbox network ls` lists the networks; "
                                                               "`sandbox network create NAME` makes one")


def new_record(nid: str, name: str, driver: str, *, subnet: str | None = None, gateway: str | None = None,
               bridge: str | None = None, internal: bool = False, labels: dict[str, str] | None = None,
               default: bool = False) -> dict[str, Any]:
    """A network's record, shaped as ``docker network inspect`` shows it."""
    options: dict[str, str] = {}
    if driver == "bridge" and bridge:
        options = {"com.docker.network.bridge.name": bridge}
        if default:
            options.update({"com.docker.network.bridge.default_bridge": "true",
                            "com.docker.network.bridge.enable_icc": "true",
                            "com.docker.network.bridge.enable_ip_masquerade": "true",
                            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                            "com.docker.network.driver.mtu": "1500"})
    config = [{"Subnet": subnet, "Gateway": gateway}] if subnet else []
    return {"Name": name, "Id": nid, "Created": now_text(), "Scope": "local", "Driver": driver,
            "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": None, "Config": config},
            "Internal": internal, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": {}, "Options": options, "Labels": dict(labels or {}),
            "Sandbox": {"Allocations": {}, "Bridge": bridge or ""}}


def new_id() -> str:
    return os.urandom(32).hex()
