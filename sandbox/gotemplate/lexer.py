"""The lexer: template text into text tokens and the tokens of each ``{{ }}`` action.

Trimming (``{{-`` and ``-}}``) happens here, on the text tokens, as in Go;
errors carry Go's ``template parsing error`` wording and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SandboxError

_PARSE_HINT = "see Go text/template syntax, e.g. {{.Id}} or {{json .Config}}"


@dataclass
class Token:
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


def lex(src: str) -> list[Token]:
    """Split ``src`` into text tokens and the tokens of each ``{{ }}`` action."""
    tokens: list[Token] = []
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
            tokens.append(Token("text", text, i))
        if start < 0:
            tokens.append(Token("eof", "", len(src)))
            return tokens
        tokens.append(Token("left", "{{", start))
        i, trim_next = _lex_action(src, start + (3 if trim_left else 2), start, tokens)


def _lex_action(src: str, i: int, start: int, tokens: list[Token]) -> tuple[int, bool]:
    """Lex one action from ``i`` to its ``}}``; return the offset after it and whether it trims."""
    spaced = True
    while True:
        if i >= len(src):
            raise parse_error(src, start, "unclosed action")
        if src.startswith("}}", i):
            tokens.append(Token("right", "}}", i))
            return i + 2, False
        if src.startswith("-}}", i) and src[i - 1] in _TRIM:
            tokens.append(Token("right", "}}", i))
            return i + 3, True
        m = _ACTION_TOKEN.match(src, i)
        if m is None:
            raise parse_error(src, i, f"unrecognized character in action: U+{ord(src[i]):04X} {src[i]!r}")
        if m.lastgroup == "badstring":
            raise parse_error(src, i, "unterminated quoted string")
        if m.lastgroup == "badcomment":
            raise parse_error(src, i, "unclosed comment")
        if m.lastgroup == "number" and re.match(r"[\w.]", src[m.end():m.end() + 1]):
            raise parse_error(src, i, f"bad number syntax: {src[i:m.end() + 1]!r}")
        if m.lastgroup == "space":
            spaced = True
        else:
            tokens.append(Token(m.lastgroup or "", m.group(), i, spaced))
            spaced = False
        i = m.end()


def parse_error(src: str, pos: int, message: str) -> SandboxError:
    line = src.count("\n", 0, pos) + 1
    return SandboxError(f"template parsing error: template: :{line}: {message}", hint=_PARSE_HINT)
