"""The Dockerfile parser, the variable expander and .dockerignore: rules, corpus, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.build import words
from sandbox.build.context import DockerIgnore
from sandbox.build.parser import parse, split_words
from sandbox.build.stages import name_values, plan
from sandbox.errors import DockerfileSyntaxError, SandboxError
from tests.dockerfiles import CASES, Syntax


# ---------------------------------------------------------------------------- corpus

def test_corpus_is_big_enough():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [c for c in CASES if isinstance(c.expect, Syntax) and not c.expect.at_build],
                         ids=lambda c: c.name)
def test_corpus_syntax_errors(case):
    with pytest.raises(DockerfileSyntaxError) as info:
        plan(parse(case.text, "Dockerfile"))
    err = info.value
    assert case.expect.text in str(err)
    assert err.line == case.expect.line
    prefix = f"Dockerfile:{case.expect.line}: " if case.expect.line else "Dockerfile: "
    assert str(err).startswith(prefix)


@pytest.mark.parametrize("case", [c for c in CASES if not isinstance(c.expect, Syntax) or c.expect.at_build],
                         ids=lambda c: c.name)
def test_corpus_others_parse(case):
    p = plan(parse(case.text))
    assert p.stages


# ---------------------------------------------------------------------------- lines

def test_lines_continuations_comments_and_empty_lines():
    df = parse("FROM busybox\nRUN a \\\n  # comment\n\n  b \\\n  c\nCMD x\n")
    run = df.instructions[1]
    assert (run.keyword, run.rest, run.line, run.end_line) == ("RUN", "a   b   c", 2, 6)
    assert df.instructions[2].line == 7
    assert any("empty continuation line" in w for w in df.warnings)


def test_escape_directive_and_windows_like_paths():
    df = parse("# escape=`\nFROM busybox\nCOPY C:\\a `\n  /b\n")
    assert df.escape == "`"
    assert df.instructions[1].rest == "C:\\a   /b"


def test_directive_only_at_top():
    df = parse("FROM busybox\n# escape=`\nRUN a \\\n b\n")
    assert df.escape == "\\" and df.instructions[1].rest == "a  b"
    assert parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\n").directives == {
        "syntax": "docker/dockerfile:1", "escape": "`"}
    # an empty line ends the directives
    assert parse("\n# escape=`\nFROM x\n").escape == "\\"


def test_flags_and_exec_form():
    ins = parse('COPY --from=build --chown="1:2" --link ["a b", "/c"]\n').instructions[0]
    assert ins.flags == {"from": "build", "chown": "1:2", "link": None}
    assert ins.exec_form() == ["a b", "/c"]
    run = parse("RUN [ -f /x ] && echo yes\n").instructions[0]
    assert run.exec_form() is None   # a shell test, not JSON


def test_heredocs():
    df = parse("FROM b\nRUN <<EOF\necho 1\necho 2\nEOF\nCOPY <<-\"A\" <<B /d/\n\tone $X\n\tA\ntwo\nB\nCMD x\n")
    run, copy, cmd = df.instructions[1:]
    assert run.heredocs[0].content == "echo 1\necho 2\n" and run.end_line == 5
    assert [(h.name, h.content, h.expand, h.chomp) for h in copy.heredocs] == [
        ("A", "one $X\n", False, True), ("B", "two\n", True, False)]
    assert cmd.line == 11


def test_unknown_instruction_suggests():
    with pytest.raises(DockerfileSyntaxError) as info:
        parse("FROM b\nCPOY a b\n")
    assert "did you mean COPY" in str(info.value) and info.value.line == 2


def test_name_values_legacy_and_modern():
    ins = parse('ENV A 1 2 3\n').instructions[0]
    assert name_values(ins) == [("A", "1 2 3")]
    ins = parse('ENV A="x y" B=z\\ w\n').instructions[0]
    assert name_values(ins) == [("A", '"x y"'), ("B", "z\\ w")]
    assert split_words('a "b c" d\\ e') == ["a", '"b c"', "d\\ e"]


# ---------------------------------------------------------------------------- words

ENV = {"A": "1", "EMPTY": "", "S": "x y"}


@pytest.mark.parametrize("text,expected", [
    ("$A", "1"), ("${A}", "1"), ("${A}b", "1b"), ("$Ab", ""), ("${NO:-d}", "d"), ("${EMPTY:-d}", "d"),
    ("${EMPTY-d}", ""), ("${NO-d}", "d"), ("${A:+y}", "y"), ("${NO:+y}", ""), ("${EMPTY+y}", "y"),
    ("${NO:-$A$A}", "11"), ("'$A'", "$A"), ('"$A"', "1"), ('"\\$A"', "$A"), ("\\$A", "$A"),
    ("a\\ b", "a b"), ('"a\\b"', "a\\b"), ("$", "$"), ("$1", ""), ("${A:-x}y", "1y"),
])
def test_expand(text, expected):
    assert words.expand(text, ENV) == expected


@pytest.mark.parametrize("text", ["${A", "${}", "${:A}", "${A:x}", "'open", '"open', "${NO:?need it}"])
def test_expand_errors(text):
    with pytest.raises(words.SubstitutionError):
        words.expand(text, ENV)


def test_expand_words_and_used():
    assert words.expand_words('$S "c d" e', ENV) == ["x", "y", "c d", "e"]
    assert words.variables_used("$A ${B:-$C} '$D'", ENV) == {"A", "B", "C"}
    assert words.expand_heredoc('a="$A" \\n \\$A', ENV) == 'a="1" \\n $A'
    assert words.expand("`$A", ENV, escape="`") == "$A"


# ---------------------------------------------------------------------------- .dockerignore

@pytest.mark.parametrize("path,excluded", [
    ("a.md", True), ("README.md", False), ("sub/a.md", False), ("x/y/z.pyc", True), ("z.pyc", True),
    ("build", True), ("build/deep/file", True), ("secret", True), ("docs/tmp/x", True),
    ("docs/a/b/tmp", True), ("docs/tmpx", False), ("keep/this", False), ("a?c", True), ("abc", True),
])
def test_dockerignore(path, excluded):
    ignore = DockerIgnore(["# comment", "*.md", "!README.md", "**/*.pyc", "build/", "/secret",
                           "docs/**/tmp", "a[b?]c", "", "  "])
    assert ignore.excluded(path) is excluded


def test_dockerignore_last_match_wins():
    ignore = DockerIgnore(["!a.txt", "*.txt"])
    assert ignore.excluded("a.txt")
    ignore = DockerIgnore(["*", "!src", "src/*.tmp"])
    assert not ignore.excluded("src/a.py") and ignore.excluded("src/a.tmp") and ignore.excluded("x")


# ---------------------------------------------------------------------------- fuzzing

_ALPHABET = st.sampled_from(list("FROMRUNCOPYENVARGabc$:{}[]\"'\\`#=<-/ \t\n*?!@.0123456789") +
                            ["FROM ", "RUN ", "COPY ", "ENV ", "ARG ", "<<EOF", "EOF", "${", "--from=",
                             "ONBUILD ", "HEALTHCHECK ", "CMD [", "# escape=`\n", "\\\n", " AS "])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_fuzz_parser_raises_only_documented_errors(text):
    try:
        plan(parse(text))
    except DockerfileSyntaxError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_fuzz_parser_any_text(text):
    try:
        plan(parse(text))
    except DockerfileSyntaxError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(list("$A{}:-+?'\"\\ x")), max_size=40).map("".join))
def test_fuzz_expand(text):
    for fn in (words.expand, words.expand_words, words.expand_heredoc):
        try:
            fn(text, ENV)
        except words.SubstitutionError:
            pass


def test_errors_are_sandbox_errors():
    assert issubclass(DockerfileSyntaxError, SandboxError)
