"""What every step of a build shares: the state so far, a step's cache inputs, and the helpers.

:class:`StepBase` is the base of the step families (:mod:`.meta_steps`,
:mod:`.run_step`, :mod:`.file_steps`) that :class:`~sandbox.build.builder.Builder`
is made of: it declares the build's attributes (set by ``Builder.__init__``
and ``Builder.build``) and holds what more than one family uses: expansion
of ``$VAR``, errors that name the step, the metadata-only step, and mounts
of the image so far.  :class:`BuildServices` is what a build needs of the
engine.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import BuildError
from ..humanize import shorten
from . import words
from .cache import BuildCache
from .context import DockerIgnore, SourceTree
from .events import BuildEvent, EventFn
from .parser import Instruction
from .stages import Plan, Stage

if TYPE_CHECKING:
    from ..containers.api import ContainerCollection
    from ..image.images import ImageStore
    from ..image.layers import LayerBlob
    from ..image.store import Store

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_SHELL = ["/bin/sh", "-c"]

NO_IMAGE = "sha256:" + "0" * 64


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


@dataclass
class State:
    """The image a stage has built so far, and what the stage's steps remember."""
    image: dict[str, Any]
    layers: list[LayerBlob]
    key: str
    base_id: str
    base_name: str
    stage: Stage
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False
    missed: bool = False

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


@dataclass
class Prepared:
    """A step's cache inputs, and the work to do on a miss."""
    step_id: str
    expanded: Any
    files: dict[str, str] | None = None
    files_digest: str | None = None
    args: dict[str, str] = field(default_factory=dict)
    run: Callable[[], tuple[dict[str, Any], Any]] | None = None


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
    tmp: Path | None
    step_no: int
    total: int

    def _build_stage(self, stage: Stage) -> State:
        """Build ``stage`` (and the stages it needs) once; ``COPY --from`` and ``RUN --mount from=`` call it."""
        raise NotImplementedError

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

    def _commit(self, upper: Path) -> Any:
        """The upper directory as a layer blob, or None when the step changed nothing."""
        if not any(os.scandir(upper)):
            return None
        from ..image import tarlayer
        from ..image.layers import write_layer_blob
        return write_layer_blob(self.store, lambda out: tarlayer.write_overlay_upper(upper, out))

    @contextlib.contextmanager
    def _context_tree(self) -> Iterator[SourceTree]:
        """The build context as a :class:`SourceTree`, from the descriptor the build holds."""
        assert self.context is not None
        root: Path | int = self.context_fd if self.context_fd is not None else self.context
        with SourceTree(root, self.ignore, shown=str(self.context)) as tree:
            yield tree

    @contextlib.contextmanager
    def _rootfs(self, state: State) -> Any:
        """The image so far, mounted writable over an empty upper dir: yields (merged, upper)."""
        from .. import kernel
        assert self.tmp is not None
        with self.store.scratch("step-") as tmp:
            upper, work, merged = tmp / "upper", tmp / "work", tmp / "merged"
            for d in (upper, work, merged):
                d.mkdir()
            if state.layers:
                self.images.layers.mount(state.chain_ids, merged, upper=upper, work=work)
            else:
                empty = tmp / "empty"
                empty.mkdir()
                kernel.mount("overlay", merged, "overlay", 0, f"lowerdir={empty},upperdir={upper},workdir={work}")
            try:
                yield merged, upper
            finally:
                kernel.umount(merged, 0)

    @contextlib.contextmanager
    def _readonly(self, chain_ids: list[str]) -> Any:
        """The layers ``chain_ids`` mounted read-only (an empty directory for none): yields the view."""
        from .. import kernel
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
