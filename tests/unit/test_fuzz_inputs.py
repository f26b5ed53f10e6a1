"""Bounded fuzzing of what a user types: every verb's flags, docker-py's keywords, ``--format`` templates.

Each case is seeded (a failure prints its seed and its input, and replays), and
stops where the engine would start work: argument parsing, option translation
(:func:`~sandbox.containers.options.config_from_args` and friends) and template
rendering.  A verb that gets past its own checks meets a tripwire engine that
raises :class:`_EngineReached` on first use, so nothing touches a store or
starts a container.  The only exceptions allowed out are ``SandboxError``
(``UsageError`` for a bad flag) and the parser's own exit for ``--help``; each
case runs under a 5 s alarm, so a hang fails instead of stalling the suite.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import random
import signal
import string
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox import cli
from sandbox.cli import build_parser
from sandbox.cli.build import key_values
from sandbox.cli.ps import parse_filters
from sandbox.containers.logs import parse_time
from sandbox.containers.keywords import _KNOWN, config_from_kwargs, resources_from_update
from sandbox.containers.options import config_from_args
from sandbox.errors import SandboxError
from sandbox.gotemplate import Template, render
from sandbox.image.archive import apply_changes

CASE_SECONDS = 5


class _EngineReached(Exception):
    """A verb got past parsing and option checks and asked the engine for work: the case passed."""


class _Tripwire:
    """Stands in for the Engine: any attribute ends the case before anything is done."""

    def __getattr__(self, name: str) -> Any:
        raise _EngineReached(name)


class _Hang(Exception):
    pass


@contextlib.contextmanager
def _time_guard(what: object) -> Iterator[None]:
    """Fail a case that does not finish in CASE_SECONDS (no timing is asserted beyond that)."""
    def alarm(signum: int, frame: Any) -> None:
        raise _Hang(f"still running after {CASE_SECONDS}s: {what!r}")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(CASE_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _expect_only_sandbox_errors(case: object, action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run ``action(*args, **kwargs)``; a SandboxError, the tripwire or --help's exit is fine, anything else fails."""
    with _time_guard(case):
        try:
            action(*args, **kwargs)
        except (SandboxError, _EngineReached, cli._Exit):
            pass
        except _Hang:
            raise
        except BaseException as e:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{type(e).__name__}: {e} escaped for {case!r}")


# --------------------------------------------------------------------------- the verbs

#: Real command lines, at least one per verb and management sub-verb; the mutations start from these.
VALID = [
    "run --rm -it -e A=1 -v /srv:/data:ro -p 127.0.0.1:8080:80 --memory 64m --cpus 0.5 busybox sh -c 'echo hi'",
    "run -d --name web --restart on-failure:3 --ulimit nofile=1024:2048 --mount type=tmpfs,target=/run,tmpfs-size=1m nginx",
    "run --network none --cap-drop ALL --cap-add NET_BIND_SERVICE --read-only --tmpfs /tmp:size=1m busybox true",
    "run --health-cmd 'true' --health-interval 5s --health-retries 3 --stop-signal SIGTERM --stop-timeout 3 busybox",
    "run --entrypoint /bin/sh -w /tmp -u 1000:1000 -h box --dns 1.1.1.1 --add-host db:10.0.0.2 busybox -c id",
    "run --pids-limit 64 --memory-swap 128m -m 64m --cpu-shares 512 --cpuset-cpus 0 --shm-size 8m busybox",
    "run -l a=b --log-opt max-size=1m --log-driver json-file --security-opt no-new-privileges --init busybox",
    "create --name c1 --expose 80 -P --sysctl net.ipv4.ip_forward=1 --oom-score-adj 100 --device /dev/null busybox",
    "start -a c1", "stop -t 3 c1", "kill -s HUP c1", "pause c1", "unpause c1", "restart -t 1 c1",
    "rm -f -v c1", "wait c1", "rename c1 c2", "update --memory 64m --cpus 1 --restart always c1",
    "exec -it -e A=1 -w / c1 sh", "attach --no-stdin c1", "top c1 -o pid", "stats --no-stream --format '{{.Name}}'",
    "logs -f -n 10 --since 10m --until 2024-01-01T00:00:00Z -t c1", "port c1 80/tcp",
    "diff c1", "commit -c 'CMD [\"sh\"]' -m msg -a me c1 img:1", "cp c1:/etc/hosts /tmp/hosts", "export -o /tmp/x.tar c1",
    "ps -a -q -n 3 -f status=running --format 'table {{.ID}}\\t{{.Names}}' --no-trunc",
    "images -a --digests -f dangling=true --format '{{.Repository}}:{{.Tag}}' busybox",
    "history --no-trunc -H false --format '{{.CreatedBy}}' busybox", "inspect -f '{{json .Config}}' --type image busybox",
    "tag busybox mine:1", "rmi -f --no-prune mine:1", "pull --platform linux/amd64 -q busybox:latest",
    "push -q 127.0.0.1:5000/app:1", "save -o /tmp/x.tar --format oci busybox", "load -q -i /tmp/x.tar",
    "import -c 'ENV A=1' -m msg /tmp/rootfs.tar mine:2", "login -u me -p secret 127.0.0.1:5000",
    "logout 127.0.0.1:5000", "info -f '{{.Images}}'", "version -f '{{.Version}}'",
    "events --since 1h --until 0s -f type=container --format '{{json .}}'",
    "build -t app:1 -f Dockerfile --build-arg A=1 --label l=v --target base --no-cache --network none -q .",
    "builder prune -a -f --filter until=24h", "bootstrap -t base:1 busybox",
    "daemon -H unix:///tmp/sandbox-fuzz.sock --group sandbox -D",
    "volume create -d local -o o=1 --label a=b data", "volume ls -q -f name=data --format '{{.Name}}'",
    "volume inspect -f '{{.Mountpoint}}' data", "volume rm data", "volume prune -f",
    "network create -d bridge --subnet 10.30.0.0/24 --gateway 10.30.0.1 --internal --label a=b net1",
    "network ls -q -f driver=bridge --format '{{.Name}}' --no-trunc", "network inspect -f '{{.Id}}' net1",
    "network connect --alias db --ip 10.30.0.9 net1 c1", "network disconnect net1 c1", "network rm net1",
    "network prune -f",
    "system df -v", "system prune -a --volumes -f", "system info -f '{{.Driver}}'", "system supervisor status",
    "image ls -q", "image rm busybox", "image inspect busybox", "image history busybox", "image tag busybox b:2",
    "image prune -a -f", "image save -o /tmp/y.tar busybox", "image load -i /tmp/y.tar", "image import /tmp/r.tar",
    "container ls -a", "container run --rm busybox true", "container create busybox", "container prune -f",
    "container inspect c1", "container logs c1", "container update --cpus 2 c1", "container stop c1",
    "--root /tmp/sandbox-fuzz-root ps",
]

#: Values a user gets wrong, from typos to hostile: bad sizes, ports, mounts, ulimits, policies, templates.
BAD_VALUES = [
    "", "-", "--", "=", ":", "'", '"unclosed', "a\\", "\x00", "é", "a" * 300, "9" * 40, "-1", "0", "1e999",
    "nan", "inf", "0x10", "12q", "1.5.5", "64mb", "-5g", "99999:80", "80:99999", "-1:80", "1-65536:80", "80-70:80",
    "127.0.0.1::80", "[::1]:80:80", "256.0.0.1:80:80", "80/xyz", "1:2:3:4", "80-82:90-91", "::80",
    "type=bogus", "target=", "type=bind,target=/x,src=rel", "type=tmpfs,target=/x,src=a",
    "type=tmpfs,target=/x,tmpfs-mode=9z", "type=tmpfs,target=/x,tmpfs-size=zz", "type=volume,target=/x,src=a b",
    "nofile=a:b", "nofile=2:1", "nofile=", "=1", "cpu=-1:-1", "bogus=1:1", "nofile=99999999999999999999999",
    "on-failure:x", "on-failure:-1", "always:3", "sometimes", "/dev/x:rwmq", "/dev/a:/dev/b:c:d",
    "SIGFOO", "RTMIN+40", "99", "max-size=zz", "max-file=x", "bogus=1", "seccomp=/nonexistent/profile.json",
    "seccomp={", "no-new-privileges=maybe", "container:", "host:999", "10.0.0.0/33", "02:42:zz",
    "10x", "1h30", "2024-13-45", "until=x", "dangling=maybe", "name", "=value", "KEY",
    "{{", "}}", "{{.", "{{.X", "{{json .}}", "{{range 99999999999}}{{end}}", '{{printf "%999999999d" 1}}',
    "{{template \"x\"}}", "{{" * 200, "table {{.ID", '{{pad "" 9999999999 0}}', "{{(" * 300 + "1" + ")}}" * 300,
]


def _subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser a command line can reach: (verb path, its parser), sub-verbs included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, path + (name,))
            return
    yield path, parser


PARSERS = sorted(_subparsers(build_parser()), key=lambda item: item[0])

#: Verbs whose functions read files, stdin or sockets before they ask the engine
#: (load -i, save -o, build's context, login's stdin, the daemon's certificates):
#: only parsed, with their option translations applied here.
PARSE_ONLY = {("login",), ("load",), ("save",), ("import",), ("build",), ("daemon",), ("bootstrap",),
              ("image", "load"), ("image", "save"), ("image", "import"), ("system", "service")}

#: What a template is rendered against when a verb's --format is checked: a docker-like record.
RECORD = {"ID": "4f66ad9a0b2e", "Names": "web", "Image": "busybox", "Status": "Up 2 seconds",
          "Labels": {"a": "1"}, "Size": 1234, "Config": {"Cmd": ["sh"], "Env": ["A=1"]}, "State": {"Running": True}}


def _verb_path(args: argparse.Namespace) -> tuple[str, ...]:
    path = [args.verb]
    for attr in ("image_verb", "container_verb", "network_verb", "volume_verb", "system_verb", "builder_verb"):
        if getattr(args, attr, None):
            path.append(getattr(args, attr))
    return tuple(path)


def _translate(args: argparse.Namespace) -> None:
    """The option translations a verb makes, for the verbs only parsed here."""
    if isinstance(getattr(args, "format", None), str) and args.format not in ("docker", "oci"):
        render(args.format.replace("\\t", "\t").removeprefix("table"), RECORD)
    if getattr(args, "change", None):
        apply_changes({}, list(args.change))
    if getattr(args, "filter", None):
        parse_filters(list(args.filter))
    for flag in ("since", "until"):
        if isinstance(getattr(args, flag, None), str):
            parse_time(getattr(args, flag))
    if args.verb == "build":
        key_values(args.build_arg, "--build-arg", env_fallback=True)
        key_values(args.label, "--label")
    if args.verb in ("run", "create") or getattr(args, "container_verb", None) in ("run", "create"):
        config_from_args(args, args.image, list(args.command))


_PARSERS_BY_VERB: dict[str | None, argparse.ArgumentParser] = {}


def _parser(only: str | None) -> argparse.ArgumentParser:
    """``build_parser(only=...)`` as the CLI calls it, built once per verb (the whole one takes 30 ms)."""
    if only not in _PARSERS_BY_VERB:
        _PARSERS_BY_VERB[only] = build_parser(only=only)
    return _PARSERS_BY_VERB[only]


def _exercise(argv: list[str]) -> None:
    """What ``sandbox ARGV`` does up to the engine: parse, refuse leftovers, translate, call the verb."""
    verb = cli._verb_of(argv)
    args, extra = _parser(verb if verb in cli.VERB_MODULES or verb in cli.VERBS else None).parse_known_args(argv)
    if extra:
        return  # cli.run refuses leftovers with a UsageError before anything else
    _translate(args)
    if _verb_path(args) not in PARSE_ONLY:
        cli.run_argv(argv, io.StringIO(), engine=_Tripwire())


def _split(line: str) -> list[str]:
    import shlex
    return shlex.split(line)


def test_every_verb_has_a_valid_seed() -> None:
    """The seeds cover every verb and sub-verb, and each parses and translates without error."""
    covered = set()
    for line in VALID:
        argv = _split(line)
        args, extra = _parser(None).parse_known_args(argv)
        assert not extra, line
        covered.add(_verb_path(args))
        with _time_guard(line):
            try:
                _exercise(argv)
            except _EngineReached:
                pass
    top = {path[0] for path, _ in PARSERS}
    assert top <= {path[0] for path in covered}, sorted(top - {path[0] for path in covered})


def _mutate(argv: list[str], rng: random.Random, flags: list[str]) -> list[str]:
    """One to three edits of a command line: drop, duplicate, swap, garble a word, or add a flag with a bad value."""
    argv = list(argv)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(7)
        i = rng.randrange(len(argv)) if argv else 0
        if op == 0 and len(argv) > 1:
            del argv[i]
        elif op == 1 and argv:
            argv.insert(i, argv[i])
        elif op == 2 and len(argv) > 1:
            j = rng.randrange(len(argv))
            argv[i], argv[j] = argv[j], argv[i]
        elif op == 3 and argv:  # garble: cut, append junk, or replace with a bad value
            word = argv[i]
            argv[i] = rng.choice([word[:rng.randint(0, len(word))], word + rng.choice(string.punctuation),
                                  rng.choice(BAD_VALUES)])
        elif op == 4 and flags:
            flag = rng.choice(flags)
            value = rng.choice(BAD_VALUES)
            argv[i:i] = [f"{flag}={value}"] if rng.random() < 0.3 else [flag, value]
        elif op == 5:
            argv.insert(i, rng.choice(BAD_VALUES))
        elif op == 6 and argv:  # a value after a flag becomes a bad one
            flag_at = [k for k, w in enumerate(argv[:-1]) if w.startswith("-")]
            if flag_at:
                argv[rng.choice(flag_at) + 1] = rng.choice(BAD_VALUES)
    return argv


def _flags_of(argv: list[str]) -> list[str]:
    with contextlib.suppress(SandboxError, cli._Exit):
        args, _ = _parser(None).parse_known_args(argv)
        path = _verb_path(args)
        parser = dict(PARSERS)[path]
        return [o for a in parser._actions for o in a.option_strings if o != "--help"]
    return []


@pytest.mark.parametrize("seed", range(4))
def test_mutated_command_lines(seed: int) -> None:
    """400 mutations of the real command lines above (100 per seed)."""
    rng = random.Random(f"cli-{seed}")
    for _ in range(100):
        base = _split(rng.choice(VALID))
        argv = _mutate(base, rng, _flags_of(base))
        _expect_only_sandbox_errors((seed, argv), _exercise, argv)


@pytest.mark.parametrize("path", [p for p, _ in PARSERS], ids=" ".join)
def test_random_flags_of_every_verb(path: tuple[str, ...]) -> None:
    """Each verb's own flags with random (mostly bad) values and random positionals, 6 cases a verb."""
    parser = dict(PARSERS)[path]
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    positionals = [a for a in parser._actions if not a.option_strings]
    rng = random.Random("flags-" + " ".join(path))
    for _ in range(6):
        argv = list(path)
        for action in rng.sample(options, min(len(options), rng.randint(1, 5))):
            flag = rng.choice(action.option_strings)
            if action.nargs == 0:
                argv.append(flag)
            else:
                value = rng.choice(BAD_VALUES + list(action.choices or []))
                argv += [f"{flag}={value}"] if rng.random() < 0.3 else [flag, value]
        argv += [rng.choice(["busybox", "c1", "x:y", "/nonexistent/path", "sh", "80"]) for _ in positionals]
        _expect_only_sandbox_errors(argv, _exercise, argv)


# --------------------------------------------------------------------------- docker-py keywords

_TEXT = ["", "busybox", "0", "-1", "12q", "64m", "1g", "abc", "host", "none", "container:", "/x", "a=b", "'",
         "on-failure:x", "nofile=1:2", "99999:80", "{{", "\x00", "é", "1e999", "nan", "9" * 30]
_NUMBERS: list[Any] = [0, 1, -1, 3, 512, 2 ** 63, -(2 ** 63), 10 ** 30, 1.5, float("nan"), float("inf"), True]


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    """A keyword value of any shape docker-py users write, right or wrong: text, numbers, lists, dicts."""
    r = rng.random()
    if r < 0.35 or depth >= 2:
        return rng.choice(_TEXT)
    if r < 0.55:
        return rng.choice(_NUMBERS)
    if r < 0.6:
        return None
    if r < 0.8:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if r < 0.9:
        return tuple(_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3)))
    keys = _TEXT + ["Type", "Name", "Test", "bind", "mode", "test", "interval", "Config", "80/tcp"]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


#: Keywords that name files: only text there (an int would be taken as a file descriptor by open()).
_PATHS = {"env_file"}


@pytest.mark.parametrize("seed", range(3))
def test_random_keywords(seed: int) -> None:
    """300 calls of config_from_kwargs (and update's translation) with 1-4 random keywords each."""
    rng = random.Random(f"kwargs-{seed}")
    keys = sorted(_KNOWN)
    for _ in range(100):
        kw = {k: _random_value(rng) for k in rng.sample(keys, rng.randint(1, 4))}
        for k in _PATHS & set(kw):
            kw[k] = [str(v) for v in kw[k]] if isinstance(kw[k], (list, tuple)) else str(kw[k])
        command = rng.choice([None, "sh -c 'echo hi'", "echo 'unclosed", ["sh", "-c", "true"], ["sh", 1], 7])
        case = (seed, command, kw)
        _expect_only_sandbox_errors(case, config_from_kwargs, "busybox", command, **copy.deepcopy(kw))


@pytest.mark.parametrize("kw, words", [
    ({"cpu_shares": "abc"}, "cpu_shares"),
    ({"cpus": float("inf")}, "--cpus"),
    ({"oom_score_adj": "x"}, "oom_score_adj"),
    ({"tmpfs": "/run"}, "tmpfs"),
    ({"cap_add": [1]}, "cap_add"),
    ({"volumes": {"/srv": {"mode": "ro"}}}, "volumes"),
    ({"healthcheck": {"test": "true", "interval": "soon"}}, "interval"),
    ({"ports": {"80/tcp": ()}}, "ports"),
    ({"log_config": {"Type": "json-file", "Config": ["max-size"]}}, "log_config"),
    ({"env_file": ["/nonexistent\x00"]}, "env-file"),
])
def test_bad_keyword_is_a_usage_error_naming_it(kw: dict[str, Any], words: str) -> None:
    """Cases the fuzzer found raising TypeError/ValueError/KeyError/OverflowError before the fix."""
    with pytest.raises(SandboxError, match=words):
        config_from_kwargs("busybox", None, **kw)


def test_bad_command_string_is_a_usage_error() -> None:
    with pytest.raises(SandboxError, match="close the quote"):
        config_from_kwargs("busybox", "echo 'hi")


def test_docker_py_extra_hosts_dict_becomes_host_ip_strings() -> None:
    _, host, _ = config_from_kwargs("busybox", None, extra_hosts={"db": "10.0.0.2"})
    assert host["ExtraHosts"] == ["db:10.0.0.2"]


@pytest.mark.parametrize("argv", [
    ["run", "--cpus", "nan", "busybox"], ["run", "--cpus", "inf", "busybox"],
    ["run", "--mount", "type=tmpfs,target=/x,tmpfs-mode=9z", "busybox"],
    ["run", "--env-file", "a\x00b", "busybox"], ["run", "--label-file", "a\x00b", "busybox"],
    ["run", "--entrypoint", "'", "busybox"], ["volume", "create", "--label=--", "v"],
    ["run", "--env-file=--", "busybox"],
])
def test_command_lines_the_fuzzer_found(argv: list[str]) -> None:
    """Each raised ValueError, OverflowError, TypeError or AttributeError before the fix."""
    _expect_only_sandbox_errors(argv, _exercise, argv)


def test_an_option_value_of_two_dashes_is_the_value() -> None:
    args, _ = build_parser().parse_known_args(["volume", "create", "--label=--", "v"])
    assert args.label == ["--"]


def test_update_keywords_translate_or_refuse() -> None:
    rng = random.Random("update")
    for _ in range(50):
        kw = {k: rng.choice(_TEXT + [None, 1, -1]) for k in rng.sample(
            ["mem_limit", "memswap_limit", "mem_reservation", "restart_policy", "cpu_shares"], 2)}
        _expect_only_sandbox_errors(kw, resources_from_update, kw)


# --------------------------------------------------------------------------- Go templates

DATA = {
    "Id": "4f66ad9a0b2e", "Name": "/web", "Created": "2024-01-02T03:04:05Z",
    "Config": {"Cmd": ["sh", "-c", "echo hi"], "Entrypoint": None, "Env": ["PATH=/bin", "X=<a&b>"],
               "Labels": {"b": "2", "a": "1"}, "ExposedPorts": {}},
    "State": {"Running": True, "Pid": 42, "ExitCode": 0, "Health": None},
    "HostConfig": {"Memory": 67108864, "NanoCpus": 500000000, "Binds": None},
    "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "10.0.0.2"}}},
    "Size": 12.5, "Mounts": [], "List": [1, "two", 3.0, None, {"k": "v"}, [True, False]],
}

#: Pieces templates are made of, valid and not.
PIECES = [
    "{{", "}}", "{{-", "-}}", " ", " ", "\n", ".", ".Config", ".Config.Cmd", ".State.Running", ".NoSuch",
    ".Config.Labels", ".HostConfig.Binds", ".State.Health.Status", ".Id.X", ".List", ".Size", "$", "$x", "$.Id",
    ":=", "=", "|", "(", ")", ",", "if", "else", "end", "range", "with", "define", "template", "block", "break",
    "json", "len", "index", "printf", "print", "println", "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not",
    "join", "split", "upper", "lower", "title", "truncate", "pad", "nosuchfunc",
    '"%s"', '"%d"', '"%v %q"', '"%999999999d"', '","', '"a"', "`raw`", '"\\x"', '"', "`",
    "1", "-1", "0x10", "1e3", "1e400", "99999999999", "2.5", "1..2", "nil", "true", "false",
    "/*", "*/", "{{/* c */}}", "{{end}}", "{{else}}", "{{else if .Id}}", "\\", "é", "\x00", "'a'",
]

#: Templates people type, the starting points for mutation.
TEMPLATES = [
    "{{.Id}}", "{{json .}}", "{{json .Config}}", "{{.Config.Cmd}}", "{{.State.Running}}",
    "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}", "{{if .State.Running}}up{{else}}down{{end}}",
    "{{join .Config.Cmd \",\"}}", "{{index .Config.Labels \"a\"}}", "{{len .Config.Env}}",
    "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "{{printf \"%s:%d\" .Name .State.Pid}}",
    "{{with .State}}{{.Pid}}{{end}}", "{{.Name | upper | truncate 3}}", "{{- .Id -}}", "{{/* note */}}{{.Id}}",
    "{{$x := .Id}}{{$x}}", "{{range $i, $e := .List}}{{$i}}:{{$e}} {{end}}", "{{pad .Id 2 2}}",
]


def _random_template(rng: random.Random) -> str:
    text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 16)))
    return "{{" + text + "}}" if rng.random() < 0.6 else text


def _mutated_template(rng: random.Random) -> str:
    t = rng.choice(TEMPLATES)
    for _ in range(rng.randint(1, 3)):
        i = rng.randint(0, len(t))
        op = rng.randrange(4)
        if op == 0:
            t = t[:i] + rng.choice(PIECES) + t[i:]
        elif op == 1:
            t = t[:i] + t[i + rng.randint(1, 4):]
        elif op == 2:
            t = t[:i] + t[i:i + rng.randint(1, 8)] * rng.randint(2, 4) + t[i:]
        else:
            t = t.replace("{{", rng.choice(["{", "{{{", "{{ (", "{{if 1}}{{"]), 1)
    return t


def _render(template: str) -> None:
    Template(template).render(DATA)
    render(template, [DATA, DATA])


@pytest.mark.parametrize("seed", range(3))
def test_random_templates(seed: int) -> None:
    """300 templates of random pieces (100 per seed)."""
    rng = random.Random(f"tpl-{seed}")
    for _ in range(100):
        template = _random_template(rng)
        _expect_only_sandbox_errors((seed, template), _render, template)


@pytest.mark.parametrize("seed", range(3))
def test_mutated_templates(seed: int) -> None:
    """300 mutations of the templates people type (100 per seed)."""
    rng = random.Random(f"tplmut-{seed}")
    for _ in range(100):
        template = _mutated_template(rng)
        _expect_only_sandbox_errors((seed, template), _render, template)


@pytest.mark.parametrize("template", [
    "{{range 99999999999}}x{{end}}",                       # built a list of 1e11 pairs
    "{{range 600000}}{{range 600000}}{{end}}{{end}}",      # 3.6e11 steps
    '{{pad "" 9999999999 0}}',                             # MemoryError
    '{{printf "%999999999999d" 1}}',                       # MemoryError
    '{{$x := printf "%1000000s" ""}}{{join (split $x "") $x}}',  # 1e12 bytes
    "{{" + "(" * 2000 + "1" + ")" * 2000 + "}}",           # RecursionError in the parser
    "{{if 1}}" * 2000 + "{{end}}" * 2000,                  # RecursionError
    "{{with .}}" * 150 + "{{.Id}}" + "{{end}}" * 150,
])
def test_resource_hungry_templates_are_refused(template: str) -> None:
    """Each hung, ran out of memory or overflowed the stack before the fix; now a SandboxError or a short text."""
    _expect_only_sandbox_errors(template[:80], _render, template)


def test_go_prints_noverb_for_a_width_over_a_million() -> None:
    assert render('{{printf "%999999999d" 1}}', {}) == "%!(NOVERB)%!(EXTRA int=1)"
    assert render('{{printf "%5d" 1}}', {}) == "    1"
