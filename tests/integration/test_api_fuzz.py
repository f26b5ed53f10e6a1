"""Fuzzing the daemon's request handling (hypothesis): what a confused or hostile client sends.

Requests are made from the daemon's own route table -- every method and path
pattern it serves, with made-up ids, query parameters, headers and bodies
(JSON of any shape, and bytes that are not JSON) -- and from raw bytes that
are barely HTTP.  Whatever comes in: the answer is a well-formed HTTP
response, a client's mistake is never a 5xx (a 503 is Docker's own answer
for swarm endpoints), an error carries Docker's ``{"message": ...}``, and
the daemon answers the next request.
"""

from __future__ import annotations

import json
import os
import re
import socket

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.integration.api_env import daemon  # noqa: E402,F401

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="the daemon's containers need root")]

#: endpoints that start long work on a valid request; fuzzed with bodies that cannot be valid
_SLOW = re.compile(r"/(attach|wait|logs|stats|events|export|build|images/create|push|get|load)\b")


def _routes() -> list[tuple[str, str]]:
    from sandbox.api.server import build_router
    out = []
    for method, regex, _ in build_router().routes:
        pattern = regex.pattern.strip("^$")
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: "{" + m.group(1) + "}", pattern)
        out.append((method, path))
    return out


ROUTES = _routes()
json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=20),
                           lambda children: st.lists(children, max_size=4) |
                           st.dictionaries(st.text(max_size=12), children, max_size=4), max_leaves=12)
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.:/%", min_size=0, max_size=24)


@st.composite
def requests(draw):
    method, path = draw(st.sampled_from(ROUTES))
    path = re.sub(r"\{\w+\}", lambda m: draw(words.filter(lambda w: "/" not in w and w not in ("", ".", ".."))) or "x",
                  path)
    version = draw(st.sampled_from(["", "/v1.41", "/v1.24", "/v1.12", "/v1.99", "/v0.1"]))
    query = "&".join(f"{draw(words)}={draw(words)}" for _ in range(draw(st.integers(0, 4))))
    if _SLOW.search(path):
        body = b"\x00not json"
    else:
        body = draw(st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=64)))
    head = f"{method} {version}{path}{'?' + query if query else ''} HTTP/1.1\r\nHost: x\r\n"
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


def _ask(sock_path: str, raw: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(sock_path)
        s.sendall(raw)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out


def _check(raw: bytes, answer: bytes) -> None:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    status = int(answer.split(b" ", 2)[1])
    head, _, body = answer.partition(b"\r\n\r\n")
    assert status < 500 or status == 503, answer[:400]
    if status >= 400 and b"application/json" in head.lower() and not raw.startswith(b"HEAD "):
        if b"transfer-encoding: chunked" in head.lower():
            body = body.split(b"\r\n", 1)[1] if b"\r\n" in body else body
        assert "message" in json.loads(body.split(b"\r\n")[0]), answer[:400]


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(raw=requests())
def test_route_requests_never_break_the_daemon(daemon, raw):
    _check(raw, _ask(str(daemon.socket), raw))


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(raw=st.binary(min_size=1, max_size=200))
def test_garbage_bytes_get_an_answer_or_a_close(daemon, raw):
    answer = _ask(str(daemon.socket), raw + b"\r\n\r\n")
    if answer:
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, answer[:200]
    # and the daemon still answers
    assert _ask(str(daemon.socket), b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").endswith(b"OK")
