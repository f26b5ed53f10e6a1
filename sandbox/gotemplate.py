"""The part of Go's text/template that ``inspect -f`` and ``--format`` users type.

``docker inspect -f '{{.State.Running}}'``, ``docker ps --format '{{.Names}}'``
and ``docker images --format '{{json .}}'`` hand a Go template to
https://pkg.go.dev/text/template; this module gives the same output for the
same template on our dicts (and objects, through ``getattr``)::

    render("{{.Config.Cmd}}", info)                      -> "[sh -c echo hi]"
    render("{{range $k, $v := .Labels}}{{$k}}={{$v}} {{end}}", info)
    render("{{if .State.Running}}up{{else}}down{{end}}", info)
    render("{{json .Config}}", info)                     -> compact JSON, keys sorted

Supported: text, ``{{- -}}`` trimming, ``{{/* comments */}}``, field chains,
``$``/``$x := ...``/``$x = ...``, pipelines, parenthesised pipelines,
``if``/``else if``/``with``/``range`` with ``else``, Go's built-in functions
(``index len not and or eq ne lt le gt ge print printf println``) and Docker's
(``json join split upper lower title truncate pad``).  ``define``,
``template`` and ``block`` are refused.  The ``table`` prefix and the ``\\t``
escapes of ``--format`` are the caller's business, as in the docker CLI.

Values print like Go's ``%v``: lists as ``[a b]``, dicts as ``map[k:v]`` with
sorted keys, booleans as ``true``, None as ``<nil>`` and a missing key as
``<no value>``.  Errors are :class:`SandboxError` with Go's wording.
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .errors import SandboxError

__all__ = ["Template", "format_value", "render"]

_PARSE_HINT = "see Go text/template syntax, e.g. {{.Id}} or {{json .Config}}"
_EXEC_HINT = "run the command without -f/--format to see which fields there are"


class _Missing:
    """A map key that is not there: Go's invalid reflect.Value."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()
_NO_FINAL: Any = object()  # "no value piped into this command"


def render(template: str, data: Any) -> str:
    """Parse ``template`` and execute it on ``data``; raise SandboxError on either failing."""
    return Template(template).render(data)


class Template:
    """A parsed template; parse once, render each row (``ps --format`` over many containers)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._nodes = _Parser(source).parse()

    def render(self, data: Any) -> str:
        out: list[str] = []
        _Executor(self.source, data).run(self._nodes, data, out)
        return "".join(out)


# --- printing and truthiness, as Go's fmt and text/template do them ---------

def format_value(v: Any) -> str:
    """``fmt.Sprint("%v", v)`` for the values JSON decodes to."""
    if v is MISSING:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _format_float(v)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(format_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{format_value(k)}:{format_value(v[k])}" for k in _sorted_keys(v)) + "]"
    return str(v)


def _format_float(f: float) -> str:
    """Go's %v of a float64: shortest digits, exponent form from 1e+06 or below 1e-04."""
    if math.isnan(f) or math.isinf(f):
        return "NaN" if math.isnan(f) else ("+Inf" if f > 0 else "-Inf")
    if f == 0:
        return "0"
    d = Decimal(repr(f)).normalize()
    digits = "".join(map(str, d.as_tuple().digits))
    exp = len(digits) + int(d.as_tuple().exponent) - 1
    sign = "-" if f < 0 else ""
    if exp < -4 or exp >= 6:  # strconv.FormatFloat(f, 'g', -1, 64)
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return format(d, "f")


def _sorted_keys(m: Mapping[Any, Any]) -> list[Any]:
    """Map keys in Go's printing and range order (sorted; mixed types by text)."""
    try:
        return sorted(m)
    except TypeError:
        return sorted(m, key=str)


def _go_type(v: Any) -> str:
    """The Go type name a JSON-decoded value would have, for error messages."""
    if v is None or v is MISSING:
        return "<nil>"
    for py, go in ((bool, "bool"), (int, "int"), (float, "float64"), (str, "string"),
                   ((list, tuple), "[]interface {}"), (Mapping, "map[string]interface {}")):
        if isinstance(v, py):
            return go
    return type(v).__name__


def _truth(v: Any) -> bool:
    """Go's truth: false, 0, nil, and empty strings, lists and maps are false."""
    if v is None or v is MISSING:
        return False
    if isinstance(v, (bool, int, float, str, bytes, list, tuple, Mapping)):
        return bool(v)
    return True


# --- lexer -------------------------------------------------------------------

@dataclass
class _Token:
    kind: str  # text left right field variable string raw number ident pipe ...
    value: str
    pos: int
    spaced: bool = True  # preceded by white space (so ``$x.Y`` chains, ``$x .Y`` does not)


_ACTION_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>/\*.*?\*/)
  | (?P<badcomment>/\*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<badstring>["`])
  | (?P<declare>:=) | (?P<assign>=) | (?P<pipe>\|) | (?P<comma>,)
  | (?P<lparen>\() | (?P<rparen>\))
  | (?P<variable>\$\w*)
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))
  | (?P<field>(?:\.[^\W\d]\w*)+|\.)
  | (?P<ident>[^\W\d]\w*)
""", re.VERBOSE | re.DOTALL)
_TRIM = " \t\r\n"
_TRIM_CHARS = tuple(_TRIM)


def _lex(src: str) -> list[_Token]:
    """Split ``src`` into text tokens and the tokens of each ``{{ }}`` action."""
    tokens: list[_Token] = []
    i, trim_next = 0, False
    while True:
        start = src.find("{{", i)
        text = src[i:] if start < 0 else src[i:start]
        # "{{- " trims before, " -}}" after; "{{-3}}" is the number -3.
        trim_left = start >= 0 and src[start + 2:start + 3] == "-" and src[start + 3:start + 4] in _TRIM_CHARS
        if trim_next:
            text = text.lstrip(_TRIM)
        if trim_left:
            text = text.rstrip(_TRIM)
        if text:
            tokens.append(_Token("text", text, i))
        if start < 0:
            tokens.append(_Token("eof", "", len(src)))
            return tokens
        tokens.append(_Token("left", "{{", start))
        i, trim_next = _lex_action(src, start + (3 if trim_left else 2), start, tokens)


def _lex_action(src: str, i: int, start: int, tokens: list[_Token]) -> tuple[int, bool]:
    """Lex one action from ``i`` to its ``}}``; return the offset after it and whether it trims."""
    spaced = True
    while True:
        if i >= len(src):
            raise _parse_error(src, start, "unclosed action")
        if src.startswith("}}", i):
            tokens.append(_Token("right", "}}", i))
            return i + 2, False
        if src.startswith("-}}", i) and src[i - 1] in _TRIM:
            tokens.append(_Token("right", "}}", i))
            return i + 3, True
        m = _ACTION_TOKEN.match(src, i)
        if m is None:
            raise _parse_error(src, i, f"unrecognized character in action: U+{ord(src[i]):04X} {src[i]!r}")
        if m.lastgroup == "badstring":
            raise _parse_error(src, i, "unterminated quoted string")
        if m.lastgroup == "badcomment":
            raise _parse_error(src, i, "unclosed comment")
        if m.lastgroup == "number" and re.match(r"[\w.]", src[m.end():m.end() + 1]):
            raise _parse_error(src, i, f"bad number syntax: {src[i:m.end() + 1]!r}")
        if m.lastgroup == "space":
            spaced = True
        else:
            tokens.append(_Token(m.lastgroup or "", m.group(), i, spaced))
            spaced = False
        i = m.end()


def _parse_error(src: str, pos: int, message: str) -> SandboxError:
    line = src.count("\n", 0, pos) + 1
    return SandboxError(f"template parsing error: template: :{line}: {message}", hint=_PARSE_HINT)


# --- syntax tree -------------------------------------------------------------

@dataclass
class _Node:
    pos: int
    end: int


@dataclass
class _Text(_Node):
    text: str


@dataclass
class _Field(_Node):
    names: list[str]  # [] is ``.`` itself


@dataclass
class _Variable(_Node):
    name: str
    names: list[str]  # ``$x.A.B``


@dataclass
class _Chain(_Node):
    node: _Pipeline  # ``(pipeline).A.B``
    names: list[str]


@dataclass
class _Literal(_Node):
    value: Any


@dataclass
class _Ident(_Node):
    name: str  # a function


@dataclass
class _Command(_Node):
    args: list[_Node]


@dataclass
class _Pipeline(_Node):
    decl: list[str]
    assign: bool  # ``$x = ...`` (existing variable) rather than ``$x := ...``
    cmds: list[_Command]


@dataclass
class _Action(_Node):
    pipe: _Pipeline


@dataclass
class _Control(_Node):
    kind: str  # if, with, range
    pipe: _Pipeline
    body: list[_Node] = field(default_factory=list)
    else_body: list[_Node] = field(default_factory=list)


# --- parser ------------------------------------------------------------------

class _Parser:
    """Recursive descent over the tokens; checks functions and variables as Go does."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.tokens = _lex(src)
        self.i = 0
        self.vars = ["$"]  # variables in scope

    def parse(self) -> list[_Node]:
        nodes, stop = self._list()
        if stop is not None:
            raise self._error(self.tokens[self.i - 1], f"unexpected {{{{{stop}}}}}")
        return nodes

    def _peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def _next(self) -> _Token:
        tok = self._peek()
        self.i += 1
        return tok

    def _expect(self, kind: str, context: str) -> _Token:
        tok = self._next()
        if tok.kind != kind:
            raise self._error(tok, f"unexpected {self._describe(tok)} in {context}")
        return tok

    def _describe(self, tok: _Token) -> str:
        return {"eof": "EOF", "right": '"}}"', "left": '"{{"'}.get(tok.kind, repr(tok.value))

    def _error(self, tok: _Token, message: str) -> SandboxError:
        return _parse_error(self.src, tok.pos, message)

    def _list(self) -> tuple[list[_Node], str | None]:
        """Nodes up to EOF (stop None), ``{{end}}`` or ``{{else`` (left just after ``else``)."""
        nodes: list[_Node] = []
        while True:
            tok = self._next()
            if tok.kind == "eof":
                return nodes, None
            if tok.kind == "text":
                nodes.append(_Text(tok.pos, tok.pos + len(tok.value), tok.value))
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
                nodes.append(_Action(pipe.pos, pipe.end, pipe))

    def _control(self) -> _Control:
        """``if``/``with``/``range`` pipeline, body, optional ``else`` (or ``else if``), ``end``."""
        word = self._next()
        scope = len(self.vars)
        node = _Control(word.pos, word.pos, word.value, self._pipeline(word.value))
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

    def _pipeline(self, context: str) -> _Pipeline:
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
        return _Pipeline(start.pos, cmds[-1].end, decl, assign, cmds)

    def _command(self) -> _Command:
        args: list[_Node] = []
        while self._peek().kind not in ("right", "rparen", "pipe", "eof"):
            args.append(self._operand())
        if not args:
            raise self._error(self._peek(), "missing value for command")
        return _Command(args[0].pos, args[-1].end, args)

    def _operand(self) -> _Node:
        """One argument: a term, then any ``.Field`` chained to it without a space."""
        tok = self._next()
        end = tok.pos + len(tok.value)
        node: _Node
        if tok.kind == "field":
            node = _Field(tok.pos, end, [n for n in tok.value.split(".") if n])
        elif tok.kind == "variable":
            if tok.value not in self.vars:
                raise self._error(tok, f'undefined variable "{tok.value}"')
            node = _Variable(tok.pos, end, tok.value, [])
        elif tok.kind in ("string", "raw", "number"):
            node = _Literal(tok.pos, end, self._literal(tok))
        elif tok.kind == "ident" and tok.value in ("true", "false", "nil"):
            node = _Literal(tok.pos, end, {"true": True, "false": False, "nil": None}[tok.value])
        elif tok.kind == "ident":
            if tok.value not in _FUNCS:
                raise self._error(tok, f'function "{tok.value}" not defined')
            node = _Ident(tok.pos, end, tok.value)
        elif tok.kind == "lparen":
            pipe = self._pipeline("parenthesized pipeline")
            node = _Chain(tok.pos, self._expect("rparen", "parenthesized pipeline").pos + 1, pipe, [])
        else:
            raise self._error(tok, f"unexpected {self._describe(tok)} in operand")
        nxt = self._peek()
        chained = nxt.kind == "field" and not nxt.spaced and nxt.value != "."
        if isinstance(node, (_Variable, _Chain)) and chained:
            self._next()
            node.names += [n for n in nxt.value.split(".") if n]
            node.end = nxt.pos + len(nxt.value)
        return node

    def _literal(self, tok: _Token) -> Any:
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


# --- executor ----------------------------------------------------------------

class _Executor:
    """Walks the tree with a dot and a stack of variables, appending output to a list."""

    def __init__(self, src: str, root: Any) -> None:
        self.src = src
        self.vars: list[tuple[str, Any]] = [("$", root)]

    def run(self, nodes: list[_Node], dot: Any, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Action):
                value = self.pipeline(node.pipe, dot)
                if not node.pipe.decl:  # {{$x := ...}} prints nothing
                    out.append(format_value(value))
            elif isinstance(node, _Control):
                scope = len(self.vars)
                if node.kind == "range":
                    self.range(node, dot, out)
                else:
                    value = self.pipeline(node.pipe, dot)
                    if _truth(value):
                        self.run(node.body, value if node.kind == "with" else dot, out)
                    else:
                        self.run(node.else_body, dot, out)
                del self.vars[scope:]

    def range(self, node: _Control, dot: Any, out: list[str]) -> None:
        value = self.pipeline(node.pipe, dot, declare=False)
        if value is None or value is MISSING:
            items: list[tuple[Any, Any]] = []
        elif isinstance(value, Mapping):
            items = [(k, value[k]) for k in _sorted_keys(value)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        else:
            raise self.fail(node.pipe, f"range can't iterate over {format_value(value)}")
        if not items:
            self.run(node.else_body, dot, out)
        for key, elem in items:
            scope = len(self.vars)
            # one variable gets the element, two get key (or index) and element
            self.vars += list(zip(node.pipe.decl, [elem] if len(node.pipe.decl) == 1 else [key, elem]))
            self.run(node.body, elem, out)
            del self.vars[scope:]

    def pipeline(self, pipe: _Pipeline, dot: Any, declare: bool = True) -> Any:
        value = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, value)
        if declare and pipe.assign:
            index = max(i for i, (name, _) in enumerate(self.vars) if name == pipe.decl[0])
            self.vars[index] = (pipe.decl[0], value)
        elif declare and pipe.decl:
            self.vars.append((pipe.decl[0], value))
        return value

    def command(self, cmd: _Command, dot: Any, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, _Ident):
            return self.call(first.name, cmd, cmd.args[1:], dot, final)
        if len(cmd.args) > 1 or final is not _NO_FINAL:
            raise self.fail(first, f"can't give argument to non-function {self.text(first)}")
        return self.arg(first, dot)

    def arg(self, node: _Node, dot: Any) -> Any:
        if isinstance(node, _Field):
            return self.walk(dot, node.names, node)
        if isinstance(node, _Variable):
            value = next(v for name, v in reversed(self.vars) if name == node.name)
            return self.walk(value, node.names, node)
        if isinstance(node, _Chain):
            return self.walk(self.pipeline(node.node, dot), node.names, node)
        if isinstance(node, _Ident):
            return self.call(node.name, node, [], dot, _NO_FINAL)
        assert isinstance(node, _Literal)
        return node.value

    def walk(self, value: Any, names: list[str], node: _Node) -> Any:
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
                raise self.fail(node, f"can't evaluate field {name} in type {_go_type(value)}")
            else:
                value = getattr(value, name)
        return value

    def call(self, name: str, node: _Node, arg_nodes: list[_Node], dot: Any, final: Any) -> Any:
        func, least, most = _FUNCS[name]
        args = [self.arg(a, dot) for a in arg_nodes] + ([] if final is _NO_FINAL else [final])
        if not least <= len(args) <= (most if most >= 0 else len(args)):
            want = least if least == most else f"at least {least}" if most < 0 else f"{least} to {most}"
            raise self.fail(node, f"wrong number of args for {name}: want {want} got {len(args)}")
        try:
            return func(*[None if a is MISSING else a for a in args])
        except (TypeError, ValueError, IndexError, KeyError) as e:
            raise self.fail(node, f"error calling {name}: {e.args[0] if e.args else e}") from None

    def text(self, node: _Node) -> str:
        return self.src[node.pos:node.end]

    def fail(self, node: _Node, message: str) -> SandboxError:
        """Go's ``template: :LINE:COL: executing "" at <NODE>: MESSAGE``."""
        line = self.src.count("\n", 0, node.pos) + 1
        col = node.pos - (self.src.rfind("\n", 0, node.pos) + 1)
        return SandboxError(f'template: :{line}:{col}: executing "" at <{self.text(node)}>: {message}',
                            hint=_EXEC_HINT)


# --- functions ---------------------------------------------------------------

def _want_str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"wrong type for value; expected string; got {_go_type(v)}")
    return v


def _want_int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"wrong type for value; expected int; got {_go_type(v)}")
    return v


def _want_list(v: Any) -> list[Any] | tuple[Any, ...]:
    if not isinstance(v, (list, tuple)):
        raise TypeError(f"wrong type for value; expected []string; got {_go_type(v)}")
    return v


def _json(v: Any) -> str:
    """Go's json.Marshal: compact, map keys sorted, <>& escaped, 1.0 as 1."""
    def plain(x: Any) -> Any:
        if isinstance(x, float) and x.is_integer() and abs(x) < 1e21:
            return int(x)
        if isinstance(x, Mapping):
            return {str(k): plain(x[k]) for k in x}
        if isinstance(x, (list, tuple)):
            return [plain(e) for e in x]
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return plain(dataclasses.asdict(x))
        if hasattr(x, "__dict__"):
            return plain({k: e for k, e in vars(x).items() if not k.startswith("_")})
        return x

    text = json.dumps(plain(v), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _index(item: Any, *keys: Any) -> Any:
    """``index .Map "k"``, ``index .List 0``, several keys walk deeper; a missing key is <no value>."""
    for key in keys:
        if isinstance(item, Mapping):
            item = item.get(key, MISSING)
        elif isinstance(item, (list, tuple, str)):
            i = _want_int(key)
            if not 0 <= i < len(item):
                raise IndexError(f"index out of range: {i}")
            item = item[i]
        elif item is None or item is MISSING:
            raise TypeError("index of untyped nil")
        else:
            raise TypeError(f"can't index item of type {_go_type(item)}")
    return item


def _len(v: Any) -> int:
    if isinstance(v, str):
        return len(v.encode())  # Go counts bytes
    if isinstance(v, (list, tuple, Mapping)):
        return len(v)
    raise TypeError(f"len of {'nil pointer' if v is None else 'type ' + _go_type(v)}")


def _compare(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], bool]:
    """A Go comparison: true never equals 1, and unlike types are an error."""
    def compare(a: Any, b: Any) -> bool:
        if isinstance(a, bool) != isinstance(b, bool):
            raise TypeError("incompatible types for comparison")
        try:
            return bool(op(a, b))
        except TypeError:
            raise TypeError("incompatible types for comparison") from None
    return compare


_PRINTF_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([a-zA-Z%])")


def _printf(template: str, *args: Any) -> str:
    """Go's Sprintf for %v %s %d %q %t %f %x with flags, width and precision."""
    queue = list(args)

    def verb(m: re.Match[str]) -> str:
        flags, width, precision, letter = m.groups()
        if letter == "%":
            return "%"
        if not queue:
            return f"%!{letter}(MISSING)"
        arg = queue.pop(0)
        spec = "%" + flags.replace("#", "") + width + (f".{precision}" if precision else "")
        is_num = isinstance(arg, (int, float)) and not isinstance(arg, bool)
        if letter in "vs":
            return (spec + "s") % format_value(arg)
        if letter == "q" and isinstance(arg, str):
            return (spec + "s") % json.dumps(arg, ensure_ascii=False)
        if letter == "t" and isinstance(arg, bool):
            return (spec + "s") % format_value(arg)
        if letter in "dxX" and is_num and isinstance(arg, int):
            return (spec + letter) % arg
        if letter in "feEgG" and is_num:
            return (spec + letter) % arg
        return f"%!{letter}({_go_type(arg)}={format_value(arg)})"

    text = _PRINTF_VERB.sub(verb, template)
    if queue:
        text += "%!(EXTRA " + ", ".join(f"{_go_type(a)}={format_value(a)}" for a in queue) + ")"
    return text


def _sprint(*args: Any) -> str:
    """Go's Sprint: a space between operands when neither is a string."""
    text = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            text += " "
        text += format_value(a)
    return text


def _and(*args: Any) -> Any:
    return next((a for a in args if not _truth(a)), args[-1])


def _or(*args: Any) -> Any:
    return next((a for a in args if _truth(a)), args[-1])


# name -> (function, least args, most args or -1 for any)
_FUNCS: dict[str, tuple[Callable[..., Any], int, int]] = {
    "json": (_json, 1, 1),
    "upper": (lambda s: _want_str(s).upper(), 1, 1),
    "lower": (lambda s: _want_str(s).lower(), 1, 1),
    # strings.Title: capitalise each word's first letter, leave the rest alone
    "title": (lambda s: re.sub(r"(?<!\w)\w", lambda m: m.group().upper(), _want_str(s)), 1, 1),
    "join": (lambda items, sep: _want_str(sep).join(format_value(x) for x in _want_list(items)), 2, 2),
    "split": (lambda s, sep: list(_want_str(s)) if sep == "" else _want_str(s).split(_want_str(sep)), 2, 2),
    "truncate": (lambda s, n: _want_str(s)[:_want_int(n)], 2, 2),
    "pad": (lambda s, left, right: " " * _want_int(left) + _want_str(s) + " " * _want_int(right), 3, 3),
    "len": (_len, 1, 1),
    "index": (_index, 1, -1),
    "print": (_sprint, 0, -1),
    "println": (lambda *args: " ".join(format_value(a) for a in args) + "\n", 0, -1),
    "printf": (lambda fmt, *args: _printf(_want_str(fmt), *args), 1, -1),
    "not": (lambda v: not _truth(v), 1, 1),
    "and": (_and, 1, -1),
    "or": (_or, 1, -1),
    "eq": (lambda a, *others: any(_compare(operator.eq)(a, b) for b in others), 2, -1),
    "ne": (_compare(operator.ne), 2, 2),
    "lt": (_compare(operator.lt), 2, 2),
    "le": (_compare(operator.le), 2, 2),
    "gt": (_compare(operator.gt), 2, 2),
    "ge": (_compare(operator.ge), 2, 2),
}
