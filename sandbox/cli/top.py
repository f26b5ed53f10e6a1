"""``sandbox top`` and ``sandbox stats``."""

from __future__ import annotations

import time
from typing import Any

from ..humanize import size
from .table import write_table


def register(sub: Any) -> None:
    p = sub.add_parser("top", help="Display the running processes of a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ps_args", nargs="...", metavar="[ps OPTIONS]")
    p.set_defaults(func=run_top)

    p = sub.add_parser("stats", help="Display a live stream of container(s) resource usage statistics")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("-a", "--all", action="store_true", help="show all containers (default shows just running)")
    p.add_argument("--no-stream", action="store_true", help="disable streaming stats and only pull the first result")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--format", help="Go template")
    p.set_defaults(func=run_stats)


def run_top(engine: Any, args: Any, out: Any) -> int:
    result = engine.containers.get(args.container).top(" ".join(args.ps_args) or None)
    write_table(out, result["Titles"], result["Processes"])
    return 0


def _rows(engine: Any, containers: list[Any], previous: dict[str, Any]) -> list[dict[str, Any]]:
    from ..containers.inspect import cpu_percent, memory_usage, stats_snapshot
    rows = []
    for c in containers:
        snap = stats_snapshot(c.reload().attrs, previous.get(c.id))
        previous[c.id] = snap
        used, limit = memory_usage(snap)
        nets = snap["networks"]
        rx = sum(n["rx_bytes"] for n in nets.values())
        tx = sum(n["tx_bytes"] for n in nets.values())
        blk = snap["blkio_stats"]
        rows.append({"Container": c.short_id, "ID": c.short_id, "Name": c.name,
                     "CPUPerc": f"{cpu_percent(snap):.2f}%",
                     "MemUsage": f"{binary_size(used)} / {binary_size(limit)}",
                     "MemPerc": f"{(used / limit * 100 if limit else 0):.2f}%",
                     "NetIO": f"{size(rx)} / {size(tx)}", "BlockIO": f"{size(blk['read_bytes'])} / {size(blk['write_bytes'])}",
                     "PIDs": str(snap["pids_stats"]["current"])})
    return rows


def run_stats(engine: Any, args: Any, out: Any) -> int:
    from .table import write_format
    if args.containers:
        containers = [engine.containers.get(r) for r in args.containers]
    else:
        containers = engine.containers.list(all=args.all)
    previous: dict[str, Any] = {}
    _rows(engine, containers, previous)
    headers = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]
    try:
        while True:
            time.sleep(0.5 if args.no_stream else 1.0)
            rows = _rows(engine, containers, previous)
            if not args.no_stream:
                out.write("\x1b[2J\x1b[H")
            if args.format:
                write_format(out, args.format, rows, {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME",
                                                      "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT",
                                                      "MemPerc": "MEM %", "NetIO": "NET I/O",
                                                      "BlockIO": "BLOCK I/O", "PIDs": "PIDS"})
            else:
                write_table(out, headers, [[r["ID"], r["Name"], r["CPUPerc"], r["MemUsage"], r["MemPerc"],
                                            r["NetIO"], r["BlockIO"], r["PIDs"]] for r in rows])
            if args.no_stream:
                return 0
            out.flush()
    except KeyboardInterrupt:
        return 0


def binary_size(n: float) -> str:
    """docker stats' memory column: 1024-based units (MiB, GiB)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return f"{n}"
