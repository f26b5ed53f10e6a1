"""``sandbox system df|prune|info|supervisor``: what the store holds, clearing out what nothing
uses, and the store's supervisor process (``status``, ``stop``: after an upgrade, or to watch
containers outlive it)."""

from __future__ import annotations

from typing import Any

from ..humanize import size
from .table import write_table


def register(sub: Any) -> None:
    p = sub.add_parser("system", help="Manage the store")
    ssub = p.add_subparsers(dest="system_verb", metavar="COMMAND", parser_class=type(p), prog=p.prog)
    ssub.required = True
    d = ssub.add_parser("df", help="Show disk usage")
    d.add_argument("-v", "--verbose", action="store_true")
    d.set_defaults(func=run_df)
    pr = ssub.add_parser("prune", help="Remove unused data")
    pr.add_argument("-a", "--all", action="store_true", help="remove all unused images, not just dangling ones")
    pr.add_argument("--volumes", action="store_true", help="prune anonymous volumes")
    pr.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    pr.set_defaults(func=run_prune)
    from . import info
    info.register(ssub, "info")
    sv = ssub.add_parser("supervisor", help="Show or stop the store's supervisor process")
    sv.add_argument("action", choices=["status", "stop"])
    sv.set_defaults(func=run_supervisor)
    from .daemon import add_flags
    add_flags(ssub.add_parser("service", help="Serve the Docker Engine API (Podman's name for `sandbox daemon`)"))


def run_supervisor(engine: Any, args: Any, out: Any) -> int:
    client = engine.supervisor
    if args.action == "status":
        info = client.status()
        if info is None:
            out.write(f"no supervisor runs for {engine.root}; the next container command starts one\n")
        else:
            n = int(info.get("containers", 0))
            out.write(f"supervisor pid {info['pid']} (version {info.get('version', '?')}) serving "
                      f"{engine.root}: {n} container{'' if n == 1 else 's'}; "
                      f"log {engine.root / 'supervisor.log'}\n")
        return 0
    pid = client.stop()
    if pid is None:
        out.write(f"no supervisor runs for {engine.root}\n")
    else:
        out.write(f"stopped supervisor pid {pid}; running containers keep running, "
                  "and the next supervisor adopts them\n")
    return 0


def disk_usage(engine: Any) -> list[list[str]]:
    images = engine.images.list(all=True)
    containers = engine.containers.list(all=True)
    used_images = {c.attrs["Image"] for c in containers}
    image_size = sum(int(getattr(i, "size", 0) or 0) for i in images)
    active_images = sum(1 for i in images if i.id in used_images)
    from ..containers.volumes import disk_usage
    sizes = [(disk_usage(c.dir / "upper"), c) for c in containers]
    csize = sum(s for s, _ in sizes)
    running = sum(1 for c in containers if c.attrs["State"].get("Running"))
    reclaim_c = sum(s for s, c in sizes if not c.attrs["State"].get("Running"))
    vols = engine.volumes.list()
    in_use = engine.volumes.store.in_use()
    vsize = {v.name: engine.volumes.store.size(v.name) for v in vols}
    records = engine.build_cache().records()
    cache_size = sum(int(r.get("layer_size") or 0) for r in records)
    return [["Images", str(len(images)), str(active_images), size(image_size), ""],
            ["Containers", str(len(containers)), str(running), size(csize), size(reclaim_c)],
            ["Local Volumes", str(len(vols)), str(sum(1 for v in vols if v.name in in_use)),
             size(sum(vsize.values())), size(sum(s for n, s in vsize.items() if n not in in_use))],
            ["Build Cache", str(len(records)), "0", size(cache_size), size(cache_size)]]


def run_df(engine: Any, args: Any, out: Any) -> int:
    write_table(out, ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], disk_usage(engine))
    if args.verbose:
        import datetime as _dt
        from ..humanize import ago
        records = sorted(engine.build_cache().records(), key=lambda r: r.get("created_at", 0), reverse=True)
        out.write("\nBuild cache usage: " + size(sum(int(r.get("layer_size") or 0) for r in records)) + "\n\n")
        rows = []
        for r in records:
            created = _dt.datetime.fromtimestamp(r.get("created_at", 0), _dt.timezone.utc).isoformat()
            kind = "regular" if r.get("layer_size") is not None else "metadata"
            rows.append([str(r.get("key", ""))[:12], kind, size(int(r.get("layer_size") or 0)), ago(created),
                         " ".join(str(r.get("instruction", "")).split())[:50]])
        write_table(out, ["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "STEP"], rows)
    return 0


def run_prune(engine: Any, args: Any, out: Any) -> int:
    result = engine.containers.prune()
    for cid in result["ContainersDeleted"]:
        out.write(f"deleted container: {cid}\n")
    if args.volumes:
        for name in engine.volumes.prune()["VolumesDeleted"]:
            out.write(f"deleted volume: {name}\n")
    cache = engine.build_cache().prune()
    if cache["CachesDeleted"]:
        out.write(f"deleted build cache records: {cache['CachesDeleted']}\n")
    images = engine.images.prune(all=args.all)
    for item in images.get("ImagesDeleted") or []:
        for k, v in item.items():
            out.write(f"{k.lower()}: {v}\n")
    out.write(f"Total reclaimed space: {size(images.get('SpaceReclaimed') or 0)}\n")
    return 0
