"""``sandbox container VERB``: docker's management command for containers, plus ``prune``."""

from __future__ import annotations

import importlib
from typing import Any

#: container subcommand -> (module, verb registered by it)
VERBS = {"attach": "exec_", "commit": "changes", "cp": "changes", "create": "run", "diff": "changes",
         "exec": "exec_", "export": "changes", "inspect": "inspect", "kill": "lifecycle", "logs": "logs",
         "pause": "lifecycle", "rename": "lifecycle", "restart": "lifecycle", "rm": "lifecycle",
         "run": "run", "start": "run", "stats": "top", "stop": "lifecycle", "top": "top",
         "unpause": "lifecycle", "update": "lifecycle", "wait": "lifecycle"}


class _Only:
    """A subparsers proxy that keeps only the verbs we want from a module's register()."""

    def __init__(self, sub: Any, wanted: set[str]) -> None:
        self.sub, self.wanted = sub, wanted

    def add_parser(self, name: str, **kw: Any) -> Any:
        if name in self.wanted:
            return self.sub.add_parser(name, **kw)
        import argparse
        return argparse.ArgumentParser(add_help=False)


def register(sub: Any) -> None:
    p = sub.add_parser("container", help="Manage containers")
    csub = p.add_subparsers(dest="container_verb", metavar="COMMAND", parser_class=type(p), prog=p.prog)
    csub.required = True
    by_module: dict[str, set[str]] = {}
    for verb, module in VERBS.items():
        by_module.setdefault(module, set()).add(verb)
    for module, verbs in by_module.items():
        mod = importlib.import_module(f"{__package__}.{module}")
        if module == "inspect":
            mod.register(csub, "inspect", kind="container")
        else:
            mod.register(_Only(csub, verbs))
    from . import ps
    ps.register(csub, "ls")
    ps.register(csub, "list")
    pr = csub.add_parser("prune", help="Remove all stopped containers")
    pr.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    pr.add_argument("--filter", action="append", default=[], help="label=KEY[=VALUE]")
    pr.set_defaults(func=run_prune)


def run_prune(engine: Any, args: Any, out: Any) -> int:
    from .ps import parse_filters
    result = engine.containers.prune(filters=parse_filters(args.filter))
    if result["ContainersDeleted"]:
        out.write("Deleted Containers:\n" + "".join(f"{i}\n" for i in result["ContainersDeleted"]) + "\n")
    out.write("Total reclaimed space: 0B\n")
    return 0
