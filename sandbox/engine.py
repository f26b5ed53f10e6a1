"""``sandbox.Engine``: the one public Python API the CLI and the notebook layer call.

Shaped after docker-py where that reads naturally (``engine.images.get(...)``,
``engine.images.list()``), so what a student learns here carries over.  Image
work runs in the calling process as a library; containers (a later layer) go
through the supervisor.
"""

from __future__ import annotations

import builtins

import os
from pathlib import Path
from collections.abc import Iterable
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)

from ._version import __version__

if TYPE_CHECKING:
    from typing import Any, BinaryIO
    from .containers.api import ContainerCollection
    from .image.images import Image, ImageStore
    from .image.store import Store


def default_root() -> Path:
    """``$SANDBOX_ROOT``; else /var/lib/sandbox as root, ``$XDG_DATA_HOME/sandbox`` otherwise."""
    from .rootdir import default_root_dir
    return Path(default_root_dir())


class ImageCollection:
    """``engine.images``: find, list, name, remove, move and make images."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def _store(self) -> ImageStore:
        return self._engine.image_store

    def get(self, name: str) -> Image:
        """The image called ``name`` (tag, digest reference, id or id prefix)."""
        return self._store.get(name)

    def list(self, name: str | None = None, all: bool = False) -> builtins.list[Image]:
        """Images, newest first; ``name`` filters by repository (``busybox``) or ``repo:tag``."""
        images = self._store.list(all=True)
        if not all:
            images = [i for i in images if i.tags]
        if name:
            images = [i for i in images if any(_tag_matches(t, name) for t in i.tags)]
        return images

    def inspect(self, name: str) -> dict[str, Any]:
        from .image import inspect
        image = self.get(name)
        return inspect.inspect_image(self._store, image)

    def history(self, name: str) -> builtins.list[dict[str, Any]]:
        """``docker history`` rows, newest first (a list that shows as a table in a notebook)."""
        from .display import History
        from .image import inspect
        return History(inspect.history(self._store, self.get(name)))

    def layers(self, name: str) -> builtins.list[Any]:
        """The image's layers, bottom first, with the step that made each and its changes."""
        from .display import image_layers
        return image_layers(self._engine, self.get(name))

    def tag(self, source: str, target: str) -> Image:
        return self._store.tag(source, target)

    def remove(self, name: str, force: bool = False) -> builtins.list[dict[str, str]]:
        return self._store.remove(name, force=force)

    def prune(self, all: bool = False) -> dict[str, Any]:
        return self._store.prune(all=all)

    def save(self, names: Iterable[str], out: BinaryIO, format: str = "docker") -> None:
        from .image import archive
        archive.save(self._store, list(names), out, format=format)

    def load(self, stream: BinaryIO) -> builtins.list[Image]:
        self._engine.need_namespace("load")
        from .image import archive
        return archive.load(self._store, stream)

    def import_(self, stream: BinaryIO, *, tag: str | None = None, changes: Iterable[str] = (),
                message: str | None = None, source_name: str = "-") -> Image:
        self._engine.need_namespace("import")
        from .image import archive
        return archive.import_rootfs(self._store, stream, tag=tag, changes=list(changes),
                                     message=message, source_name=source_name)

    def pull(self, name: str, *, platform: str | None = None, progress: Any = None) -> Image:
        """``docker pull``: fetch ``name`` from its registry, verify everything, then tag it."""
        self._engine.need_namespace("pull")
        from .registry import pull
        return pull(self._store, name, platform=platform, progress=progress).image

    def push(self, name: str, *, progress: Any = None) -> str:
        """``docker push``: upload the image tagged ``name``; returns the manifest digest."""
        from .registry import push
        return push(self._store, name, progress=progress).digest

    def build(self, path: str | os.PathLike[str] | None = None, *, tag: str | None = None,
              dockerfile: str | None = None, fileobj: Any = None, buildargs: dict[str, str] | None = None,
              target: str | None = None, nocache: bool = False, labels: dict[str, str] | None = None,
              on_event: Any = None, network_mode: str | None = None) -> tuple[Image, builtins.list[Any]]:
        """docker-py's ``images.build``: ``(image, events)``; see :meth:`Engine.build`."""
        events: builtins.list[Any] = []

        def collect(event: Any) -> None:
            events.append(event)
            if on_event is not None:
                on_event(event)
        text = None
        if fileobj is not None:
            data = fileobj.read()
            text = data.decode() if isinstance(data, bytes) else str(data)
        image = self._engine.build(path, tags=[tag] if tag else [], dockerfile=dockerfile, dockerfile_text=text,
                                   build_args=buildargs, target=target, no_cache=nocache, labels=labels,
                                   on_event=collect, network=network_mode)
        return image, events

    def bootstrap(self, kind: str = "busybox", **options: Any) -> Image:
        """Make an offline base image: ``busybox`` (static busybox) or ``debian`` (debootstrap)."""
        from .image import bootstrap
        if kind == "busybox":
            return bootstrap.bootstrap_busybox(self._store, **options)
        if kind == "debian":
            return bootstrap.bootstrap_debian(self._store, **options)
        from .errors import BootstrapError
        raise BootstrapError(f"unknown base image {kind!r}", hint="choose 'busybox' or 'debian'")


def _tag_matches(tag: str, pattern: str) -> bool:
    from fnmatch import fnmatchcase
    repo = tag.rsplit(":", 1)[0]
    return fnmatchcase(tag, pattern) or fnmatchcase(repo, pattern)


class Engine:
    """The engine for one store (``root``, default :func:`default_root`)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        if os.geteuid() != 0:  # a user's engine works in their rootless namespace (see sandbox.rootless)
            from . import rootless
            self._outside = rootless.join_if_wanted()
        else:
            self._outside = None
        self.root = Path(root) if root is not None else default_root()
        self._store: Store | None = None
        self._images: ImageStore | None = None
        self._client: Any = None
        self.images = ImageCollection(self)
        self._containers: Any = None
        self._volumes: Any = None
        self._networks: Any = None

    @property
    def containers(self) -> ContainerCollection:
        """``engine.containers`` (loaded on first use: a build cache hit needs no container API)."""
        if self._containers is None:
            from .containers.api import ContainerCollection
            self._containers = ContainerCollection(self)
        return self._containers

    @property
    def networks(self) -> Any:
        """``engine.networks``: docker-py's network API (the supervisor owns the networks)."""
        if self._networks is None:
            from .containers.network_api import NetworkCollection
            self._networks = NetworkCollection(self)
        return self._networks

    @property
    def volumes(self) -> Any:
        """``engine.volumes`` (loaded on first use: a cold ``sandbox run`` does not need it)."""
        if self._volumes is None:
            from .containers.volume_api import VolumeCollection
            self._volumes = VolumeCollection(self.root)
        return self._volumes

    @property
    def supervisor(self) -> Any:
        """The client of this store's supervisor (started on first use)."""
        if self._client is None:
            from .supervisor.client import Client
            self._client = Client(self.root)
        return self._client

    def need_namespace(self, verb: str) -> None:
        """Refuse ``verb`` in a rootless user's process that could not join their namespace.

        Unpacking layers (pull, load, import) and build steps write files owned
        by the image's users and mount overlays, which only works inside it;
        container verbs are fine, the supervisor is inside.
        """
        if self._outside:
            from .errors import SandboxError
            why, _, how = self._outside.partition(": ")
            raise SandboxError(f"cannot {verb} here: {why}", hint=how)

    def ensure_supervisor(self) -> dict[str, Any]:
        """Make sure the supervisor runs (it recovers containers when it starts)."""
        return dict(self.supervisor.call("ping"))

    def run(self, image: str, command: str | list[str] | None = None, *, remove: bool = True,
            **kwargs: Any) -> Any:
        """Run ``command`` in ``image`` to completion: ``RunResult(exit_code, output, stderr)``.

        The common case of a notebook cell, in one call; unlike
        ``containers.run`` a non-zero exit is a result, not an exception.
        """
        from .containers.container import STDOUT
        out, err = bytearray(), bytearray()

        def collect(stream: int, data: bytes) -> None:
            (out if stream == STDOUT else err).extend(data)

        from .containers.api import RunResult
        # create and start in one request (run_named): one round trip fewer per container
        cid, code = self.containers.run_attached(image, command, collect, auto_remove=remove, **kwargs)
        return RunResult(code, bytes(out), bytes(err), cid)

    def build(self, context: str | os.PathLike[str] | None = ".", *, tags: Iterable[str] = (),
              dockerfile: str | os.PathLike[str] | None = None, dockerfile_text: str | None = None,
              build_args: dict[str, str] | None = None, target: str | None = None, no_cache: bool = False,
              labels: dict[str, str] | None = None, on_event: Any = None, network: str | None = None,
              cancel: Any = None) -> Image:
        """Build an image from a Dockerfile (``docker build``); returns the Image.

        ``context`` is the directory COPY reads from (None: no context, for a
        Dockerfile given as ``dockerfile_text`` that copies nothing).  Each step
        reports to ``on_event`` (a :class:`~sandbox.build.events.BuildEvent`):
        step n/m, HIT or MISS and why, RUN output, layer size and time.  A
        failed step raises :class:`~sandbox.errors.BuildError` (or
        :class:`~sandbox.errors.DockerfileSyntaxError`) and tags nothing.
        ``network`` is where RUN steps go (default ``bridge``, as in Docker); setting the
        ``threading.Event`` ``cancel`` from another thread stops the build (nothing is tagged).
        """
        self.need_namespace("build")
        from .build.builder import Builder
        return Builder(self, context, dockerfile=dockerfile, dockerfile_text=dockerfile_text,
                       tags=list(tags), build_args=build_args, target=target, no_cache=no_cache,
                       labels=labels, on_event=on_event, network=network, cancel=cancel).build()

    def build_cache(self) -> Any:
        """The build cache (``builder prune``, ``system df``)."""
        from .build.cache import BuildCache
        return BuildCache(self.store)

    @property
    def store(self) -> Store:
        if self._store is None:
            from .image.store import Store   # loaded on first use: a cold `sandbox run` needs none of it
            self._store = Store(self.root)
        return self._store

    @property
    def image_store(self) -> ImageStore:
        if self._images is None:
            from .image.images import ImageStore
            self._images = ImageStore(self.store)
        return self._images

    def login(self, registry: str, username: str, password: str) -> str:
        """Check and store credentials for ``registry`` (Docker's config.json shape)."""
        from .registry import login
        return str(login(registry, username, password))

    def logout(self, registry: str) -> bool:
        from .registry import logout
        return logout(registry)

    def info(self) -> dict[str, Any]:
        """``docker info``: the store, its driver, and what this machine allows."""
        images = self.image_store.list(all=True)
        from . import hostinfo
        facts = hostinfo.host_facts(self.store.tmp_dir)
        return {"Images": len(images), "DockerRootDir": str(self.root),
                "OCILayout": str(self.store.oci), "ServerVersion": __version__, **facts}

    def version(self) -> dict[str, Any]:
        import platform
        return {"Version": __version__, "ApiVersion": "1.43", "PythonVersion": platform.python_version(),
                "Os": "linux", "Arch": platform.machine(), "KernelVersion": platform.release()}
