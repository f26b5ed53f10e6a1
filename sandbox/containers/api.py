"""``engine.containers``: docker-py's container API over the supervisor.

Shaped after docker-py (``containers.run/create/get/list/prune``, and
:class:`~sandbox.containers.container.Container` with ``reload``, ``logs``,
``exec_run``, ``wait``, ...) so a student's code carries over.  What changes
state goes to the supervisor; what only reads (``list`` and its filters,
``get``) reads the containers' records directly, which works even while the
supervisor restarts.

The image side runs here, in the caller: resolving the image, unpacking its
layers and merging its config into the container's, as the Docker daemon
does at ``create`` -- so ``inspect`` shows the command, environment and
working directory the container really gets.
"""

from __future__ import annotations

import builtins
import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import ContainerError, SandboxError, SupervisorLost, UsageError
from .container import STDOUT, Container, EngineServices, OutputFn
from .records import ContainerStore, stale_running

if TYPE_CHECKING:
    from ..supervisor.client import Client


class RunResult(NamedTuple):
    """What ``Engine.run`` returns: the exit code and both outputs.

    A NamedTuple rather than a dataclass: importing dataclasses costs a cold
    ``sandbox run`` about 10 ms (it pulls in inspect and ast).
    """

    exit_code: int
    output: bytes
    stderr: bytes
    id: str = ""

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")


class ContainerCollection:
    """``engine.containers``."""

    def __init__(self, engine: EngineServices) -> None:
        self._engine = engine
        self.records = ContainerStore(engine.root)

    @property
    def client(self) -> Client:
        return self._engine.supervisor

    # ------------------------------------------------------------------ making

    def create(self, image: str, command: str | builtins.list[str] | None = None, **kwargs: Any) -> Container:
        return self.get(self.create_id(image, command, **kwargs))

    def create_id(self, image: str, command: str | builtins.list[str] | None = None, **kwargs: Any) -> str:
        """``create``, returning only the id (``Engine.run`` needs no record read back)."""
        config, host, name, networking = _from_kwargs(image, command, kwargs)
        return self._create(image, config, host, name, command_given=command is not None, networking=networking)

    def create_from(self, image: str, config: dict[str, Any], host: dict[str, Any], name: str | None,
                    *, command_given: bool, networking: dict[str, Any] | None = None) -> Container:
        """Create from docker's Config/HostConfig (what the CLI parser produces)."""
        return self.get(self._create(image, config, host, name, command_given=command_given,
                                     networking=networking))

    def _create(self, image: str, config: dict[str, Any], host: dict[str, Any], name: str | None,
                *, command_given: bool, networking: dict[str, Any] | None = None) -> str:
        """The supervisor's ``create_named``; returns the new container's id.

        The supervisor resolves ``image``, merges its config and checks the
        limits, so this process never loads the image stack for an image
        whose layers are unpacked (a cold ``sandbox run``).  Layers not
        unpacked yet (a fresh pull or load) are unpacked here, outside the
        single-threaded supervisor, and the create is asked again.
        """
        request = _create_request(image, config, host, name, command_given, networking)
        result = self.client.call("create_named", **request)
        if result.get("NeedUnpack"):
            store = self._engine.image_store
            with self._engine.store.transaction():   # no garbage collection until the lease exists
                img = store.get(image)
                store.unpack(img.diff_ids, [l.digest for l in img.layers])
                if result.get("Driver") == "vfs" and img.chain_ids:
                    store.layers.base_tree(img.chain_ids)   # the vfs driver's copy source, made once
                result = self.client.call("create_named", **request)
            if result.get("NeedUnpack"):
                raise SandboxError(f"the layers of {image} were removed while the container was created",
                                   hint="try again")
        return str(result["Id"])

    def run_attached(self, image: str, command: str | builtins.list[str] | None, on_output: OutputFn,
                     **kwargs: Any) -> tuple[str, int]:
        """``create_id`` and ``start_attached`` in one request (``run_named``): (id, exit code).

        One round trip and one wake-up of this process fewer per container
        (``Engine.run``).  Layers not unpacked yet (they are unpacked here) and a
        supervisor older than the request take the two requests instead.
        """
        from .resume import Shown, container_dir, resume_attached
        config, host, name, networking = _from_kwargs(image, command, kwargs)
        request = _create_request(image, config, host, name, command is not None, networking)
        started: dict[str, str] = {}
        shown = Shown(on_output)

        def on_reply(result: dict[str, Any], _: Any) -> None:
            if "Id" in result:        # not the answer {"NeedUnpack": true}
                started["id"] = str(result["Id"])
        try:
            try:
                final = self.client.stream("run_named", shown, attach=True, on_reply=on_reply, **request)
            except UsageError as e:
                if "does not know the request" not in str(e):
                    raise
                final = {"NeedUnpack": True}   # an older supervisor: the two requests it knows
            except SupervisorLost:
                if "id" not in started:
                    raise
                return started["id"], resume_attached(self.client, started["id"],
                                                      container_dir(self.records.root, started["id"]), shown)
        except KeyboardInterrupt:
            if "id" in started:
                with contextlib.suppress(SandboxError):
                    self.client.stream("stop", None, id=started["id"], timeout=2.0)
            raise
        if final.get("NeedUnpack"):
            cid = self._create(image, config, host, name, command_given=command is not None,
                               networking=networking)
            return cid, self.start_attached(cid, on_output)
        return started["id"], int(final["exit"])

    def run(self, image: str, command: str | builtins.list[str] | None = None, *, stdout: bool = True,
            stderr: bool = False, remove: bool = False, detach: bool = False, **kwargs: Any) -> Any:
        """docker-py's ``containers.run``: a Container when detached, else the output bytes.

        A non-zero exit raises :class:`~sandbox.errors.ContainerError` carrying stderr.
        """
        kwargs["auto_remove"] = bool(kwargs.get("auto_remove") or remove)
        container = self.create(image, command, **kwargs)
        if detach:
            container.start()
            return container
        out, err = bytearray(), bytearray()

        def collect(stream: int, data: bytes) -> None:
            (out if stream == STDOUT else err).extend(data)

        code = self.start_attached(container.id, collect)
        if code != 0:
            raise ContainerError(container.id, code, " ".join(container.attrs["Config"].get("Cmd") or []),
                                 image, bytes(err))
        if stdout and stderr:
            return bytes(out) + bytes(err)
        return bytes(out) if stdout else bytes(err)

    def start_attached(self, cid: str, on_output: OutputFn, *, stdin_fd: int | None = None,
                       on_start: Callable[[Any, Any], None] | None = None,
                       interrupt_timeout: float = 2.0) -> int:
        """Start with output streaming to ``on_output``; return the exit code.

        KeyboardInterrupt (Ctrl-C in a terminal, "interrupt" in Jupyter) stops
        the container like ``docker stop -t 2`` -- its stop signal, then
        SIGKILL -- honours ``--rm``, and is raised again.
        """
        from .resume import Shown, container_dir, resume_attached
        shown = Shown(on_output)
        try:
            try:
                final = self.client.stream("start", shown, stdin=stdin_fd, on_reply=on_start,
                                           id=cid, attach=True, stdin_attach=stdin_fd is not None)
            except SupervisorLost:
                if stdin_fd is not None:
                    raise      # the typed input has nowhere to go: say so rather than hang
                return resume_attached(self.client, cid, container_dir(self.records.root, cid), shown)
        except KeyboardInterrupt:
            with contextlib.suppress(SandboxError):
                self.client.stream("stop", None, id=cid, timeout=interrupt_timeout)
            raise
        return int(final["exit"])

    # ------------------------------------------------------------------ finding

    def get(self, ref: str) -> Container:
        cid = self.records.resolve(ref)
        return Container(self, self.load_fresh(cid))

    def load_fresh(self, cid: str) -> dict[str, Any]:
        """The record of ``cid``, brought up to date first if its supervisor died (see stale_running)."""
        rec = self.records.load(cid)
        # "removing" is stale too when its supervisor was killed: the next one finishes the removal.
        if stale_running(rec) or rec["State"].get("Status") == "removing":
            self._engine.ensure_supervisor()
            rec = self.records.load(cid)
        return rec

    def list(self, all: bool = False, filters: dict[str, Any] | None = None, limit: int = -1,
             since: str | None = None, before: str | None = None) -> builtins.list[Container]:
        self._engine.ensure_supervisor()
        records = sorted(self.records.all(), key=lambda r: r.get("Created", ""), reverse=True)
        if since:
            cut = self.records.load(self.records.resolve(since))["Created"]
            records = [r for r in records if r["Created"] > cut]
        if before:
            cut = self.records.load(self.records.resolve(before))["Created"]
            records = [r for r in records if r["Created"] < cut]
        if not all and not (filters and ("status" in filters or "exited" in filters)):
            records = [r for r in records if r["State"].get("Running") or r["State"].get("Restarting")]
        for key, values in (filters or {}).items():
            values = values if isinstance(values, (builtins.list, tuple)) else [values]
            # Docker: several values of one filter are alternatives, but every label must match
            match = builtins.all if key == "label" else builtins.any
            records = [r for r in records if match(_filter(self._engine, r, key, str(v)) for v in values)]
        if limit is not None and limit >= 0:
            records = records[:limit]
        return [Container(self, r) for r in records]

    def prune(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        labels = builtins.list((filters or {}).get("label") or [])
        return dict(self.client.call("prune", labels=labels))


def _from_kwargs(image: str, command: str | builtins.list[str] | None, kwargs: dict[str, Any]
                 ) -> tuple[dict[str, Any], dict[str, Any], str | None, dict[str, Any]]:
    """docker-py's keywords as (Config, HostConfig, name, NetworkingConfig)."""
    from .keywords import config_from_kwargs
    networking = kwargs.pop("networking_config", None) or {}
    if networking and "EndpointsConfig" not in networking:
        networking = {"EndpointsConfig": dict(networking)}   # docker-py: {NAME: EndpointConfig}
    config, host, name = config_from_kwargs(image, command, **kwargs)
    return config, host, name, networking


def _create_request(image: str, config: dict[str, Any], host: dict[str, Any], name: str | None,
                    command_given: bool, networking: dict[str, Any] | None) -> dict[str, Any]:
    """The arguments of ``create_named`` (and ``run_named``)."""
    return dict(image=image, config=config, host_config=host, name=name, command_given=command_given,
                networking_config=networking or {},
                # image.vfs.DRIVER_ENV: what this client forces wins over the supervisor's choice
                storage_driver=os.environ.get("SANDBOX_STORAGE_DRIVER") or None)


def _filter(engine: EngineServices, r: dict[str, Any], key: str, value: str) -> bool:
    st = r["State"]
    if key == "status":
        return bool(st.get("Status") == value)
    if key == "name":
        import re
        return re.search(value, r["Name"].lstrip("/")) is not None
    if key == "id":
        return bool(r["Id"].startswith(value))
    if key == "exited":
        return not st.get("Running") and str(st.get("ExitCode")) == value and bool(r["Sandbox"].get("HasBeenStarted"))
    if key == "label":
        k, _, v = value.partition("=")
        labels = r["Config"].get("Labels") or {}
        return k in labels and (not v or labels[k] == v)
    if key == "ancestor":
        if r["Config"].get("Image") == value or r["Image"] == value or r["Image"].startswith("sha256:" + value):
            return True
        with contextlib.suppress(SandboxError):
            return bool(engine.image_store.get(value).id == r["Image"])
        return False
    if key == "health":
        return bool((st.get("Health") or {}).get("Status", "none") == value)
    if key == "network":
        nets = (r.get("NetworkSettings") or {}).get("Networks") or {}
        return value in nets or any(str(es.get("NetworkID") or "").startswith(value) for es in nets.values())
    if key == "volume":
        return any(value in (m.get("Name"), m.get("Destination"), m.get("Source")) for m in r.get("Mounts") or [])
    if key in ("expose", "publish"):
        port = value if "/" in value else f"{value}/tcp"
        if key == "expose":
            return port in (r["Config"].get("ExposedPorts") or {})
        bound = ((r.get("NetworkSettings") or {}).get("Ports") or {}).get(port)
        return bool(bound) or any(b.get("HostPort") == value.partition("/")[0]
                                  for v in ((r.get("NetworkSettings") or {}).get("Ports") or {}).values()
                                  for b in v or [])
    raise UsageError(f"invalid filter '{key}'", hint="filters: status, name, id, exited, label, ancestor, health, "
                                                     "network, volume, expose, publish")

