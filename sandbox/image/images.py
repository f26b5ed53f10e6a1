"""Images: naming, creating, listing, removing and collecting them.

An image is a manifest in ``index.json``; its id is the digest of its config,
as in Docker.  A tag is one index entry whose ``org.opencontainers.image.ref.name``
is the familiar name (``busybox:latest``); an untagged image (Docker's
``<none>:<none>``) is an entry without that annotation.  Everything here goes
through :class:`~sandbox.image.store.Store`, which makes each step atomic.
"""

from __future__ import annotations

import builtins

import contextlib
import json
import os
import time
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any
from collections.abc import Iterable, Iterator

from .. import reference as _ref
from ..errors import (AmbiguousReference, BlobCorrupt, ImageInUse, ImageNotFound, InvalidReference,
                      NotFound, SandboxError, StoreCorrupt)
from ..plain import Record
from . import fsutil
from .layers import LayerBlob, LayerStore, check_diff_id
from .mediatypes import (INDEXES, OCI_CONFIG, OCI_MANIFEST, REF_NAME,
                         chain_ids)
from .store import Descriptor, Store


def host_platform() -> tuple[str, str, str | None]:
    """(os, architecture, variant) of this machine in OCI's words (GOOS/GOARCH)."""
    machine = os.uname().machine.lower()   # what platform.machine() reads, without importing platform
    table = {"x86_64": ("amd64", None), "amd64": ("amd64", None), "aarch64": ("arm64", "v8"),
             "arm64": ("arm64", "v8"), "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
             "i686": ("386", None), "i386": ("386", None), "ppc64le": ("ppc64le", None),
             "s390x": ("s390x", None), "riscv64": ("riscv64", None)}
    arch, variant = table.get(machine, (machine, None))
    return "linux", arch, variant


def now_rfc3339() -> str:
    """The time to record as ``created``: ``SOURCE_DATE_EPOCH`` when set (reproducible builds)."""
    import datetime as _dt     # here: a full cache hit creates nothing and needs no datetime
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_config(layers: list[LayerBlob], history: list[dict[str, Any]], *,
               config: dict[str, Any] | None = None, created: str | None = None,
               author: str | None = None, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OCI image config; ``base`` (a parent's config) supplies what is not given."""
    os_name, arch, variant = host_platform()
    out: dict[str, Any] = {
        "architecture": base.get("architecture", arch) if base else arch,
        "os": base.get("os", os_name) if base else os_name,
        "created": created or now_rfc3339(),
        "config": config if config is not None else dict((base or {}).get("config") or {}),
        "rootfs": {"type": "layers",
                   "diff_ids": list(((base or {}).get("rootfs") or {}).get("diff_ids", []))
                   + [l.diff_id for l in layers]},
        "history": list((base or {}).get("history", [])) + history,
    }
    if variant and not base:
        out["variant"] = variant
    if author:
        out["author"] = author
    return out


class Image(Record):
    """One image as stored: its id (config digest), manifest, config and names."""

    _fields = ("id", "manifest_digest", "manifest", "config", "tags", "repo_digests", "size", "meta")

    def __init__(self, id: str, manifest_digest: str, manifest: dict[str, Any], config: dict[str, Any],
                 tags: list[str] | None = None, repo_digests: list[str] | None = None, size: int = 0,
                 meta: dict[str, Any] | None = None) -> None:
        self.id = id
        self.manifest_digest = manifest_digest
        self.manifest = manifest
        self.config = config
        self.tags: list[str] = [] if tags is None else tags
        self.repo_digests: list[str] = [] if repo_digests is None else repo_digests
        self.size = size
        self.meta: dict[str, Any] = {} if meta is None else meta

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids", []))

    @property
    def chain_ids(self) -> list[str]:
        return chain_ids(self.diff_ids)

    @property
    def layers(self) -> list[Descriptor]:
        return [Descriptor.from_json(l) for l in self.manifest.get("layers", [])]

    @property
    def created(self) -> str:
        return str(self.config.get("created") or "")

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.config.get("config") or {}).get("Labels") or {})

    def __repr__(self) -> str:
        return f"<Image: {', '.join(self.tags) or self.short_id}>"

    def _repr_html_(self) -> str:
        from .views import image_html
        return image_html(self)

    def text(self) -> str:
        """A readable summary (what ``_repr_html_`` shows, as text)."""
        from .views import image_text
        return image_text(self)


def summary(image: Image) -> dict[str, Any]:
    """What a listing shows of an image, in the keys of Docker's ``GET /images/json``.

    Plain JSON, so ``sandbox images`` formats the same dictionaries whether it
    listed the store itself or asked the supervisor (the cold path, see
    :mod:`sandbox.supervisor.handlers.query`).
    """
    return {"Id": image.id, "RepoTags": list(image.tags), "RepoDigests": list(image.repo_digests),
            "Created": image.created, "Size": image.size, "Labels": image.labels}


class ImageStore:
    """The images of one store: the operations behind ``images``, ``tag``, ``rmi``, ``image prune``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.layers = LayerStore(store)
        #: manifest digest -> config digest, for manifests read once: a manifest is content-addressed,
        #: so what it names never changes (finding an image's tags reads each other manifest once)
        self._configs: dict[str, str] = {}

    # -- reading ---------------------------------------------------------------

    def _load(self, manifest: Descriptor) -> Image:
        m = self.store.read_json_blob(manifest.digest, "manifest")
        if m.get("mediaType") in INDEXES or "manifests" in m:
            raise StoreCorrupt(f"index entry {manifest.digest} is an image index, not a manifest",
                               hint="pull a single platform with --platform")
        config_digest = (m.get("config") or {}).get("digest")
        if not config_digest:
            raise StoreCorrupt(f"manifest {manifest.digest} names no config")
        self._configs[manifest.digest] = config_digest
        config = self.store.read_json_blob(config_digest, "image config")
        meta = self.store.read_image_meta(config_digest)
        return Image(config_digest, manifest.digest, m, config, [],
                     list(meta.get("repo_digests", [])), int(meta.get("size", 0)), meta)

    def list(self, all: bool = True) -> builtins.list[Image]:
        """Every image, newest first, with its tags.  Unreadable entries are skipped."""
        by_id: dict[str, Image] = {}
        for desc in self.store.manifests():
            try:
                image = self._load(desc)
            except (SandboxError, OSError):
                continue
            image = by_id.setdefault(image.id, image)
            name = desc.annotations.get(REF_NAME)
            if name:
                image.tags.append(name)
        images = list(by_id.values())
        if not all:
            images = [i for i in images if i.tags]
        for image in images:
            image.tags.sort()
        return sorted(images, key=lambda i: (i.created, i.id), reverse=True)

    def get(self, name: str) -> Image:
        """Find an image by tag, full name, digest reference, id or id prefix."""
        manifests = self.store.manifests()
        desc = self._find(name, manifests)
        image = self._load(desc)
        image.tags = self._names(image, manifests)
        return image

    def _names(self, image: Image, manifests: builtins.list[Descriptor]) -> builtins.list[str]:
        """The tags in ``manifests`` (the index) that name ``image``, sorted."""
        return sorted(d.annotations[REF_NAME] for d in manifests
                      if REF_NAME in d.annotations and self._same_image(d, image))

    def _same_image(self, desc: Descriptor, image: Image) -> bool:
        if desc.digest == image.manifest_digest:
            return True
        try:
            return self._config_digest(desc) == image.id
        except (SandboxError, OSError, KeyError, TypeError):
            return False

    def _find(self, name: str, manifests: builtins.list[Descriptor] | None = None) -> Descriptor:
        """Resolve like Docker: a name (``repo[:tag]``, ``@digest``) first, then an id prefix.

        The order matters for names that are also hex (``cafe``, ``bee``): a tag by
        that name wins over an image whose id happens to start with those letters.
        ``manifests``: the index's entries when the caller has just read them.
        """
        if manifests is None:
            manifests = self.store.manifests()
        try:
            ref: _ref.Reference | None = _ref.parse(name)
        except InvalidReference:
            if not _ref.is_image_id_prefix(name):
                raise
            ref = None
        if ref is not None:
            found = self._find_by_ref(ref, manifests)
            if found is not None:
                return found
        if _ref.is_image_id_prefix(name):
            found = self._find_by_id(name, manifests)
            if found is not None:
                return found
        shown = ref.familiar if ref is not None else name
        raise ImageNotFound(f"no such image: {shown}",
                            hint=f"build it, 'sandbox pull {shown}', or 'sandbox bootstrap busybox' for an offline base")

    def _find_by_ref(self, ref: _ref.Reference, manifests: builtins.list[Descriptor]) -> Descriptor | None:
        if ref.tag:
            for desc in manifests:
                if desc.annotations.get(REF_NAME) == ref.familiar:
                    return desc
        if ref.digest:
            for desc in manifests:
                if desc.digest == ref.digest:
                    return desc
            for image in self.list():
                if any(rd.endswith("@" + ref.digest) for rd in image.repo_digests):
                    return self._find_by_id(image.id, manifests)
        return None

    def _find_by_id(self, prefix: str, manifests: builtins.list[Descriptor]) -> Descriptor | None:
        hexpart = prefix.split(":", 1)[-1]
        hits: dict[str, Descriptor] = {}
        for desc in manifests:
            if desc.digest.split(":", 1)[1].startswith(hexpart) and len(hexpart) == 64:
                hits.setdefault("m:" + desc.digest, desc)
                continue
            try:
                image_id = self._config_digest(desc)
            except (SandboxError, OSError):
                continue
            if image_id.split(":", 1)[1].startswith(hexpart):
                hits.setdefault(image_id, desc)
        ids = {k for k in hits if not k.startswith("m:")}
        if len(ids) > 1:
            raise AmbiguousReference(f"image id prefix {prefix!r} matches {len(ids)} images",
                                     hint="give more characters of the id")
        return next(iter(hits.values()), None)

    def _config_digest(self, desc: Descriptor) -> str:
        known = self._configs.get(desc.digest)
        if known is not None:
            return known
        m = self.store.read_json_blob(desc.digest, "manifest")
        config_digest = str((m.get("config") or {})["digest"])
        self._configs[desc.digest] = config_digest
        return config_digest

    # -- creating --------------------------------------------------------------

    def create(self, config: dict[str, Any], layers: builtins.list[LayerBlob], *, tags: Iterable[str] = (),
               repo_digests: Iterable[str] = (), annotations: dict[str, str] | None = None) -> Image:
        """Store an image whose layer blobs are already in the store, and name it.

        Layers are unpacked first and the index entry written last, so a reader (or
        a crash) never sees a tag whose image is incomplete.
        """
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids", []))
        if len(diff_ids) != len(layers):
            raise SandboxError(f"image config lists {len(diff_ids)} layers but {len(layers)} were given")
        with self.store.transaction():
            size = self.unpack(diff_ids, [l.digest for l in layers])
            config_bytes = fsutil.canonical_json(config)
            config_digest = self.store.put_blob(config_bytes)
            manifest: dict[str, Any] = {
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest,
                           "size": self.store.blob_size(config_digest)},
                "layers": [{"mediaType": l.media_type, "digest": l.digest, "size": l.size} for l in layers],
            }
            if annotations:
                manifest["annotations"] = annotations
            return self.add_manifest(manifest, tags=tags, repo_digests=repo_digests, size=size,
                                     config=json.loads(config_bytes))

    def add_manifest(self, manifest: dict[str, Any], *, tags: Iterable[str] = (),
                     repo_digests: Iterable[str] = (), size: int | None = None,
                     config: dict[str, Any] | None = None) -> Image:
        """Store ``manifest`` (its config and layers already stored) and point ``tags`` at it."""
        return self.add_manifest_bytes(fsutil.canonical_json(manifest), tags=tags,
                                       repo_digests=repo_digests, size=size, config=config)

    def add_manifest_bytes(self, data: bytes, *, tags: Iterable[str] = (), repo_digests: Iterable[str] = (),
                           size: int | None = None, verify_diff_ids: bool = False,
                           config: dict[str, Any] | None = None) -> Image:
        """Store a manifest exactly as given (a pulled manifest keeps its digest) and name it.

        The config and layer blobs must be in the store.  Layers are unpacked (with
        ``verify_diff_ids``, each new one is first checked against the config's
        diff_id) before any tag is written.  ``config``: the config blob's JSON when
        the caller has it (as it reads from the store), so it is not read again.
        All the tags go in one index write, none when they already name this manifest.
        """
        try:
            manifest = json.loads(data)
            config_digest = manifest["config"]["digest"]
            blobs = [l["digest"] for l in manifest["layers"]]
        except (ValueError, KeyError, TypeError) as e:
            raise StoreCorrupt(f"not an image manifest: {e}") from None
        refs = [self._tag_ref(tag) for tag in tags]     # a bad name before anything is stored
        digest = self.store.put_blob(data)
        desc = Descriptor(manifest.get("mediaType") or OCI_MANIFEST, digest, len(data))
        if size is None:
            config = config or self.store.read_json_blob(config_digest, "image config")
            diff_ids = list(config["rootfs"]["diff_ids"])
            if len(diff_ids) != len(blobs):
                raise StoreCorrupt(f"manifest {digest} lists {len(blobs)} layers but its config {len(diff_ids)}")
            if verify_diff_ids:
                for chain_id, diff_id, blob in zip(chain_ids(diff_ids), diff_ids, blobs):
                    if not self.layers.exists(chain_id):
                        check_diff_id(self.store, blob, diff_id)
            size = self.unpack(diff_ids, blobs)
        self._configs[digest] = config_digest
        now = time.time()
        # One metadata write (with the tag time Docker's LastTagTime shows), then one index write:
        # a crash between them leaves metadata of an unnamed image, which collection removes.
        fields: dict[str, Any] = {"size": size, "repo_digests": list(repo_digests), "stored": now}
        if refs:
            fields["last_tag_time"] = now
        meta = self.store.update_image_meta(config_digest, **fields)
        if config is None:
            config = self.store.read_json_blob(config_digest, "image config")
        image = Image(config_digest, digest, manifest, config, [], list(meta.get("repo_digests", [])),
                      int(meta.get("size", 0)), meta)
        if refs:
            manifests = self.store.set_refs(refs, desc)[1]
        else:
            manifests = self.store.manifests()
            if not self._names(image, manifests):
                manifests = self.store.add_untagged(desc)
        image.tags = self._names(image, manifests)
        return image

    def unpack(self, diff_ids: builtins.list[str], blobs: builtins.list[str]) -> int:
        """Unpack each layer (once per chain id); return the image's unpacked size."""
        total, parent = 0, None
        for chain_id, diff_id, blob in zip(chain_ids(diff_ids), diff_ids, blobs):
            total += self.layers.unpack(chain_id, parent, diff_id, blob).size
            parent = chain_id
        return total

    @staticmethod
    def _tag_ref(name: str) -> tuple[str, str]:
        """(familiar, full) name for a tag ``name``; a name with a digest is refused."""
        ref = _ref.parse(name)
        if ref.tag is None:
            raise InvalidReference(f"cannot tag with {name!r}: a tag name cannot contain a digest",
                                   hint="use NAME[:TAG]")
        return ref.familiar, ref.full_name

    def tag(self, source: str, target: str) -> Image:
        """``docker tag SOURCE TARGET``: one index write (none when TARGET already names it)."""
        with self.store.transaction():
            desc = self._find(source)
            manifests = self.store.set_refs([self._tag_ref(target)], desc)[1]
            self.store.update_image_meta(self._config_digest(desc), last_tag_time=time.time())
            image = self._load(desc)
            image.tags = self._names(image, manifests)
            return image

    # -- removing --------------------------------------------------------------

    def users(self, image_id: str) -> builtins.list[str]:
        """Holders (containers, build cache entries) whose lease names this image."""
        return [l["holder"] for l in self.store.leases() if image_id in l.get("images", [])]

    def remove(self, name: str, force: bool = False, prune: bool = True) -> builtins.list[dict[str, str]]:
        """``docker rmi``: untag, and delete the image when no name or user is left.

        Returns Docker's response shape: ``[{"Untagged": ...}, {"Deleted": ...}]``.
        Works on a damaged store: a tag whose manifest cannot be read is still removed.
        """
        if force:
            self.store.repair_index()
        with self.store.index_lock.hold():
            try:
                desc = self._find(name)
            except (BlobCorrupt, StoreCorrupt, NotFound) as err:
                if not force:
                    raise
                result = self._force_untag(name, err)
            else:
                result = self._remove_found(name, desc, force)
        if prune:  # outside the index lock: collect takes the GC lock first
            self.collect()
        return result

    def _remove_found(self, name: str, desc: Descriptor, force: bool) -> builtins.list[dict[str, str]]:
        image = self._load_or_none(desc)
        by_tag = desc.annotations.get(REF_NAME) if self._named_by_tag(name, desc) else None
        image_id = image.id if image else None
        all_tags = self._tags_of(desc, image_id)
        users = self.users(image_id) if image_id else []
        if by_tag and len(all_tags) > 1:
            self._untag(by_tag)
            return [{"Untagged": by_tag}]
        if not by_tag and len(all_tags) > 1 and not force:
            raise ImageInUse(f"unable to delete {image.short_id if image else desc.digest} (must be forced): "
                             f"image is referenced in multiple repositories ({', '.join(all_tags)})",
                             hint="remove the tags one by one, or use 'sandbox rmi -f'")
        if users and not force:
            shown = [u[len("container-"):][:12] if u.startswith("container-") else u for u in users]
            what = "container" + ("s" if len(shown) > 1 else "") if all(
                u.startswith("container-") for u in users) else "these"
            raise ImageInUse(f"unable to remove {name}: image is in use by {what} {', '.join(shown)}",
                             hint="remove the container first ('sandbox rm'), or use 'sandbox rmi -f' to untag it")
        result: builtins.list[dict[str, str]] = []
        for tag in all_tags:
            self._untag(tag)
            result.append({"Untagged": tag})
        if users:  # forced: the name goes, the data stays for the container
            return result
        self._drop_entries(desc, image_id)
        if image_id:
            self.store.delete_image_meta(image_id)
            result.append({"Deleted": image_id})
        return result

    def _named_by_tag(self, name: str, desc: Descriptor) -> bool:
        try:
            return _ref.parse(name).familiar == desc.annotations.get(REF_NAME)
        except InvalidReference:
            return False

    def _load_or_none(self, desc: Descriptor) -> Image | None:
        try:
            return self._load(desc)
        except (SandboxError, OSError):
            return None

    def _tags_of(self, desc: Descriptor, image_id: str | None) -> builtins.list[str]:
        tags = []
        for d in self.store.manifests():
            name = d.annotations.get(REF_NAME)
            if not name:
                continue
            if d.digest == desc.digest:
                tags.append(name)
            elif image_id:
                with contextlib.suppress(SandboxError, OSError):
                    if self._config_digest(d) == image_id:
                        tags.append(name)
        return sorted(tags)

    def _untag(self, name: str) -> None:
        self.store.update_index(lambda ms: [m for m in ms if m.annotations.get(REF_NAME) != name])

    def _drop_entries(self, desc: Descriptor, image_id: str | None) -> None:
        def change(ms: builtins.list[Descriptor]) -> builtins.list[Descriptor]:
            out = []
            for m in ms:
                if m.digest == desc.digest:
                    continue
                if image_id and REF_NAME not in m.annotations:
                    with contextlib.suppress(SandboxError, OSError):
                        if self._config_digest(m) == image_id:
                            continue
                out.append(m)
            return out
        self.store.update_index(change)

    def _force_untag(self, name: str, err: SandboxError) -> builtins.list[dict[str, str]]:
        """rmi -f on a damaged image: drop the index entry by name or digest without reading blobs."""
        try:
            ref = _ref.parse(name)
            match = lambda d: d.annotations.get(REF_NAME) == ref.familiar or d.digest == ref.digest  # noqa: E731
        except InvalidReference:
            hexpart = name.split(":", 1)[-1]
            match = lambda d: d.digest.split(":", 1)[1].startswith(hexpart)  # noqa: E731
        hits = [d for d in self.store.manifests() if match(d)]
        if not hits:
            raise err
        self.store.update_index(lambda ms: [m for m in ms if not match(m)])
        return [{"Untagged": d.annotations.get(REF_NAME, d.digest)} for d in hits]

    def prune(self, all: bool = False) -> dict[str, Any]:
        """``docker image prune``: remove dangling images (``all``: every unused image), then collect."""
        deleted: builtins.list[dict[str, str]] = []
        self.store.repair_index()
        used = {i for l in self.store.leases() for i in l.get("images", [])}
        for image in self.list():
            if image.id in used or (image.tags and not all):
                continue
            with contextlib.suppress(NotFound):
                deleted += self.remove(image.id, force=True, prune=False)
        reclaimed = self.collect()
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def collect(self) -> int:
        """Delete blobs and unpacked layers that no image and no lease uses; return bytes freed.

        Runs with the GC lock held exclusively, so no load, import or pull is between
        writing a blob and naming it.  Blobs of a manifest that cannot be read are
        kept only if a lease names them.
        """
        freed = 0
        with self.store.gc_lock.hold(), self.store.index_lock.hold():
            keep_blobs, keep_layers, keep_images = self._marks()
            for digest in self.store.all_blobs():
                if digest not in keep_blobs:
                    with contextlib.suppress(OSError):
                        freed += self.store.blob_size(digest)
                    self.store.delete_blob(digest)
            for chain_id in self.layers.all():
                if chain_id not in keep_layers:
                    with contextlib.suppress(SandboxError, OSError):
                        freed += self.layers.get(chain_id).size
                    self.layers.remove(chain_id)
            for entry in os.scandir(self.store.image_meta_dir):
                if entry.name.endswith(".json") and "sha256:" + entry.name[:-5] not in keep_images:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
        return freed

    @contextlib.contextmanager
    def tidy_on_failure(self) -> Iterator[None]:
        """If the body fails, remove the blobs and unpacked layers it added (a load or pull that broke off).

        Enter it outside ``store.transaction()``: the clean-up needs the GC lock
        the transaction holds.  A failure while cleaning up is noted on the
        original error, which is what propagates.
        """
        blobs, layers = set(self.store.all_blobs()), set(self.layers.all())
        try:
            yield
        except BaseException as failure:
            try:
                self.discard(set(self.store.all_blobs()) - blobs, set(self.layers.all()) - layers)
            except (OSError, SandboxError) as e:
                failure.add_note(f"removing what it had stored failed too: {e}")
            raise

    def discard(self, blobs: Iterable[str], layers: Iterable[str] = ()) -> bool:
        """Delete these blobs and unpacked layers unless an image or a lease uses them.

        :meth:`collect`'s rule for a few candidates, and it never waits: while a
        load, pull or build holds the store (its blobs may not be named yet),
        nothing is deleted and False is returned; the next collect gets them.
        """
        fd = fsutil.try_lock_exclusive(self.store.gc_lock.path)
        if fd is None:
            return False
        try:
            with self.store.index_lock.hold():
                keep_blobs, keep_layers, _ = self._marks()
                for chain_id in set(layers) - keep_layers:
                    self.layers.remove(chain_id)
                for digest in set(blobs) - keep_blobs:
                    self.store.delete_blob(digest)
        finally:
            os.close(fd)  # releases the lock
        return True

    def _marks(self) -> tuple[set[str], set[str], set[str]]:
        blobs: set[str] = set()
        layers: set[str] = set()
        images: set[str] = set()
        leases = self.store.leases()
        for lease in leases:
            blobs.update(lease.get("blobs", []))
            layers.update(lease.get("layers", []))
        manifests = [d.digest for d in self.store.manifests()]
        for digest in manifests:
            blobs.add(digest)
            with contextlib.suppress(SandboxError, OSError, KeyError, TypeError):
                m = self.store.read_json_blob(digest, "manifest")
                config_digest = m["config"]["digest"]
                blobs.add(config_digest)
                images.add(config_digest)
                blobs.update(l["digest"] for l in m.get("layers", []))
                config = self.store.read_json_blob(config_digest, "image config")
                layers.update(chain_ids(config["rootfs"]["diff_ids"]))
        leased_images = {i for l in leases for i in l.get("images", [])} - images
        for image_id in leased_images:  # an untagged, removed image still used by a container
            images.add(image_id)
            blobs.add(image_id)
            with contextlib.suppress(SandboxError, OSError, KeyError, TypeError):
                config = self.store.read_json_blob(image_id, "image config")
                layers.update(chain_ids(config["rootfs"]["diff_ids"]))
        for chain_id in list(layers):
            # An unpacked layer remembers the blob it came from; another image may share
            # the layer through a differently compressed blob, so keep that one too.
            with contextlib.suppress(SandboxError, OSError, KeyError):
                blobs.add(self.layers.get(chain_id).blob)
        return blobs, layers, images
