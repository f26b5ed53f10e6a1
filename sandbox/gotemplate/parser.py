"""The parser: recursive descent over the lexer's tokens into :mod:`.nodes`.

It checks what Go checks before running anything: functions are known,
variables are declared in scope, ``{{else}}`` and ``{{end}}`` are where they
belong; ``define``, ``template`` and ``block`` are refused.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any

from ..errors import SandboxError
from .functions import FUNCS
from .lexer import Token, lex, parse_error
from .nodes import Action, Chain, Command, Control, Field, Ident, Literal, Node, Pipeline, Text, Variable

#: How deep ``(...)`` and ``{{if}}``/``{{range}}``/``{{with}}`` may nest.  Go allows
#: 10000 parentheses (``maxStackDepth``); parsing and running recurse once per level
#: here, so the limit stays well inside Python's recursion limit.
MAX_DEPTH = 100


class Parser:
    """Recursive descent over the tokens; checks functions and variables as Go does."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.tokens = lex(src)
        self.i = 0
        self.vars = ["$"]  # variables in scope
        self.depth = 0

    def parse(self) -> list[Node]:
        nodes, stop = self._list()
        if stop is not None:
            raise self._error(self.tokens[self.i - 1], f"unexpected {{{{{stop}}}}}")
        return nodes

    def _peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def _next(self) -> Token:
        tok = self._peek()
        self.i += 1
        return tok

    def _expect(self, kind: str, context: str) -> Token:
        tok = self._next()
        if tok.kind != kind:
            raise self._error(tok, f"unexpected {self._describe(tok)} in {context}")
        return tok

    def _describe(self, tok: Token) -> str:
        return {"eof": "EOF", "right": '"}}"', "left": '"{{"'}.get(tok.kind, repr(tok.value))

    def _error(self, tok: Token, message: str) -> SandboxError:
        return parse_error(self.src, tok.pos, message)

    def _list(self) -> tuple[list[Node], str | None]:
        """Nodes up to EOF (stop None), ``{{end}}`` or ``{{else`` (left just after ``else``)."""
        nodes: list[Node] = []
        while True:
            tok = self._next()
            if tok.kind == "eof":
                return nodes, None
            if tok.kind == "text":
                nodes.append(Text(tok.pos, tok.pos + len(tok.value), tok.value))
                continue
            word = self._peek()
            if word.kind == "comment":  # {{/* ... */}} must be the whole action
                self._next()
                self._expect("right", "comment")
                continue
            keyword = word.value if word.kind == "ident" else ""
            if keyword in ("end", "else"):
                self._next()
                if keyword == "end":
                    self._expect("right", "end")
                return nodes, keyword
            if keyword in ("if", "with", "range"):
                nodes.append(self._control())
            elif keyword in ("define", "template", "block", "break", "continue"):
                raise self._error(word, f"{{{{{keyword}}}}} is not supported here")
            else:
                pipe = self._pipeline("command")
                self._expect("right", "command")
                nodes.append(Action(pipe.pos, pipe.end, pipe))

    def _control(self) -> Control:
        """``if``/``with``/``range`` pipeline, body, optional ``else`` (or ``else if``), ``end``."""
        word = self._next()
        with self._nested(word):
            return self._control_body(word)

    def _control_body(self, word: Token) -> Control:
        scope = len(self.vars)
        node = Control(word.pos, word.pos, word.value, self._pipeline(word.value))
        self._expect("right", word.value)
        node.body, stop = self._list()
        if stop == "else":
            nxt = self._peek()
            if word.value in ("if", "with") and nxt.kind == "ident" and nxt.value == word.value:
                node.else_body = [self._control()]  # {{else if}} shares the {{end}}
            else:
                self._expect("right", "else")
                node.else_body, stop = self._list()
                if stop == "else":
                    raise self._error(self.tokens[self.i - 1], "expected end; found {{else}}")
        if stop is None:
            raise self._error(self._peek(), "unexpected EOF")
        del self.vars[scope:]
        return node

    @contextlib.contextmanager
    def _nested(self, tok: Token) -> Iterator[None]:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self._error(tok, f"max expression depth exceeded (more than {MAX_DEPTH} levels)")
        try:
            yield
        finally:
            self.depth -= 1

    def _pipeline(self, context: str) -> Pipeline:
        """``[$a[, $b] := | $a =] command ( | command )*``."""
        start = self._peek()
        decl: list[str] = []
        assign = False
        kinds = [self._peek(k).kind for k in range(4)]
        if kinds[0] == "variable" and (kinds[1] in ("declare", "assign")
                                       or kinds[1:4] == ["comma", "variable", "declare"]):
            decl.append(self._next().value)
            if self._peek().kind == "comma":
                if context != "range":
                    raise self._error(start, "too many declarations in command")
                self._next()
                decl.append(self._next().value)
            assign = self._next().kind == "assign"
            for name in decl:
                if assign and name not in self.vars:
                    raise self._error(start, f'undefined variable "{name}"')
        cmds = [self._command()]
        while self._peek().kind == "pipe":
            self._next()
            cmds.append(self._command())
        if not assign:
            self.vars.extend(decl)
        return Pipeline(start.pos, cmds[-1].end, decl, assign, cmds)

    def _command(self) -> Command:
        args: list[Node] = []
        while self._peek().kind not in ("right", "rparen", "pipe", "eof"):
            args.append(self._operand())
        if not args:
            raise self._error(self._peek(), "missing value for command")
        return Command(args[0].pos, args[-1].end, args)

    def _operand(self) -> Node:
        """One argument: a term, then any ``.Field`` chained to it without a space."""
        tok = self._next()
        end = tok.pos + len(tok.value)
        node: Node
        if tok.kind == "field":
            node = Field(tok.pos, end, [n for n in tok.value.split(".") if n])
        elif tok.kind == "variable":
            if tok.value not in self.vars:
                raise self._error(tok, f'undefined variable "{tok.value}"')
            node = Variable(tok.pos, end, tok.value, [])
        elif tok.kind in ("string", "raw", "number"):
            node = Literal(tok.pos, end, self._literal(tok))
        elif tok.kind == "ident" and tok.value in ("true", "false", "nil"):
            node = Literal(tok.pos, end, {"true": True, "false": False, "nil": None}[tok.value])
        elif tok.kind == "ident":
            if tok.value not in FUNCS:
                raise self._error(tok, f'function "{tok.value}" not defined')
            node = Ident(tok.pos, end, tok.value)
        elif tok.kind == "lparen":
            with self._nested(tok):
                pipe = self._pipeline("parenthesized pipeline")
            node = Chain(tok.pos, self._expect("rparen", "parenthesized pipeline").pos + 1, pipe, [])
        else:
            raise self._error(tok, f"unexpected {self._describe(tok)} in operand")
        nxt = self._peek()
        chained = nxt.kind == "field" and not nxt.spaced and nxt.value != "."
        if isinstance(node, (Variable, Chain)) and chained:
            self._next()
            node.names += [n for n in nxt.value.split(".") if n]
            node.end = nxt.pos + len(nxt.value)
        return node

    def _literal(self, tok: Token) -> Any:
        if tok.kind == "raw":
            return tok.value[1:-1]
        try:
            if tok.kind == "string":
                return json.loads(tok.value)  # Go's escapes, bar \x and octal
            if re.fullmatch(r"[-+]?(0[xX][0-9a-fA-F]+|\d+)", tok.value):
                return int(tok.value, 0)
            return float(tok.value)
        except ValueError:
            what = "string" if tok.kind == "string" else "number"
            raise self._error(tok, f"bad {what} syntax: {tok.value}") from None
