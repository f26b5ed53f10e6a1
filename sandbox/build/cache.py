"""The build cache: one record per built step, found again by a key, and explained.

A step's key is a digest of what decides its result, as in Docker:

* the key of the step before it (for the first step, the base image's id), so
  the first miss rebuilds every later step;
* the instruction after variable expansion (``RUN`` text, ``ENV`` values ...);
* for COPY and ADD, a digest of the sources' names, modes and content;
* for RUN, the build arguments in scope (they are in its environment).

A record (``$ROOT/build/cache/<key>.json``) holds the image state after the
step (config, layers, history), so a hit needs no work at all, and a lease
(``cache-<key>``) keeps its layers from garbage collection.  Records are
written atomically (temp file + rename): two processes that build the same
step at once both succeed, and the last record wins, which is equally valid.
A record is fsynced like every metadata write of the store (DESIGN.md);
should something else tear one anyway, :meth:`BuildCache.get` reads an empty,
torn or foreign record as no record, a miss that builds the step again.

A hit is one file read per step (the key names the file): no index to read
or rewrite, however large the cache grows; each layer blob a hit names is
checked once per build.

Explaining a miss is the part students see.  Every record is also listed under
its parent key (``by-parent/<parent>/<key>``) with a *step id* that leaves out
sources and arguments.  On a miss, the records under the same parent tell
what changed: the same step with other source files (named), other build
argument values (named, with old and new value), another instruction at
this place, or nothing cached here yet.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any

from ..humanize import shorten
from ..image import fsutil
from ..image.mediatypes import sha256_hex


def digest_of(obj: Any) -> str:
    return sha256_hex(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())


class BuildCache:
    """The cache records of one store."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.dir = Path(store.root) / "build" / "cache"
        self.parents = Path(store.root) / "build" / "by-parent"
        #: layer blobs seen in the store by this cache's lookups (a build's steps share their layers)
        self._present: set[str] = set()

    def _ensure(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.parents.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            record = json.loads((self.dir / f"{key}.json").read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("key") != key:
            return None             # torn by a crash (see the module doc), or not a record at all
        # A record whose layers were collected (a prune raced us) is no record.
        for layer in record.get("layers", []):
            digest = layer["digest"]
            if digest not in self._present:
                if not self.store.has_blob(digest):
                    return None
                self._present.add(digest)
        return record

    def put(self, key: str, parent: str, record: dict[str, Any]) -> None:
        self._ensure()
        record = dict(record, key=key, parent=parent, created_at=time.time())
        self.store.lease(f"cache-{key}", blobs=[l["digest"] for l in record.get("layers", [])],
                         layers=record.get("chain_ids", []))
        fsutil.atomic_write_json(self.dir / f"{key}.json", record)
        pdir = self.parents / parent.replace(":", "_")
        pdir.mkdir(exist_ok=True)
        with contextlib.suppress(FileExistsError):
            (pdir / key).touch(exist_ok=True)

    def siblings(self, parent: str) -> list[dict[str, Any]]:
        """Records built on the same parent, newest first."""
        pdir = self.parents / parent.replace(":", "_")
        out = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(pdir):
                record = self.get(entry.name)
                if record is not None:
                    out.append(record)
        out.sort(key=lambda r: r.get("created_at", 0), reverse=True)
        return out

    def explain_miss(self, parent: str, step_id: str, instruction: str, files: dict[str, str] | None,
                     args: dict[str, str], parent_missed: bool) -> str:
        """Why nothing was cached for this step, in a sentence a student can act on."""
        if parent_missed:
            return "the step before it was rebuilt, so every later step is rebuilt too"
        siblings = self.siblings(parent)
        same = [r for r in siblings if r.get("step_id") == step_id]
        if same:
            old = same[0]
            reasons = []
            if files is not None and old.get("files") is not None:
                reasons += _file_changes(old["files"], files)
            old_args = old.get("args") or {}
            for name in sorted(set(old_args) | set(args)):
                if old_args.get(name) != args.get(name):
                    was, now = old_args.get(name), args.get(name)
                    reasons.append(f"build argument {name} changed ({_show(was)} -> {_show(now)})")
            if reasons:
                return "; ".join(reasons)
            return "its inputs changed since the cached build"
        if siblings:
            return ("the instruction is new or changed here; after the same step the cache has "
                    f"`{shorten(siblings[0].get('instruction', ''), 60)}`")
        return "nothing cached yet for this step"

    def records(self) -> list[dict[str, Any]]:
        out = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.dir):
                if entry.name.endswith(".json"):
                    with contextlib.suppress(OSError, ValueError):
                        out.append(json.loads(Path(entry.path).read_bytes()))
        return out

    def size(self) -> tuple[int, int]:
        """(records, bytes of layers only the cache keeps)."""
        records = self.records()
        return len(records), sum(int(r.get("layer_size") or 0) for r in records)

    def prune(self, *, keep_newer_than: float | None = None) -> dict[str, Any]:
        """``builder prune``: drop records (all, or older than a time) and their leases."""
        removed = 0
        reclaimed_hint = 0
        for record in self.records():
            if keep_newer_than is not None and record.get("created_at", 0) >= keep_newer_than:
                continue
            key = record.get("key")
            if not key:
                continue
            reclaimed_hint += int(record.get("layer_size") or 0)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.dir / f"{key}.json")
            self.store.release(f"cache-{key}")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.parents / str(record.get("parent", "")).replace(":", "_") / key)
            removed += 1
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.parents):
                with contextlib.suppress(OSError):
                    os.rmdir(entry.path)
        return {"CachesDeleted": removed, "SpaceReclaimed": reclaimed_hint}


def _file_changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    changed = sorted(k for k in new if k in old and old[k] != new[k])
    added = sorted(k for k in new if k not in old)
    removed = sorted(k for k in old if k not in new)
    out = []
    for label, names in (("changed", changed), ("is new", added), ("was removed", removed)):
        if names:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            verb = {"changed": "changed", "is new": "new", "was removed": "removed"}[label]
            out.append(f"source file{'s' if len(names) > 1 else ''} {verb}: {shown}")
    return out


def _show(value: str | None) -> str:
    return "unset" if value is None else repr(value)
