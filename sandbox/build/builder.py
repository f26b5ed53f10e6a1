"""The builder: runs a Dockerfile's stages step by step, with the cache, into an image.

How a step becomes a layer, the way Docker's classic builder does it:

* metadata steps (ENV, CMD, LABEL, ...) change the image config only and add
  a history entry marked ``empty_layer``;
* RUN creates a container from the image so far *through the supervisor*
  (the same path as ``sandbox run``: namespaces, cgroup, the init layer),
  streams its output as events, and its writable layer becomes the step's
  layer (none when it changed nothing);
* COPY, ADD and WORKDIR need no process: the image so far is mounted as an
  overlay with an empty upper directory, the files are written into the
  merged view, and the upper directory is the layer.

Every step goes through :class:`~sandbox.build.cache.BuildCache` first; a hit
takes the recorded image state and does nothing else.  Nothing is tagged
until the last step succeeded, so a failed or interrupted build leaves no half
image behind (its finished steps stay in the cache, as in Docker).

The instructions live with their kind: :mod:`.meta_steps` (the metadata
instructions), :mod:`.run_step` (RUN and its mounts) and :mod:`.file_steps`
(COPY, ADD, WORKDIR), each a family of ``_do_<keyword>`` methods on
:class:`~sandbox.build.step.StepBase`, which also holds what they share.
This module holds the build itself: inputs, stages, FROM, and one step
through the cache.

The context directory is opened once, and every file of it the build reads
(the Dockerfile, ``.dockerignore``, COPY and ADD sources, bind mounts) is
reached from that descriptor with its symlinks followed inside the context
only (:mod:`.context`): the engine may run as root, and a context (or one an
API client sent as a tar) may hold ``Dockerfile -> /etc/shadow``.  A
Dockerfile named by a path *outside* the context (``-f ../Dockerfile.dev``)
is read as given: it is the caller's own file, as the docker CLI reads it.
"""

from __future__ import annotations

import contextlib
import copy
import os
import posixpath
import threading
import time
from pathlib import Path
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)

from ..errors import BuildError, DockerfileSyntaxError, ImageNotFound, StoreFull
from ..humanize import shorten
from .cache import BuildCache, digest_of
from .context import DockerIgnore, open_in_root, read_in_root
from .events import EventFn
from .file_steps import FileSteps
from .meta_steps import MetadataSteps
from .parser import Instruction, parse
from .run_step import RunStep
from .stages import PROXY_ARGS, Plan, Stage, arg_decls, onbuild_instruction
from .stages import plan as make_plan
from .stages import stage_dependencies
from .step import DEFAULT_PATH, NO_IMAGE, Prepared, State

if TYPE_CHECKING:
    from typing import Any
    from .step import BuildServices
    from ..image.images import Image

class Builder(MetadataSteps, RunStep, FileSteps):
    """One build.  ``Builder(engine, context, ...).build()`` returns the Image."""

    def __init__(self, engine: BuildServices, context: str | os.PathLike[str] | None, *,
                 dockerfile: str | os.PathLike[str] | None = None, dockerfile_text: str | None = None,
                 tags: list[str] | tuple[str, ...] = (), build_args: dict[str, str] | None = None,
                 target: str | None = None, no_cache: bool = False, labels: dict[str, str] | None = None,
                 on_event: EventFn | None = None, network: str | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.engine = engine
        self.store = engine.store
        self.images = engine.image_store
        self.cache = BuildCache(self.store)
        self.context = Path(context).resolve() if context is not None else None
        if self.context is not None and not self.context.is_dir():
            raise BuildError(f"unable to prepare context: path {str(context)!r} not found",
                             hint="give a directory as the build context, e.g. `sandbox build .`")
        self.tags = [self._check_tag(t) for t in tags]   # a bad -t first, as docker does
        #: the context, opened once: what the build reads is below this directory (see the module doc)
        self.context_fd: int | None = None
        if self.context is not None:
            self.context_fd = os.open(self.context, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self.filename, self.text = self._dockerfile(dockerfile, dockerfile_text)
            self.ignore = DockerIgnore.read(self.context_fd) if self.context_fd is not None else DockerIgnore()
        except BaseException:
            self.close()
            raise
        self.build_args = dict(build_args or {})
        self.target = target
        self.no_cache = no_cache
        #: ``build --network``: where RUN steps go by default (Docker's: the bridge).
        self.network = network or "default"  # the bridge as root, the host's network when rootless
        self.labels = dict(labels or {})
        self.on_event = on_event or (lambda e: None)
        #: set from another thread to stop the build (the API's client left): the running RUN is
        #: stopped, no later step starts, nothing is tagged
        self.cancel = cancel
        self.consumed: set[str] = set()
        self.results: dict[int, State] = {}
        self.building: set[int] = set()
        self.step_no = 0
        self.total = 0
        self.tmp: Path | None = None
        self.scratch_stack = None
        self.plan: Plan | None = None

    # ------------------------------------------------------------------ inputs

    def close(self) -> None:
        """Let go of the context's descriptor (:meth:`build` does it when it ends)."""
        if self.context_fd is not None:
            os.close(self.context_fd)
            self.context_fd = None

    def _dockerfile(self, path: Any, text: str | None) -> tuple[str, str]:
        if text is not None:
            return (str(path) if path else "Dockerfile"), text
        inside = self._in_context(path)
        if inside is not None:
            return self._context_dockerfile(inside)
        candidate = Path(path)
        try:
            return candidate.name, candidate.read_text(errors="replace")
        except FileNotFoundError:
            raise BuildError(f"Cannot locate specified Dockerfile: {candidate}",
                             hint="put a Dockerfile in the context, or name one with -f FILE") from None
        except IsADirectoryError:
            raise BuildError(f"{candidate} is a directory, not a Dockerfile", hint="use -f PATH/Dockerfile") from None

    def _in_context(self, path: Any) -> str | None:
        """The Dockerfile's path inside the context when it is there (None: read it as given).

        No ``-f``: ``Dockerfile`` (or ``dockerfile``).  A relative ``-f`` that does not exist
        from here is taken from the context, as before.  A path written as the context's path
        and more (``CONTEXT/Dockerfile``, ``CONTEXT/../x``: what the API route builds) is inside
        it, its ``..`` unable to climb out.
        """
        if self.context is None:
            if path is None:
                raise BuildError("no Dockerfile: give a context directory that holds one, or the text")
            return None
        if path is None:
            assert self.context_fd is not None
            for name in ("Dockerfile", "dockerfile"):
                with contextlib.suppress(OSError):
                    os.close(open_in_root(self.context_fd, name, os.O_PATH))
                    return name
            return "Dockerfile"
        text = os.fspath(path)
        if not os.path.isabs(text):
            return None if os.path.lexists(text) else text
        top = str(self.context).rstrip("/") + "/"
        if text.startswith(top):
            return text[len(top):]
        real = os.path.normpath(text)
        return real[len(top):] if real.startswith(top) else None

    def _context_dockerfile(self, rel: str) -> tuple[str, str]:
        """The Dockerfile at ``rel`` in the context, its symlinks followed inside the context only."""
        assert self.context_fd is not None
        shown = posixpath.normpath("/" + rel).lstrip("/")
        try:
            data = read_in_root(self.context_fd, rel)
        except (FileNotFoundError, NotADirectoryError):
            raise BuildError(f"Cannot locate specified Dockerfile: {shown} in the build context {self.context}",
                             hint="put a Dockerfile in the context, or name one with -f FILE (a symlink "
                                  "in the context is followed inside it only)") from None
        except IsADirectoryError:
            raise BuildError(f"{shown} is not a file, so not a Dockerfile", hint="use -f PATH/Dockerfile") from None
        except OSError as e:
            raise BuildError(f"cannot read the Dockerfile {shown} in the build context: {e.strerror}",
                             hint="a symlink in the context may point (through others) to itself") from None
        return posixpath.basename(shown) or "Dockerfile", data.decode("utf-8", "replace")

    @staticmethod
    def _check_tag(tag: str) -> str:
        from ..reference import parse as parse_ref
        parse_ref(tag)
        return tag

    # ------------------------------------------------------------------ the build

    def build(self) -> Image:
        try:
            return self._build()
        except (BuildError, DockerfileSyntaxError, StoreFull) as e:
            self.emit("error", step=self.step_no, total=self.total, filename=self.filename,
                      line=getattr(e, "line", 0) or 0, text=str(e), exit_code=getattr(e, "returncode", None))
            raise
        finally:
            self.close()

    def _build(self) -> Image:
        started = time.monotonic()
        df = parse(self.text, self.filename)
        for warning in df.warnings:
            self.emit("warning", text=warning)
        self.plan = plan = make_plan(df)
        target = plan.stages[-1]
        if self.target:
            found = plan.stage(self.target)
            if found is None:
                names = ", ".join(s.name for s in plan.stages if s.name) or "none are named"
                raise BuildError(f"failed to reach build target {self.target} in Dockerfile",
                                 hint=f"stage names: {names}")
            target = found
        if self.labels:
            rest = " ".join(f"{k}={_quote(v)}" for k, v in sorted(self.labels.items()))
            target.instructions = target.instructions + [Instruction(
                "LABEL", rest, {}, target.instructions[-1].line if target.instructions else target.line,
                target.line, self.filename, original=f"LABEL {rest}")]
        needed = self._needed(plan, target)
        self.total = sum(1 + len(s.instructions) for s in needed)
        self.global_args = self._global_args(plan)
        with contextlib.ExitStack() as stack:
            self.scratch_stack = stack      # the build's temp directory, made on first use (_scratch)
            state = self._build_stage(target)
            image = self.images.create(state.image, state.layers, tags=self.tags)
        unused = sorted(set(self.build_args) - self.consumed - set(PROXY_ARGS))
        if unused:
            self.emit("warning", text=f"One or more build-args [{' '.join(unused)}] were not consumed")
        self.emit("result", image_id=image.id, tags=list(self.tags), duration=time.monotonic() - started)
        return image

    def _needed(self, plan: Plan, target: Stage) -> list[Stage]:
        seen: dict[int, Stage] = {}

        def visit(stage: Stage) -> None:
            if stage.index in seen:
                return
            for dep, _ in stage_dependencies(plan, stage):
                visit(dep)
            seen[stage.index] = stage

        visit(target)
        return list(seen.values())

    def _global_args(self, plan: Plan) -> dict[str, str | None]:
        from ..image.images import host_platform
        os_name, arch, variant = host_platform()
        platform = f"{os_name}/{arch}" + (f"/{variant}" if variant else "")
        auto = {"BUILDPLATFORM": platform, "TARGETPLATFORM": platform, "BUILDOS": os_name,
                "BUILDARCH": arch, "TARGETOS": os_name, "TARGETARCH": arch,
                "BUILDVARIANT": variant or "", "TARGETVARIANT": variant or ""}
        self.auto_args = auto
        values: dict[str, str | None] = {}
        for ins in plan.global_args:
            for name, default in arg_decls(ins, plan.dockerfile.escape):
                env = {**auto, **{k: v for k, v in values.items() if v is not None}}
                if name in self.build_args:
                    values[name] = self.build_args[name]
                    self.consumed.add(name)
                elif default is not None:
                    values[name] = self._expand(ins, default, env)
                else:
                    values[name] = auto.get(name)
        return values

    # ------------------------------------------------------------------ stages

    def _build_stage(self, stage: Stage) -> State:
        if stage.index in self.results:
            return self.results[stage.index]
        if stage.index in self.building:
            raise stage.from_ins.error(f"circular dependency on stage {stage.label}")
        self.building.add(stage.index)
        assert self.plan is not None
        for dep, _ in stage_dependencies(self.plan, stage):
            self._build_stage(dep)
        state = self._from(stage)
        for ins in stage.instructions:
            self._step(ins, state)
        self.building.discard(stage.index)
        self.results[stage.index] = state
        return state

    def _from(self, stage: Stage) -> State:
        """The FROM step: the base's state (after PATH is set and its ONBUILD triggers ran)."""
        ins = stage.from_ins
        self.step_no += 1
        env = {**self.auto_args, **{k: v for k, v in self.global_args.items() if v is not None}}
        base = self._expand(ins, stage.base, env)
        self.emit("step", step=self.step_no, total=self.total, stage=stage.label,
                  instruction=f"FROM {base}" + (f" AS {stage.name}" if stage.name else ""),
                  filename=self.filename, line=ins.line)
        if stage.platform:
            platform = self._expand(ins, stage.platform, env)
            if platform not in (self.auto_args["TARGETPLATFORM"], f"linux/{self.auto_args['TARGETARCH']}"):
                raise self._error(ins, f"platform {platform} is not available: this engine builds "
                                       f"{self.auto_args['TARGETPLATFORM']} images only",
                                  hint="drop --platform, or use $BUILDPLATFORM")
        state = self._base_state(stage, base)
        cfg = state.config
        env = state.env_map()
        if "PATH" not in env:
            cfg["Env"] = list(cfg.get("Env") or []) + [f"PATH={DEFAULT_PATH}"]
        self.emit("step-done", step=self.step_no, total=self.total, stage=stage.label,
                  instruction=f"FROM {base}", image_id=state.base_id if state.base_id != NO_IMAGE else "", size=None)
        triggers = list(cfg.get("OnBuild") or [])
        if triggers:
            cfg["OnBuild"] = None
            for text in triggers:
                trigger = onbuild_instruction(Instruction("ONBUILD", text, {}, ins.line, ins.line,
                                                          self.filename, original=f"ONBUILD {text}"))
                self.emit("warning", text=f"running ONBUILD trigger of {base}: {text}")
                self._step(trigger, state, count=False)
        return state

    def _base_state(self, stage: Stage, base: str) -> State:
        """The state a stage starts from: an earlier stage's, an empty one (scratch), or a local image's."""
        ins = stage.from_ins
        assert self.plan is not None
        earlier = {s.name: s for s in self.plan.stages[:stage.index] if s.name}
        if base.lower() in earlier:
            src = self._build_stage(earlier[base.lower()])
            return State(copy.deepcopy(src.image), list(src.layers), src.key, src.base_id, src.base_name, stage,
                         unpacked=src.unpacked)
        if base == "scratch":
            from ..image.images import host_platform
            os_name, arch, variant = host_platform()
            image: dict[str, Any] = {"architecture": arch, "os": os_name, "config": {},
                                     "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            if variant:
                image["variant"] = variant
            return State(image, [], "scratch", NO_IMAGE, "scratch", stage)
        try:
            img = self.images.get(base)
        except ImageNotFound:
            raise self._error(ins, f"FROM {base}: no such image in the local store",
                              hint=f"`sandbox pull {base}`, `sandbox bootstrap busybox` for an offline "
                                   "base image, or FROM scratch") from None
        from ..image.layers import LayerBlob
        layers = [LayerBlob(d, l.digest, l.size, l.media_type) for d, l in zip(img.diff_ids, img.layers)]
        image = copy.deepcopy(img.config)
        image.pop("container_config", None)
        return State(image, layers, img.id, img.id, base, stage, unpacked=False)

    # ------------------------------------------------------------------ one step

    def _step(self, ins: Instruction, state: State, *, count: bool = True) -> None:
        """One instruction: a cache hit takes the recorded state; a miss runs the step and records it."""
        if self.cancel is not None and self.cancel.is_set():
            raise BuildError("the build was cancelled", step=f"{self.step_no}/{self.total}", filename=self.filename,
                             line=ins.line, instruction=str(ins), hint="nothing was tagged; build again")
        if count:
            self.step_no += 1
        t0 = time.monotonic()
        stage = state.stage.label
        parent = state.key
        prepared = self._prepare(ins, state)
        key = digest_of([state.key, prepared.step_id, prepared.expanded, prepared.files_digest,
                         sorted(prepared.args.items())])
        record = None if self.no_cache else self.cache.get(key)
        base_fields = dict(step=self.step_no, total=self.total, stage=stage, instruction=str(ins),
                           filename=self.filename, line=ins.line)
        if record is not None:
            self.emit("step", cache="HIT", **base_fields)
            from ..image.layers import LayerBlob
            state.image = record["config"]
            state.layers = [LayerBlob(**l) for l in record["layers"]]
            state.unpacked = False      # unpacked when a step or the image needs them (see _unpacked)
            state.key = key
            self.emit("step-done", duration=time.monotonic() - t0, size=record.get("layer_size"),
                      image_id=record.get("config_digest", ""), cache="HIT", **base_fields)
            return
        reason = "--no-cache was given" if self.no_cache else self.cache.explain_miss(
            state.key, prepared.step_id, str(ins), prepared.files, prepared.args, state.missed)
        self.emit("step", cache="MISS", reason=reason, **base_fields)
        try:
            # What a failed step stored goes again (a layer blob whose unpacking found the disk full).
            with self.images.tidy_on_failure(), self.store.transaction():
                layer_size, config_digest = self._run_step(ins, state, prepared, parent, key)
        except StoreFull as e:
            what = "its layer" if e.what == "a blob" else e.what
            raise StoreFull(f"step {self.step_no}/{self.total} ({self.filename}:{ins.line}) "
                            f"`{shorten(str(ins), 80)}`: {what}", e.where) from None
        self.emit("step-done", duration=time.monotonic() - t0, size=layer_size, image_id=config_digest,
                  **base_fields)

    def _run_step(self, ins: Instruction, state: State, prepared: Prepared, parent: str,
                  key: str) -> tuple[int | None, str]:
        """A cache miss: run the step, add its layer and history entry, record it under ``key``.

        Returns the new layer's size (None for no layer) and the config digest.
        """
        assert prepared.run is not None
        self._unpacked(state)
        history, blob = prepared.run()
        layer_size = None
        if blob is not None:
            state.layers.append(blob)
            state.image.setdefault("rootfs", {"type": "layers", "diff_ids": []})
            state.image["rootfs"]["diff_ids"] = [l.diff_id for l in state.layers]
            self.images.unpack([l.diff_id for l in state.layers], [l.digest for l in state.layers])
            layer_size = self.images.layers.get(state.chain_ids[-1]).size
        else:
            history["empty_layer"] = True
        from ..image.images import now_rfc3339
        history = {"created": now_rfc3339(), **history}
        state.image["created"] = history["created"]
        state.image["history"] = list(state.image.get("history") or []) + [history]
        state.key = key
        state.missed = True
        from ..image import fsutil
        from ..image.store import sha256_digest
        config_digest = sha256_digest(fsutil.canonical_json(state.image))
        self.cache.put(key, parent, {
            "config": state.image, "config_digest": config_digest,
            "layers": [l.as_dict() for l in state.layers], "chain_ids": state.chain_ids,
            "instruction": str(ins), "step_id": prepared.step_id, "files": prepared.files,
            "args": prepared.args, "layer_size": layer_size})
        return layer_size, config_digest

    def _prepare(self, ins: Instruction, state: State) -> Prepared:
        """Expand the instruction and gather its cache inputs; the work itself is in ``run``."""
        step_id = digest_of([ins.keyword, ins.rest, sorted(ins.flags.items(), key=lambda kv: kv[0]),
                             [(h.name, h.content, h.expand) for h in ins.heredocs]])
        handler = getattr(self, f"_do_{ins.keyword.lower()}")
        prepared: Prepared = handler(ins, state)
        prepared.step_id = step_id
        return prepared


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
