"""What one container's supervision (a :class:`~sandbox.supervisor.box.Box`) needs from the supervisor.

A Box is told about its surroundings through this protocol rather than the
supervisor class itself, so the arrows between the modules point one way:
``server`` (the process) → ``core`` (the state) → ``box`` → ``host``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..containers.records import ContainerStore
    from ..containers.setup import HostFacts
    from ..containers.volumes import VolumeStore
    from ..image.store import Store
    from .events import EventLog
    from .loop import Loop


class Host(Protocol):
    root: Path
    store: Store
    containers: ContainerStore
    volumes: VolumeStore
    loop: Loop
    facts: HostFacts
    events: EventLog
    #: Exec sessions and health checks in flight (killed with their container).
    execs: set[Any]

    def runtime_for(self, rec: dict[str, Any]) -> Any:
        """Our runtime, or runc's driver, as the record's ``HostConfig.Runtime`` says."""

    def forget(self, box_id: str, exit_code: int, error: str) -> None:
        """The container's record is gone: stop tracking it (its exit is kept a while for late waiters)."""

    @property
    def network(self) -> Any:
        """The network manager (:mod:`sandbox.network.manager`), loaded on first use."""
