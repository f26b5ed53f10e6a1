"""Go text/template as ``inspect -f`` and ``--format`` use it: same output as Go for the same data.

Expected outputs are what Go's text/template (with Docker's extra functions)
prints for the same template on the same JSON-decoded data.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sandbox.errors import SandboxError
from sandbox.gotemplate import Template, format_value, render

INFO = {
    "Id": "4f66ad9a0b2e",
    "Name": "/web",
    "Created": "2024-01-02T03:04:05Z",
    "Config": {
        "Cmd": ["sh", "-c", "echo hi"],
        "Entrypoint": None,
        "Env": ["PATH=/bin", "X=<a&b>"],
        "Labels": {"b": "2", "a": "1"},
        "ExposedPorts": {},
    },
    "State": {"Running": True, "Paused": False, "Pid": 42, "ExitCode": 0, "Status": "running"},
    "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}},
    "Size": 1000000.0,
    "Ratio": 0.5,
    "Mounts": [],
}

RENDERS = {
    # text and fields
    "plain text": "plain text",
    "{{.Id}}": "4f66ad9a0b2e",
    "id={{.Id}} name={{.Name}}": "id=4f66ad9a0b2e name=/web",
    "{{.Config.Cmd}}": "[sh -c echo hi]",
    "{{.State.Running}}": "true",
    "{{.State.Paused}}": "false",
    "{{.State.Pid}}": "42",
    "{{.NetworkSettings.Networks.bridge.IPAddress}}": "172.17.0.2",
    "{{.Missing}}": "<no value>",
    "{{.Missing.Deeper}}": "<no value>",
    "{{.Config.Entrypoint}}": "<nil>",
    "{{.Config.Labels}}": "map[a:1 b:2]",
    "{{.Config.ExposedPorts}}": "map[]",
    "{{.Mounts}}": "[]",
    "{{.Size}}": "1e+06",
    "{{.Ratio}}": "0.5",
    "{{.State}}": "map[ExitCode:0 Paused:false Pid:42 Running:true Status:running]",
    # trimming and comments
    "a  {{- .State.Pid -}}  b": "a42b",
    "a\n  {{- .State.Pid}}\n": "a42\n",
    "{{.State.Pid -}}\n\t b": "42b",
    "{{/* a comment */}}x": "x",
    "a {{- /* trimmed */ -}} b": "ab",
    "{{-3}}": "-3",
    # literals
    '{{"quoted\\tstring"}}': "quoted\tstring",
    "{{`raw\\n`}}": "raw\\n",
    "{{1.5}} {{0x10}} {{true}} {{nil}}": "1.5 16 true <nil>",
    # functions and pipelines
    "{{json .Config.Labels}}": '{"a":"1","b":"2"}',
    "{{json .Config}}": ('{"Cmd":["sh","-c","echo hi"],"Entrypoint":null,"Env":["PATH=/bin",'
                         '"X=\\u003ca\\u0026b\\u003e"],"ExposedPorts":{},"Labels":{"a":"1","b":"2"}}'),
    "{{json .Size}}": "1000000",
    "{{json .Missing}}": "null",
    "{{.Config.Env | json}}": '["PATH=/bin","X=\\u003ca\\u0026b\\u003e"]',
    "{{.Name | upper}}": "/WEB",
    "{{upper .State.Status}} {{lower \"ABC\"}}": "RUNNING abc",
    '{{title "hello wide_world 1st"}}': "Hello Wide_world 1st",
    '{{join .Config.Cmd ","}}': "sh,-c,echo hi",
    '{{split "a:b:c" ":"}}': "[a b c]",
    '{{index (split .Created "T") 0}}': "2024-01-02",
    "{{len .Config.Cmd}} {{len .Config.Labels}} {{len .Id}}": "3 2 12",
    '{{index .Config.Labels "a"}}': "1",
    '{{index .Config.Labels "zz"}}': "<no value>",
    "{{index .Config.Cmd 2}}": "echo hi",
    '{{index .NetworkSettings.Networks "bridge" "IPAddress"}}': "172.17.0.2",
    "{{println .Id .State.Pid}}": "4f66ad9a0b2e 42\n",
    '{{print "a" "b" 1 2}}': "ab1 2",
    '{{printf "%s/%d" .Name .State.Pid}}': "/web/42",
    '{{printf "%-6s|%5d|%v" "ab" 7 .Config.Cmd}}': "ab    |    7|[sh -c echo hi]",
    '{{printf "%q %t %.2f %x 100%%" .Name true .Ratio 255}}': '"/web" true 0.50 ff 100%',
    '{{printf "%d %s"}}': "%!d(MISSING) %!s(MISSING)",
    '{{printf "%d" "x"}}': "%!d(string=x)",
    '{{printf "x" 1}}': "x%!(EXTRA int=1)",
    '{{.State.Pid | printf "pid %d"}}': "pid 42",
    '{{truncate .Id 4}}|{{pad "x" 1 2}}|': "4f66| x  |",
    '{{(index .Config.Labels "a") | printf "<%s>"}}': "<1>",
    "{{(index .NetworkSettings.Networks \"bridge\").IPAddress}}": "172.17.0.2",
    # comparisons and logic
    '{{eq .State.Status "running"}} {{ne .State.Pid 42}} {{lt 1 2}} {{ge 1.5 2}}': "true false true false",
    '{{eq .State.Status "exited" "running"}}': "true",
    "{{not .State.Running}} {{and 1 0 2}} {{or 0 \"\" \"x\"}} {{and 1 2}}": "false 0 x 2",
    # if / with / range / else
    "{{if .State.Running}}up{{else}}down{{end}}": "up",
    "{{if .State.Paused}}paused{{end}}": "",
    "{{if .State.ExitCode}}bad{{else if .State.Paused}}p{{else}}ok{{end}}": "ok",
    "{{if .Mounts}}m{{else}}no mounts{{end}}": "no mounts",
    "{{if .Config.ExposedPorts}}p{{else}}none{{end}}": "none",
    "{{if .Missing}}y{{else}}n{{end}}": "n",
    '{{if ""}}y{{else}}n{{end}}{{if "x"}}y{{end}}{{if 0.0}}y{{else}}n{{end}}': "nyn",
    "{{with .State}}{{.Pid}}/{{$.Name}}{{end}}": "42//web",
    "{{with .Missing}}x{{else}}no{{end}}": "no",
    "{{with $s := .State}}{{$s.Status}}{{end}}": "running",
    "{{range .Config.Cmd}}[{{.}}]{{end}}": "[sh][-c][echo hi]",
    "{{range $i, $c := .Config.Cmd}}{{$i}}={{$c}};{{end}}": "0=sh;1=-c;2=echo hi;",
    "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}": "a=1 b=2 ",
    "{{range $v := .Config.Labels}}{{$v}}{{end}}": "12",
    "{{range .Config.Labels}}{{.}}{{end}}": "12",
    "{{range .Mounts}}m{{else}}none{{end}}": "none",
    "{{range .Missing}}m{{else}}none{{end}}": "none",
    "{{range 3}}{{.}}{{end}}": "012",
    "{{range $n, $net := .NetworkSettings.Networks}}{{$n}}:{{$net.IPAddress}}{{end}}": "bridge:172.17.0.2",
    # variables
    "{{$x := .State.Pid}}pid={{$x}}": "pid=42",
    "{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}": "2",
    "{{$.Id}} {{$}}": f"4f66ad9a0b2e {format_value(INFO)}",
    "{{range .Config.Cmd}}{{$.Name}}{{end}}": "/web/web/web",
}


@pytest.mark.parametrize("template", list(RENDERS))
def test_render(template: str) -> None:
    assert render(template, INFO) == RENDERS[template]


@dataclass
class Container:
    Id: str
    State: dict[str, object]
    _secret: str = "hidden"


def test_objects_are_read_through_attributes() -> None:
    c = Container(Id="abc", State={"Running": False})
    assert render("{{.Id}} {{.State.Running}} {{json .}}", c) == \
        'abc false {"Id":"abc","State":{"Running":false},"_secret":"hidden"}'
    with pytest.raises(SandboxError, match="can't evaluate field Nope in type Container"):
        render("{{.Nope}}", c)
    with pytest.raises(SandboxError, match="can't evaluate field _secret"):
        render("{{._secret}}", c)


def test_the_data_itself_and_scalars() -> None:
    assert render("{{.}}", ["a", 1, None, True]) == "[a 1 <nil> true]"
    assert render("{{.}}", None) == "<nil>"
    assert render("{{.}}", "x") == "x"
    assert render("{{.}}", {1: "a", 2: "b"}) == "map[1:a 2:b]"


def test_template_parses_once_and_renders_many_rows() -> None:
    template = Template("{{.Name}}\t{{.Size}}")
    rows = [{"Name": "a", "Size": 1}, {"Name": "b", "Size": 2}]
    assert [template.render(r) for r in rows] == ["a\t1", "b\t2"]


PARSE_ERRORS = {
    "{{.Id": "unclosed action",
    "ok\n{{.Id": ":2: unclosed action",
    "{{foo .Id}}": 'function "foo" not defined',
    "{{.Id | nope}}": 'function "nope" not defined',
    "{{end}}": r"unexpected \{\{end\}\}",
    "{{else}}": r"unexpected \{\{else\}\}",
    "{{if .Id}}x": "unexpected EOF",
    "{{range .L}}{{else}}{{else}}{{end}}": r"expected end; found \{\{else\}\}",
    "{{$x}}": 'undefined variable "\\$x"',
    "{{$x = 1}}": 'undefined variable "\\$x"',
    "{{if true}}{{$y := 1}}{{end}}{{$y}}": 'undefined variable "\\$y"',
    "{{$a, $b := .L}}": "too many declarations",
    "{{}}": "missing value for command",
    "{{.Id | }}": "missing value for command",
    '{{"abc}}': "unterminated quoted string",
    "{{/* x }}": "unclosed comment",
    "{{.Id /* x */}}": "unexpected",
    "{{.Id #}}": "unrecognized character in action: U\\+0023",
    "{{(.Id}}": "in parenthesized pipeline",
    "{{.Id)}}": "unexpected '\\)' in command",
    '{{define "x"}}{{end}}': "not supported",
    '{{template "x"}}': "not supported",
    '{{"\\q"}}': "bad string syntax",
    "{{1.2.3}}": "bad number syntax",
    "{{3x}}": "bad number syntax",
}


@pytest.mark.parametrize("template", list(PARSE_ERRORS))
def test_parse_errors(template: str) -> None:
    with pytest.raises(SandboxError, match="^template parsing error: template: :") as info:
        render(template, INFO)
    assert info.value.hint == "see Go text/template syntax, e.g. {{.Id}} or {{json .Config}}"
    assert info.match(PARSE_ERRORS[template])


EXEC_ERRORS = {
    "{{.Id.Foo}}": 'template: :1:2: executing "" at <.Id.Foo>: can\'t evaluate field Foo in type string',
    "x\n  {{.State.Pid.X}}": 'template: :2:4: executing "" at <.State.Pid.X>: '
                              "can't evaluate field X in type int",
    "{{.Config.Cmd.X}}": "can't evaluate field X in type \\[\\]interface \\{\\}",
    "{{.Config.Entrypoint.X}}": "nil pointer evaluating interface \\{\\}.X",
    "{{$s := .Id}}{{$s.X}}": "at <\\$s.X>: can't evaluate field X in type string",
    "{{index .Config.Cmd 5}}": "at <index .Config.Cmd 5>: error calling index: index out of range: 5",
    '{{index .Config.Cmd "a"}}': "error calling index: wrong type for value; expected int; got string",
    '{{index .Id.X 0}}': "can't evaluate field X",
    "{{index .State.Pid 0}}": "can't index item of type int",
    "{{upper .State.Pid}}": "error calling upper: wrong type for value; expected string; got int",
    "{{len .State.Pid}}": "error calling len: len of type int",
    "{{upper}}": "wrong number of args for upper: want 1 got 0",
    '{{join "a"}}': "wrong number of args for join: want 2 got 1",
    '{{.Config.Cmd | join ","}}': "error calling join: wrong type for value; expected string",
    '{{join .Id ","}}': "error calling join: wrong type for value; expected \\[\\]string; got string",
    "{{index}}": "wrong number of args for index: want at least 1 got 0",
    "{{.Id 1}}": "can't give argument to non-function .Id",
    "{{.Id | .Name}}": "can't give argument to non-function .Name",
    "{{range .Id}}{{end}}": "range can't iterate over 4f66ad9a0b2e",
    "{{eq .State.Running 1}}": "error calling eq: incompatible types for comparison",
    '{{lt 1 "a"}}': "error calling lt: incompatible types for comparison",
    "{{json .Nan}}": "error calling json",
}


@pytest.mark.parametrize("template", list(EXEC_ERRORS))
def test_exec_errors(template: str) -> None:
    with pytest.raises(SandboxError, match="^template: :") as info:
        render(template, {**INFO, "Nan": float("nan")})
    assert info.match(EXEC_ERRORS[template])
    assert info.value.hint


@pytest.mark.parametrize("value, printed", [
    (None, "<nil>"), (True, "true"), (0, "0"), (-3, "-3"), (2.0, "2"), (1e21, "1e+21"),
    (123456.0, "123456"), (1234567.0, "1.234567e+06"), (0.0001, "0.0001"), (0.00001, "1e-05"),
    (-2.5, "-2.5"), (float("inf"), "+Inf"), ("s", "s"), ([], "[]"), ([[1, 2], "a"], "[[1 2] a]"),
    ({"b": [1], "a": None}, "map[a:<nil> b:[1]]"), ((1, 2), "[1 2]"),
])
def test_format_value_is_go_percent_v(value: object, printed: str) -> None:
    assert format_value(value) == printed
