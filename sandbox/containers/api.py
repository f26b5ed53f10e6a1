"""``engine.containers``: docker-py's container API over the supervisor.

Shaped after docker-py (``containers.run/create/get/list/prune``, and
:class:`Container` with ``reload``, ``logs``, ``exec_run``, ``wait``, ...) so
a student's code carries over.  What changes state goes to the supervisor;
what only reads (``attrs``, ``logs``, ``diff``, ``top``, ``stats``) reads the
container's files and cgroup directly, which works even while the
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
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple, Protocol

from ..errors import (ContainerError, ContainerNotFound, NotFound, SandboxError, SupervisorLost,
                      UsageError)
from .records import ContainerStore, stale_running

if TYPE_CHECKING:
    from pathlib import Path

    from ..image.images import ImageStore
    from ..image.store import Store
    from ..supervisor.client import Client

OutputFn = Callable[[int, bytes], None]
STDOUT, STDERR = 1, 2


class EngineServices(Protocol):
    """What the container API uses of the engine that made it; :class:`sandbox.Engine` is one.

    A protocol, not the Engine class: this module is below the engine, and
    naming the class would be an arrow up the layers (and a circle, since the
    engine builds its ``containers`` from here).
    """

    @property
    def root(self) -> Path: ...

    @property
    def store(self) -> Store: ...

    @property
    def image_store(self) -> ImageStore: ...

    @property
    def supervisor(self) -> Client: ...

    def ensure_supervisor(self) -> dict[str, Any]: ...


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


class ExecResult(NamedTuple):
    """docker-py's ``exec_run`` result: ``(exit_code, output)``, a named tuple there too."""

    exit_code: int | None
    output: Any


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
        from .options import config_from_kwargs
        networking = kwargs.pop("networking_config", None) or {}
        if networking and "EndpointsConfig" not in networking:
            networking = {"EndpointsConfig": dict(networking)}   # docker-py: {NAME: EndpointConfig}
        config, host, name = config_from_kwargs(image, command, **kwargs)
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
        request = dict(image=image, config=config, host_config=host, name=name, command_given=command_given,
                       networking_config=networking or {},
                       # image.vfs.DRIVER_ENV: what this client forces wins over the supervisor's choice
                       storage_driver=os.environ.get("SANDBOX_STORAGE_DRIVER") or None)
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


class Container:
    """One container; ``attrs`` is docker's inspect document as of the last ``reload``."""

    def __init__(self, collection: ContainerCollection, record: dict[str, Any]) -> None:
        self.collection = collection
        self.attrs = record

    def __repr__(self) -> str:
        return f"<Container: {self.short_id} {self.name} {self.status}>"

    def _repr_html_(self) -> str:
        from ..display import container_html
        with contextlib.suppress(SandboxError):
            self.reload()  # a removed container shows its last known state
        return container_html(self)

    @property
    def _client(self) -> Client:
        return self.collection.client

    @property
    def id(self) -> str:
        return str(self.attrs["Id"])

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def name(self) -> str:
        return str(self.attrs["Name"]).lstrip("/")

    @property
    def status(self) -> str:
        return str(self.attrs["State"]["Status"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.attrs["Config"].get("Labels") or {})

    @property
    def health(self) -> str:
        return str((self.attrs["State"].get("Health") or {}).get("Status", "unknown"))

    @property
    def image(self) -> Any:
        return self.collection._engine.image_store.get(self.attrs["Image"])

    @property
    def pid(self) -> int:
        return int(self.attrs["State"].get("Pid") or 0)

    @property
    def dir(self) -> Any:
        return self.collection.records.path(self.id)

    def reload(self) -> Container:
        self.attrs = self.collection.load_fresh(self.id)
        return self

    def inspect(self) -> dict[str, Any]:
        """docker inspect's document (the private "Sandbox" section left out)."""
        self.reload()
        return {k: v for k, v in self.attrs.items() if k != "Sandbox"}

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        self._client.call("start", id=self.id)
        # quietly: an --rm container whose command is quick may be gone already (the API's
        # start of `docker run --rm` then answered 404 though the run had worked)
        self._reload_quietly()

    def stop(self, timeout: float | None = None, signal: str | None = None) -> None:
        self._client.stream("stop", None, id=self.id, timeout=timeout, signal=signal)
        self._reload_quietly()

    def kill(self, signal: str | int = "KILL") -> None:
        self._client.call("kill", id=self.id, signal=signal)
        self._reload_quietly()

    def pause(self) -> None:
        self._client.call("pause", id=self.id)
        self.reload()

    def unpause(self) -> None:
        self._client.call("unpause", id=self.id)
        self.reload()

    def restart(self, timeout: float | None = None) -> None:
        if self.reload().attrs["State"].get("Running"):
            self._client.stream("restart", None, id=self.id, timeout=timeout)
        else:
            self._client.call("restart", id=self.id, timeout=timeout)
        self.reload()

    def remove(self, force: bool = False, v: bool = False) -> None:
        self._client.call("remove", id=self.id, force=force, volumes=v)

    def rename(self, name: str) -> None:
        self._client.call("rename", id=self.id, name=name)
        self.reload()

    def wait(self, timeout: float | None = None, condition: str = "not-running") -> dict[str, Any]:
        """Block until the container stops; docker-py's ``{"StatusCode": N, "Error": ...}``."""
        if condition not in ("not-running", "next-exit", "removed"):
            raise UsageError(f"invalid condition {condition!r}", hint="not-running, next-exit or removed")
        from .resume import wait_again
        if timeout is None:
            final = wait_again(self._client, self.id, condition)
            return dict(final.get("result") or {"StatusCode": final["exit"], "Error": None})
        import threading
        box: dict[str, Any] = {}

        def waiter() -> None:
            with contextlib.suppress(SandboxError):
                box["r"] = wait_again(self._client, self.id, condition)
        t = threading.Thread(target=waiter, daemon=True)
        t.start()
        t.join(timeout)
        if "r" not in box:
            raise TimeoutError(f"container {self.short_id} did not stop within {timeout} s")
        final = box["r"]
        return dict(final.get("result") or {"StatusCode": final["exit"], "Error": None})

    def update(self, **kwargs: Any) -> dict[str, Any]:
        """docker update: mem_limit, memswap_limit, cpu_shares, nano_cpus/cpus, cpuset_cpus, pids_limit, ..."""
        from .options import resources_from_update
        resources = resources_from_update(kwargs)
        from .defaults import check_resources
        check_resources(resources)
        result = dict(self._client.call("update", id=self.id, resources=resources))
        self.reload()
        return result

    def _reload_quietly(self) -> None:
        with contextlib.suppress(ContainerNotFound):
            self.reload()

    # ------------------------------------------------------------------ output

    def logs(self, stdout: bool = True, stderr: bool = True, stream: bool = False, timestamps: bool = False,
             tail: int | str = "all", since: Any = None, until: Any = None, follow: bool | None = None) -> Any:
        """docker-py's ``logs``: bytes, or an iterator of bytes with ``stream=True``."""
        from . import logs as logs_mod
        log_config = self.attrs["HostConfig"].get("LogConfig") or {}
        if log_config.get("Type") == "none":
            raise UsageError('configured logging driver does not support reading',
                             hint="the container was created with --log-driver none")
        path = self.dir / "container.log"
        n = None if tail in ("all", None, -1) else int(tail)
        t_since = _to_time(since)
        t_until = _to_time(until)
        follow = stream if follow is None else follow
        if follow:
            self.collection._engine.ensure_supervisor()
            records: Any = logs_mod.follow_logs(path, stdout=stdout, stderr=stderr, tail=n, since=t_since,
                                                until=t_until, is_running=self._is_running)
        else:
            records = logs_mod.read_logs(path, stdout=stdout, stderr=stderr, tail=n, since=t_since,
                                         until=t_until)
        chunks = (logs_mod.format_record(r, timestamps=timestamps) for r in records)
        if stream:
            return chunks
        return b"".join(chunks)

    def log_records(self, **kwargs: Any) -> Any:
        """Log records with their stream kept apart (what the CLI prints to stdout and stderr)."""
        from . import logs as logs_mod
        path = self.dir / "container.log"
        if kwargs.pop("follow", False):
            self.collection._engine.ensure_supervisor()
            return logs_mod.follow_logs(path, is_running=self._is_running, **kwargs)
        return logs_mod.read_logs(path, **kwargs)

    def _is_running(self) -> bool:
        try:
            st = self.collection.records.load(self.id)["State"]
        except ContainerNotFound:
            return False
        return bool(st.get("Running") or st.get("Restarting"))

    def attach_stream(self, on_output: OutputFn, *, stdin_fd: int | None = None, stdout: bool = True,
                      stderr: bool = True) -> int:
        """docker attach: stream live output until the container exits; returns its exit code."""
        final = self._client.stream("attach", on_output, stdin=stdin_fd, id=self.id, stdout=stdout,
                                    stderr=stderr, stdin_attach=stdin_fd is not None)
        return int(final["exit"])

    def exec_run(self, cmd: str | builtins.list[str], stdout: bool = True, stderr: bool = True,
                 stdin: bool = False, tty: bool = False, privileged: bool = False, user: str = "",
                 detach: bool = False, stream: bool = False, environment: Any = None,
                 workdir: str | None = None, demux: bool = False) -> ExecResult:
        """docker-py's ``exec_run``: (exit_code, output); output is (stdout, stderr) with demux."""
        import shlex
        args = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        env = [f"{k}={v}" for k, v in environment.items()] if isinstance(environment, dict) else list(environment or [])
        request: dict[str, Any] = {"id": self.id, "Cmd": args, "Env": env, "WorkingDir": workdir or "", "User": user,
                   "Tty": tty, "Privileged": privileged}
        if detach:
            self._client.call("exec", detach=True, **request)
            return ExecResult(None, b"")
        out, err = bytearray(), bytearray()

        def collect(s: int, data: bytes) -> None:
            if s == STDOUT and stdout:
                out.extend(data)
            elif s == STDERR and stderr:
                (err if demux else out).extend(data)

        final = self._exec_stream(args, collect, request)
        output: Any = (bytes(out) if stdout else None, bytes(err) if stderr else None) if demux else bytes(out)
        return ExecResult(int(final["exit"]), output)

    def exec_stream(self, args: builtins.list[str], on_output: OutputFn, *, stdin_fd: int | None = None,
                    tty: bool = False, env: builtins.list[str] | None = None, workdir: str = "",
                    user: str = "", privileged: bool = False,
                    on_start: Callable[[Any, Any], None] | None = None) -> int:
        final = self._exec_stream(args, on_output, dict(id=self.id, Cmd=list(args), Env=list(env or []),
                                                         WorkingDir=workdir, User=user, Tty=tty,
                                                         Privileged=privileged,
                                                         stdin_attach=stdin_fd is not None),
                                  stdin=stdin_fd, on_reply=on_start)
        return int(final["exit"])

    def _exec_stream(self, args: builtins.list[str], on_output: OutputFn, request: dict[str, Any],
                     **kw: Any) -> dict[str, Any]:
        """The ``exec`` stream; if the supervisor dies under it, say that the exit code is unknown.

        The exec's process is not the supervisor's to keep: killed with it, or
        left running in the container, its exit status reaches nobody.  Docker
        answers ``ExitCode: null`` then; a number made up here would be a lie.
        """
        try:
            return self._client.stream("exec", on_output, **request, **kw)
        except SupervisorLost:         # after the reply: the process had started
            raise SupervisorLost(
                f"the supervisor went away while `{' '.join(args)}` ran in container {self.short_id}: "
                "its exit code is unknown",
                hint="the command may still be running in the container; the next command starts "
                     "a new supervisor") from None

    # ------------------------------------------------------------------ inside

    def top(self, ps_args: str | None = None) -> dict[str, Any]:
        from .inspect import top
        return top(self.reload().attrs, ps_args)

    def stats(self, stream: bool = False, decode: bool | None = None) -> Any:
        from ..display import Stats
        from .inspect import stats_snapshot
        if not stream:
            return Stats(stats_snapshot(self.reload().attrs))

        def gen() -> Iterator[dict[str, Any]]:
            previous = None
            while True:
                snap = stats_snapshot(self.reload().attrs, previous)
                yield snap
                previous = snap
                if not self.attrs["State"].get("Running"):
                    return
                time.sleep(1.0)
        return gen()

    def diff(self) -> builtins.list[dict[str, Any]]:
        """docker-py's ``diff``: [{"Path": ..., "Kind": 0 (C) | 1 (A) | 2 (D)}]."""
        return [{"Path": p, "Kind": {"C": 0, "A": 1, "D": 2}[k]} for k, p in self.changes()]

    def changes(self) -> builtins.list[tuple[str, str]]:
        """``docker diff`` lines as (kind, path): the writable layer against the image."""
        from . import fsops
        from .setup import lower_dirs
        from ..display import Diff
        store = self.collection._engine.store
        if self.attrs.get("Driver") == "vfs":
            from ..image import vfs
            base = self._vfs_base()
            return Diff(vfs.diff_lines(vfs.rootfs_diff(base, self.dir / "init", self.dir / "rootfs"), base))
        lowers = lower_dirs(store, self.dir, self.attrs["Sandbox"]["Layers"])[1:]  # without the init layer
        from pathlib import Path
        return Diff(fsops.changes(self.dir / "upper", [Path(p) for p in lowers]))

    def _vfs_base(self) -> Any:
        """A vfs container's base: its image's merged tree (made again if it went), None without layers."""
        chain = self.attrs["Sandbox"]["Layers"]
        if not chain:
            return None
        engine = self.collection._engine
        with engine.store.transaction():
            return engine.image_store.layers.base_tree(list(chain))

    def commit(self, repository: str | None = None, tag: str | None = None, message: str | None = None,
               author: str | None = None, changes: Any = None, conf: dict[str, Any] | None = None,
               pause: bool = True) -> Any:
        from .commit import commit
        self.reload()
        engine = self.collection._engine
        return commit(engine.image_store, self._client, self.attrs, self.dir, repository=repository, tag=tag,
                      message=message, author=author, changes=changes, conf=conf, pause=pause)

    @contextlib.contextmanager
    def merged_rootfs(self, writable: bool = False, with_mounts: bool = False) -> Iterator[Any]:
        """The container's file system as one directory: the live mount, or a temporary one.

        A stopped container gets a temporary overlay of its own layers: read-only
        (the writable layer as the top lower dir) unless ``writable``, when its
        writable layer is the upper dir again, as it will be at the next start.
        A vfs container's rootfs is its own directory, used as it is (bound
        to a temporary place only to bind its mounts into).

        ``with_mounts`` (``cp``, as Docker's): the container's volumes and bind
        mounts, and its /etc/hostname, /etc/hosts and /etc/resolv.conf, are
        where the container sees them.  A running container is reached through
        ``/proc/PID/root``, its own view (tmpfs included); for a stopped one they
        are bound into the temporary overlay.  ``export`` leaves them out, as
        ``docker export`` does.
        """
        from pathlib import Path
        from . import setup
        self.reload()
        cdir = Path(self.dir)
        rootfs = cdir / "rootfs"
        state = self.attrs["State"]
        vfs = self.attrs.get("Driver") == "vfs"
        if state.get("Running") and (vfs or setup.is_mounted(rootfs)):
            view = Path(f"/proc/{state.get('Pid')}/root")
            yield view if with_mounts and state.get("Pid") and os.path.isdir(view) else rootfs
            return
        if vfs and not with_mounts:
            yield rootfs    # a vfs rootfs is a plain directory, the container's own
            return
        from .. import kernel
        store = self.collection._engine.store
        with store.scratch("cp-") as scratch:
            target = scratch / "merged"
            target.mkdir()
            if vfs:
                # A bind of the container's own copy, so its mounts can be bound into it
                # and all go again with one detach, as the overlay view's do.
                kernel.mount(str(rootfs), target, None, kernel.MS_BIND)
                try:
                    if not writable:
                        kernel.mount(None, target, None, kernel.MS_BIND | kernel.MS_REMOUNT | kernel.MS_RDONLY)
                    _bind_container_mounts(target, self.attrs, writable)
                    yield target
                finally:
                    kernel.umount(target, kernel.MNT_DETACH)
                return
            lowers = setup.lower_dirs(store, cdir, self.attrs["Sandbox"]["Layers"])
            if writable:
                options = (f"lowerdir={':'.join(lowers)},upperdir={cdir / 'upper'},"
                           f"workdir={cdir / 'work'}")
                setup.mount_overlay(target, options)
            else:
                setup.mount_overlay(target, "lowerdir=" + ":".join([str(cdir / "upper")] + lowers),
                                    kernel.MS_RDONLY)
            try:
                if with_mounts:
                    _bind_container_mounts(target, self.attrs, writable)
                yield target
            finally:
                kernel.umount(target, kernel.MNT_DETACH)   # the binds below go with it

    def export(self, out: BinaryIO) -> None:
        from . import fsops
        with self.merged_rootfs() as root:
            fsops.export(root, out)

    def get_archive(self, path: str, out: BinaryIO, follow_link: bool = False) -> dict[str, Any]:
        from . import fsops
        with self.merged_rootfs(with_mounts=True) as root:
            return dict(fsops.copy_out(root, path, out, follow_link=follow_link))

    def put_archive(self, path: str, data: BinaryIO) -> None:
        from . import fsops
        with self.merged_rootfs(writable=True, with_mounts=True) as root:
            fsops.copy_in(root, data, path)

    def copy_to(self, host_src: str, dest: str, follow_link: bool = False) -> None:
        """``docker cp [-L] HOSTPATH CONTAINER:DEST``."""
        from . import fsops
        with self.merged_rootfs(writable=True, with_mounts=True) as root:
            fsops.copy_in_path(root, host_src, dest, follow_link=follow_link)

    def copy_from(self, src: str, host_dest: str, follow_link: bool = False) -> None:
        """``docker cp [-L] CONTAINER:SRC HOSTPATH``."""
        from . import fsops
        with self.merged_rootfs(with_mounts=True) as root:
            fsops.copy_out_path(root, src, host_dest, follow_link=follow_link)


def _bind_container_mounts(target: Any, attrs: dict[str, Any], writable: bool) -> None:
    """Bind a stopped container's volumes, bind mounts and /etc files into ``target``.

    Parents before children, each destination resolved inside ``target`` (an
    image symlink cannot send a bind outside it); read-only ones stay read-only.
    """
    from .. import kernel
    from .fsops import opened
    binds = [(m["Destination"], m["Source"], bool(m.get("RW", True)))
             for m in attrs.get("Mounts") or [] if m.get("Type") in ("bind", "volume") and m.get("Source")]
    for key, dest in (("HostnamePath", "/etc/hostname"), ("HostsPath", "/etc/hosts"),
                      ("ResolvConfPath", "/etc/resolv.conf")):
        if attrs.get(key) and os.path.exists(attrs[key]):
            binds.append((dest, attrs[key], True))
    for dest, source, rw in sorted(binds, key=lambda b: os.path.normpath(b[0]).count("/")):
        if not os.path.exists(source):
            continue   # gone from the host
        try:
            # mounted on the descriptor's /proc/self/fd name: the inode resolved in the container
            with opened(target, dest, follow_last=True) as fd:
                kernel.mount(source, kernel.fd_path(fd), None, kernel.MS_BIND | kernel.MS_REC)
            if not (rw and writable):
                with opened(target, dest, follow_last=True) as fd:   # now the mount's top
                    kernel.mount(None, kernel.fd_path(fd), None,
                                 kernel.MS_BIND | kernel.MS_REMOUNT | kernel.MS_RDONLY)
        except NotFound:
            continue   # the mount point is made at the next start


def _to_time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    import datetime as _dt
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    from .logs import parse_time
    return parse_time(str(value))
