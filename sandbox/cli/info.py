"""``sandbox info``: the store, its storage driver, and what this machine allows."""

from __future__ import annotations

from typing import Any



def register(sub: Any, name: str = "info") -> None:
    p = sub.add_parser(name, help="Display system-wide information")
    p.add_argument("-f", "--format", help="Go template, e.g. '{{.Driver}}'")
    p.set_defaults(func=run)


def run(engine: Any, args: Any, out: Any) -> int:
    info = engine.info()
    if args.format:
        from ..gotemplate import render
        out.write(render(args.format, info) + "\n")
        return 0
    lines = [
        ("Server Version", info["ServerVersion"]),
        ("Images", info["Images"]),
        ("Storage Driver", info["Driver"]),
        ("Sandbox Root Dir", info["DockerRootDir"]),
        ("OCI Layout", info["OCILayout"]),
        ("Cgroup Version", info["CgroupVersion"]),
        ("Privilege Mode", info["PrivilegeMode"]),
        ("This machine allows", info["Allows"]),
        *([("Why", info["PrivilegeModeReason"])] if info.get("PrivilegeModeReason") else []),
        ("Kernel Version", info["KernelVersion"]),
        ("Operating System", info["OperatingSystem"]),
        ("Architecture", info["Architecture"]),
        ("CPUs", info["NCPU"]),
        ("Total Memory", _gib(info["MemTotal"])),
    ]
    for key, value in lines:
        out.write(f" {key}: {value}\n")
    return 0


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f}GiB"
