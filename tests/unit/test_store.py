"""The store's guarantees: content addressing, verification, atomic index, recovery, leases."""

from __future__ import annotations

import json
import os

import pytest

from sandbox.errors import BlobCorrupt, BlobNotFound, StoreCorrupt
from sandbox.image.mediatypes import OCI_MANIFEST, REF_NAME, chain_ids, sha256_digest
from sandbox.image.store import Descriptor, Store


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "root")


def test_layout_is_an_oci_image_layout(store):
    assert json.loads((store.oci / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((store.oci / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["manifests"] == []
    assert store.blobs_dir == store.oci / "blobs" / "sha256"


def test_put_blob_is_content_addressed_and_idempotent(store):
    d1 = store.put_blob(b"hello")
    d2 = store.put_blob(b"hello")
    assert d1 == d2 == sha256_digest(b"hello")
    assert store.read_blob(d1) == b"hello"
    assert os.listdir(store.ingest_dir) == []


def test_put_blob_refuses_wrong_expected_digest(store):
    with pytest.raises(BlobCorrupt):
        store.put_blob(b"hello", expected=sha256_digest(b"other"))
    assert store.all_blobs() == []


def test_read_verifies_digest(store):
    digest = store.put_blob(b"some content")
    path = store.blob_path(digest)
    data = bytearray(path.read_bytes())
    data[0] ^= 1  # one flipped bit
    path.write_bytes(bytes(data))
    with pytest.raises(BlobCorrupt) as e:
        store.read_blob(digest)
    assert digest in str(e.value)


def test_missing_blob_is_named(store):
    digest = sha256_digest(b"never stored")
    with pytest.raises(BlobNotFound, match=digest):
        store.read_blob(digest)


def test_truncated_index_is_reported_and_repaired(store):
    m = store.put_blob(b'{"schemaVersion":2}')
    store.set_ref("a:latest", "docker.io/library/a:latest", Descriptor(OCI_MANIFEST, m, 19))
    raw = (store.oci / "index.json").read_bytes()
    (store.oci / "index.json").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(StoreCorrupt, match="index.json"):
        store.manifests()
    assert store.repair_index() is True
    assert [d.annotations[REF_NAME] for d in store.manifests()] == ["a:latest"]


def test_set_ref_replaces_and_reports_previous(store):
    a = store.put_blob(b"a")
    b = store.put_blob(b"b")
    assert store.set_ref("x:1", "docker.io/library/x:1", Descriptor(OCI_MANIFEST, a, 1)) is None
    assert store.set_ref("x:1", "docker.io/library/x:1", Descriptor(OCI_MANIFEST, b, 1)) == a
    # the image that lost its name stays, untagged, in the same write
    assert [(d.digest, d.annotations.get(REF_NAME)) for d in store.manifests()] == [(b, "x:1"), (a, None)]


def test_killed_writer_leftovers_are_removed_at_next_start(store):
    # A blob half-written by a killed process: no lock held on it any more.
    (store.ingest_dir / "deadbeef").write_bytes(b"partial")
    (store.layers_dir / ("a" * 64 + ".incomplete")).mkdir()
    (store.oci / ".tmp-index.json-1234").write_bytes(b"{")
    os.symlink("../layers/nothing/diff", store.links_dir / "DANGLING")
    Store(store.root)
    assert os.listdir(store.ingest_dir) == []
    assert os.listdir(store.layers_dir) == []
    assert not (store.oci / ".tmp-index.json-1234").exists()
    assert os.listdir(store.links_dir) == []


def test_live_writer_is_not_disturbed_by_recovery(store):
    w = store.ingest()
    w.write(b"in flight")
    Store(store.root)  # a second process starting up
    assert w.path.exists()
    digest = w.commit()
    assert store.read_blob(digest) == b"in flight"


def test_leases_round_trip(store):
    store.lease("container-abc", images=["sha256:" + "1" * 64])
    assert store.leases()[0]["images"] == ["sha256:" + "1" * 64]
    store.release("container-abc")
    assert store.leases() == []


def test_chain_ids_follow_the_spec():
    a, b = sha256_digest(b"a"), sha256_digest(b"b")
    assert chain_ids([a]) == [a]
    assert chain_ids([a, b]) == [a, sha256_digest(f"{a} {b}".encode())]
