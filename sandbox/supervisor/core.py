"""The supervisor's state: the store, the runtimes, the event loop and one Box per container.

:class:`Core` is everything a request handler and a Box use; the process
around it (the socket, the dispatch table, signals) is :mod:`server`.  Every
record is a Box here, so finding a container or a free name never reads the
disk, and a create costs the same with a hundred containers as with none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..containers import setup
from ..containers.records import ContainerStore
from ..containers.volumes import VolumeStore
from ..runtime.container import Runtime
from ..runtime.spare import SparePool
from .box import Box
from .events import EventLog
from .janitor import Janitor
from .loop import Loop

REMEMBER_REMOVED = 256


class Core:
    def __init__(self, root: Path) -> None:
        from ..image.store import Store
        self.root = root
        self.store = Store(root)
        self.containers = ContainerStore(root)
        self._images: Any = None
        self.containers.dir.mkdir(exist_ok=True)
        self.volumes = VolumeStore(root)
        self.run_dir = root / "run"
        #: where the exit keeper (:mod:`.keeper`) writes the exits it collected
        self.exits_dir = self.run_dir / "exits"
        #: the keeper's pid (this process's parent), None without one
        self.keeper: int | None = None
        self.runtime = Runtime(str(self.run_dir / "runtime"))
        from .runc import RuncRuntime
        self.runc = RuncRuntime(str(self.run_dir / "runc"), self.runtime.open_cgroup)
        from .proot import ProotRuntime
        self.proot = ProotRuntime(str(self.run_dir / "proot"))
        self.facts = setup.HostFacts()
        self.loop = Loop()
        # Idle work goes while the next container's init sets itself up ...
        self.runtime.while_waiting = self.loop.run_one_idle
        # ... and so does forking the init after it, parked until its create (runtime/spare.py).
        self.runtime.spares = SparePool()
        # A removed container's files are deleted by the janitor, on another core (idle
        # pieces only when it cannot be had).
        self.loop.janitor = Janitor()
        self.boxes: dict[str, Box] = {}
        self.execs: set[Any] = set()
        self.events = EventLog(root / "events.jsonl")
        #: id -> (exit code, error) of the last containers removed
        self.removed_exits: dict[str, tuple[int, str]] = {}
        self._network: Any = None

    @property
    def network(self) -> Any:
        """The networks (:class:`sandbox.network.manager.NetworkManager`), loaded on first use.

        Loading it imports pyroute2 (about a quarter of a second), so a
        supervisor whose containers all run with ``--network none`` never does.
        """
        if self._network is None:
            from ..network.manager import NetworkManager
            self._network = NetworkManager(self.root, self.loop, lambda: [b.rec for b in self.boxes.values()],
                                           self.events.emit)
        return self._network

    @property
    def network_loaded(self) -> bool:
        return self._network is not None

    @property
    def images(self) -> Any:
        """The image store, loaded on the first create by name."""
        if self._images is None:
            from ..image.images import ImageStore
            self._images = ImageStore(self.store)
        return self._images

    def runtime_for(self, rec: dict[str, Any]) -> Any:
        """The runtime a container was created for: ours, runc (``--runtime runc``) or proot
        (``--runtime proot``, and every container where namespaces are refused)."""
        name = (rec.get("HostConfig") or {}).get("Runtime")
        return self.runc if name == "runc" else self.proot if name == "proot" else self.runtime

    def forget(self, box_id: str, exit_code: int = 0, error: str = "") -> None:
        self.boxes.pop(box_id, None)
        # A waiter that comes late (`docker run --rm` sends its wait beside the start, on
        # another connection) still learns how a removed container ended.
        self.removed_exits[box_id] = (exit_code, error)
        while len(self.removed_exits) > REMEMBER_REMOVED:
            self.removed_exits.pop(next(iter(self.removed_exits)))

    def box(self, ref: str) -> Box:
        """The container ``ref`` names (id, name or id prefix), found among the boxes in memory."""
        box = self.boxes.get(ref)
        if box is not None:
            return box
        return self.boxes[self.containers.resolve(ref, [b.rec for b in self.boxes.values()])]

    def taken_names(self) -> dict[str, str]:
        """name -> id of every container."""
        return {b.name: b.id for b in self.boxes.values()}
