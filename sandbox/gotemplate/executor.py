"""The executor: walks the tree with a dot and a stack of variables, appending output to a list.

Field lookups follow Go's ``evalField`` (map keys, else public attributes);
errors carry Go's ``template: :LINE:COL: executing`` wording.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import SandboxError
from .functions import FUNCS, MAX_TEXT
from .nodes import Action, Chain, Command, Control, Field, Ident, Literal, Node, Pipeline, Text, Variable
from .values import MISSING, format_value, go_type, sorted_keys, truth

_EXEC_HINT = "run the command without -f/--format to see which fields there are"

_NO_FINAL: Any = object()  # "no value piped into this command"

#: Nodes (and range iterations) one render may execute: a ``--format`` template
#: runs a few hundred; ``{{range 99999999999}}`` is refused, not run for hours.
MAX_STEPS = 1_000_000


class Executor:
    """Walks the tree with a dot and a stack of variables, appending output to a list."""

    def __init__(self, src: str, root: Any) -> None:
        self.src = src
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.steps = 0
        self.written = 0

    def run(self, nodes: list[Node], dot: Any, out: list[str]) -> None:
        for node in nodes:
            self.step(node)
            if isinstance(node, Text):
                self.write(node, node.text, out)
            elif isinstance(node, Action):
                value = self.pipeline(node.pipe, dot)
                if not node.pipe.decl:  # {{$x := ...}} prints nothing
                    self.write(node, format_value(value), out)
            elif isinstance(node, Control):
                scope = len(self.vars)
                if node.kind == "range":
                    self.range(node, dot, out)
                else:
                    value = self.pipeline(node.pipe, dot)
                    if truth(value):
                        self.run(node.body, value if node.kind == "with" else dot, out)
                    else:
                        self.run(node.else_body, dot, out)
                del self.vars[scope:]

    def range(self, node: Control, dot: Any, out: list[str]) -> None:
        value = self.pipeline(node.pipe, dot, declare=False)
        if value is None or value is MISSING:
            items: list[tuple[Any, Any]] = []
        elif isinstance(value, Mapping):
            items = [(k, value[k]) for k in sorted_keys(value)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            if value > MAX_STEPS:  # it could not finish anyway: refuse it before making the list
                raise self.fail(node.pipe, f"range over {value} is too long (more than {MAX_STEPS} steps)")
            items = [(i, i) for i in range(value)]
        else:
            raise self.fail(node.pipe, f"range can't iterate over {format_value(value)}")
        if not items:
            self.run(node.else_body, dot, out)
        for key, elem in items:
            self.step(node)
            scope = len(self.vars)
            # one variable gets the element, two get key (or index) and element
            self.vars += list(zip(node.pipe.decl, [elem] if len(node.pipe.decl) == 1 else [key, elem]))
            self.run(node.body, elem, out)
            del self.vars[scope:]

    def step(self, node: Node) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise self.fail(node, f"template does too much work (more than {MAX_STEPS} steps)")

    def write(self, node: Node, text: str, out: list[str]) -> None:
        self.written += len(text)
        if self.written > MAX_TEXT:
            raise self.fail(node, f"template output is too long (more than {MAX_TEXT} bytes)")
        out.append(text)

    def pipeline(self, pipe: Pipeline, dot: Any, declare: bool = True) -> Any:
        value = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, value)
        if declare and pipe.assign:
            index = max(i for i, (name, _) in enumerate(self.vars) if name == pipe.decl[0])
            self.vars[index] = (pipe.decl[0], value)
        elif declare and pipe.decl:
            self.vars.append((pipe.decl[0], value))
        return value

    def command(self, cmd: Command, dot: Any, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, Ident):
            return self.call(first.name, cmd, cmd.args[1:], dot, final)
        if len(cmd.args) > 1 or final is not _NO_FINAL:
            raise self.fail(first, f"can't give argument to non-function {self.text(first)}")
        return self.arg(first, dot)

    def arg(self, node: Node, dot: Any) -> Any:
        if isinstance(node, Field):
            return self.walk(dot, node.names, node)
        if isinstance(node, Variable):
            value = next(v for name, v in reversed(self.vars) if name == node.name)
            return self.walk(value, node.names, node)
        if isinstance(node, Chain):
            return self.walk(self.pipeline(node.node, dot), node.names, node)
        if isinstance(node, Ident):
            return self.call(node.name, node, [], dot, _NO_FINAL)
        assert isinstance(node, Literal)
        return node.value

    def walk(self, value: Any, names: list[str], node: Node) -> Any:
        """Follow ``.A.B``: map keys, else public attributes, like Go's evalField."""
        for name in names:
            if value is MISSING:
                return MISSING  # Go: a field of a missing key is <no value> too
            if value is None:
                raise self.fail(node, f"nil pointer evaluating interface {{}}.{name}")
            if isinstance(value, Mapping):
                value = value.get(name, MISSING)
            elif isinstance(value, (str, bytes, int, float, list, tuple)) or name.startswith("_") \
                    or not hasattr(value, name):
                raise self.fail(node, f"can't evaluate field {name} in type {go_type(value)}")
            else:
                value = getattr(value, name)
        return value

    def call(self, name: str, node: Node, arg_nodes: list[Node], dot: Any, final: Any) -> Any:
        func, least, most = FUNCS[name]
        args = [self.arg(a, dot) for a in arg_nodes] + ([] if final is _NO_FINAL else [final])
        if not least <= len(args) <= (most if most >= 0 else len(args)):
            want = least if least == most else f"at least {least}" if most < 0 else f"{least} to {most}"
            raise self.fail(node, f"wrong number of args for {name}: want {want} got {len(args)}")
        try:
            return func(*[None if a is MISSING else a for a in args])
        except (TypeError, ValueError, IndexError, KeyError) as e:
            raise self.fail(node, f"error calling {name}: {e.args[0] if e.args else e}") from None

    def text(self, node: Node) -> str:
        return self.src[node.pos:node.end]

    def fail(self, node: Node, message: str) -> SandboxError:
        """Go's ``template: :LINE:COL: executing "" at <NODE>: MESSAGE``."""
        line = self.src.count("\n", 0, node.pos) + 1
        col = node.pos - (self.src.rfind("\n", 0, node.pos) + 1)
        return SandboxError(f'template: :{line}:{col}: executing "" at <{self.text(node)}>: {message}',
                            hint=_EXEC_HINT)
