"""RUN: the command runs in a container of the image so far; its writable layer is the step's layer.

The container is created through the supervisor, the same path as ``sandbox
run`` (namespaces, cgroup, the init layer), with ENTRYPOINT ignored, health
checks and logs off, on the build's network (the bridge, as in Docker, unless
``build --network`` says otherwise; ``RUN --network=none|host`` for one step); its
output streams as build events.  ``RUN --mount`` binds a cache directory, a
copy of part of the context, or a stage or image, from the container's init
layer, so no mount point enters the layer.

Mount sources are confined as COPY's are: ``source=`` is resolved inside the
context (symlinks followed as if it were /, ``..`` refused) or inside the
stage's or image's root file system, and the context's files are copied
from descriptors (:class:`~sandbox.build.context.SourceTree`), so a link
swapped in meanwhile is copied as a link.  ``target=`` is a path in the
container, resolved inside its root file system by the runtime, as every
bind destination is.  A file source is bound as that file (BuildKit's
rule).  ``type=secret``, ``ssh`` and ``tmpfs`` are not supported.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import stat
import threading
from pathlib import Path
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any

from ..errors import BuildError, ImageNotFound, SandboxError, StoreFull
from ..image import fsutil
from . import copyfs
from .cache import digest_of
from .context import Source, SourceTree
from .parser import Instruction, json_form
from .stages import PROXY_ARGS
from .step import Prepared, State, StepBase


def _stop_when_cancelled(client: Any, cid: str, cancel: threading.Event, finished: threading.Event) -> None:
    """Stop a RUN's container once the build is cancelled (its exit then fails the step)."""
    while not finished.wait(0.1):
        if cancel.is_set():
            with contextlib.suppress(SandboxError):
                client.stream("stop", None, id=cid, timeout=1)
            return


class RunStep(StepBase):
    """The ``RUN`` handler and its mounts."""

    def _do_run(self, ins: Instruction, state: State) -> Prepared:
        network = ins.flags.get("network") or "default"
        if network not in ("default", "none", "host"):
            raise ins.error(f"RUN --network={network}: a step can only choose default, none or host",
                            hint="use --network=none or --network=host; `build --network NAME` puts every "
                                 "step on a network")
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
                binds = [stack.enter_context(self._mount_source(ins, m)) for m in mounts]
                blob = self._run_container(ins, state, argv, env_list,
                                           self.network if network == "default" else network, binds)
            return {"created_by": created_by}, blob
        return Prepared("", [argv, network, [{k: v for k, v in m.items() if k not in ("files", "sources")}
                                             for m in mounts]],
                        files=files or None, files_digest=digest_of(sorted(files.items())) if files else None,
                        args=args, run=run)

    # ------------------------------------------------------------------ RUN --mount

    def _run_mount(self, ins: Instruction, state: State, text: str) -> dict[str, Any]:
        """One ``--mount=type=bind|cache,target=...`` (BuildKit's syntax), checked and hashed."""
        opts = self._mount_options(ins, state, text)
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
            chain = self._mount_from(ins, opts["from"])
            mount.update(chain=chain, source=source, files={"layers": digest_of(chain)})
            # checked now, so a missing or escaping source fails before any container is made
            with self._readonly(chain) as view:
                self._stage_source(ins, view, opts["from"], source)
            return mount
        if self.context is None:
            raise self._error(ins, "RUN --mount=type=bind needs a build context")
        with self._context_tree() as tree:
            try:
                sources = tree.resolve(source, ins="RUN --mount")
                _, files = tree.digest(sources)
            except BuildError as e:
                raise self._error(ins, e.detail, hint=e.hint) from None
        mount.update(source=source, sources=sources, files=files)
        return mount

    def _stage_source(self, ins: Instruction, view: Path, ref: str, source: str) -> str:
        """``source=`` of a ``from=`` mount on the host: resolved inside the stage's root (its
        symlinks and ``..`` cannot leave it), as a path with no symlink left in it."""
        what = f"--mount from={ref}"
        with SourceTree(view, what=what, shown="") as tree:
            try:
                with tree.opened(Source(source.lstrip("/"), "", False), src=source, ins="RUN --mount") \
                        as (_, _st, real):
                    return str(view / real) if real else str(view)
            except BuildError as e:
                raise self._error(ins, e.detail, hint=e.hint) from None

    def _mount_options(self, ins: Instruction, state: State, text: str) -> dict[str, str]:
        """``key=value,...`` with BuildKit's aliases (dst, src, ro, rw) and ``$VAR`` expanded."""
        opts: dict[str, str] = {}
        for field in text.split(","):
            key, eq, value = field.partition("=")
            key = key.strip().lower()
            if key in ("readonly", "ro", "rw", "readwrite") and not eq:
                value = "true"
            opts[{"dst": "target", "destination": "target", "src": "source", "ro": "readonly",
                  "rw": "readwrite"}.get(key, key)] = self._expand(ins, value, state.expansion_env())
        return opts

    def _mount_from(self, ins: Instruction, name: str) -> list[str]:
        """The chain ids of ``from=``: a stage (built first) or a local image (unpacked)."""
        assert self.plan is not None
        stage = self.plan.stage(name)
        if stage is not None:
            return self._built(stage).chain_ids
        try:
            img = self.images.get(name)
        except ImageNotFound:
            raise self._error(ins, f"RUN --mount from={name}: no stage and no local image "
                                   "by that name") from None
        with self.store.transaction():
            self.images.unpack(img.diff_ids, [l.digest for l in img.layers])
        return img.chain_ids

    @contextlib.contextmanager
    def _mount_source(self, ins: Instruction, mount: dict[str, Any]) -> Any:
        """A host path for one mount, ready to bind: "HOST:TARGET[:ro]"."""
        if mount["type"] == "cache":
            os.makedirs(mount["dir"], mode=0o755, exist_ok=True)
            yield f"{mount['dir']}:{mount['target']}"
            return
        suffix = ":ro" if mount["readonly"] else ""
        if "chain" in mount:
            # Always read-only: the view is a read-only overlay, or (vfs) the shared base tree.
            suffix = ":ro"
            with self._readonly(mount["chain"]) as view:
                # the view is our own read-only mount: the path found now stays what was checked
                host = self._stage_source(ins, view, "stage", mount["source"])
                yield f"{host}:{mount['target']}{suffix}"
            return
        # From the context: a copy of what .dockerignore lets through, so a read-write
        # mount never writes into the student's folder and ignored files stay hidden.
        assert self.context is not None
        copy = Path(tempfile_dir(self._scratch()))
        try:
            bound = str(copy)
            with self._context_tree() as tree:
                bound = self._copy_mount_sources(ins, mount, tree, copy)
            yield f"{bound}:{mount['target']}{suffix}"
        finally:
            import shutil
            shutil.rmtree(copy, ignore_errors=True)

    def _copy_mount_sources(self, ins: Instruction, mount: dict[str, Any], tree: SourceTree, copy: Path) -> str:
        """Copy a context mount's sources into ``copy``; the path to bind (one file: that file)."""
        root_fd = copyfs.open_root(copy)
        bound = str(copy)
        try:
            for src in mount["sources"]:
                with tree.opened(src, ins="RUN --mount") as (fd, st, real):
                    if stat.S_ISDIR(st.st_mode):
                        copyfs.copy_tree(root_fd, st, tree.entries(fd, real), "/", 0, 0, None)
                        continue
                    name = src.name or "source"
                    made = copyfs.copy_entry(fd, st, root_fd, name, 0, 0, None)
                    if made is not None:
                        os.close(made)
                    if len(mount["sources"]) == 1:
                        bound = str(copy / name)
        except BuildError as e:
            raise self._error(ins, e.detail, hint=e.hint) from None
        except OSError as e:
            raise self._error(ins, f"RUN --mount source={mount['source']}: {e.strerror or e}",
                              hint="is the build context changing while the build reads it?") from None
        finally:
            os.close(root_fd)
        return bound

    def _run_container(self, ins: Instruction, state: State, argv: list[str], env: list[str],
                       network: str, binds: list[str] | None = None) -> Any:
        """Run ``argv`` in a container of the image so far; its writable layer is the step's layer."""
        from ..errors import ContainerStartError
        merged, host = self._run_config(state, argv, env, network, binds)
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

        driver = self._storage_driver()
        if driver == "vfs" and state.layers:
            self.images.layers.base_tree(state.chain_ids)   # here, not in the single-threaded supervisor
        # remove_on_disconnect: should this process die (kill -9) before its `remove` below,
        # the supervisor removes the container when our connection closes.
        result = client.call("create", config=merged, host_config=host, name=None, image_id=state.base_id,
                             layers=state.chain_ids, image_ref=f"{state.base_name} (build step {self.step_no})",
                             remove_on_disconnect=True, storage_driver=driver)
        cid = result["Id"]
        finished = threading.Event()
        if self.cancel is not None:
            threading.Thread(target=_stop_when_cancelled, args=(client, cid, self.cancel, finished),
                             daemon=True).start()
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
            if code != 0 and fsutil.nearly_full(self.store.root):
                # Before the container goes (and frees what it wrote): the disk is why it failed.
                raise StoreFull(f"the files of its command (which stopped with code {code})",
                                str(self.store.root))
            if code != 0:
                raise self._error(ins, f"The command '{' '.join(argv)}' returned a non-zero code: {code}",
                                  exit_code=code, tail=tail,
                                  hint="its output shows why; fix the command and build again, "
                                       "the steps before it will come from the cache")
            return self._commit_container(cid)
        finally:
            finished.set()
            with contextlib.suppress(SandboxError):
                client.call("remove", id=cid, force=True, volumes=True)

    def _run_config(self, state: State, argv: list[str], env: list[str], network: str,
                    binds: list[str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The build container's Config and HostConfig: the image's, without ENTRYPOINT, health checks or logs."""
        from ..containers.defaults import merge_image_config
        from ..containers.options import config_from_kwargs
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
        return merged, host


def tempfile_dir(parent: Path) -> str:
    import tempfile
    return tempfile.mkdtemp(prefix="mount-", dir=parent)
