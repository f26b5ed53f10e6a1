"""The notebook views, re-exported from :mod:`magics` (``from sandbox.widgets import ResourceMonitor``)."""

from __future__ import annotations

from typing import Any

NAMES = ("LayerExplorer", "DiffView", "ResourceMonitor", "NamespaceView", "NetworkView", "Dashboard", "plot_stats")


def __getattr__(name: str) -> Any:
    if name in NAMES:
        import magics
        return getattr(magics, name)
    raise AttributeError(f"module 'sandbox.widgets' has no attribute {name!r}")


__all__ = list(NAMES)
