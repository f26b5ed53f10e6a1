"""An OCI runtime: a bundle (``config.json`` + rootfs) becomes a running process.

The engine never builds a process by hand: it writes a bundle whose
``config.json`` follows the OCI runtime spec (v1.1.0) and hands it to this
runtime (or to ``runc``).  The pieces, top down:

* :mod:`~sandbox.runtime.container` -- :class:`Runtime` and :class:`Container`:
  create, start, state, kill, pause, resume, exec, delete.  The library the
  supervisor calls; beside it :mod:`~sandbox.runtime.spawn` (the fork and the
  init's messages), :mod:`~sandbox.runtime.resources` (the cgroup, its limits
  and device rules), :mod:`~sandbox.runtime.state` (``/run/sandbox-runtime/<id>``)
  and :mod:`~sandbox.runtime.procs` (pid + start time: signals, waits).
* :mod:`~sandbox.runtime.cli` -- the same verbs as runc's command line
  (``python -m sandbox.runtime``).
* :mod:`~sandbox.runtime.config` -- checks a ``config.json`` before anything
  is made, naming the field that is wrong.
* :mod:`~sandbox.runtime.init` -- what runs between fork and exec: namespaces,
  the checklist, the exec fifo; :mod:`~sandbox.runtime.steps` what its stages
  share (arguments, messages, timed steps), :mod:`~sandbox.runtime.process`
  the process's half (rlimits, seccomp, user, capabilities, exec),
  :mod:`~sandbox.runtime.rootfs` its mounts, /dev and pivot_root;
  :mod:`~sandbox.runtime.paths` symlink-safe joins.
* :mod:`~sandbox.runtime.spec` -- Docker's defaults (14 capabilities, masked and
  read-only ``/proc`` paths, a minimal ``/dev``, namespaces, rlimits) turned into
  a ``config.json`` dict from a :class:`~sandbox.runtime.spec.ContainerOptions`;
  :mod:`~sandbox.runtime.seccomp_profile` Docker's default seccomp policy.

``Runtime`` and ``Container`` load on first use, so importing the pure spec
modules stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .container import Container, Runtime


def __getattr__(name: str) -> Any:
    if name in ("Runtime", "Container"):
        from . import container

        return getattr(container, name)
    raise AttributeError(f"module 'sandbox.runtime' has no attribute {name!r}")


__all__ = ["Container", "Runtime"]
