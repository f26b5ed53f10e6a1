"""Bounded fuzzing of what comes from outside: image archives to ``load``, and a registry that lies.

Archives start as what ``save`` writes for a tiny imported image (docker-archive
and OCI archive) and are then damaged: manifests that are not JSON or have the
wrong types, members missing or extra, names and layer entries that escape,
symlinks out, a forged 1 TiB pax header, cut-off archives, digests that do not
match.  The registry is a fake one in a thread on 127.0.0.1 that serves
malformed manifests and indexes, wrong media types, blobs that do not match
their digest, answers cut short, endless slow ones, and a 500 before a good
answer.

Every case must end in a ``SandboxError`` (or, where the input is harmless, a
correct image) within a few seconds, write nothing outside the store, and leave
the store exactly as before: the same images, the same blobs, no unpacked
layers and nothing left in ``ingest/`` or ``tmp/``.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import hashlib
import http.server
import io
import json
import os
import random
import signal
import socket
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import Engine
from sandbox.errors import (ArchiveError, BlobCorrupt, RegistryError, RegistryUnreachable, SandboxError,
                            UnsafeLayerEntry)
from sandbox.image.images import host_platform
from sandbox.image.mediatypes import OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST
from sandbox.registry import transport

CASE_SECONDS = 15


class _Hang(Exception):
    pass


@contextlib.contextmanager
def time_guard(what: object, seconds: int = CASE_SECONDS) -> Iterator[None]:
    """Fail a case still running after ``seconds`` (pytest-timeout's own alarm is put back after)."""
    def alarm(signum: int, frame: Any) -> None:
        raise _Hang(f"still running after {seconds}s: {what!r}")
    previous = signal.signal(signal.SIGALRM, alarm)
    outer = signal.alarm(seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.alarm(max(1, outer - int(time.monotonic() - started)))


def attempt(case: str, action: Callable[[], Any]) -> tuple[Any, SandboxError | None]:
    """Run one fuzz case within :func:`time_guard`: (its result, None) or (None, the SandboxError).

    Only the documented errors may come out; anything else fails the case, and
    a hang fails it through the guard.
    """
    with time_guard(case):
        try:
            return action(), None
        except SandboxError as e:
            return None, e
        except _Hang:
            raise
        except BaseException as e:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{case}: {type(e).__name__}: {e} escaped")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- the store's state

def store_state(engine: Engine) -> dict[str, Any]:
    """What a failed load or pull must not change."""
    store = engine.store
    return {"images": sorted(i.id for i in engine.images.list(all=True)),
            "blobs": sorted(os.listdir(store.blobs_dir)),
            "layers": sorted(os.listdir(store.layers_dir)),
            "links": sorted(os.listdir(store.links_dir)),
            "ingest": sorted(os.listdir(store.ingest_dir)),
            "tmp": sorted(n for n in os.listdir(store.tmp_dir) if not n.endswith(".lock")),
            "index": store.oci.joinpath("index.json").read_bytes()}


def files_outside(tmp_path: Path, root: Path) -> set[str]:
    return {str(p) for p in tmp_path.rglob("*") if root not in p.parents and p != root}


def tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def entry(name: str, data: bytes | None = b"x", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple[
        tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info, (data if kind == tarfile.REGTYPE else None)


# --------------------------------------------------------------------------- archives

Members = dict[str, tuple[tarfile.TarInfo, bytes]]


def members_of(archive: bytes) -> Members:
    with tarfile.open(fileobj=io.BytesIO(archive)) as t:
        return {m.name: (m, t.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
                for m in t.getmembers()}


def pack(ms: Members) -> bytes:
    return tar_bytes([(copy.copy(info), data if info.isfile() else None) for info, data in ms.values()])


def put(ms: Members, name: str, data: bytes) -> None:
    ms[name] = (tarfile.TarInfo(name), data)


def readdress(ms: Members, old: str, data: bytes) -> str:
    """Store ``data`` in place of blob ``old`` and fix every reference to it, up to index.json."""
    new = sha256(data)
    ms.pop("blobs/sha256/" + old[7:], None)
    put(ms, "blobs/sha256/" + new[7:], data)
    for name, (info, content) in list(ms.items()):
        if not info.isfile() or old[7:].encode() not in content:
            continue
        text = content.replace(old[7:].encode(), new[7:].encode())
        with contextlib.suppress(ValueError):
            doc = json.loads(text)
            for desc in _descriptors(doc):
                if desc.get("digest") == new:
                    desc["size"] = len(data)
            text = json.dumps(doc).encode()
        if name.startswith("blobs/sha256/"):
            readdress(ms, "sha256:" + name[13:], text)
        else:
            ms[name] = (info, text)
    return new


def _descriptors(doc: Any) -> Iterator[dict[str, Any]]:
    if isinstance(doc, dict):
        yield doc
        for v in doc.values():
            yield from _descriptors(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _descriptors(v)


def blob_of(ms: Members, kind: str) -> str:
    """The digest of the (first) manifest, config or layer blob of an archive saved by us."""
    index = json.loads(ms["index.json"][1])
    manifest_digest = index["manifests"][0]["digest"]
    if kind == "manifest":
        return str(manifest_digest)
    manifest = json.loads(ms["blobs/sha256/" + manifest_digest[7:]][1])
    return str(manifest["config"]["digest"] if kind == "config" else manifest["layers"][0]["digest"])


def json_of(ms: Members, digest: str) -> Any:
    return json.loads(ms["blobs/sha256/" + digest[7:]][1])


def with_layer(ms: Members, layer_tar: bytes, compress: bool = True) -> Members:
    """The archive with its one layer replaced by ``layer_tar`` and the config's diff_id to match."""
    ms = dict(ms)
    config_digest, layer_digest = blob_of(ms, "config"), blob_of(ms, "layer")
    config = json_of(ms, config_digest)
    config["rootfs"]["diff_ids"] = [sha256(layer_tar)]
    readdress(ms, layer_digest, gzip.compress(layer_tar, mtime=0) if compress else layer_tar)
    readdress(ms, config_digest, json.dumps(config).encode())
    return ms


def patch_header_size(archive: bytes, offset: int, size: int) -> bytes:
    """Forge the size field of the tar header at ``offset`` (base-256 when large) and fix its checksum."""
    b = bytearray(archive)
    header = b[offset:offset + 512]
    header[124:136] = b"%011o\0" % size if size < 8 ** 11 else bytes([0x80]) + size.to_bytes(11, "big")
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    b[offset:offset + 512] = header
    return bytes(b)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """What ``save`` writes for a tiny imported image, in both formats."""
    src = Engine(tmp_path_factory.mktemp("src") / "root")
    rootfs = tar_bytes([entry("hello.txt", b"hi\n")])
    src.images.import_(io.BytesIO(rootfs), tag="tiny:1")
    out: dict[str, bytes] = {}
    for fmt in ("docker", "oci"):
        buf = io.BytesIO()
        src.images.save(["tiny:1"], buf, format=fmt)
        out[fmt] = buf.getvalue()
    return out


@pytest.fixture
def store(tmp_path: Path) -> Engine:
    engine = Engine(tmp_path / "root")
    engine.store.manifests()  # the layout exists before the first snapshot
    return engine


class _Cases:
    """Named damaged copies of one saved archive."""

    def __init__(self, fmt: str, archive: bytes) -> None:
        self.fmt, self.base = fmt, members_of(archive)
        self.made: dict[str, bytes] = {}
        self.layer, self.config = blob_of(self.base, "layer"), blob_of(self.base, "config")
        self.manifest = blob_of(self.base, "manifest")

    def add(self, name: str, change: Callable[[Members], Any]) -> None:
        ms = dict(self.base)
        change(ms)
        self.made[f"{self.fmt}: {name}"] = pack(ms)


def _damaged_blobs(c: _Cases) -> None:
    layer, config = "blobs/sha256/" + c.layer[7:], c.config
    c.add("layer blob missing", lambda ms: ms.pop(layer))
    c.add("config blob missing", lambda ms: ms.pop("blobs/sha256/" + config[7:]))
    c.add("layer blob corrupt", lambda ms: put(ms, layer, ms[layer][1][:-4] + b"oops"))
    c.add("config not JSON, re-addressed", lambda ms: readdress(ms, config, b"{not json"))
    c.add("config a list", lambda ms: readdress(ms, config, b"[1, 2]"))
    for rootfs in ({}, "x", {"diff_ids": 1.5}, {"diff_ids": ["not-a-digest"]}, {"diff_ids": []},
                   {"diff_ids": [sha256(b"other")]}):
        def set_rootfs(ms: Members, rootfs: Any = rootfs) -> None:
            doc = json_of(ms, config)
            doc["rootfs"] = rootfs
            readdress(ms, config, json.dumps(doc).encode())
        c.add(f"config rootfs {rootfs!r}", set_rootfs)
    c.add("layer blob a symlink out", lambda ms: ms.__setitem__(
        layer, entry(layer, kind=tarfile.SYMTYPE, link="../../../../../../etc/passwd")))
    c.add("layer blob a symlink loop", lambda ms: (
        ms.__setitem__(layer, entry(layer, kind=tarfile.SYMTYPE, link="loop")),
        ms.__setitem__("blobs/sha256/loop", entry("blobs/sha256/loop", kind=tarfile.SYMTYPE, link=layer[13:]))))
    c.add("layer that is no tar, re-addressed", lambda ms: readdress(ms, c.layer, gzip.compress(b"not a tar" * 99)))


def _damaged_docker_manifest(c: _Cases) -> None:
    layer = "blobs/sha256/" + c.layer[7:]
    c.add("no index.json, layer corrupt", lambda ms: (ms.pop("index.json"), put(ms, layer, b"junk")))
    for bad in (b"{not json", b"{}", b"[1]", b"[{}]", b"null", b'"x"', b"\xff\xfe"):
        c.add(f"manifest.json {bad!r}", lambda ms, bad=bad: put(ms, "manifest.json", bad))
    entry0 = json.loads(c.base["manifest.json"][1])[0]
    for key, value in (("Config", 7), ("Config", None), ("Config", "missing.json"),
                       ("Config", "../../etc/passwd"), ("Config", "/abs/config.json"), ("Layers", "x"),
                       ("Layers", []), ("Layers", [None]), ("Layers", ["missing.tar"]),
                       ("Layers", ["../escape"]), ("Layers", ["/abs/layer.tar"]), ("RepoTags", 1.5),
                       ("RepoTags", [[1]]), ("RepoTags", ["Bad Name:1"]),
                       ("RepoTags", ["a@sha256:" + "0" * 64])):
        def set_key(ms: Members, key: str = key, value: Any = value) -> None:
            put(ms, "manifest.json", json.dumps([{**entry0, key: value}]).encode())
        c.add(f"manifest.json {key}={value!r}", set_key)
    c.add("manifest.json without Config", lambda ms: put(ms, "manifest.json", json.dumps(
        [{k: v for k, v in entry0.items() if k != "Config"}]).encode()))


def _damaged_oci_index(c: _Cases) -> None:
    index = json.loads(c.base["index.json"][1])
    desc0, manifest = index["manifests"][0], c.manifest
    for key, value in (("digest", sha256(b"something else")), ("digest", "sha256:zz"),
                       ("digest", "md5:" + "0" * 32), ("size", "401"), ("size", None),
                       ("mediaType", "application/x-unknown"), ("mediaType", OCI_INDEX),
                       ("platform", "linux/amd64"), ("annotations", ["not", "a", "dict"]),
                       ("annotations", {"org.opencontainers.image.ref.name": "Bad Name"})):
        def set_desc(ms: Members, key: str = key, value: Any = value) -> None:
            put(ms, "index.json", json.dumps({**index, "manifests": [{**desc0, key: value}]}).encode())
        c.add(f"index.json descriptor {key}={value!r}", set_desc)
    for bad in (b"{not json", b"[]", b'{"manifests": 3}', b'{"manifests": [7]}'):
        c.add(f"index.json {bad!r}", lambda ms, bad=bad: put(ms, "index.json", bad))
    name = "blobs/sha256/" + manifest[7:]
    c.add("manifest blob corrupt, digest kept", lambda ms: put(ms, name, ms[name][1] + b" "))
    for key, value in (("layers", 3), ("layers", [{"digest": c.layer}]), ("config", "x"),
                       ("layers", [{"mediaType": "application/x-unknown", "digest": c.layer, "size": 1}])):
        def set_manifest(ms: Members, key: str = key, value: Any = value) -> None:
            doc = json_of(ms, manifest)
            doc[key] = value
            readdress(ms, manifest, json.dumps(doc).encode())
        c.add(f"manifest {key}={value!r}", set_manifest)

    def index_loop(ms: Members) -> None:
        # Indexes nested eight deep: the loader must stop following them.
        inner = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        data = json.dumps(inner).encode()
        for _ in range(8):
            child = {"mediaType": OCI_INDEX, "digest": sha256(data), "size": len(data)}
            put(ms, "blobs/sha256/" + sha256(data)[7:], data)
            data = json.dumps({**inner, "manifests": [child]}).encode()
        put(ms, "index.json", data)
    c.add("indexes nested eight deep", index_loop)


def _damaged(saved: dict[str, bytes]) -> dict[str, bytes]:
    """Named archives that must each be refused with a SandboxError."""
    docker, oci = _Cases("docker", saved["docker"]), _Cases("oci", saved["oci"])
    for c in (docker, oci):
        _damaged_blobs(c)
    _damaged_docker_manifest(docker)
    _damaged_oci_index(oci)
    return {**docker.made, **oci.made}


def _escaping_layers(saved: dict[str, bytes], token: str) -> dict[str, bytes]:
    """Archives whose one layer tries to write outside its directory (caught by UnsafeLayerEntry)."""
    base = members_of(saved["oci"])
    layers = {
        "entry ../../../../escaped": [entry(f"../../../../escaped-{token}")],
        "absolute entry": [entry(f"/tmp/sandbox-fuzz-abs-{token}")],
        "file through a symlink to /tmp": [entry("link", kind=tarfile.SYMTYPE, link="/tmp"),
                                           entry(f"link/sandbox-fuzz-sym-{token}")],
        "file through a relative symlink up": [entry("up", kind=tarfile.SYMTYPE, link="../../../../.."),
                                               entry(f"up/tmp/sandbox-fuzz-up-{token}")],
        "hard link to /etc/passwd": [entry("h", kind=tarfile.LNKTYPE, link="/etc/passwd")],
        "hard link up": [entry("h", kind=tarfile.LNKTYPE, link="../../../../../etc/passwd")],
    }
    return {name: pack(with_layer(base, tar_bytes(es))) for name, es in layers.items()}


def _load_refused(engine: Engine, archive: bytes, case: str, *, via_file: Path | None = None) -> SandboxError:
    before = store_state(engine)

    def load() -> Any:
        if via_file is None:
            return engine.images.load(io.BytesIO(archive))
        via_file.write_bytes(archive)
        with open(via_file, "rb") as f:
            return engine.images.load(f)
    _, error = attempt(case, load)
    if error is None:
        pytest.fail(f"{case}: loaded, but should have been refused")
    assert store_state(engine) == before, case
    return error


def test_damaged_archives_are_refused_and_leave_the_store_as_it_was(saved, store, tmp_path):
    cases = _damaged(saved)
    assert len(cases) > 60
    outside = files_outside(tmp_path, store.root)
    for name, archive in cases.items():
        _load_refused(store, archive, name)
    assert files_outside(tmp_path, store.root) == outside


def test_layers_that_escape_are_refused_and_write_nothing_outside(saved, store, tmp_path):
    token = uuid.uuid4().hex[:12]
    outside = files_outside(tmp_path, store.root)
    for name, archive in _escaping_layers(saved, token).items():
        error = _load_refused(store, archive, name)
        assert isinstance(error, UnsafeLayerEntry), (name, error)
    assert files_outside(tmp_path, store.root) == outside
    for path in (f"/tmp/sandbox-fuzz-abs-{token}", f"/tmp/sandbox-fuzz-sym-{token}", f"/tmp/sandbox-fuzz-up-{token}"):
        assert not os.path.lexists(path)


def test_forged_huge_headers_and_cut_archives_are_refused(saved, store, tmp_path):
    """A pax header claiming 1 TiB (a MemoryError from a file before the fix), cut-off and empty archives."""
    huge = patch_header_size(tar_bytes([entry("manifest.json", b"[]")]), 0, 1 << 40)
    pax = io.BytesIO()
    with tarfile.open(fileobj=pax, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("manifest.json")
        info.pax_headers = {"comment": "x"}
        info.size = 2
        t.addfile(info, io.BytesIO(b"[]"))
    forged_pax = patch_header_size(pax.getvalue(), 0, 1 << 40)
    archive = saved["docker"]
    cases = {"member claiming 1 TiB": huge, "pax header claiming 1 TiB": forged_pax,
             "pax header claiming 2**62": patch_header_size(pax.getvalue(), 0, 1 << 62),
             "empty": b"", "one zero block": bytes(512), "garbage": os.urandom(4096),
             "gzip of garbage": gzip.compress(os.urandom(4096)), "gzip cut short": gzip.compress(archive)[:300]}
    with tarfile.open(fileobj=io.BytesIO(archive)) as t:  # cut inside each member's header and data
        cuts = [(m.name, m.offset + 100) for m in t.getmembers()] + \
               [(m.name, m.offset_data + m.size // 2) for m in t.getmembers() if m.size > 1]
    for member, cut in cuts:
        cases[f"cut at {cut}, in {member}"] = archive[:cut]
    for name, data in cases.items():
        _load_refused(store, data, name)
        _load_refused(store, data, name + " (from a file)", via_file=tmp_path / "in.tar")


def test_a_layer_with_a_forged_pax_header_is_refused(saved, store):
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("f")
        info.pax_headers = {"comment": "x"}
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    forged = patch_header_size(layer.getvalue(), 0, 1 << 40)
    for compress in (True, False):
        _load_refused(store, pack(with_layer(members_of(saved["oci"]), forged, compress)), f"gzip={compress}")


def _json_mutation(doc: Any, rng: random.Random) -> Any:
    pool: list[Any] = [None, 0, -1, 1.5, 2 ** 70, True, "", "x", "../../etc/passwd", "/abs", "a" * 500,
                       "sha256:" + "0" * 64, "sha256:zz", [], {}, [1], {"a": 1}, OCI_INDEX, OCI_MANIFEST,
                       OCI_CONFIG, OCI_LAYER_GZIP, "application/x-unknown"]
    paths: list[list[Any]] = []

    def walk(x: Any, path: list[Any]) -> None:
        paths.append(path)
        items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else []
        for k, v in items:
            walk(v, path + [k])
    walk(doc, [])
    path = rng.choice(paths)
    value = copy.deepcopy(rng.choice(pool))
    if not path:
        return value
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if isinstance(parent, dict) and rng.random() < 0.2:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_random_json_mutations(saved, store, tmp_path, fmt):
    """60 archives per format with one to three random changes to one of its JSON documents.

    A blob that changed is re-addressed (renamed to its new digest, and every
    reference to it updated), so the loader gets past the digest checks and
    meets the damage itself.  Some changes are harmless (a history comment):
    then the image loads, correctly, and is removed again.
    """
    rng = random.Random(f"json-{fmt}")
    base = members_of(saved[fmt])
    baseline = store_state(store)
    outside = files_outside(tmp_path, store.root)
    loaded = 0
    for i in range(60):
        ms = dict(base)
        target = rng.choice([n for n, (info, d) in ms.items() if info.isfile() and d[:1] in (b"{", b"[")])
        doc = json.loads(ms[target][1])
        for _ in range(rng.randint(1, 3)):
            doc = _json_mutation(doc, rng)
        data = json.dumps(doc).encode()
        if target.startswith("blobs/sha256/") and rng.random() < 0.8:
            readdress(ms, "sha256:" + target[13:], data)
        else:
            ms[target] = (ms[target][0], data)
        case = f"{fmt} #{i}: {target} = {data[:200]!r}"
        images, error = attempt(case, lambda ms=ms: store.images.load(io.BytesIO(pack(ms))))
        if error is not None:
            assert store_state(store) == baseline, case
            continue
        loaded += 1
        for image in images:  # harmless damage: a real image, which goes again
            assert store.images.get(image.id).layers
            store.images.remove(image.id, force=True)
        store.image_store.collect()
        assert store_state(store) == baseline, case
    assert files_outside(tmp_path, store.root) == outside
    assert loaded < 60  # the mutations did damage


def test_random_byte_flips(saved, store):
    """40 archives with a few bytes flipped anywhere: refused, or (a flip in padding) loaded intact."""
    rng = random.Random("flips")
    baseline = store_state(store)
    for i in range(40):
        fmt = rng.choice(["docker", "oci"])
        data = bytearray(saved[fmt])
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        case = f"flips #{i}"
        with time_guard(case):
            try:
                images = store.images.load(io.BytesIO(bytes(data)))
            except SandboxError:
                assert store_state(store) == baseline, case
                continue
        for image in images:
            for layer in image.layers:
                store.store.verify_blob(layer.digest)
            store.images.remove(image.id, force=True)
        store.image_store.collect()
        assert store_state(store) == baseline, case


def test_an_extra_blob_is_ignored_and_not_stored(saved, store):
    """An unreferenced member (even one whose content does not match its name) is not copied in."""
    for fmt in ("docker", "oci"):
        ms = members_of(saved[fmt])
        stray = "blobs/sha256/" + "ab" * 32
        put(ms, stray, b"not what the name says")
        put(ms, "blobs/sha256/" + sha256(b"extra")[7:], b"extra")
        with time_guard(fmt):
            [image] = store.images.load(io.BytesIO(pack(ms)))
        assert image.tags == ["tiny:1"]
        blobs = set(os.listdir(store.store.blobs_dir))
        assert "ab" * 32 not in blobs and sha256(b"extra")[7:] not in blobs
        store.images.remove("tiny:1", force=True)
        store.image_store.collect()
        assert store.images.list(all=True) == []


def test_a_second_image_failing_leaves_the_first_ones_layers_out(saved, store):
    """One good image and one damaged in the same archive: nothing is named and nothing stays."""
    good = members_of(saved["docker"])
    other = members_of(saved["docker"])
    other = with_layer(other, tar_bytes([entry("second.txt", b"two\n")]))
    bad_layer = blob_of(other, "layer")
    entries = json.loads(good["manifest.json"][1]) + [
        {**json.loads(other["manifest.json"][1])[0], "RepoTags": ["second:1"]}]
    ms = {**good, **{n: v for n, v in other.items() if n.startswith("blobs/")}}
    put(ms, "manifest.json", json.dumps(entries).encode())
    ms["blobs/sha256/" + bad_layer[7:]] = (ms["blobs/sha256/" + bad_layer[7:]][0], b"\x1f\x8b" + b"junk" * 10)
    error = _load_refused(store, pack(ms), "second image corrupt")
    assert isinstance(error, (BlobCorrupt, ArchiveError)), error


# --------------------------------------------------------------------------- a fake registry

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


class FakeRegistry:
    """A registry in a thread on 127.0.0.1: ``routes`` maps a path to what answers it; 404 otherwise."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: dict[str, int] = {}
        self.stopping = threading.Event()
        registry = self

        class RequestHandler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                registry.hits[path] = registry.hits.get(path, 0) + 1
                route = registry.routes.get(path)
                if route is None:
                    send(self, 404, json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN" if "/manifests/" in path
                                                            else "BLOB_UNKNOWN", "message": "unknown"}]}).encode())
                    return
                with contextlib.suppress(ConnectionError, socket.timeout):
                    route(self)

            do_HEAD = do_GET

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]  # clients leave
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def send(h: http.server.BaseHTTPRequestHandler, status: int, body: bytes, content_type: str = "application/json",
         headers: dict[str, str] | None = None, length: int | None = None) -> None:
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body) if length is None else length))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)
    if length is not None and length > len(body):
        h.close_connection = True  # then close: the answer ends early


def serve(body: bytes, content_type: str = "application/json", status: int = 200, **kw: Any) -> Handler:
    return lambda h: send(h, status, body, content_type, **kw)


def dribble(registry: FakeRegistry, piece: bytes, every: float, content_type: str = "application/json") -> Handler:
    """An endless body without a Content-Length, ``piece`` every ``every`` seconds, until the client leaves."""
    def handler(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        while not registry.stopping.is_set():
            h.wfile.write(piece)
            h.wfile.flush()
            time.sleep(every)
    return handler


def once_then(first: Handler, then: Handler) -> Handler:
    calls = []

    def handler(h: http.server.BaseHTTPRequestHandler) -> None:
        calls.append(1)
        (first if len(calls) == 1 else then)(h)
    return handler


class TinyImage:
    """One image's blobs, manifest and index, as a registry serves them."""

    def __init__(self) -> None:
        self.layer_tar = tar_bytes([entry("hello.txt", b"hi from the fake registry\n")])
        self.layer = gzip.compress(self.layer_tar, mtime=0)
        os_name, arch, variant = host_platform()
        self.config = json.dumps({"architecture": arch, "os": os_name, "config": {"Cmd": ["sh"]},
                                  "rootfs": {"type": "layers", "diff_ids": [sha256(self.layer_tar)]},
                                  "history": [{"created_by": "fuzz"}]}).encode()
        self.manifest_doc = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(self.config), "size": len(self.config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256(self.layer), "size": len(self.layer)}]}
        self.manifest = json.dumps(self.manifest_doc).encode()
        platform = {"os": os_name, "architecture": arch, **({"variant": variant} if variant else {})}
        self.index_doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": sha256(self.manifest), "size": len(self.manifest),
             "platform": platform}]}
        self.index = json.dumps(self.index_doc).encode()

    def routes(self, repo: str = "fuzz/app", tag: str = "1") -> dict[str, Handler]:
        base = f"/v2/{repo}"
        return {f"{base}/manifests/{tag}": serve(self.index, OCI_INDEX),
                f"{base}/manifests/{sha256(self.manifest)}": serve(self.manifest, OCI_MANIFEST),
                f"{base}/blobs/{sha256(self.config)}": serve(self.config, "application/octet-stream"),
                f"{base}/blobs/{sha256(self.layer)}": serve(self.layer, "application/octet-stream")}


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRegistry]:
    monkeypatch.setenv("SANDBOX_CONFIG", str(tmp_path / "config"))  # no real credentials are read
    monkeypatch.setattr(transport, "TIMEOUT", 1)   # per socket read and per small answer
    monkeypatch.setattr(transport, "BACKOFF", (0.05, 0.1, 0.2))
    from sandbox.registry import distribution
    monkeypatch.setattr(distribution, "BACKOFF", (0.05, 0.1, 0.2))
    fake = FakeRegistry()
    yield fake
    fake.stop()


def pull_refused(engine: Engine, registry: FakeRegistry, case: str, name: str = "fuzz/app:1") -> SandboxError:
    before = store_state(engine)
    _, error = attempt(case, lambda: engine.images.pull(f"{registry.host}/{name}"))
    if error is None:
        pytest.fail(f"{case}: pulled, but should have been refused")
    assert isinstance(error, (RegistryError, BlobCorrupt)), (case, error)
    assert store_state(engine) == before, case
    return error


def test_the_fake_registry_serves_a_good_image(registry, store):
    image = TinyImage()
    registry.routes = image.routes()
    with time_guard("good pull"):
        pulled = store.images.pull(f"{registry.host}/fuzz/app:1")
    assert pulled.id == sha256(image.config)
    assert pulled.tags == [f"{registry.host}/fuzz/app:1"]


def _malformed_manifests(image: TinyImage) -> dict[str, tuple[bytes, str]]:
    m = image.manifest_doc
    config, layer = m["config"], m["layers"][0]
    docs: dict[str, Any] = {
        "a list": [m], "a number": 3, "null": None, "empty object": {},
        "schema 1": {**m, "mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
        "unknown media type": {**m, "mediaType": "application/x-unknown"},
        "no config": {k: v for k, v in m.items() if k != "config"}, "config a string": {**m, "config": "x"},
        "layers a dict": {**m, "layers": {"a": layer}}, "layers of strings": {**m, "layers": ["x"]},
        "layer digest not sha256": {**m, "layers": [{**layer, "digest": "md5:" + "0" * 32}]},
        "layer digest a path": {**m, "layers": [{**layer, "digest": "sha256:../../../etc/passwd"}]},
        "config digest number": {**m, "config": {**config, "digest": 7}},
        "layer size a string": {**m, "layers": [{**layer, "size": "12"}]},
        "layer size negative": {**m, "layers": [{**layer, "size": -1}]},
        "layer size true": {**m, "layers": [{**layer, "size": True}]},
        "layer size missing": {**m, "layers": [{k: v for k, v in layer.items() if k != "size"}]},
        "config size too small": {**m, "config": {**config, "size": config["size"] - 5}},
        "layer size too large": {**m, "layers": [{**layer, "size": layer["size"] + 100}]},
        "two layers, one diff_id": {**m, "layers": [layer, layer]},
    }
    out = {name: (json.dumps(doc).encode(), OCI_MANIFEST) for name, doc in docs.items()}
    out.update({"not JSON": (b"{not json", OCI_MANIFEST), "not UTF-8": (b"\xff\xfe{}", OCI_MANIFEST),
                "HTML": (b"<html>oops</html>", "text/html"), "empty": (b"", OCI_MANIFEST)})
    return out


def test_malformed_manifests_are_refused(registry, store):
    image = TinyImage()
    for name, (body, content_type) in _malformed_manifests(image).items():
        registry.routes = {**image.routes(), "/v2/fuzz/app/manifests/1": serve(body, content_type)}
        pull_refused(store, registry, f"manifest: {name}")


def test_malformed_indexes_are_refused(registry, store):
    image = TinyImage()
    ix, child = image.index_doc, image.index_doc["manifests"][0]
    index_digest = sha256(image.index)
    docs: dict[str, Any] = {
        "manifests a dict": {**ix, "manifests": {"a": child}}, "manifests a number": {**ix, "manifests": 3},
        "no manifests": {k: v for k, v in ix.items() if k != "manifests"},
        "child a string": {**ix, "manifests": ["x"]},
        "platform a string": {**ix, "manifests": [{**child, "platform": "linux/amd64"}]},
        "no platform for this machine": {**ix, "manifests": [{**child, "platform": {"os": "plan9",
                                                                                     "architecture": "mips"}}]},
        "child digest not sha256": {**ix, "manifests": [{**child, "digest": "sha256:zz"}]},
        "child digest unknown": {**ix, "manifests": [{**child, "digest": sha256(b"nothing")}]},
        "child is the index itself": {**ix, "manifests": [{**child, "digest": index_digest,
                                                           "mediaType": OCI_INDEX}]},
        "docker list type, OCI child": {**ix, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json"},
    }
    for name, doc in docs.items():
        body = json.dumps(doc).encode()
        registry.routes = {**image.routes(), "/v2/fuzz/app/manifests/1": serve(body, OCI_INDEX),
                           f"/v2/fuzz/app/manifests/{index_digest}": serve(image.index, OCI_INDEX)}
        if name == "docker list type, OCI child":
            # the one harmless case: Docker's list type around an OCI manifest pulls fine
            with time_guard(name):
                store.images.pull(f"{registry.host}/fuzz/app:1")
            store.images.remove(f"{registry.host}/fuzz/app:1", force=True)
            store.image_store.collect()
            continue
        pull_refused(store, registry, f"index: {name}")
    # the child served by digest is not the manifest the index names
    registry.routes = {**image.routes(),
                       f"/v2/fuzz/app/manifests/{sha256(image.manifest)}": serve(image.manifest + b" ", OCI_MANIFEST)}
    assert isinstance(pull_refused(store, registry, "child does not match its digest"), BlobCorrupt)


def test_a_manifest_whose_digest_header_lies_is_refused(registry, store):
    image = TinyImage()
    registry.routes = {**image.routes(), "/v2/fuzz/app/manifests/1": serve(
        image.manifest, OCI_MANIFEST, headers={"Docker-Content-Digest": sha256(b"another")})}
    assert isinstance(pull_refused(store, registry, "digest header"), BlobCorrupt)


def test_blobs_that_do_not_match_their_digest_are_refused(registry, store):
    image = TinyImage()
    for which, digest in (("config", sha256(image.config)), ("layer", sha256(image.layer))):
        good = image.config if which == "config" else image.layer
        for name, body in (("flipped byte", bytes([good[0] ^ 1]) + good[1:]),
                           ("other bytes of the same size", os.urandom(len(good))), ("empty", b"")):
            registry.routes = {**image.routes(), f"/v2/fuzz/app/blobs/{digest}": serve(
                body, "application/octet-stream")}
            pull_refused(store, registry, f"{which}: {name}")
    # a config that hashes right but names no usable diff_ids (the manifest re-made to match)
    configs = [json.dumps({**json.loads(image.config), "rootfs": rootfs}).encode() for rootfs in (
        {"diff_ids": "x"}, {"diff_ids": ["not-a-digest"]}, "x", {"diff_ids": []})] + [b"{not json", b"[1]"]
    for config in configs:
        manifest = json.dumps({**image.manifest_doc, "config": {
            "mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)}}).encode()
        registry.routes = {**image.routes(), "/v2/fuzz/app/manifests/1": serve(manifest, OCI_MANIFEST),
                           f"/v2/fuzz/app/blobs/{sha256(config)}": serve(config, "application/octet-stream")}
        pull_refused(store, registry, f"config {config[-60:]!r}")


def test_answers_that_end_early_are_refused(registry, store):
    """Content-Length larger than the body, then the connection closes (retried, then RegistryUnreachable)."""
    image = TinyImage()
    cases = {"manifest": ("/v2/fuzz/app/manifests/1", image.index, OCI_INDEX),
             "config": (f"/v2/fuzz/app/blobs/{sha256(image.config)}", image.config, "application/octet-stream"),
             "layer": (f"/v2/fuzz/app/blobs/{sha256(image.layer)}", image.layer, "application/octet-stream")}
    for name, (path, body, content_type) in cases.items():
        registry.routes = {**image.routes(), path: serve(body[: len(body) // 2], content_type, length=len(body))}
        error = pull_refused(store, registry, f"{name} cut short")
        assert isinstance(error, RegistryUnreachable), (name, error)


def test_endless_answers_are_given_up(registry, store):
    """Slow and fast endless bodies: a manifest past 4 MiB or past the answer deadline, a blob past its size.

    Before the fix the client read until the server stopped: forever.
    """
    image = TinyImage()
    cases = {
        "manifest, slow": ("/v2/fuzz/app/manifests/1", dribble(registry, b" ", 0.05)),
        "manifest, fast": ("/v2/fuzz/app/manifests/1", dribble(registry, b" " * (1 << 16), 0)),
        "config, slow junk": (f"/v2/fuzz/app/blobs/{sha256(image.config)}", dribble(registry, b"x" * 64, 0.02)),
        "layer, fast junk": (f"/v2/fuzz/app/blobs/{sha256(image.layer)}", dribble(registry, b"x" * (1 << 16), 0)),
    }
    for name, (path, handler) in cases.items():
        registry.routes = {**image.routes(), path: handler}
        started = time.monotonic()
        pull_refused(store, registry, name)
        assert time.monotonic() - started < CASE_SECONDS


def test_a_blob_whose_right_bytes_are_followed_by_more_is_pulled(registry, store):
    """The manifest's size bounds the read: the blob's own bytes, then junk the client never reads."""
    image = TinyImage()
    registry.routes = {**image.routes(),
                       f"/v2/fuzz/app/blobs/{sha256(image.layer)}": lambda h: _body_then_junk(registry, h, image.layer)}
    with time_guard("right bytes then junk"):
        pulled = store.images.pull(f"{registry.host}/fuzz/app:1")
    assert pulled.id == sha256(image.config)


def _body_then_junk(registry: FakeRegistry, h: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/octet-stream")
    h.end_headers()
    h.close_connection = True
    h.wfile.write(body)
    while not registry.stopping.is_set():
        h.wfile.write(b"junk" * 1024)
        time.sleep(0.01)


def test_huge_headers_are_refused(registry, store):
    image = TinyImage()
    many = {f"X-Junk-{i}": "x" for i in range(200)}
    registry.routes = {**image.routes(), "/v2/fuzz/app/manifests/1": serve(image.index, OCI_INDEX, headers=many)}
    pull_refused(store, registry, "200 headers")
    registry.routes = {**image.routes(), "/v2/fuzz/app/manifests/1": serve(
        image.index, OCI_INDEX, headers={"X-Long": "x" * 70000})}
    pull_refused(store, registry, "a 70 kB header line")


def test_a_500_then_a_good_answer(registry, store):
    """A 500 fails the pull cleanly (no retry of server errors); the next pull gets the image."""
    image = TinyImage()
    error_body = json.dumps({"errors": [{"code": "UNKNOWN", "message": "try later"}]}).encode()
    for path in ("/v2/fuzz/app/manifests/1", f"/v2/fuzz/app/blobs/{sha256(image.config)}",
                 f"/v2/fuzz/app/blobs/{sha256(image.layer)}"):
        routes = image.routes()
        routes[path] = once_then(serve(error_body, status=500), routes[path])
        registry.routes = routes
        error = pull_refused(store, registry, f"500 at {path}")
        assert getattr(error, "status", None) == 500, error
        with time_guard(f"after 500 at {path}"):
            pulled = store.images.pull(f"{registry.host}/fuzz/app:1")
        assert pulled.id == sha256(image.config)
        store.images.remove(pulled.id, force=True)
        store.image_store.collect()


def test_random_manifest_mutations(registry, store):
    """40 random changes to the manifest and index a good image is served with."""
    rng = random.Random("registry-json")
    image = TinyImage()
    baseline = store_state(store)
    for i in range(40):
        which = rng.choice(["index", "manifest"])
        doc = copy.deepcopy(image.index_doc if which == "index" else image.manifest_doc)
        for _ in range(rng.randint(1, 3)):
            doc = _json_mutation(doc, rng)
        body = json.dumps(doc).encode()
        routes = image.routes()
        if which == "index":
            routes["/v2/fuzz/app/manifests/1"] = serve(body, OCI_INDEX)
        else:  # the index is re-made to name the changed manifest
            index = copy.deepcopy(image.index_doc)
            index["manifests"][0].update(digest=sha256(body), size=len(body))
            routes["/v2/fuzz/app/manifests/1"] = serve(json.dumps(index).encode(), OCI_INDEX)
            routes[f"/v2/fuzz/app/manifests/{sha256(body)}"] = serve(body, OCI_MANIFEST)
        registry.routes = routes
        case = f"#{i} {which}: {body[:200]!r}"
        pulled, error = attempt(case, lambda: store.images.pull(f"{registry.host}/fuzz/app:1"))
        if error is not None:
            assert isinstance(error, (RegistryError, BlobCorrupt)), (case, error)
            assert store_state(store) == baseline, case
            continue
        store.images.remove(pulled.id, force=True)  # a harmless change (an annotation): a good image
        store.image_store.collect()
        assert store_state(store) == baseline, case
