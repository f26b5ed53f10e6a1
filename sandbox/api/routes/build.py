"""``POST /build``: a build context as a tar, built with our builder, streamed as the classic builder's messages.

The context arrives as the request body (a tar, maybe gzipped; chunked or
not) and is unpacked into a scratch directory with the same checks as an
image layer (no absolute names, no ``..``, no link leading out), so a
context cannot write outside it.  The output is what the docker CLI and
docker-compose read from Docker's classic builder: ``{"stream": "Step 1/3 :
FROM busybox\\n"}`` lines, `` ---> Using cache`` and `` ---> <id>``,
``{"aux": {"ID": "sha256:..."}}`` (what ``--iidfile`` records), then
``Successfully built`` and ``Successfully tagged``; a failing step is an
``errorDetail`` whose code is the RUN's exit status, which the docker CLI
exits with.  A client that disconnects mid-build stops it: the running
step's container is stopped and nothing is tagged.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from ...errors import BuildError, DockerfileSyntaxError, SandboxError
from ..http import ApiError, ClientGone, Exchange
from ..router import Router, message_of
from .common import gone


def _unpack_context(ex: Exchange, target: Path) -> None:
    """The body, spooled to a file, then applied like a layer (safely) into ``target``."""
    from ...image.tarlayer import apply_layer
    with tempfile.TemporaryFile(dir=target.parent) as spool:
        for chunk in ex.body_chunks():
            spool.write(chunk)
        if spool.tell() == 0:
            return
        spool.seek(0)
        try:
            apply_layer(spool, target, mode="merge")
        except SandboxError as e:
            raise ApiError(400, f"invalid build context: {message_of(e)}") from None


def _json_map(ex: Exchange, name: str) -> dict[str, str]:
    value = ex.json_arg(name) or {}
    if not isinstance(value, dict):
        raise ApiError(400, f"invalid {name}: expected a JSON object")
    return {str(k): str(v) for k, v in value.items() if v is not None}


def build(d: Any, ex: Exchange) -> None:
    tags = ex.query.get("t", [])
    quiet = ex.flag("q")
    network = ex.arg("networkmode") or None
    if network == "default":
        network = None
    dockerfile = ex.arg("dockerfile") or "Dockerfile"
    scratch = Path(tempfile.mkdtemp(prefix="api-build-", dir=str(d.engine.store.tmp_dir)))
    context = scratch / "context"
    context.mkdir()
    try:
        _unpack_context(ex, context)
        remote = ex.arg("remote")
        if remote and not any(context.iterdir()):
            raise ApiError(400, "remote build contexts are not supported: send the context as the request body")
        out = ex.stream()
        _run(d, ex, out, context, dockerfile, tags, quiet, network)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(d: Any, ex: Exchange, out: Any, context: Path, dockerfile: str, tags: list[str], quiet: bool,
         network: str | None) -> None:
    """Build, sending the classic builder's messages as they come; a client that leaves cancels the build."""
    progress = _Progress(out, quiet)
    done = threading.Event()       # the build is over (the watcher can stop)
    threading.Thread(target=_watch, args=(ex, progress.left, done), daemon=True).start()
    given = (context / dockerfile).exists()
    try:
        image = d.engine.build(str(context), tags=tags, dockerfile=str(context / dockerfile) if given else None,
                               dockerfile_text=None if given else _missing(dockerfile),
                               build_args=_json_map(ex, "buildargs"), target=ex.arg("target") or None,
                               no_cache=ex.flag("nocache"), labels=_json_map(ex, "labels"),
                               on_event=progress.on_event, network=network, cancel=progress.left)
    except (BuildError, DockerfileSyntaxError) as e:
        returncode = getattr(e, "returncode", None)
        code = returncode or 1
        # a RUN's failure reads as the classic builder's: "The command '/bin/sh -c ...' returned ..."
        text = str(getattr(e, "detail", "")) if returncode else message_of(e)
        progress.send({"errorDetail": {"code": code, "message": text}, "error": text})
        out.end()
        return
    except SandboxError as e:
        progress.send({"errorDetail": {"message": message_of(e)}, "error": message_of(e)})
        out.end()
        return
    finally:
        done.set()
    progress.built(image.id, tags)
    with contextlib.suppress(ClientGone):
        out.end()


class _Progress:
    """The build's messages to the client, one JSON object each, until the client has gone.

    Sends come from the build's thread (its events) and this one (the end),
    so one lock orders them; a send that finds the client gone sets
    :attr:`left`, which is also the build's ``cancel``.
    """

    def __init__(self, out: Any, quiet: bool) -> None:
        self.out = out
        self.quiet = quiet
        self.lock = threading.Lock()
        self.left = threading.Event()       # the client has gone

    def send(self, obj: dict[str, Any]) -> None:
        with self.lock:
            if not self.left.is_set():
                try:
                    self.out.json(obj)
                except ClientGone:
                    self.left.set()

    def on_event(self, event: Any) -> None:
        if self.left.is_set():
            return                       # the client left: the build is being cancelled (see cancel=)
        if self.quiet and event.kind != "error":
            return
        if event.kind == "step":
            text = f"Step {event.step}/{event.total} : {event.instruction}\n"
            if event.cache == "HIT":
                text += " ---> Using cache\n"
            self.send({"stream": text})
        elif event.kind == "output":
            self.send({"stream": event.text + "\n"})
        elif event.kind == "step-done" and event.image_id:
            self.send({"stream": f" ---> {event.image_id[7:19]}\n"})
        elif event.kind == "warning":
            self.send({"stream": f"[Warning] {event.text}\n"})

    def built(self, image_id: str, tags: list[str]) -> None:
        """The end of a good build: the id (``--iidfile`` reads the aux), then built and tagged."""
        self.send({"aux": {"ID": image_id}})
        if self.quiet:
            self.send({"stream": image_id + "\n"})
            return
        self.send({"stream": f"Successfully built {image_id[7:19]}\n"})
        from ...reference import parse
        for t in tags:
            self.send({"stream": f"Successfully tagged {parse(t).familiar}\n"})


def _missing(dockerfile: str) -> str:
    raise ApiError(400, f"Cannot locate specified Dockerfile: {dockerfile}")


def _watch(ex: Exchange, left: threading.Event, done: threading.Event) -> None:
    while not done.wait(0.25):
        if gone(ex.conn.sock):
            left.set()
            return


def prune(d: Any, ex: Exchange) -> None:
    result = d.engine.build_cache().prune()
    reclaimed = d.engine.image_store.collect()
    ex.json({"CachesDeleted": result.get("CachesDeleted") or [], "SpaceReclaimed": reclaimed})


def register(r: Router) -> None:
    r.add("POST", "/build", build)
    r.add("POST", "/build/prune", prune)

