"""One container as docker-py shows it: :class:`Container`, made by ``engine.containers``.

Its verbs that change state (start, stop, kill, pause, exec, ...) are
requests to the supervisor; what only reads (``attrs``, ``logs``, ``diff``,
``top``, ``stats``) reads the container's files and cgroup directly, which
works even while the supervisor restarts.  The file-system verbs (``cp``,
``export``, archives) work on :func:`sandbox.containers.merged.merged_rootfs`.

Below :mod:`.api` (the collection that makes containers): what a
container needs of its collection is the :class:`CollectionServices`
protocol, so there is no arrow back.
"""

from __future__ import annotations

import builtins
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple, Protocol

from ..errors import ContainerNotFound, SandboxError, SupervisorLost, UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from ..image.images import ImageStore
    from ..image.store import Store
    from ..supervisor.client import Client
    from .records import ContainerStore

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


class ExecResult(NamedTuple):
    """docker-py's ``exec_run`` result: ``(exit_code, output)``, a named tuple there too."""

    exit_code: int | None
    output: Any


class CollectionServices(Protocol):
    """What a :class:`Container` uses of its collection (:class:`~sandbox.containers.api.ContainerCollection`).

    A protocol for the reason :class:`EngineServices` is one: the collection
    imports this module, and naming it back would make a circle.
    """

    _engine: EngineServices
    records: ContainerStore

    @property
    def client(self) -> Client: ...

    def load_fresh(self, cid: str) -> dict[str, Any]: ...


class Container:
    """One container; ``attrs`` is docker's inspect document as of the last ``reload``."""

    def __init__(self, collection: CollectionServices, record: dict[str, Any]) -> None:
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
        from .keywords import resources_from_update
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
        """The container's file system as one directory (see :func:`sandbox.containers.merged.merged_rootfs`)."""
        from pathlib import Path

        from .merged import merged_rootfs
        self.reload()
        with merged_rootfs(self.collection._engine.store, self.attrs, Path(self.dir), writable=writable,
                           with_mounts=with_mounts) as root:
            yield root

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
