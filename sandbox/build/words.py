"""Docker's variable substitution and word splitting for Dockerfile arguments.

Docker does not hand ``COPY $SRC /app`` to a shell: its builder expands
variables itself, with a small lexer that mimics sh.  The rules reproduced
here (from the Dockerfile reference and BuildKit's behaviour):

* ``$NAME`` and ``${NAME}``; ``${NAME:-word}`` (word when unset *or* empty),
  ``${NAME-word}`` (word when unset), ``${NAME:+word}`` (word when set and not
  empty), ``${NAME+word}`` (word when set), ``${NAME:?message}``/``${NAME?message}``
  (an error when unset); the word may itself hold variables.
* single quotes keep everything literal; inside double quotes the escape
  character only escapes ``"``, ``$`` and itself; outside quotes it escapes any
  character (``\\$HOME`` stays ``$HOME``).  The escape character is ``\\`` or
  the one set by ``# escape=``.
* an unset variable expands to the empty string; ``$`` not followed by a name
  stays a ``$``.

Errors are :class:`SubstitutionError` (a ``ValueError``); the parser turns
them into :class:`~sandbox.errors.DockerfileSyntaxError` with the line.
"""

from __future__ import annotations

from collections.abc import Mapping


class SubstitutionError(ValueError):
    """A malformed ``${...}``, an unterminated quote, or a ``${VAR:?message}`` on an unset VAR."""


_SPECIAL = set("@*#?-$!0")


class _Pieces:
    """What :meth:`_Lexer.run` builds: the expanded text, and the words it splits into.

    Text from quotes and escapes never splits, nor does a plain character that
    is not blank; whitespace outside quotes, also inside the value of an
    expansion, ends the current word.
    """

    def __init__(self) -> None:
        self.text: list[str] = []
        self.words: list[str] = []
        self.cur: list[str] = []
        self.in_word = False

    def keep(self, piece: str) -> None:
        """``piece`` joins the current word as it is."""
        self.text.append(piece)
        self.cur.append(piece)
        self.in_word = True

    def blank(self, ch: str) -> None:
        """Whitespace outside quotes: kept in the text, it ends the current word."""
        self._end_word()
        self.text.append(ch)

    def expansion(self, value: str) -> None:
        """A ``$VAR``'s value splits into words as plain text does."""
        self.text.append(value)
        for c in value:
            if c.isspace():
                self._end_word()
            else:
                self.cur.append(c)
                self.in_word = True

    def _end_word(self) -> None:
        if self.in_word:
            self.words.append("".join(self.cur))
            self.cur, self.in_word = [], False

    def done(self) -> tuple[str, list[str]]:
        self._end_word()
        return "".join(self.text), self.words


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str, *, raw_quotes: bool = False) -> None:
        self.text, self.env, self.escape, self.raw_quotes = text, env, escape, raw_quotes
        self.pos = 0
        self.used: set[str] = set()

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    def run(self, stop: str = "") -> tuple[str, list[str]]:
        """(the expanded text, the words it splits into) up to ``stop`` (consumed) or the end."""
        out = _Pieces()
        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return out.done()
            if ch in "'\"" and self.raw_quotes:
                self.next()
                out.keep(ch)
            elif ch == "'":
                out.keep(self.single_quote())
            elif ch == '"':
                out.keep(self.double_quote())
            elif ch == "$":
                out.expansion(self.dollar())
            elif not self._plain(out):
                break
        if stop:
            raise SubstitutionError(f"unterminated: no closing {stop} before the end")
        return out.done()

    def _plain(self, out: _Pieces) -> bool:
        """One character outside quotes and ``$`` (an escape takes the next one as it is);
        False when an escape ends the text."""
        ch = self.next()
        if ch == self.escape:
            if self.raw_quotes and self.peek() not in ("$", self.escape):
                out.keep(ch)  # a heredoc keeps \n, \t ... as written
                return True
            ch = self.next()
            if not ch:
                return False
            out.keep(ch)
        elif ch.isspace():
            out.blank(ch)
        else:
            out.keep(ch)
        return True

    def single_quote(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.next()
            if not ch:
                raise SubstitutionError("unterminated single quote: no closing ' before the end")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise SubstitutionError("unterminated double quote: no closing \" before the end")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.escape:
                nxt = self.peek()
                if not nxt:
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        ch = self.peek()
        if ch.isdigit():
            out = []
            while self.peek().isdigit():
                out.append(self.next())
            return "".join(out)
        if ch in _SPECIAL and ch != "":
            return self.next()
        out = []
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            out.append(self.next())
        return "".join(out)

    def lookup(self, name: str) -> str | None:
        self.used.add(name)
        return self.env.get(name)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            return self.lookup(name) or ""
        self.next()
        if not self.peek():
            raise SubstitutionError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise SubstitutionError("syntax error: bad substitution")
        name = self.name()
        if not name:
            raise SubstitutionError("syntax error: bad substitution")
        ch = self.next()
        if not ch:
            raise SubstitutionError("syntax error: missing '}'")
        if ch == "}":
            return self.lookup(name) or ""
        colon = ch == ":"
        modifier = self.next() if colon else ch
        if modifier not in ("-", "+", "?"):
            shown = modifier or "end of text"
            raise SubstitutionError(f"unsupported modifier ({':' if colon else ''}{shown}) in substitution "
                                    "(use ${VAR}, ${VAR:-default}, ${VAR:+alternative} or ${VAR:?message})")
        start = self.pos
        try:
            word, _ = self.run(stop="}")
        except SubstitutionError:
            self.pos = start
            raise SubstitutionError("syntax error: missing '}'") from None
        value = self.lookup(name)
        empty = value is None or (colon and value == "")
        if modifier == "-":
            return word if empty else (value or "")
        if modifier == "+":
            return "" if empty else word
        if empty:
            default = "is not allowed to be empty" if value == "" else "is not allowed to be unset"
            raise SubstitutionError(f"{name}: {word or default}")
        return value or ""


def expand(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word: quotes removed, escapes and variables processed, whitespace kept."""
    return _Lexer(text, env, escape).run()[0]


def expand_heredoc(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """A heredoc body with an unquoted delimiter: variables expand, quotes stay as written."""
    return _Lexer(text, env, escape, raw_quotes=True).run()[0]


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Split into words on unquoted whitespace, after expansion (``EXPOSE $PORTS``)."""
    return _Lexer(text, env, escape).run()[1]


def variables_used(text: str, env: Mapping[str, str], escape: str = "\\") -> set[str]:
    """The names ``text`` refers to (for the cache: which build arguments a step uses)."""
    lexer = _Lexer(text, env, escape)
    try:
        lexer.run()
    except SubstitutionError:
        pass
    return lexer.used
