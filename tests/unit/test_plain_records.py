"""The plain records (sandbox/plain.py) behave as the dataclasses they replace: the build's, the image
store's descriptors, layers and images, and parsed references."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.build.events import BuildEvent
from sandbox.build.parser import Heredoc, Instruction, parse
from sandbox.build.step import Prepared, State
from sandbox.build.stages import plan
from sandbox.image.images import Image
from sandbox.image.layers import LayerBlob, UnpackedLayer
from sandbox.image.store import Descriptor
from sandbox.plain import FrozenError
from sandbox.reference import parse as parse_ref


def test_equal_field_by_field_and_unhashable():
    a = Instruction("RUN", "true", {}, 1, 1)
    assert a == Instruction("RUN", "true", {}, 1, 1)
    assert a != Instruction("RUN", "false", {}, 1, 1)
    assert a != Heredoc("RUN", "true")       # another class is never equal
    with pytest.raises(TypeError):
        hash(a)


def test_repr_names_every_field_in_order():
    assert repr(Heredoc("EOF", "x\n")) == "Heredoc(name='EOF', content='x\\n', expand=True, chomp=False, fd=None)"


def test_mutable_defaults_are_not_shared():
    one, two = Instruction("RUN", "a", {}, 1, 1), Instruction("RUN", "b", {}, 2, 2)
    one.heredocs.append(Heredoc("EOF", ""))
    assert two.heredocs == []
    p, q = Prepared("", None), Prepared("", None)
    p.args["A"] = "1"
    assert q.args == {}
    s = plan(parse("FROM scratch\n")).stages[0]
    assert State({}, [], "k", "", "", s).args is not State({}, [], "k", "", "", s).args


def test_event_to_dict_keeps_what_is_set_and_copies_the_tags():
    tags = ["a:1"]
    event = BuildEvent("result", image_id="sha256:" + "0" * 64, tags=tags, duration=1.5)
    out = event.to_dict()
    assert out == {"kind": "result", "image_id": "sha256:" + "0" * 64, "tags": ["a:1"], "duration": 1.5,
                   "stream": 1}
    out["tags"].append("b:2")
    assert event.tags == ["a:1"]


def test_frozen_records_hash_by_their_fields_and_refuse_changes():
    blob = LayerBlob("sha256:" + "1" * 64, "sha256:" + "2" * 64, 10, "application/vnd.oci.image.layer.v1.tar")
    same = LayerBlob(*(getattr(blob, f) for f in ("diff_id", "digest", "size", "media_type")))
    assert blob == same and hash(blob) == hash(same) and len({blob, same}) == 1
    with pytest.raises(AttributeError):   # dataclasses.FrozenInstanceError is an AttributeError too
        blob.size = 11  # type: ignore[misc]
    with pytest.raises(FrozenError):
        del blob.digest
    assert blob.as_dict() == {"diff_id": blob.diff_id, "digest": blob.digest, "size": 10,
                              "media_type": blob.media_type}
    assert LayerBlob(**blob.as_dict()) == blob
    assert repr(blob).startswith("LayerBlob(diff_id='sha256:111")


def test_a_reference_is_a_hashable_value_and_with_tag_copies_it():
    ref = parse_ref("busybox")
    assert ref == parse_ref("docker.io/library/busybox:latest") and {ref: 1}[parse_ref("busybox:latest")] == 1
    other = ref.with_tag("1.36")
    assert (other.tag, ref.tag, other.repository) == ("1.36", "latest", "library/busybox")
    assert str(other) == "busybox:1.36"
    with pytest.raises(AttributeError):
        ref.tag = "x"  # type: ignore[misc]


def test_store_records_default_to_fresh_containers():
    a, b = Descriptor("m", "sha256:" + "0" * 64, 1), Descriptor("m", "sha256:" + "0" * 64, 1)
    a.annotations["k"] = "v"
    assert b.annotations == {} and a != b
    i, j = Image("sha256:a", "sha256:m", {}, {}), Image("sha256:a", "sha256:m", {}, {})
    i.tags.append("x:1")
    i.meta["k"] = 1
    assert (j.tags, j.meta, j.repo_digests, j.size) == ([], {}, [], 0)
    assert vars(j) == {"id": "sha256:a", "manifest_digest": "sha256:m", "manifest": {}, "config": {}, "tags": [],
                       "repo_digests": [], "size": 0, "meta": {}}   # what a Go template's json reads
    u = UnpackedLayer("sha256:c", "sha256:d", None, "sha256:b", 3, "L", Path("/x"))
    assert u.parent is None and hash(u) == hash(u.replace())
