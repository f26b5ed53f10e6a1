"""``create``: a container record, its directory, its init layer and its /etc files.

Three requests end here: ``create`` (the builder, which has resolved the image
itself), ``create_named`` (everyone else: the image is resolved in the
supervisor, so a cold ``sandbox run`` never loads the image stack) and
``run_named`` (``create_named`` and an attached ``start`` in one request, for
``Engine.run``: one round trip and one client wake-up fewer per container).  Nothing
is left behind when a create fails: the directory, the lease and any volume
made for it go again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Any

from ...containers import setup
from ...containers.records import NAME_RE, ZERO_TIME, new_id, random_name
from ...errors import ContainerExists, ImageNotFound, SandboxError, UsageError
from ..box import Box
from ..conn import STREAMING, Conn
from ..core import Core
from ..health import now_text
from ..mounts import mounts_for
from .lifecycle import op_start


def op_create(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    """``create`` with ``image_id`` and ``layers`` resolved by the caller (the builder).

    With ``remove_on_disconnect`` the container belongs to ``conn``: when that
    connection closes, the supervisor removes the container, running or not
    (``Supervisor.conn_closed``).  A build step's container needs it: the
    builder removes it after committing its layer, but a builder killed
    before that could not, and its RUN would run on, and its record stay,
    with nobody to clean up.
    """
    result = create(core, msg)
    if msg.get("remove_on_disconnect"):
        core.boxes[result["Id"]].owner = conn
    return result


def op_create_named(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    """``create`` of the image called ``image``.

    The image is resolved here and its config merged under the
    user's, so a client needs no image code.  Resolving and leasing happen
    under the store's transaction lock, so no garbage collection can remove
    the image in between.  Layers not unpacked yet: ``{"NeedUnpack": true}``
    and the client unpacks them (that can take seconds, too long to
    block this single-threaded loop).
    """
    from ...containers.defaults import check_resources, merge_image_config
    check_resources(msg["host_config"])
    ref = msg["image"]
    with core.store.transaction():
        try:
            img = core.images.get(ref)
        except ImageNotFound:
            raise ImageNotFound(f"Unable to find image '{ref}' locally",
                                hint=f"`sandbox pull {ref}`, or `sandbox bootstrap busybox` "
                                     "for an offline base image") from None
        driver = _driver(core, msg)
        if not all(core.images.layers.exists(c) for c in img.chain_ids) or (
                driver == "vfs" and img.chain_ids and not core.images.layers.has_base_tree(img.chain_ids[-1])):
            return {"NeedUnpack": True, "Driver": driver}
        config = merge_image_config(img.config.get("config") or {}, msg["config"],
                                    bool(msg.get("command_given", True)))
        config["Image"] = ref
        return create(core, {**msg, "config": config, "image_id": img.id, "layers": img.chain_ids,
                             "image_ref": ref, "storage_driver": driver})


def op_run_named(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    """``create_named`` then ``start`` with ``attach``: the reply is the start's, then the output and the exit.

    Layers not unpacked yet end the stream at once with ``{"exit": 0,
    "NeedUnpack": true}``: the client unpacks them and asks again the old way
    (``create_named``, then ``start``).  A failed start answers as ``start``
    does (an ``--rm`` container is removed first); the create's own errors
    answer as ``create_named``'s.  Older clients never send this request, and
    a client meeting an older supervisor (which does not know it) falls back
    to the two requests.
    """
    created = op_create_named(core, conn, msg)
    if created.get("NeedUnpack"):
        conn.reply(created)
        conn.end_stream({"exit": 0, **created})
        return STREAMING
    return op_start(core, conn, {**msg, "id": created["Id"], "attach": True})


def _driver(core: Core, msg: dict[str, Any]) -> str:
    """The storage driver of a new container: the one the client forces (its
    ``$SANDBOX_STORAGE_DRIVER``), else this process's, else overlay if it mounts here."""
    from ...image.vfs import storage_driver
    return storage_driver(core.store.tmp_dir, msg.get("storage_driver") or None)


def _name(core: Core, wanted: str | None) -> str:
    """The container's name: the one asked for (checked and free), or a random free one."""
    taken = core.taken_names()
    if not wanted:
        return random_name(set(taken))
    name = wanted.lstrip("/")
    if not NAME_RE.match(name):
        raise UsageError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                         hint="pick a name of letters, digits, _ . and -")
    if name in taken:
        raise ContainerExists(
            f'Conflict. The container name "/{name}" is already in use by container '
            f'"{taken[name]}". You have to remove (or rename) that container to be able '
            "to reuse that name.", hint=f"`sandbox rm {name}` or pick another --name")
    return name


def create(core: Core, msg: dict[str, Any]) -> Any:
    config, host = msg["config"], msg["host_config"]
    if (host.get("Runtime") or "sandbox") == "runc":
        from ..runc import runc_binary
        runc_binary()   # a clear error now rather than at start
    if _no_namespaces():
        host["Runtime"] = "proot"   # the only way to run anything here (see supervisor.proot)
    if host.get("Runtime") == "proot":
        from ..proot import proot_binary
        proot_binary()
    name = _name(core, msg.get("name"))
    networks = _networks(core, config, host, msg.get("networking_config") or {})
    driver = msg["storage_driver"] = _driver(core, msg)
    cid = new_id()
    cdir = core.containers.path(cid)
    made_volumes: list[str] = []
    holder = f"container-{cid}"
    try:
        # The directory first: a create the supervisor is killed in is then one
        # directory without a record, which the next supervisor removes, with
        # the lease and the volumes made for it (adopt.remove_unfinished_create).
        cdir.mkdir(parents=True)
        mounts = mounts_for(core.volumes, config, host, made_volumes, creator=cid)
        # A --rm container is removed after a crash of the machine (adopt.recover: exited,
        # then auto-removed), so neither its lease nor its record needs to survive one.
        durable = not host.get("AutoRemove")
        core.store.lease(holder, images=[msg["image_id"]], layers=list(msg["layers"]), durable=durable)
        setup.make_dirs(cdir, [m["Destination"] for m in mounts],
                        [m["Destination"] for m in mounts
                         if m.get("Type") == "bind" and os.path.isfile(m.get("Source") or "")],
                        driver=driver)
        if driver == "vfs":
            # The container's own copy of its image: the one slow step of a vfs create
            # (the base tree itself was made by the client, see op_create_named).
            setup.make_vfs_rootfs(core.store, cdir, list(msg["layers"]))
        if not config.get("Hostname"):
            config["Hostname"] = cid[:12]
        setup.write_etc_files(cdir, config["Hostname"], config.get("Domainname") or "",
                              host["NetworkMode"], host.get("ExtraHosts") or [],
                              host.get("Dns") or [], host.get("DnsSearch") or [], host.get("DnsOptions") or [])
        record = _record(core, cid, name, msg, mounts, networks)
        core.containers.save(record, durable=durable)
    except BaseException:
        shutil.rmtree(cdir, ignore_errors=True)
        with contextlib.suppress(OSError, SandboxError):
            core.store.release(holder)
        for v in made_volumes:
            with contextlib.suppress(SandboxError, OSError):
                core.volumes.remove(v)
        raise
    box = core.boxes[cid] = Box(core, record)
    box.event("create")
    return {"Id": cid, "Warnings": []}


def _networks(core: Core, config: dict[str, Any], host: dict[str, Any],
              networking: dict[str, Any]) -> dict[str, Any]:
    """NetworkSettings.Networks of a new container, after Docker's checks of the network flags.

    ``networking`` is the API's NetworkingConfig: ``{"EndpointsConfig": {NAME:
    {"IPAMConfig": {"IPv4Address": ...}, "Aliases": [...], "MacAddress": ...}}}``.
    """
    mode = host.get("NetworkMode") or "default"
    from ... import rootless
    if _no_namespaces():
        mode = _network_without_namespaces(mode)
    elif rootless.inside():
        mode = _rootless_network(mode)
    if mode == "default":
        mode = "bridge"
    host["NetworkMode"] = mode
    endpoints = dict(networking.get("EndpointsConfig") or {})
    if mode == "slirp4netns":
        from ...network import slirp
        return {mode: slirp.endpoint()}
    if mode in ("none", "host") or mode.startswith("container:"):
        _check_shared_network(core, config, host, mode, endpoints)
        return {} if mode.startswith("container:") else {mode: _endpoint_settings({})}
    wanted = endpoints.get(mode) or {}
    ip = (wanted.get("IPAMConfig") or {}).get("IPv4Address")
    if mode == "bridge":
        if ip:
            raise UsageError("user specified IP address is supported on user defined networks only",
                             hint="create a network (`sandbox network create NAME`) and use --network NAME --ip ...")
        if wanted.get("Aliases"):
            raise UsageError("network-scoped alias is supported only for containers in user defined networks",
                             hint="create a network (`sandbox network create NAME`) and use --network NAME")
        return {"bridge": _endpoint_settings(wanted)}
    out = {}
    for name, es in {mode: wanted, **endpoints}.items():
        net = core.network.find(name)
        if ip and name == mode:
            import ipaddress
            from ...network.addresses import parse_address
            subnet = ipaddress.IPv4Network(net["IPAM"]["Config"][0]["Subnet"]) if net["IPAM"]["Config"] else None
            if subnet is None or parse_address(ip, "--ip") not in subnet:
                raise UsageError(f"invalid --ip {ip}: it does not belong to network {net['Name']} ({subnet})",
                                 hint=f"pick an address inside {subnet}")
        out[net["Name"]] = _endpoint_settings(es, net["Id"])
    return out


def _no_namespaces() -> bool:
    from ... import hostinfo
    return hostinfo.mode().name == "no-namespaces"


def _network_without_namespaces(mode: str) -> str:
    """Without namespaces every container is on the host's network: there is no other."""
    if mode in ("default", "host"):
        return "host"
    raise UsageError(f"network {mode!r} needs a network namespace, and namespaces are refused here: "
                     "containers use the host's network", hint="drop --network")


def _rootless_network(mode: str) -> str:
    """Rootless containers get slirp4netns (the default where it is installed), the host's network, or none.

    A bridge needs the host's network namespace, which only root may change;
    slirp4netns is a user-mode stack in a process of the user's own.
    """
    from ...network import slirp
    if mode in ("default", "bridge", slirp.MODE) and slirp.available():
        return slirp.MODE   # Podman's rootless default: a namespace of its own, slirp4netns beside it
    if mode == "default":
        return "host"
    if mode in ("none", "host") or mode.startswith("container:"):
        return mode
    raise UsageError(f"network {mode!r} needs root: in rootless mode containers use slirp4netns (when "
                     "installed; the default then), the host's network, or none",
                     hint="apt install slirp4netns (it needs /dev/net/tun readable and writable by you), "
                          "or use --network host or none; for user networks run the engine as root")


def _endpoint_settings(es: dict[str, Any], network_id: str = "") -> dict[str, Any]:
    return {"IPAMConfig": es.get("IPAMConfig") or None, "Links": None, "Aliases": es.get("Aliases") or None,
            "NetworkID": network_id, "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "MacAddress": es.get("MacAddress") or "", "DriverOpts": None}


def _check_shared_network(core: Core, config: dict[str, Any], host: dict[str, Any], mode: str,
                          endpoints: dict[str, Any]) -> None:
    """Docker's refusals for ``none``, ``host`` and ``container:NAME``."""
    if any((es.get("IPAMConfig") or {}).get("IPv4Address") or es.get("Aliases") for es in endpoints.values()):
        raise UsageError(f"--ip and --network-alias need a user defined network, not {mode}",
                         hint="create one with `sandbox network create NAME`")
    if not mode.startswith("container:"):
        return
    other = core.box(mode.partition(":")[2])   # ContainerNotFound now rather than at start
    for flag, given in (("hostname", config.get("Hostname")), ("port publishing", host.get("PortBindings")),
                        ("dns", host.get("Dns")), ("add-host", host.get("ExtraHosts")),
                        ("mac-address", config.get("MacAddress"))):
        if given:
            raise UsageError(f"conflicting options: {flag} and the network mode",
                             hint=f"--network {mode} shares that container's network; drop --{flag}")
    host["NetworkMode"] = f"container:{other.id}"
    config["Hostname"] = other.rec["Config"].get("Hostname") or other.id[:12]


def _record(core: Core, cid: str, name: str, msg: dict[str, Any],
            mounts: list[dict[str, Any]], networks: dict[str, Any]) -> dict[str, Any]:
    """docker inspect's document for a new container, plus our private ``Sandbox`` section."""
    config, host = msg["config"], msg["host_config"]
    cdir = core.containers.path(cid)
    args = setup.process_args(config)
    record: dict[str, Any] = {
        "Id": cid, "Created": now_text(), "Path": args[0] if args else "",
        "Args": args[1:], "Name": "/" + name, "RestartCount": 0,
        "State": {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                  "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                  "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME},
        "Image": msg["image_id"], "ResolvConfPath": str(cdir / "resolv.conf"),
        "HostnamePath": str(cdir / "hostname"), "HostsPath": str(cdir / "hosts"),
        "LogPath": str(cdir / "container.log"), "Driver": msg["storage_driver"],
        "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": None, "HostConfig": host,
        "GraphDriver": _graph_driver(core, cdir, msg),
        "Mounts": mounts, "Config": config,
        "NetworkSettings": {"Networks": networks, "Ports": {}, "SandboxKey": "", "IPAddress": "",
                            "Gateway": "", "MacAddress": ""},
        "Sandbox": {"Layers": list(msg["layers"]), "ImageRef": msg.get("image_ref") or "",
                    "BootId": "", "StartTime": 0, "HasBeenStarted": False,
                    "ManualStop": False},
    }
    if (config.get("Healthcheck") or {}).get("Test", ["NONE"])[0] != "NONE":
        record["State"]["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
    return record


def _graph_driver(core: Core, cdir: Any, msg: dict[str, Any]) -> dict[str, Any]:
    """inspect's ``GraphDriver``: overlay's directories, or (vfs) where its copy is (Docker's vfs shows no Data)."""
    if msg["storage_driver"] == "vfs":
        return {"Name": "vfs", "Data": {"Dir": str(cdir / "rootfs")}}
    return {"Name": "overlay", "Data": {
        "LowerDir": ":".join(setup.lower_dirs(core.store, cdir, list(msg["layers"]))),
        "UpperDir": str(cdir / "upper"), "WorkDir": str(cdir / "work"),
        "MergedDir": str(cdir / "rootfs")}}


HANDLERS = {"create": op_create, "create_named": op_create_named, "run_named": op_run_named}
