"""What every step of a build shares: the state so far, a step's cache inputs, and the helpers.

:class:`StepBase` is the base of the step families (:mod:`.meta_steps`,
:mod:`.run_step`, :mod:`.file_steps`) that :class:`~sandbox.build.builder.Builder`
is made of: it declares the build's attributes (set by ``Builder.__init__``
and ``Builder.build``) and holds what more than one family uses: expansion
of ``$VAR``, errors that name the step, the metadata-only step, and mounts
(or, with the vfs storage driver, copies) of the image so far.  :class:`BuildServices` is what a build needs of the
engine.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from collections.abc import Callable, Iterator
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)

from ..errors import BuildError
from ..humanize import shorten
from . import words
from .cache import BuildCache
from .context import DockerIgnore, SourceTree
from .events import BuildEvent, EventFn
from .parser import Instruction
from ..plain import Record
from .stages import Plan, Stage

if TYPE_CHECKING:
    from typing import Any, Protocol
    from ..containers.api import ContainerCollection
    from ..image.images import ImageStore
    from ..image.layers import LayerBlob
    from ..image.store import Store

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_SHELL = ["/bin/sh", "-c"]

NO_IMAGE = "sha256:" + "0" * 64


if TYPE_CHECKING:  # a Protocol is a class typing makes at run time; only mypy needs this one
    class BuildServices(Protocol):
        """What a build uses of the engine; :class:`sandbox.Engine` is one.

        A protocol, not the Engine class: the builder is below the engine, which
        imports it for ``Engine.build``.
        """

        @property
        def store(self) -> Store: ...

        @property
        def image_store(self) -> ImageStore: ...

        @property
        def containers(self) -> ContainerCollection: ...


class State(Record):
    """The image a stage has built so far, and what the stage's steps remember."""
    _fields = ("image", "layers", "key", "base_id", "base_name", "stage", "args", "cmd_set", "missed",
               "unpacked")

    def __init__(self, image: dict[str, Any], layers: list[LayerBlob], key: str, base_id: str, base_name: str,
                 stage: Stage, args: dict[str, str | None] | None = None, cmd_set: bool = False,
                 missed: bool = False, unpacked: bool = True) -> None:
        self.image = image
        self.layers = layers
        self.key = key
        self.base_id = base_id
        self.base_name = base_name
        self.stage = stage
        self.args: dict[str, str | None] = {} if args is None else args
        self.cmd_set = cmd_set
        self.missed = missed
        #: whether ``layers`` are known to be unpacked; a cache hit or a FROM leaves that to the
        #: first step that mounts them (or to the image's creation), so a full hit unpacks once
        self.unpacked = unpacked

    @property
    def config(self) -> dict[str, Any]:
        return self.image.setdefault("config", {})

    @property
    def chain_ids(self) -> list[str]:
        from ..image.mediatypes import chain_ids
        return chain_ids([l.diff_id for l in self.layers])

    def env_map(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for entry in self.config.get("Env") or []:
            k, _, v = entry.partition("=")
            out[k] = v
        return out

    def expansion_env(self) -> dict[str, str]:
        """What ``$VAR`` means in this stage: build arguments, overridden by ENV (as in Docker)."""
        env = {k: v for k, v in self.args.items() if v is not None}
        env.update(self.env_map())
        return env

    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)


class StepRoot(Record):
    """The image so far, writable, for a COPY, ADD or WORKDIR step: files go into ``merged``.

    overlay: ``merged`` is a mount and ``upper`` its upper directory, the layer.
    vfs: ``merged`` is a copy of ``base`` (the image's base tree), whose
    directories had the identities ``dirs`` when copied.
    """
    _fields = ("merged", "upper", "base", "dirs")

    def __init__(self, merged: Path, upper: Path | None = None, base: Path | None = None,
                 dirs: dict[str, list[int]] | None = None) -> None:
        self.merged = merged
        self.upper = upper
        self.base = base
        self.dirs: dict[str, list[int]] = {} if dirs is None else dirs


class Prepared(Record):
    """A step's cache inputs, and the work to do on a miss."""
    _fields = ("step_id", "expanded", "files", "files_digest", "args", "run")

    def __init__(self, step_id: str, expanded: Any, files: dict[str, str] | None = None,
                 files_digest: str | None = None, args: dict[str, str] | None = None,
                 run: Callable[[], tuple[dict[str, Any], Any]] | None = None) -> None:
        self.step_id = step_id
        self.expanded = expanded
        self.files = files
        self.files_digest = files_digest
        self.args: dict[str, str] = {} if args is None else args
        self.run = run


class StepBase:
    """The build's attributes and the helpers the step families share (see the module's docstring)."""

    engine: BuildServices
    store: Store
    images: ImageStore
    cache: BuildCache
    context: Path | None
    #: the context directory, opened once (O_PATH) by the Builder: everything read from it starts here
    context_fd: int | None
    ignore: DockerIgnore
    filename: str
    build_args: dict[str, str]
    #: the --build-arg names some step used (the others are reported as unused)
    consumed: set[str]
    global_args: dict[str, str | None]
    auto_args: dict[str, str]
    no_cache: bool
    #: where RUN steps go unless one says ``--network=none|host``
    network: str
    #: set to stop the build from another thread (see Builder)
    cancel: Any
    on_event: EventFn
    plan: Plan | None
    #: the build's temp directory on the store's file system, once :meth:`_scratch` made it
    tmp: Path | None
    scratch_stack: contextlib.ExitStack[bool | None] | None
    step_no: int
    total: int

    def _build_stage(self, stage: Stage) -> State:
        """Build ``stage`` (and the stages it needs) once; ``COPY --from`` and ``RUN --mount from=`` call it."""
        raise NotImplementedError

    def _built(self, stage: Stage) -> State:
        """Another stage a step reads from (``--from``), built, with its layers unpacked."""
        state = self._build_stage(stage)
        self._unpacked(state)
        return state

    def _unpacked(self, state: State) -> None:
        """Unpack the layers of ``state`` if a cache hit or FROM left them (each layer once per store)."""
        if not state.unpacked:
            with self.store.transaction():
                self.images.unpack([l.diff_id for l in state.layers], [l.digest for l in state.layers])
            state.unpacked = True

    def _scratch(self) -> Path:
        """The build's temp directory, made on first use (a full cache hit needs none) and
        removed when the build ends."""
        if self.tmp is None:
            assert self.scratch_stack is not None
            self.tmp = self.scratch_stack.enter_context(self.store.scratch("build-"))
        return self.tmp

    def emit(self, kind: str, **fields: Any) -> None:
        self.on_event(BuildEvent(kind, **fields))

    def _used_args(self, ins: Instruction, state: State, text: str) -> dict[str, str]:
        env = state.expansion_env()
        used = words.variables_used(text, env, self._escape)
        return {k: v for k, v in state.args.items() if k in used and v is not None
                and k not in state.env_map()}

    @property
    def _escape(self) -> str:
        return self.plan.dockerfile.escape if self.plan else "\\"

    def _expand(self, ins: Instruction, text: str, env: dict[str, str]) -> str:
        try:
            return words.expand(text, env, self._escape)
        except words.SubstitutionError as e:
            raise ins.error(f"{ins.keyword} {ins.rest.strip()}: {e}") from None

    def _expand_words(self, ins: Instruction, text: str, env: dict[str, str]) -> list[str]:
        try:
            return words.expand_words(text, env, self._escape)
        except words.SubstitutionError as e:
            raise ins.error(f"{ins.keyword} {ins.rest.strip()}: {e}") from None

    def _error(self, ins: Instruction, message: str, *, hint: str | None = None, exit_code: int | None = None,
               tail: list[str] | None = None) -> BuildError:
        return BuildError(message, step=f"{self.step_no}/{self.total}", filename=self.filename, line=ins.line,
                          instruction=shorten(str(ins), 80), exit_code=exit_code, output_tail=tail, hint=hint)

    # ------------------------------------------------------------------ shared by the step families

    def _storage_driver(self) -> str:
        """overlay or vfs, chosen once per build (``image.vfs.storage_driver``): every step,
        and every RUN's container, of one build uses the same."""
        driver = self.__dict__.get("_driver")
        if driver is None:
            from ..image.vfs import storage_driver
            driver = self.__dict__["_driver"] = storage_driver(self.store.tmp_dir)
        return str(driver)

    def _commit(self, root: StepRoot) -> Any:
        """The step's change to the image as a layer blob, or None when it changed nothing.

        overlay: the upper directory.  vfs: the copy compared with the tree it
        was copied from, written as the same tar (see :mod:`sandbox.image.vfs`).
        """
        from ..image import tarlayer, vfs
        from ..image.layers import write_layer_blob
        if root.upper is not None:
            upper = root.upper
            if not any(os.scandir(upper)):
                return None
            return write_layer_blob(self.store, lambda out: tarlayer.write_overlay_upper(upper, out))
        assert root.base is not None
        diff = tarlayer.tree_diff(root.base, root.merged, by_mtime=True, same_dir=vfs.same_dir_check(root.dirs))
        if not (diff.changed or diff.deleted):
            return None
        return write_layer_blob(self.store, lambda out: vfs.write_diff(root.merged, diff, out))

    def _commit_container(self, cid: str) -> Any:
        """A RUN's container's change as a layer blob, or None when it changed nothing."""
        from ..containers.commit import container_layer
        from ..image.layers import write_layer_blob
        container = self.engine.containers.get(cid)
        changed, write = container_layer(self.images, container.attrs, Path(container.dir))
        return write_layer_blob(self.store, write) if changed else None

    @contextlib.contextmanager
    def _context_tree(self) -> Iterator[SourceTree]:
        """The build context as a :class:`SourceTree`, from the descriptor the build holds."""
        assert self.context is not None
        root: Path | int = self.context_fd if self.context_fd is not None else self.context
        with SourceTree(root, self.ignore, shown=str(self.context)) as tree:
            yield tree

    @contextlib.contextmanager
    def _rootfs(self, state: State) -> Iterator[StepRoot]:
        """The image so far, writable: mounted over an empty upper dir, or (vfs) copied."""
        from .. import kernel
        if self._storage_driver() == "vfs":
            with self._copied(state) as root:
                yield root
            return
        with self.store.scratch("step-") as tmp:
            upper, work, merged = tmp / "upper", tmp / "work", tmp / "merged"
            for d in (upper, work, merged):
                d.mkdir()
            if state.layers:
                self.images.layers.mount(state.chain_ids, merged, upper=upper, work=work)
            else:
                empty = tmp / "empty"
                empty.mkdir()
                from ..image.layers import mount_overlay   # userxattr in a user namespace
                mount_overlay(merged, f"lowerdir={empty},upperdir={upper},workdir={work}")
            try:
                yield StepRoot(merged, upper=upper)
            finally:
                kernel.umount(merged, 0)

    @contextlib.contextmanager
    def _copied(self, state: State) -> Iterator[StepRoot]:
        """vfs: a scratch copy of the image so far's base tree (what Docker's vfs does for its
        build container), with the identities of its directories for the diff."""
        from ..image import vfs
        with self.store.scratch("step-") as tmp:
            merged = tmp / "merged"
            if state.layers:
                base = self.images.layers.base_tree(state.chain_ids)
            else:
                base = tmp / "empty"
                base.mkdir()
            stats = vfs.copy_tree(base, merged)
            yield StepRoot(merged, base=base, dirs=stats.dirs)

    @contextlib.contextmanager
    def _readonly(self, chain_ids: list[str]) -> Any:
        """The layers ``chain_ids`` mounted read-only (an empty directory for none): yields the view.

        vfs: the base tree itself, which the build only reads (a ``RUN --mount
        from=`` of it is bound read-only, see ``_mount_source``).
        """
        from .. import kernel
        if chain_ids and self._storage_driver() == "vfs":
            yield self.images.layers.base_tree(chain_ids)
            return
        with self.store.scratch("from-") as tmp:
            view = tmp / "view"
            view.mkdir()
            if not chain_ids:
                yield view
                return
            self.images.layers.mount(chain_ids, view)
            try:
                yield view
            finally:
                kernel.umount(view, kernel.MNT_DETACH)
