"""The Dockerfile's lexical level: lines, directives, continuations, heredocs, flags.

``parse(text)`` turns a Dockerfile into :class:`Instruction` objects, each with
the file name and the lines it came from, so that every later error can point
at the student's own line.  What it follows (the Dockerfile reference, and
BuildKit's parser where the reference is vague):

* Parser directives (``# escape=`` and ``# syntax=``) count only at the very
  top, before any instruction, empty line or ordinary comment; a repeated
  directive is an error, an unknown one is an ordinary comment.
* A line ending in the escape character continues on the next; comment lines
  and empty lines *inside* a continuation are skipped (Docker warns about the
  empty ones, so we keep a warning too).
* ``RUN``, ``COPY`` and ``ADD`` may carry heredocs (``<<EOF``, ``<<-EOF``
  strips leading tabs, a quoted ``<<"EOF"`` turns off expansion); their bodies
  follow the instruction line up to the delimiter line.
* Flags are the ``--name[=value]`` words right after the keyword.
* Exec (JSON) form: arguments that start with ``[`` and parse as a JSON list
  of strings.  Docker silently treats malformed JSON as shell form (so
  ``CMD ['a']`` runs ``/bin/sh -c "['a']"``); when the text plainly meant JSON
  (``["`` or ``['`` at the start) we refuse it instead and say why, since that
  silent fallback is a classic trap for students.
"""

from __future__ import annotations

import json
import re

from ..errors import DockerfileSyntaxError
from ..plain import Record

#: Every instruction the builder knows.
KEYWORDS = ("FROM", "RUN", "CMD", "ENTRYPOINT", "ENV", "ARG", "LABEL", "EXPOSE", "ADD", "COPY",
            "WORKDIR", "USER", "VOLUME", "SHELL", "STOPSIGNAL", "HEALTHCHECK", "ONBUILD", "MAINTAINER")
HEREDOC_KEYWORDS = ("RUN", "COPY", "ADD")

_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = ("escape", "syntax", "check")
_HEREDOC_RE = re.compile(r"^(\d*)<<(-?)(.+)$")
_LOOKS_JSON_RE = re.compile(r"""^\[\s*["'\u201c\u2018]""")


class Heredoc(Record):
    """One ``<<NAME`` body: ``content`` ends with a newline; ``expand`` is False when quoted."""
    _fields = ("name", "content", "expand", "chomp", "fd")

    def __init__(self, name: str, content: str, expand: bool = True, chomp: bool = False,
                 fd: int | None = None) -> None:
        self.name = name
        self.content = content
        self.expand = expand
        self.chomp = chomp
        self.fd = fd


class Instruction(Record):
    """One instruction as written, continuations joined."""
    _fields = ("keyword", "rest", "flags", "line", "end_line", "filename", "heredocs", "original")

    def __init__(self, keyword: str, rest: str, flags: dict[str, str | None], line: int, end_line: int,
                 filename: str = "Dockerfile", heredocs: list[Heredoc] | None = None, original: str = "") -> None:
        self.keyword = keyword          #: upper case: "RUN"
        self.rest = rest                #: what follows the keyword and the flags
        self.flags = flags              #: --name=value (None for a bare --name)
        self.line = line                #: first line (1-based)
        self.end_line = end_line        #: last line, heredoc bodies included
        self.filename = filename
        self.heredocs: list[Heredoc] = [] if heredocs is None else heredocs
        self.original = original        #: the instruction line as the user wrote it (joined)

    @property
    def where(self) -> str:
        return f"{self.filename}:{self.line}"

    def error(self, message: str, hint: str | None = None) -> DockerfileSyntaxError:
        return DockerfileSyntaxError(message, filename=self.filename, line=self.line, hint=hint)

    def exec_form(self) -> list[str] | None:
        """The JSON list when the arguments are in exec form, else None (shell form)."""
        return json_form(self.rest, self)

    def __str__(self) -> str:
        return self.original or f"{self.keyword} {self.rest}".strip()


class Dockerfile(Record):
    """A parsed Dockerfile: its instructions, parser directives and warnings."""
    _fields = ("instructions", "filename", "escape", "directives", "warnings")

    def __init__(self, instructions: list[Instruction], filename: str = "Dockerfile", escape: str = "\\",
                 directives: dict[str, str] | None = None, warnings: list[str] | None = None) -> None:
        self.instructions = instructions
        self.filename = filename
        self.escape = escape
        self.directives: dict[str, str] = {} if directives is None else directives
        self.warnings: list[str] = [] if warnings is None else warnings


def json_form(rest: str, where: Instruction) -> list[str] | None:
    text = rest.strip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        if _LOOKS_JSON_RE.match(text):
            quotes = "'" in text[:3] or "\u201c" in text or "\u2018" in text
            raise where.error(
                f"{where.keyword} {text}: this looks like exec (JSON) form but is not valid JSON ({e.msg})",
                hint='exec form needs straight double quotes, e.g. ["echo", "hi"]' if quotes
                else 'write a JSON list of strings, e.g. ["echo", "hi"], or drop the brackets for shell form'
            ) from None
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        if _LOOKS_JSON_RE.match(text):
            raise where.error(f"{where.keyword} {text}: exec form must be a JSON list of strings",
                              hint='e.g. ["sleep", "10"] (numbers in quotes too)')
        return None
    return value


def parse(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Split ``text`` into instructions; raises DockerfileSyntaxError with file:line."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [l[:-1] if l.endswith("\r") else l for l in lines]
    df = Dockerfile([], filename)
    i = _directives(lines, df)
    cont_re = re.compile(re.escape(df.escape) + r"[ \t]*$")
    n = len(lines)
    while i < n:
        stripped = lines[i].lstrip()
        i += 1
        start = i
        if not stripped or stripped.startswith("#"):
            continue
        line, i = _logical_line(lines, i, stripped, cont_re, df, start)
        ins = _instruction(line, start, i, filename, df.escape)
        if ins.keyword in HEREDOC_KEYWORDS:
            for doc in _heredoc_markers(ins.rest, ins):
                i = _heredoc_body(lines, i, doc, filename, start)
                ins.heredocs.append(doc)
            ins.end_line = i
        df.instructions.append(ins)
    return df


def _directives(lines: list[str], df: Dockerfile) -> int:
    """Read the parser directives (``# escape=``, ...) at the very top into ``df``; the next line's index."""
    i = 0
    while i < len(lines):
        m = _DIRECTIVE_RE.match(lines[i].strip()) if lines[i].lstrip().startswith("#") else None
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key not in _KNOWN_DIRECTIVES:
            break
        if key in df.directives:
            raise DockerfileSyntaxError(f"only one {key} parser directive can be used",
                                        filename=df.filename, line=i + 1)
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileSyntaxError(f"invalid escape token {value!r}: it must be \\ or `",
                                            filename=df.filename, line=i + 1)
            df.escape = value
        df.directives[key] = value
        i += 1
    return i


def _logical_line(lines: list[str], i: int, first: str, cont_re: re.Pattern[str], df: Dockerfile,
                  start: int) -> tuple[str, int]:
    """``first`` joined with its continuation lines from ``lines[i]`` on: (the line, the next index).

    Comment lines inside a continued instruction are dropped, and so are empty
    ones, with Docker's warning.
    """
    line, done = _trim_continuation(first, cont_re)
    empty_continuation = False
    while not done and i < len(lines):
        raw = lines[i]
        i += 1
        if raw.lstrip().startswith("#"):
            continue
        if not raw.strip():
            empty_continuation = True
            continue
        part, done = _trim_continuation(raw, cont_re)
        line += part
    if empty_continuation:
        df.warnings.append(f"{df.filename}:{start}: empty continuation line (an empty line inside a "
                           "continued instruction is skipped; Docker warns it will become an error)")
    return line, i


def _heredoc_body(lines: list[str], i: int, doc: Heredoc, filename: str, start: int) -> int:
    """Read the here-document ``doc`` from ``lines[i]`` on into ``doc.content``; the next line's index."""
    body: list[str] = []
    while i < len(lines):
        raw = lines[i]
        i += 1
        candidate = raw.lstrip("\t") if doc.chomp else raw
        if candidate == doc.name:
            doc.content = "".join(l + "\n" for l in body)
            return i
        body.append(candidate)
    raise DockerfileSyntaxError(
        f"unterminated heredoc <<{doc.name}: no line holding only {doc.name} "
        f"after line {start}", filename=filename, line=start,
        hint=f"end the here-document with a line that is exactly {doc.name}")


def _trim_continuation(line: str, cont_re: re.Pattern[str]) -> tuple[str, bool]:
    m = cont_re.search(line)
    if m:
        return line[:m.start()], False
    return line, True


def _instruction(line: str, start: int, end: int, filename: str, escape: str) -> Instruction:
    text = line.strip()
    parts = re.split(r"\s+", text, maxsplit=1)
    keyword = parts[0].upper()
    rest = parts[1] if len(parts) > 1 else ""
    ins = Instruction(keyword, rest, {}, start, end, filename, original=text)
    if keyword not in KEYWORDS:
        close = [k for k in KEYWORDS if _close(keyword, k)]
        raise ins.error(f"unknown instruction: {parts[0]}",
                        hint=f"did you mean {close[0]}?" if close
                        else "instructions are " + ", ".join(KEYWORDS))
    rest, flags = _extract_flags(rest, ins)
    ins.rest, ins.flags = rest, flags
    return ins


def _close(word: str, keyword: str) -> bool:
    """A one-letter typo (CPOY, RUNN, EVN): close enough to suggest."""
    if abs(len(word) - len(keyword)) > 1:
        return False
    if sorted(word) == sorted(keyword):
        return True
    a, b = (word, keyword) if len(word) <= len(keyword) else (keyword, word)
    for k in range(len(b)):
        if b[:k] + b[k + 1:] == a or (len(a) == len(b) and b[:k] + b[k + 1:] == a[:k] + a[k + 1:]):
            return True
    return False


def _extract_flags(rest: str, ins: Instruction) -> tuple[str, dict[str, str | None]]:
    """Leading ``--name=value`` words; quotes in values are removed."""
    flags: dict[str, str | None] = {}
    pos = 0
    n = len(rest)
    while True:
        while pos < n and rest[pos].isspace():
            pos += 1
        if not rest.startswith("--", pos):
            return rest[pos:], flags
        word: list[str] = []
        quote = ""
        while pos < n and (quote or not rest[pos].isspace()):
            ch = rest[pos]
            if quote:
                if ch == quote:
                    quote = ""
                else:
                    word.append(ch)
            elif ch in "'\"":
                quote = ch
            else:
                word.append(ch)
            pos += 1
        if quote:
            raise ins.error(f"unterminated {quote} quote in flag {''.join(word)}")
        token = "".join(word)
        if token == "--":
            return rest[pos:].lstrip(), flags
        name, eq, value = token[2:].partition("=")
        if not name:
            raise ins.error(f"malformed flag {token!r}")
        if name in flags and name != "mount":
            raise ins.error(f"duplicate flag specified: --{name}")
        if name == "mount" and name in flags:
            flags[name] = f"{flags[name]}\n{value}"
        else:
            flags[name] = value if eq else None


def _heredoc_markers(rest: str, ins: Instruction) -> list[Heredoc]:
    out: list[Heredoc] = []
    for word in _raw_words(rest):
        m = _HEREDOC_RE.match(word)
        if not m:
            continue
        name = m.group(3)
        quoted = False
        if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"":
            name, quoted = name[1:-1], True
        if not name or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            continue
        out.append(Heredoc(name, "", expand=not quoted, chomp=m.group(2) == "-",
                           fd=int(m.group(1)) if m.group(1) else None))
    return out


def _raw_words(text: str) -> list[str]:
    """Whitespace-separated words, quotes kept (only to find heredoc markers)."""
    words: list[str] = []
    cur: list[str] = []
    quote = ""
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur.append(ch)
        elif ch.isspace():
            if cur:
                words.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if cur:
        words.append("".join(cur))
    return words


def split_words(rest: str, escape: str = "\\") -> list[str]:
    """Docker's ``parseWords``: split on whitespace outside quotes, keeping quotes and
    escapes in the words (expansion removes them later).  Used for ENV/LABEL/ARG."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    blank_ok = False
    in_word = False
    i, n = 0, len(rest)
    while i < n:
        ch = rest[i]
        if not quote and ch.isspace():
            if in_word and (blank_ok or word):
                words.append("".join(word))
            word, blank_ok, in_word = [], False, False
            i += 1
            continue
        in_word = True
        if quote and ch == quote:
            quote = ""
        elif not quote and ch in "'\"":
            quote, blank_ok = ch, True
        elif ch == escape and quote != "'":
            # The escape and the character after it stay in the word (expansion reads them
            # later); an escape at the very end is dropped.
            if i + 1 == n:
                break
            word.append(ch)
            i += 1
            ch = rest[i]
        word.append(ch)
        i += 1
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words
