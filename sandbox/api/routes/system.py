"""``/_ping``, ``/version``, ``/info``, ``/events``, ``/system/df``, ``/auth``, and what a daemon outside a swarm says."""

from __future__ import annotations

import os
import platform
import select
import socket
import time
from typing import Any

from ..http import ApiError, Exchange
from ..router import API_VERSION, MIN_API_VERSION, Router
from ..shapes import filters

SWARM = ("This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect "
         "this node to swarm and try again.")


def ping(d: Any, ex: Exchange) -> None:
    ex.send(200, b"OK", content_type="text/plain; charset=utf-8",
            headers=[("Builder-Version", "1"), ("Cache-Control", "no-cache, no-store, must-revalidate"),
                     ("Pragma", "no-cache")])


def version(d: Any, ex: Exchange) -> None:
    from ... import __version__
    engine = {"Name": "Engine", "Version": __version__,
              "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
                          "Arch": _arch(), "KernelVersion": platform.release(), "Experimental": "false",
                          "GitCommit": "sandbox-kit", "GoVersion": f"python{platform.python_version()}"}}
    ex.json({"Platform": {"Name": "sandbox kit"}, "Components": [engine], "Version": __version__,
             "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "sandbox-kit",
             "GoVersion": f"python{platform.python_version()}", "Os": "linux", "Arch": _arch(),
             "KernelVersion": platform.release(), "BuildTime": "", "Experimental": False})


def _arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def info(d: Any, ex: Exchange) -> None:
    engine = d.engine
    facts = engine.info()
    records = list(engine.containers.records.all())
    running = sum(1 for r in records if r["State"].get("Running") and not r["State"].get("Paused"))
    paused = sum(1 for r in records if r["State"].get("Paused"))
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) * 1024
    cgroup = str(facts.get("CgroupVersion") or "1")
    ex.json({
        "ID": facts.get("ID") or "", "Containers": len(records), "ContainersRunning": running,
        "ContainersPaused": paused, "ContainersStopped": len(records) - running - paused,
        "Images": facts["Images"], "Driver": facts["Driver"] if facts.get("Driver") in ("vfs", "fuse-overlayfs") else "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": None,
                    "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": True, "KernelMemory": False, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "CPUShares": True, "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": True, "BridgeNfIptables": False,
        "BridgeNfIp6tables": False, "Debug": bool(d.debug), "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": True, "NGoroutines": 0, "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": "2" if cgroup.startswith("v2") else "1",
        "NEventsListener": 0, "KernelVersion": platform.release(), "OperatingSystem": _os_name(), "OSVersion": "",
        "OSType": "linux", "Architecture": platform.machine(), "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": []},
        "NCPU": os.cpu_count() or 1, "MemTotal": mem, "GenericResources": None, "DockerRootDir": str(engine.root),
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": socket.gethostname(), "Labels": [],
        "ExperimentalBuild": False, "ServerVersion": facts["ServerVersion"],
        "Runtimes": {"sandbox": {"path": "sandbox"}, "runc": {"path": "runc"}, "proot": {"path": "proot"}},
        "DefaultRuntime": "sandbox",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "tini", "SecurityOptions": ["name=seccomp,profile=default"]
        + (["name=rootless"] if facts.get("PrivilegeMode") == "rootless" else []),  # as Docker's rootless daemon
        "Warnings": None, "Sandbox": {k: v for k, v in facts.items() if k not in ("Images", "ServerVersion")},
    })


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _client_left(sock: socket.socket) -> bool:
    """True once the client closed its end (what a streaming handler with nothing to send checks)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def _time_arg(ex: Exchange, name: str) -> float | None:
    value = ex.arg(name)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        from ...containers.logs import parse_time
        return parse_time(value)


def events(d: Any, ex: Exchange) -> None:
    from ...supervisor.events import matches, read_events
    since, until = _time_arg(ex, "since"), _time_arg(ex, "until")
    wanted = filters(ex.arg("filters"))
    out = ex.stream()
    sock = ex.conn.sock
    for event in read_events(d.engine.root, since, until, follow=True, stop=lambda: _client_left(sock)):
        if matches(event, wanted):
            out.json(event)
    out.end()


def system_df(d: Any, ex: Exchange) -> None:
    from ...containers.volumes import disk_usage
    from ..shapes import image_summary, inspect_container
    engine = d.engine
    records = list(engine.containers.records.all())
    uses: dict[str, int] = {}
    for r in records:
        uses[r["Image"]] = uses.get(r["Image"], 0) + 1
    images = [dict(image_summary(engine, i, uses)) for i in engine.images.list(all=True)]
    containers = []
    for r in records:
        doc = inspect_container(r)
        containers.append({"Id": r["Id"], "Names": [r["Name"]], "Image": r["Config"].get("Image"),
                           "ImageID": r["Image"], "Created": 0, "State": r["State"]["Status"],
                           "Status": r["State"]["Status"], "SizeRw": disk_usage(engine.containers.records.path(r["Id"]) / "upper"),
                           "SizeRootFs": 0, "Labels": doc["Config"].get("Labels") or {}, "Mounts": r.get("Mounts") or []})
    in_use = engine.volumes.store.in_use()
    volumes = [{**v.attrs, "UsageData": {"Size": engine.volumes.store.size(v.name),
                                         "RefCount": 1 if v.name in in_use else 0}} for v in engine.volumes.list()]
    from ...containers.logs import rfc3339_nano
    cache = [{"ID": str(r.get("key", ""))[:12], "Type": "regular", "Description": str(r.get("step", "")),
              "InUse": False, "Shared": False, "Size": 0, "UsageCount": 0, "LastUsedAt": None,
              "CreatedAt": rfc3339_nano(int(float(r.get("created_at") or 0) * 1e9))}
             for r in engine.build_cache().records()]
    ex.json({"LayersSize": sum(i["Size"] for i in images), "Images": images, "Containers": containers,
             "Volumes": volumes, "BuildCache": cache})


def auth(d: Any, ex: Exchange) -> None:
    body = ex.json_body({}) or {}
    registry = body.get("serveraddress") or "docker.io"
    if not body.get("username"):
        raise ApiError(400, "auth: a username is needed")
    d.engine.login(registry.replace("https://", "").replace("http://", "").rstrip("/"), body["username"],
                   body.get("password") or "")
    ex.json({"Status": "Login Succeeded", "IdentityToken": ""})


def not_a_swarm(d: Any, ex: Exchange, rest: str = "") -> None:
    ex.error(503, SWARM)


def plugins(d: Any, ex: Exchange) -> None:
    ex.json([])


def register(r: Router) -> None:
    r.add("GET", "/_ping", ping)
    r.add("HEAD", "/_ping", ping)
    r.add("GET", "/version", version)
    r.add("GET", "/info", info)
    r.add("GET", "/events", events)
    r.add("GET", "/system/df", system_df)
    r.add("POST", "/auth", auth)
    r.add("GET", "/plugins", plugins)
    for kind in ("swarm", "nodes", "services", "tasks", "secrets", "configs"):
        for method in ("GET", "POST", "DELETE"):
            r.add(method, f"/{kind}", not_a_swarm)
            r.add(method, f"/{kind}/{{rest*}}", not_a_swarm)
