"""The build's records (plain classes, see sandbox/build/record.py) behave as the dataclasses they replace."""

from __future__ import annotations

import pytest

from sandbox.build.events import BuildEvent
from sandbox.build.parser import Heredoc, Instruction, parse
from sandbox.build.step import Prepared, State
from sandbox.build.stages import plan


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
