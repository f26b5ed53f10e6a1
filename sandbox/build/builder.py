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
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import posixpath
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..errors import BuildError, DockerfileSyntaxError, ImageNotFound, SandboxError
from ..humanize import shorten
from . import copyfs, words
from .cache import BuildCache, digest_of
from .context import DockerIgnore, Source, SourceTree
from .events import BuildEvent, EventFn
from .parser import Instruction, json_form, parse
from .stages import PROXY_ARGS, Plan, Stage, arg_decls, copy_args, name_values, onbuild_instruction
from .stages import plan as make_plan
from .stages import stage_dependencies

if TYPE_CHECKING:
    from ..containers.api import ContainerCollection
    from ..image.images import Image, ImageStore
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
    layers: list["LayerBlob"]
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


class Builder:
    """One build.  ``Builder(engine, context, ...).build()`` returns the Image."""

    def __init__(self, engine: BuildServices, context: str | os.PathLike[str] | None, *,
                 dockerfile: str | os.PathLike[str] | None = None, dockerfile_text: str | None = None,
                 tags: list[str] | tuple[str, ...] = (), build_args: dict[str, str] | None = None,
                 target: str | None = None, no_cache: bool = False, labels: dict[str, str] | None = None,
                 on_event: EventFn | None = None) -> None:
        self.engine = engine
        self.store = engine.store
        self.images = engine.image_store
        self.cache = BuildCache(self.store)
        self.context = Path(context).resolve() if context is not None else None
        if self.context is not None and not self.context.is_dir():
            raise BuildError(f"unable to prepare context: path {str(context)!r} not found",
                             hint="give a directory as the build context, e.g. `sandbox build .`")
        self.tags = [self._check_tag(t) for t in tags]   # a bad -t first, as docker does
        self.filename, self.text = self._dockerfile(dockerfile, dockerfile_text)
        self.build_args = dict(build_args or {})
        self.target = target
        self.no_cache = no_cache
        self.labels = dict(labels or {})
        self.on_event = on_event or (lambda e: None)
        self.ignore = DockerIgnore.read(self.context) if self.context else DockerIgnore()
        self.consumed: set[str] = set()
        self.results: dict[int, State] = {}
        self.building: set[int] = set()
        self.step_no = 0
        self.total = 0
        self.tmp: Path | None = None
        self.plan: Plan | None = None

    # ------------------------------------------------------------------ inputs

    def _dockerfile(self, path: Any, text: str | None) -> tuple[str, str]:
        if text is not None:
            return (str(path) if path else "Dockerfile"), text
        if path is None:
            if self.context is None:
                raise BuildError("no Dockerfile: give a context directory that holds one, or the text")
            candidate = self.context / "Dockerfile"
            if not candidate.exists() and (self.context / "dockerfile").exists():
                candidate = self.context / "dockerfile"
        else:
            candidate = Path(path)
            if not candidate.is_absolute() and not candidate.exists() and self.context is not None:
                candidate = self.context / candidate
        try:
            return candidate.name, candidate.read_text(errors="replace")
        except FileNotFoundError:
            raise BuildError(f"Cannot locate specified Dockerfile: {candidate}",
                             hint="put a Dockerfile in the context, or name one with -f FILE") from None
        except IsADirectoryError:
            raise BuildError(f"{candidate} is a directory, not a Dockerfile", hint="use -f PATH/Dockerfile") from None

    @staticmethod
    def _check_tag(tag: str) -> str:
        from ..reference import parse as parse_ref
        parse_ref(tag)
        return tag

    def emit(self, kind: str, **fields: Any) -> None:
        self.on_event(BuildEvent(kind, **fields))

    # ------------------------------------------------------------------ the build

    def build(self) -> "Image":
        try:
            return self._build()
        except (BuildError, DockerfileSyntaxError) as e:
            self.emit("error", step=self.step_no, total=self.total, filename=self.filename,
                      line=e.line or 0, text=str(e), exit_code=getattr(e, "returncode", None))
            raise

    def _build(self) -> "Image":
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
        with self.store.scratch("build-") as tmp:
            self.tmp = tmp
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
        assert self.plan is not None
        earlier = {s.name: s for s in self.plan.stages[:stage.index] if s.name}
        if base.lower() in earlier:
            src = self._build_stage(earlier[base.lower()])
            state = State(copy.deepcopy(src.image), list(src.layers), src.key, src.base_id, src.base_name, stage)
        elif base == "scratch":
            from ..image.images import host_platform
            os_name, arch, variant = host_platform()
            image: dict[str, Any] = {"architecture": arch, "os": os_name, "config": {},
                                     "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            if variant:
                image["variant"] = variant
            state = State(image, [], "scratch", NO_IMAGE, "scratch", stage)
        else:
            try:
                img = self.images.get(base)
            except ImageNotFound:
                raise self._error(ins, f"FROM {base}: no such image in the local store",
                                  hint=f"`sandbox pull {base}`, `sandbox bootstrap busybox` for an offline "
                                       "base image, or FROM scratch") from None
            from ..image.layers import LayerBlob
            layers = [LayerBlob(d, l.digest, l.size, l.media_type) for d, l in zip(img.diff_ids, img.layers)]
            with self.store.transaction():
                self.images.unpack(img.diff_ids, [l.digest for l in layers])
            image = copy.deepcopy(img.config)
            image.pop("container_config", None)
            state = State(image, layers, img.id, img.id, base, stage)
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

    # ------------------------------------------------------------------ one step

    def _step(self, ins: Instruction, state: State, *, count: bool = True) -> None:
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
            with self.store.transaction():
                self.images.unpack([l.diff_id for l in state.layers], [l.digest for l in state.layers])
            state.key = key
            self.emit("step-done", duration=time.monotonic() - t0, size=record.get("layer_size"),
                      image_id=record.get("config_digest", ""), cache="HIT", **base_fields)
            return
        reason = "--no-cache was given" if self.no_cache else self.cache.explain_miss(
            state.key, prepared.step_id, str(ins), prepared.files, prepared.args, state.missed)
        self.emit("step", cache="MISS", reason=reason, **base_fields)
        assert prepared.run is not None
        with self.store.transaction():
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
                "layers": [dataclasses.asdict(l) for l in state.layers], "chain_ids": state.chain_ids,
                "instruction": str(ins), "step_id": prepared.step_id, "files": prepared.files,
                "args": prepared.args, "layer_size": layer_size})
        self.emit("step-done", duration=time.monotonic() - t0, size=layer_size, image_id=config_digest,
                  **base_fields)

    def _prepare(self, ins: Instruction, state: State) -> Prepared:
        """Expand the instruction and gather its cache inputs; the work itself is in ``run``."""
        step_id = digest_of([ins.keyword, ins.rest, sorted(ins.flags.items(), key=lambda kv: kv[0]),
                             [(h.name, h.content, h.expand) for h in ins.heredocs]])
        handler = getattr(self, f"_do_{ins.keyword.lower()}")
        prepared: Prepared = handler(ins, state)
        prepared.step_id = step_id
        return prepared

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

    # ------------------------------------------------------------------ metadata instructions

    def _meta(self, state: State, expanded: Any, apply: Callable[[dict[str, Any]], str],
              args: dict[str, str] | None = None) -> Prepared:
        def run() -> tuple[dict[str, Any], Any]:
            created_by = apply(state.config)
            return {"created_by": created_by}, None
        return Prepared("", expanded, args=args or {}, run=run)

    def _do_env(self, ins: Instruction, state: State) -> Prepared:
        env = state.expansion_env()
        pairs = [(self._expand(ins, k, env), self._expand(ins, v, env)) for k, v in name_values(ins, self._escape)]
        for key, _ in pairs:
            if not key or "=" in key:
                raise ins.error(f"ENV: invalid variable name {key!r}")

        def apply(cfg: dict[str, Any]) -> str:
            current = list(cfg.get("Env") or [])
            for key, value in pairs:
                current = [e for e in current if e.partition("=")[0] != key] + [f"{key}={value}"]
            cfg["Env"] = current
            return "/bin/sh -c #(nop)  ENV " + " ".join(f"{k}={v}" for k, v in pairs)
        return self._meta(state, pairs, apply, self._used_args(ins, state, ins.rest))

    def _do_label(self, ins: Instruction, state: State) -> Prepared:
        env = state.expansion_env()
        pairs = [(self._expand(ins, k, env), self._expand(ins, v, env)) for k, v in name_values(ins, self._escape)]

        def apply(cfg: dict[str, Any]) -> str:
            cfg["Labels"] = {**(cfg.get("Labels") or {}), **dict(pairs)}
            return "/bin/sh -c #(nop)  LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
        return self._meta(state, pairs, apply, self._used_args(ins, state, ins.rest))

    def _do_arg(self, ins: Instruction, state: State) -> Prepared:
        env = state.expansion_env()
        shown = []
        for name, default in arg_decls(ins, self._escape):
            if name in self.build_args:
                value: str | None = self.build_args[name]
                self.consumed.add(name)
            elif default is not None:
                value = self._expand(ins, default, env)
            elif name in self.global_args:
                value = self.global_args[name]
            else:
                value = self.auto_args.get(name)
            state.args[name] = value
            shown.append(f"{name}={default}" if default is not None else name)

        # The declaration, not the values: a new --build-arg value is a change for
        # the steps that use it (RUN names it), not for the ARG line itself.
        def apply(cfg: dict[str, Any]) -> str:
            return "/bin/sh -c #(nop)  ARG " + " ".join(shown)
        return self._meta(state, shown, apply)

    def _do_cmd(self, ins: Instruction, state: State) -> Prepared:
        form = json_form(ins.rest, ins)
        cmd = form if form is not None else state.shell() + [ins.rest.strip()]
        state.cmd_set = True

        def apply(cfg: dict[str, Any]) -> str:
            cfg["Cmd"] = cmd
            return "/bin/sh -c #(nop)  CMD " + _go_quote_list(cmd)
        return self._meta(state, cmd, apply)

    def _do_entrypoint(self, ins: Instruction, state: State) -> Prepared:
        form = json_form(ins.rest, ins)
        entry = form if form is not None else state.shell() + [ins.rest.strip()]
        reset_cmd = not state.cmd_set

        def apply(cfg: dict[str, Any]) -> str:
            cfg["Entrypoint"] = entry
            if reset_cmd:
                cfg["Cmd"] = None  # Docker: an ENTRYPOINT resets a CMD inherited from the base image
            return "/bin/sh -c #(nop)  ENTRYPOINT " + _go_quote_list(entry)
        return self._meta(state, [entry, reset_cmd], apply)

    def _do_shell(self, ins: Instruction, state: State) -> Prepared:
        shell = json_form(ins.rest, ins) or DEFAULT_SHELL

        def apply(cfg: dict[str, Any]) -> str:
            cfg["Shell"] = shell
            return "/bin/sh -c #(nop)  SHELL [" + " ".join(shell) + "]"
        return self._meta(state, shell, apply)

    def _do_expose(self, ins: Instruction, state: State) -> Prepared:
        env = state.expansion_env()
        ports = self._expand_words(ins, ins.rest, env)
        probe: dict[str, Any] = {}
        self._archive_change(ins, probe, "EXPOSE", " ".join(ports))

        def apply(cfg: dict[str, Any]) -> str:
            cfg["ExposedPorts"] = {**(cfg.get("ExposedPorts") or {}), **probe["ExposedPorts"]}
            return "/bin/sh -c #(nop)  EXPOSE " + " ".join(ports)
        return self._meta(state, ports, apply, self._used_args(ins, state, ins.rest))

    def _archive_change(self, ins: Instruction, config: dict[str, Any], keyword: str, rest: str) -> None:
        from ..image.archive import apply_changes
        try:
            apply_changes(config, [f"{keyword} {rest}"])
        except SandboxError as e:
            raise ins.error(Exception.__str__(e), hint=e.hint) from None

    def _do_volume(self, ins: Instruction, state: State) -> Prepared:
        env = state.expansion_env()
        form = json_form(ins.rest, ins)
        paths = [self._expand(ins, p, env) for p in form] if form is not None \
            else self._expand_words(ins, ins.rest, env)
        if not paths or not all(p.strip() for p in paths):
            raise ins.error("VOLUME specified can not be an empty string", hint="e.g. VOLUME /data")

        def apply(cfg: dict[str, Any]) -> str:
            cfg["Volumes"] = {**(cfg.get("Volumes") or {}), **{p: {} for p in paths}}
            return "/bin/sh -c #(nop)  VOLUME [" + " ".join(paths) + "]"
        return self._meta(state, paths, apply, self._used_args(ins, state, ins.rest))

    def _do_user(self, ins: Instruction, state: State) -> Prepared:
        user = self._expand(ins, ins.rest.strip(), state.expansion_env())

        def apply(cfg: dict[str, Any]) -> str:
            cfg["User"] = user
            return "/bin/sh -c #(nop)  USER " + user
        return self._meta(state, user, apply, self._used_args(ins, state, ins.rest))

    def _do_stopsignal(self, ins: Instruction, state: State) -> Prepared:
        sig = self._expand(ins, ins.rest.strip(), state.expansion_env())
        from ..runtime.container import parse_signal
        try:
            parse_signal(sig)
        except (SandboxError, ValueError, KeyError):
            raise ins.error(f"STOPSIGNAL {sig}: invalid signal", hint="e.g. STOPSIGNAL SIGTERM or 15") from None

        def apply(cfg: dict[str, Any]) -> str:
            cfg["StopSignal"] = sig
            return "/bin/sh -c #(nop)  STOPSIGNAL " + sig
        return self._meta(state, sig, apply, self._used_args(ins, state, ins.rest))

    def _do_maintainer(self, ins: Instruction, state: State) -> Prepared:
        name = ins.rest.strip()

        def apply(cfg: dict[str, Any]) -> str:
            state.image["author"] = name
            return "/bin/sh -c #(nop)  MAINTAINER " + name
        return self._meta(state, name, apply)

    def _do_onbuild(self, ins: Instruction, state: State) -> Prepared:
        expression = ins.rest.strip()

        def apply(cfg: dict[str, Any]) -> str:
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [expression]
            return "/bin/sh -c #(nop)  ONBUILD " + expression
        return self._meta(state, expression, apply)

    def _do_healthcheck(self, ins: Instruction, state: State) -> Prepared:
        rest = ins.rest.strip()
        first, _, command = rest.partition(" ")
        if first.upper() == "NONE":
            check: dict[str, Any] = {"Test": ["NONE"]}
        else:
            command = command.strip()
            form = json_form(command, ins)
            check = {"Test": ["CMD"] + form if form is not None else ["CMD-SHELL", command]}
            from ..containers.options import parse_duration
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                              ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
                value = ins.flags.get(flag)
                if value:
                    try:
                        ns = parse_duration(value, f"--{flag}")
                    except SandboxError as e:
                        raise ins.error(f"HEALTHCHECK --{flag}={value}: {Exception.__str__(e)}",
                                        hint="durations look like 30s, 1m30s or 500ms") from None
                    if 0 < ns < 1_000_000:
                        raise ins.error(f"HEALTHCHECK --{flag}={value} cannot be less than 1ms")
                    if ns:
                        check[key] = ns
            retries = ins.flags.get("retries")
            if retries:
                if not retries.lstrip("-").isdigit() or int(retries) < 0:
                    raise ins.error(f"HEALTHCHECK --retries={retries}: must be a whole number >= 0")
                if int(retries):
                    check["Retries"] = int(retries)

        def apply(cfg: dict[str, Any]) -> str:
            cfg["Healthcheck"] = check
            return "/bin/sh -c #(nop)  HEALTHCHECK " + _go_health(check)
        return self._meta(state, check, apply)

    # ------------------------------------------------------------------ RUN

    def _do_run(self, ins: Instruction, state: State) -> Prepared:
        network = ins.flags.get("network") or "default"
        if network not in ("default", "none", "host"):
            raise ins.error(f"RUN --network={network}: only none and host are available so far "
                            "(the bridge comes with networking)", hint="use --network=none or --network=host")
        mounts = [self._run_mount(ins, state, m) for m in (ins.flags.get("mount") or "").split("\n") if m]
        if ins.flags.get("security") not in (None, "sandbox"):
            raise ins.error(f"RUN --security={ins.flags['security']} is not supported",
                            hint="RUN --security=insecure would need privileges a build does not get here")
        form = json_form(ins.rest, ins) if not ins.heredocs else None
        if form is not None:
            argv, shown = form, " ".join(form)
        else:
            script = ins.rest.strip()
            marker = re.fullmatch(r"\d*<<-?([\"']?)([A-Za-z0-9_.-]+)\1", script)
            if ins.heredocs and marker and len(ins.heredocs) == 1:
                script = ins.heredocs[0].content
            elif ins.heredocs:
                script = script + "\n" + "".join(h.content + h.name + "\n" for h in ins.heredocs)
            argv = state.shell() + [script]
            shown = " ".join(argv)
        args = {k: v for k, v in state.args.items() if v is not None}
        proxies = {k: v for k, v in self.build_args.items() if k in PROXY_ARGS}
        for k in proxies:
            self.consumed.add(k)
        history_args = sorted(f"{k}={v}" for k, v in args.items() if k not in PROXY_ARGS)
        created_by = (f"|{len(history_args)} {' '.join(history_args)} " if history_args else "") + shown
        env_map = {**proxies, **args, **state.env_map()}
        env_list = [f"{k}={v}" for k, v in env_map.items()]

        files = {f"mount:{m['target']}:{k}": v for m in mounts for k, v in (m.get("files") or {}).items()}

        def run() -> tuple[dict[str, Any], Any]:
            with contextlib.ExitStack() as stack:
                binds = [stack.enter_context(self._mount_source(m)) for m in mounts]
                blob = self._run_container(ins, state, argv, env_list, "none" if network == "default" else network,
                                           binds)
            return {"created_by": created_by}, blob
        return Prepared("", [argv, network, [{k: v for k, v in m.items() if k not in ("files", "sources")}
                                             for m in mounts]],
                        files=files or None, files_digest=digest_of(sorted(files.items())) if files else None,
                        args=args, run=run)

    # ------------------------------------------------------------------ RUN --mount

    def _run_mount(self, ins: Instruction, state: State, text: str) -> dict[str, Any]:
        """One ``--mount=type=bind|cache,target=...`` (BuildKit's syntax), checked and hashed."""
        opts: dict[str, str] = {}
        for field in text.split(","):
            key, eq, value = field.partition("=")
            key = key.strip().lower()
            if key in ("readonly", "ro", "rw", "readwrite") and not eq:
                value = "true"
            opts[{"dst": "target", "destination": "target", "src": "source", "ro": "readonly",
                  "rw": "readwrite"}.get(key, key)] = self._expand(ins, value, state.expansion_env())
        kind = opts.get("type", "bind")
        target = opts.get("target")
        if kind not in ("bind", "cache"):
            raise ins.error(f"RUN --mount=type={kind} is not supported", hint="use type=bind or type=cache")
        if not target or not target.startswith("/"):
            raise ins.error(f"RUN --mount {text}: target=/absolute/path is required",
                            hint="e.g. RUN --mount=type=cache,target=/root/.cache ...")
        mount: dict[str, Any] = {"type": kind, "target": posixpath.normpath(target)}
        if kind == "cache":
            # A directory that outlives builds, shared by every RUN that names the same id;
            # it never enters a layer or the cache key (BuildKit's rule).
            ident = opts.get("id") or mount["target"]
            mount["dir"] = str(Path(self.store.root) / "build" / "mounts" / digest_of(ident)[:24])
            return mount
        source = opts.get("source", ".")
        mount["readonly"] = opts.get("readwrite", "false") != "true"
        if opts.get("from"):
            assert self.plan is not None
            stage = self.plan.stage(opts["from"])
            if stage is not None:
                chain = self._build_stage(stage).chain_ids
            else:
                try:
                    img = self.images.get(opts["from"])
                except ImageNotFound:
                    raise self._error(ins, f"RUN --mount from={opts['from']}: no stage and no local image "
                                           "by that name") from None
                with self.store.transaction():
                    self.images.unpack(img.diff_ids, [l.digest for l in img.layers])
                chain = img.chain_ids
            mount.update(chain=chain, source=source, files={"layers": digest_of(chain)})
            return mount
        if self.context is None:
            raise self._error(ins, "RUN --mount=type=bind needs a build context")
        tree = SourceTree(self.context, self.ignore)
        try:
            sources = tree.resolve(source, ins="RUN --mount")
        except BuildError as e:
            raise self._error(ins, e.detail, hint=e.hint) from None
        _, files = tree.digest(sources)
        mount.update(source=source, sources=sources, files=files)
        return mount

    @contextlib.contextmanager
    def _mount_source(self, mount: dict[str, Any]) -> Any:
        """A host path for one mount, ready to bind: "HOST:TARGET[:ro]"."""
        if mount["type"] == "cache":
            os.makedirs(mount["dir"], mode=0o755, exist_ok=True)
            yield f"{mount['dir']}:{mount['target']}"
            return
        suffix = ":ro" if mount["readonly"] else ""
        if "chain" in mount:
            with self._readonly(mount["chain"]) as view:
                yield f"{copyfs.resolve_in(str(view), mount['source'])}:{mount['target']}{suffix}"
            return
        # From the context: a copy of what .dockerignore lets through, so a read-write
        # mount never writes into the student's folder and ignored files stay hidden.
        assert self.tmp is not None and self.context is not None
        copy = Path(tempfile_dir(self.tmp))
        try:
            tree = SourceTree(self.context, self.ignore)
            for src in mount["sources"]:
                if src.is_dir:
                    copyfs.copy_tree(str(copy), src.full, tree.walk(src.rel), src.rel, "/", 0, 0, None)
                else:
                    copyfs.copy_file(src.full, str(copy / posixpath.basename(src.rel)), 0, 0, None)
            yield f"{copy}:{mount['target']}{suffix}"
        finally:
            import shutil
            shutil.rmtree(copy, ignore_errors=True)

    def _run_container(self, ins: Instruction, state: State, argv: list[str], env: list[str],
                       network: str, binds: list[str] | None = None) -> Any:
        from ..containers.defaults import merge_image_config
        from ..containers.options import config_from_kwargs
        from ..errors import ContainerStartError
        cfg = state.config
        config, host, _ = config_from_kwargs(
            "build", argv, entrypoint=[], user=cfg.get("User") or None,
            working_dir=cfg.get("WorkingDir") or None, network_mode=network,
            log_config={"Type": "none"}, labels={"sandbox.build": self.filename}, volumes=list(binds or []))
        image_cfg = {k: v for k, v in cfg.items() if k not in ("Env", "Healthcheck", "Cmd", "Entrypoint")}
        merged = merge_image_config(image_cfg, config, True)
        merged["Env"] = env
        merged["Healthcheck"] = {"Test": ["NONE"]}
        merged["Image"] = state.base_name
        client = self.engine.containers.client
        tail: list[str] = []
        pending = {1: b"", 2: b""}

        def on_output(stream: int, data: bytes) -> None:
            buf = pending.get(stream, b"") + data
            *lines, pending[stream] = buf.split(b"\n")
            for raw in lines:
                text = raw.decode(errors="replace")
                tail.append(text)
                del tail[:-20]
                self.emit("output", step=self.step_no, total=self.total, stream=stream, text=text,
                          line=ins.line, filename=self.filename)

        result = client.call("create", config=merged, host_config=host, name=None, image_id=state.base_id,
                             layers=state.chain_ids, image_ref=f"{state.base_name} (build step {self.step_no})")
        cid = result["Id"]
        try:
            try:
                code = self.engine.containers.start_attached(cid, on_output)
            except ContainerStartError as e:
                raise self._error(ins, f"the command could not start: {e}",
                                  exit_code=getattr(e, "exit_code", 127),
                                  hint="does the image have the program (and /bin/sh for shell form)?") from None
            for stream, rest in pending.items():
                if rest:
                    on_output(stream, b"\n")
            if code != 0:
                raise self._error(ins, f"The command '{' '.join(argv)}' returned a non-zero code: {code}",
                                  exit_code=code, tail=tail,
                                  hint="its output shows why; fix the command and build again, "
                                       "the steps before it will come from the cache")
            return self._commit(Path(self.engine.containers.get(cid).dir) / "upper")
        finally:
            with contextlib.suppress(SandboxError):
                client.call("remove", id=cid, force=True, volumes=True)

    def _commit(self, upper: Path) -> Any:
        """The upper directory as a layer blob, or None when the step changed nothing."""
        if not any(os.scandir(upper)):
            return None
        from ..image import tarlayer
        from ..image.layers import write_layer_blob
        return write_layer_blob(self.store, lambda out: tarlayer.write_overlay_upper(upper, out))

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

    # ------------------------------------------------------------------ WORKDIR

    def _do_workdir(self, ins: Instruction, state: State) -> Prepared:
        path = self._expand(ins, ins.rest.strip(), state.expansion_env())
        workdir = posixpath.normpath(posixpath.join(state.config.get("WorkingDir") or "/", path))
        if workdir.startswith("//"):
            workdir = workdir[1:]

        def run() -> tuple[dict[str, Any], Any]:
            state.config["WorkingDir"] = workdir
            with self._rootfs(state) as (merged, upper):
                if not os.path.isdir(copyfs.resolve_in(str(merged), workdir)):
                    copyfs.make_parents(str(merged), workdir, 0, 0)
                blob = self._commit(upper)
            return {"created_by": "/bin/sh -c #(nop) WORKDIR " + workdir}, blob
        return Prepared("", workdir, args=self._used_args(ins, state, ins.rest), run=run)

    # ------------------------------------------------------------------ COPY and ADD

    def _do_copy(self, ins: Instruction, state: State) -> Prepared:
        return self._copy_or_add(ins, state)

    def _do_add(self, ins: Instruction, state: State) -> Prepared:
        return self._copy_or_add(ins, state)

    def _copy_or_add(self, ins: Instruction, state: State) -> Prepared:
        kw = ins.keyword
        env = state.expansion_env()
        raw_sources, raw_dest = copy_args(ins)
        heredocs = {f"<<{'-' if h.chomp else ''}{q}{h.name}{q}": h for h in ins.heredocs for q in ("", '"', "'")}
        dest = self._expand(ins, raw_dest, env)
        workdir = state.config.get("WorkingDir") or "/"
        if not dest.startswith("/"):
            slash = dest.endswith("/")
            dest = posixpath.normpath(posixpath.join("/", workdir, dest))
            dest = "/" + dest.lstrip("/")
            if slash and dest != "/":
                dest += "/"
        flags = {k: v for k, v in ins.flags.items() if v}
        chown = self._expand(ins, flags["chown"], env) if "chown" in flags else None
        chmod_text = self._expand(ins, flags["chmod"], env) if "chmod" in flags else None
        chmod = None
        if chmod_text is not None:
            if not re.fullmatch(r"[0-7]{3,4}", chmod_text):
                raise ins.error(f"{kw} --chmod={chmod_text}: expected an octal mode such as 755 or 0644")
            chmod = int(chmod_text, 8)
        from_ref = self._expand(ins, flags["from"], env) if "from" in flags else None
        plain: list[str] = []
        docs = []
        urls = []
        for word in raw_sources:
            if word in heredocs:
                docs.append(heredocs[word])
            else:
                src = self._expand(ins, word, env)
                if kw == "ADD" and re.match(r"^[a-z][a-z0-9+.-]*://", src, re.I):
                    urls.append(src)
                else:
                    plain.append(src)
        # Where the sources come from: the context, a stage, or an image.
        tree_chain: list[str] | None = None
        source_id = "context"
        if from_ref is not None:
            assert self.plan is not None
            stage = self.plan.stage(from_ref)
            if stage is not None and stage.index != state.stage.index:
                src_state = self._build_stage(stage)
                tree_chain = src_state.chain_ids
                source_id = "stage:" + digest_of([l.diff_id for l in src_state.layers])
            elif stage is not None:
                raise ins.error(f"COPY --from={from_ref}: a stage cannot copy from itself")
            else:
                try:
                    img = self.images.get(from_ref)
                except ImageNotFound:
                    raise self._error(ins, f"COPY --from={from_ref}: no stage and no local image by that name",
                                      hint="name an earlier stage (AS NAME), a stage number, or a local image")
                with self.store.transaction():
                    self.images.unpack(img.diff_ids, [l.digest for l in img.layers])
                tree_chain = img.chain_ids
                source_id = "image:" + img.id
        files: dict[str, str] = {}
        resolved: list[Source] = []
        if tree_chain is None and plain:
            if self.context is None:
                raise self._error(ins, f"{kw} needs a build context, but the Dockerfile came without one",
                                  hint="build with a context directory (`sandbox build -f - DIR`)")
            tree = SourceTree(self.context, self.ignore)
            for src in plain:
                try:
                    resolved += tree.resolve(src, ins=kw)
                except BuildError as e:
                    raise self._error(ins, e.detail, hint=e.hint) from None
            _, files = tree.digest(resolved)
        elif tree_chain is not None:
            files = {f"{source_id}:{p}": "" for p in plain}
        contents: list[tuple[str, str]] = []      # (name, the text the file will hold)
        for doc in docs:
            content = doc.content
            if doc.expand:
                try:
                    content = words.expand_heredoc(content, env, self._escape)
                except words.SubstitutionError as e:
                    raise ins.error(f"heredoc <<{doc.name}: {e}") from None
            files[f"<<{doc.name}"] = digest_of(content)
            contents.append((doc.name, content))
        downloads = [self._download(ins, url) for url in urls]
        for url, path, digest in downloads:
            files[url] = digest
        count = (len(resolved) if tree_chain is None else len(plain)) + len(docs) + len(downloads)
        if tree_chain is None:
            try:
                copyfs.check_many(count, dest, kw)
            except BuildError as e:
                raise self._error(ins, e.detail, hint=e.hint) from None
        files_digest = digest_of(sorted(files.items())) if files else None
        kind = "file" if count == 1 and not (resolved and resolved[0].is_dir) else ("dir" if count == 1 else "multi")
        created_by = f"/bin/sh -c #(nop) {kw} {kind}:{(files_digest or '')[:64]} in {dest} "

        def run() -> tuple[dict[str, Any], Any]:
            with self._rootfs(state) as (merged, upper):
                root = str(merged)
                uid, gid = self._owner(ins, root, chown)
                if tree_chain is not None:
                    with self._readonly(tree_chain) as view:
                        tree = SourceTree(view, what=f"{from_ref}")
                        srcs: list[Source] = []
                        for src in plain:
                            try:
                                srcs += tree.resolve(src, ins=kw)
                            except BuildError as e:
                                raise self._error(ins, e.detail, hint=e.hint) from None
                        copyfs.check_many(len(srcs) + len(docs), dest, kw)
                        self._place(ins, tree, srcs, root, dest, uid, gid, chmod, len(srcs) > 1)
                else:
                    self._place(ins, SourceTree(self.context, self.ignore) if self.context else None,
                                resolved, root, dest, uid, gid, chmod, count > 1)
                for name, content in contents:
                    target = copyfs.destination(root, dest, name, count > 1)
                    copyfs.make_parents(root, posixpath.dirname(_inside(root, target)), uid, gid)
                    copyfs.write_content(target, content.encode(), uid, gid, chmod if chmod is not None else 0o644)
                for url, path, _ in downloads:
                    name = posixpath.basename(url.split("?", 1)[0].rstrip("/")) or "download"
                    target = copyfs.destination(root, dest, name, count > 1)
                    copyfs.make_parents(root, posixpath.dirname(_inside(root, target)), uid, gid)
                    copyfs.write_content(target, Path(path).read_bytes(), uid, gid,
                                         chmod if chmod is not None else 0o600)
                blob = self._commit(upper)
            return {"created_by": created_by}, blob
        return Prepared("", [kw, dest, chown, chmod, source_id, sorted(plain), urls],
                        files=files or None, files_digest=files_digest,
                        args=self._used_args(ins, state, ins.rest + " " + " ".join(
                            v or "" for v in ins.flags.values())), run=run)

    def _place(self, ins: Instruction, tree: SourceTree | None, sources: list[Source], root: str, dest: str,
               uid: int, gid: int, chmod: int | None, many: bool) -> None:
        from ..image import tarlayer
        for src in sources:
            name = posixpath.basename(src.rel) or posixpath.basename(src.full)
            if src.is_dir:
                entries = tree.walk(src.rel) if tree is not None else []
                copyfs.copy_tree(root, src.full, entries, src.rel, dest, uid, gid, chmod)
                continue
            if ins.keyword == "ADD" and copyfs.is_archive(src.full):
                target = copyfs.make_parents(root, dest.rstrip("/") or "/", uid, gid)
                try:
                    tarlayer.apply_layer(Path(src.full), Path(target), mode="merge")
                except SandboxError as e:
                    raise self._error(ins, f"ADD {src.rel}: cannot unpack the archive: {e}") from None
                continue
            target = copyfs.destination(root, dest, name, many)
            parent = posixpath.dirname(_inside(root, target))
            copyfs.make_parents(root, parent, uid, gid)
            copyfs.copy_file(src.full, target, uid, gid, chmod)

    def _owner(self, ins: Instruction, root: str, chown: str | None) -> tuple[int, int]:
        if not chown:
            return 0, 0
        from ..containers.setup import resolve_user
        try:
            uid, gid, _ = resolve_user(Path(root), chown)
        except SandboxError as e:
            raise self._error(ins, f"--chown={chown}: {Exception.__str__(e)}",
                              hint="use numbers (--chown=1000:1000) or names the image's /etc/passwd has") from None
        if ":" not in chown and not chown.split(":")[0].isdigit():
            return uid, gid
        if ":" not in chown:
            return uid, uid
        return uid, gid

    def _download(self, ins: Instruction, url: str) -> tuple[str, str, str]:
        import hashlib
        import urllib.error
        import urllib.request
        assert self.tmp is not None
        path = self.tmp / f"download-{hashlib.sha256(url.encode()).hexdigest()[:16]}"
        try:
            with urllib.request.urlopen(url, timeout=20) as resp, open(path, "wb") as out:  # noqa: S310
                h = hashlib.sha256()
                while True:
                    chunk = resp.read(1 << 16)
                    if not chunk:
                        break
                    h.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise self._error(ins, f"ADD {url}: cannot download: {reason}",
                              hint="this machine may be offline: download the file into the build context "
                                   "and ADD or COPY it from there") from None
        return url, str(path), "sha256:" + h.hexdigest()


def tempfile_dir(parent: Path) -> str:
    import tempfile
    return tempfile.mkdtemp(prefix="mount-", dir=parent)


def _inside(root: str, full: str) -> str:
    rel = os.path.relpath(full, root)
    return "/" + ("" if rel == "." else rel)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _go_quote_list(items: list[str]) -> str:
    """Go's %q of a []string, as Docker writes CMD and ENTRYPOINT into history."""
    import json as _json
    return "[" + " ".join(_json.dumps(i) for i in items) + "]"


def go_duration(ns: int) -> str:
    """Go's time.Duration String(): 30s, 1m30s, 1h0m0s, 500ms."""
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                value = ns / size
                return (f"{value:.6f}".rstrip("0").rstrip(".")) + unit
    seconds = ns / 1e9
    h, rem = divmod(seconds, 3600)
    m, sec = divmod(rem, 60)
    text = f"{sec:.9f}".rstrip("0").rstrip(".") + "s"
    if h:
        return f"{int(h)}h{int(m)}m{text}"
    if m:
        return f"{int(m)}m{text}"
    return text


def _go_health(check: dict[str, Any]) -> str:
    dur = go_duration
    return ("&{" + _go_quote_list(check.get("Test", [])) + f' "{dur(check.get("Interval", 0))}"'
            f' "{dur(check.get("Timeout", 0))}" "{dur(check.get("StartPeriod", 0))}"'
            f" '\\x{check.get('Retries', 0):02x}'}}")
