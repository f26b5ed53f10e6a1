"""Naming, removing and collecting images: what rmi and prune keep and what they free."""

from __future__ import annotations

import io
import tarfile

import pytest

from sandbox.errors import ImageInUse, ImageNotFound
from sandbox.image.images import ImageStore, new_config
from sandbox.image.layers import write_layer_blob
from sandbox.image.store import Store


def _layer_tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def images(tmp_path) -> ImageStore:
    return ImageStore(Store(tmp_path / "root"))


def make(images: ImageStore, tag: str | None, content: bytes = b"x", base=None):
    layer = write_layer_blob(images.store, lambda out: out.write(_layer_tar("f", content)))
    layers = []
    if base is not None:
        from sandbox.image.layers import LayerBlob
        layers = [LayerBlob(d, l.digest, l.size, l.media_type) for d, l in zip(base.diff_ids, base.layers)]
    config = new_config([layer], [{"created_by": tag or "untagged"}], config={},
                        base=base.config if base is not None else None)
    return images.create(config, layers + [layer], tags=[tag] if tag else [])


def test_untag_keeps_data_while_another_tag_names_it(images):
    image = make(images, "a:1")
    images.tag("a:1", "b:2")
    assert images.remove("a:1") == [{"Untagged": "a:1"}]
    assert images.get("b:2").id == image.id
    assert images.store.has_blob(image.layers[0].digest)


def test_removing_by_id_with_several_tags_needs_force(images):
    image = make(images, "a:1")
    images.tag("a:1", "b:2")
    with pytest.raises(ImageInUse, match="multiple repositories"):
        images.remove(image.short_id)
    result = images.remove(image.short_id, force=True)
    assert {"Deleted": image.id} in result
    assert images.store.all_blobs() == [] and images.layers.all() == []


def test_shared_base_layers_survive_removing_the_child(images):
    base = make(images, "base:1", b"base")
    child = make(images, "child:1", b"child", base=base)
    assert child.chain_ids[0] == base.chain_ids[0]
    images.remove("child:1")
    assert images.layers.all() == base.chain_ids
    assert images.get("base:1").id == base.id


def test_a_lease_keeps_an_image_through_rmi_and_prune(images):
    image = make(images, "used:1")
    images.store.lease("container-abc", images=[image.id])
    with pytest.raises(ImageInUse, match="in use by container abc"):
        images.remove("used:1")
    assert images.remove("used:1", force=True) == [{"Untagged": "used:1"}]
    images.prune(all=True)
    assert images.store.has_blob(image.id) and images.layers.exists(image.chain_ids[0])
    images.store.release("container-abc")
    images.prune(all=True)
    assert images.store.all_blobs() == [] and images.layers.all() == []


def test_retagging_leaves_the_old_image_dangling_and_prune_removes_it(images):
    old = make(images, "app:latest", b"v1")
    new = make(images, "app:latest", b"v2")
    listed = {i.id: i.tags for i in images.list()}
    assert listed == {new.id: ["app:latest"], old.id: []}
    report = images.prune()
    assert report["ImagesDeleted"] == [{"Deleted": old.id}]
    assert report["SpaceReclaimed"] > 0
    with pytest.raises(ImageNotFound):
        images.get(old.id)


def test_lookup_by_id_prefix_digest_and_name(images):
    image = make(images, "docker.io/library/thing:1")
    assert images.get("thing:1").id == image.id
    assert images.get(image.short_id).id == image.id
    assert images.get(image.id).id == image.id
    assert images.get(f"thing@{image.manifest_digest}").id == image.id
    with pytest.raises(ImageNotFound):
        images.get("thing:2")


def test_layer_shared_through_differently_compressed_blobs_keeps_its_blob(images):
    """Two images share a diff_id via a gzip and a plain blob; removing the first
    must not collect the blob the shared unpacked layer came from."""
    data = _layer_tar("f", b"shared")
    gz = write_layer_blob(images.store, lambda out: out.write(data))
    plain = write_layer_blob(images.store, lambda out: out.write(data), compress=False)
    assert gz.diff_id == plain.diff_id and gz.digest != plain.digest
    a = images.create(new_config([gz], [{"created_by": "a"}], config={}), [gz], tags=["a:1"])
    b = images.create(new_config([plain], [{"created_by": "b"}], config={}), [plain], tags=["b:1"])
    images.remove("a:1")
    flat = images.store.tmp_dir / "flat"
    flat.mkdir()
    images.layers.flatten(b.chain_ids, flat)
    assert (flat / "f").read_bytes() == b"shared"
    assert a.id != b.id


def test_a_hex_looking_name_wins_over_an_id_prefix(images):
    first = make(images, "first:1", b"one")
    prefix = first.id.split(":")[1][:4]
    named = make(images, f"{prefix}:latest", b"two")  # a repository literally called like the prefix
    assert images.get(prefix).id == named.id            # the name wins, as in Docker
    assert images.get(first.id.split(":")[1][:12]).id == first.id
