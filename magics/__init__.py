"""IPython magics for the sandbox kit.

``%load_ext sandbox`` (or ``%load_ext magics``) registers ``%docker`` and its
alias ``%sandbox``: a line magic that takes exactly what the ``sandbox``
command takes, parsed by the same parser, so a cell and a terminal agree.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    from .docker import DockerMagics
    ipython.register_magics(DockerMagics)


__all__ = ["load_ipython_extension"]
