"""IPython magics and notebook views for the sandbox kit.

``%load_ext sandbox`` (or ``%load_ext magics``) registers:

* ``%docker VERB ...`` and its alias ``%sandbox``: exactly what the
  ``sandbox`` command takes, parsed by the same parser;
* ``%%dockerfile [-t TAG] ...``: builds the cell, with live progress;
* ``%%container IMAGE [run options]``: runs the cell as a shell script.

The views (``LayerExplorer``, ``DiffView``, ``ResourceMonitor``,
``NamespaceView``, ``NetworkView``, ``Dashboard`` and ``plot_stats``) are importable from here
and from ``sandbox.widgets``; they load ipywidgets and matplotlib only when
used, so loading the extension stays cheap.  ``check`` is how the labs answer
an exercise (✓, or what is still wrong).
"""

from __future__ import annotations

from typing import Any

_VIEWS = {"LayerExplorer": "views", "DiffView": "views", "NamespaceView": "views", "Dashboard": "dashboard",
          "ResourceMonitor": "monitor", "plot_stats": "monitor", "check": "lab", "needs": "lab", "lacks": "lab", "NetworkView": "netview"}


def load_ipython_extension(ipython: Any) -> None:
    from .cells import CellMagics
    from .docker import DockerMagics, completions, help_text
    docker = DockerMagics(ipython)
    ipython.register_magics(docker)
    ipython.register_magics(CellMagics(ipython, docker))
    # `%docker?` shows the command's own help: verbs and what they do.
    for name in ("docker", "sandbox"):
        magic = ipython.magics_manager.magics["line"][name]
        func = getattr(magic, "__func__", magic)
        try:
            func.__doc__ = f"Run a sandbox/docker verb in this cell.\n\n{help_text()}"
        except (AttributeError, TypeError):
            pass

    def complete(_self: Any, event: Any) -> list[str]:
        return completions(docker.engine, event.line)

    for key in ("%docker", "%sandbox", "docker", "sandbox"):
        ipython.set_hook("complete_command", complete, str_key=key)
    print(mode_line())


def mode_line() -> str:
    """One line on what this machine lets the labs do, printed by ``%load_ext sandbox``.

    Found by trying (:func:`sandbox.hostinfo.mode`), so a student on Binder or
    without root reads at the top of the lab why some cells will say they
    cannot run, instead of meeting it half-way.
    """
    from sandbox import hostinfo
    found = hostinfo.mode()
    line = f"sandbox: {found.name} mode ({found.allows})"
    if found.name == "no-namespaces":
        line += "; nothing a container runs is isolated here"
    return line


def __getattr__(name: str) -> Any:
    if name in _VIEWS:
        import importlib
        module = importlib.import_module(f".{_VIEWS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'magics' has no attribute {name!r}")


__all__ = ["load_ipython_extension", *_VIEWS]
