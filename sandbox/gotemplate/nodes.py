"""The syntax tree the parser builds and the executor walks.

Every node keeps its source span (``pos``, ``end``), so an execution error
can quote the template's own text, as Go's ``executing "" at <.X>`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Node:
    pos: int
    end: int


@dataclass
class Text(Node):
    text: str


@dataclass
class Field(Node):
    names: list[str]  # [] is ``.`` itself


@dataclass
class Variable(Node):
    name: str
    names: list[str]  # ``$x.A.B``


@dataclass
class Chain(Node):
    node: Pipeline  # ``(pipeline).A.B``
    names: list[str]


@dataclass
class Literal(Node):
    value: Any


@dataclass
class Ident(Node):
    name: str  # a function


@dataclass
class Command(Node):
    args: list[Node]


@dataclass
class Pipeline(Node):
    decl: list[str]
    assign: bool  # ``$x = ...`` (existing variable) rather than ``$x := ...``
    cmds: list[Command]


@dataclass
class Action(Node):
    pipe: Pipeline


@dataclass
class Control(Node):
    kind: str  # if, with, range
    pipe: Pipeline
    body: list[Node] = field(default_factory=list)
    else_body: list[Node] = field(default_factory=list)
