"""Tagging writes only what changes: a re-tag with the name an image has writes no index,
several names go in one index write, and the tags an image reports stay what the index says."""

from __future__ import annotations

import os

import pytest

from sandbox.errors import InvalidReference
from sandbox.image import fsutil
from sandbox.image.images import ImageStore, new_config
from sandbox.image.layers import write_layer_blob
from sandbox.image.mediatypes import OCI_MANIFEST, REF_NAME
from sandbox.image.store import Descriptor, Store

from .test_images import _layer_tar


@pytest.fixture
def images(tmp_path) -> ImageStore:
    return ImageStore(Store(tmp_path / "root"))


@pytest.fixture
def writes(monkeypatch) -> list[str]:
    """The names of the files written atomically (each one is a temp file, fsyncs and a rename)."""
    seen: list[str] = []
    real = fsutil.atomic_write

    def counting(path, data, mode=0o644, **kw):
        seen.append(os.path.basename(path))
        return real(path, data, mode, **kw)
    monkeypatch.setattr(fsutil, "atomic_write", counting)
    return seen


def _config(images: ImageStore, content: bytes = b"x"):
    layer = write_layer_blob(images.store, lambda out: out.write(_layer_tar("f", content)))
    return new_config([layer], [{"created_by": "test"}], config={}, created="2026-01-01T00:00:00Z"), [layer]


def _index_files(store: Store) -> tuple[bytes, bytes]:
    return (store.oci / "index.json").read_bytes(), (store.meta_dir / "index.json.bak").read_bytes()


def test_re_creating_a_tagged_image_writes_no_index_only_its_tag_time(images, writes):
    config, layers = _config(images)
    first = images.create(config, layers, tags=["a:1"])
    before = _index_files(images.store)
    stamp = first.meta["last_tag_time"]
    writes.clear()
    again = images.create(config, layers, tags=["a:1"])
    assert writes == [os.path.basename(images.store.image_meta_path(first.id))]  # one metadata write, no index
    assert _index_files(images.store) == before
    assert (again.id, again.manifest_digest, again.tags) == (first.id, first.manifest_digest, ["a:1"])
    assert images.store.read_image_meta(first.id)["last_tag_time"] >= stamp   # Docker's LastTagTime moves on


def test_several_tags_are_one_index_write(images, writes):
    config, layers = _config(images)
    image = images.create(config, layers, tags=["a:1", "b:2", "a:1"])
    assert writes.count("index.json") == 1 and writes.count("index.json.bak") == 1
    assert image.tags == ["a:1", "b:2"]
    assert images.get("b:2").tags == ["a:1", "b:2"]


def test_moving_a_tag_leaves_the_old_image_untagged_in_the_same_write(images, writes):
    one = images.create(*_config(images, b"1"), tags=["a:1"])
    writes.clear()
    two = images.create(*_config(images, b"2"), tags=["a:1"])
    assert writes.count("index.json") == 1
    entries = [(d.digest, d.annotations.get(REF_NAME)) for d in images.store.manifests()]
    assert sorted(entries, key=str) == sorted([(two.manifest_digest, "a:1"), (one.manifest_digest, None)], key=str)


def test_an_untagged_image_is_recorded_once(images, writes):
    config, layers = _config(images)
    image = images.create(config, layers)
    assert image.tags == [] and [d.digest for d in images.store.manifests()] == [image.manifest_digest]
    before = _index_files(images.store)
    writes.clear()
    images.create(config, layers)
    assert "index.json" not in writes and _index_files(images.store) == before


def test_building_again_untagged_keeps_the_names_it_has(images):
    config, layers = _config(images)
    images.create(config, layers, tags=["a:1"])
    again = images.create(config, layers)
    assert again.tags == ["a:1"]
    assert [d.annotations.get(REF_NAME) for d in images.store.manifests()] == ["a:1"]


def test_tags_through_another_manifest_of_the_same_config_are_reported(images):
    config, layers = _config(images)
    image = images.create(config, layers, tags=["a:1"])
    other = images.add_manifest(dict(image.manifest, annotations={"x": "y"}), tags=["b:2"])
    assert other.manifest_digest != image.manifest_digest and other.id == image.id
    assert other.tags == ["a:1", "b:2"]
    assert images.get("a:1").tags == ["a:1", "b:2"]
    fresh = ImageStore(Store(images.store.root))          # another process: reads the manifests itself
    assert fresh.get("b:2").tags == ["a:1", "b:2"]


def test_docker_tag_with_the_name_it_has_writes_no_index(images, writes):
    config, layers = _config(images)
    images.create(config, layers, tags=["a:1"])
    images.tag("a:1", "b:2")
    before = _index_files(images.store)
    writes.clear()
    assert images.tag("a:1", "b:2").tags == ["a:1", "b:2"]
    assert "index.json" not in writes and _index_files(images.store) == before


def test_a_bad_tag_stores_nothing(images):
    config, layers = _config(images)
    before = _index_files(images.store)
    with pytest.raises(InvalidReference):
        images.create(config, layers, tags=["a:1", "b@sha256:" + "0" * 64])
    assert _index_files(images.store) == before
    assert not any(images.store.image_meta_dir.iterdir())


def test_update_index_that_changes_nothing_writes_nothing(tmp_path, writes):
    store = Store(tmp_path / "root")
    digest = store.put_blob(b"m")
    store.set_ref("x:1", "docker.io/library/x:1", Descriptor(OCI_MANIFEST, digest, 1))
    writes.clear()
    assert store.set_ref("x:1", "docker.io/library/x:1", Descriptor(OCI_MANIFEST, digest, 1)) == digest
    store.add_untagged(Descriptor(OCI_MANIFEST, digest, 1))
    assert writes == []
