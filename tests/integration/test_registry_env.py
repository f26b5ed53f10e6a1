"""Self-tests of the registry test fixtures (tests/registry_env.py).

They prove that the registries really enforce their auth, that skopeo can
push to each of them, and that every FaultProxy fault does what it says,
observed with plain urllib / http.client (not with the client under test).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.registry_env import (
    FaultProxy,
    Registry,
    TokenServer,
    make_image_tree,
    make_oci_layout,
    missing_tools,
    parse_www_authenticate,
    skopeo_copy_to,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(missing_tools()),
                       reason=f"requires {', '.join(missing_tools())} "
                              "(apt install docker-registry apache2-utils openssl skopeo)"),
]

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with NO_PROXY.open(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers), e.read()


def push_blob(base_url: str, repo: str, data: bytes) -> str:
    """Monolithic upload (POST + PUT ?digest=) straight to a no-auth registry."""
    status, headers, _ = request(base_url, "POST", f"/v2/{repo}/blobs/uploads/")
    assert status == 202, status
    loc = headers["Location"]
    digest = sha256(data)
    sep = "&" if "?" in loc else "?"
    status, _, body = request(base_url, "PUT", f"{loc}{sep}digest={digest}", data,
                              {"Content-Type": "application/octet-stream"})
    assert status == 201, body
    return digest


def request(base_url, method, path, data=None, headers=None):
    url = path if path.startswith("http") else base_url + path
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with NO_PROXY.open(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers), e.read()


# ---------------------------------------------------------------- registries

def test_registry_push_with_skopeo_and_catalog(registry, tiny_oci_layout):
    assert registry.host == f"127.0.0.1:{registry.port}"
    assert registry.url == f"http://{registry.host}"
    assert registry.start_seconds < 5
    assert get(registry.url + "/v2/")[0] == 200
    assert get(registry.url + "/v2/_catalog")[2] == b'{"repositories":[]}\n'

    skopeo_copy_to(registry, tiny_oci_layout["path"], "class/tiny", "v1")

    status, _, body = get(registry.url + "/v2/_catalog")
    assert status == 200 and json.loads(body)["repositories"] == ["class/tiny"]
    digest, manifest = registry.manifest("class/tiny", "v1")
    assert digest == tiny_oci_layout["manifest"]
    assert [layer["digest"] for layer in manifest["layers"]] == tiny_oci_layout["layers"]
    layer = registry.blob("class/tiny", tiny_oci_layout["layers"][0])
    assert layer == tiny_oci_layout["blobs"][tiny_oci_layout["layers"][0]]
    assert any(registry.storage.rglob("data"))  # blobs sit in the temp storage
    assert "listening on" in registry.log.read_text()


def test_registry_stop_reaps_and_closes_the_port(tmp_path):
    reg = Registry(tmp_path / "reg")
    pid, port = reg.process.pid, reg.port
    reg.stop()
    reg.stop()  # idempotent
    assert reg.process is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_auth_registry_basic_auth_over_plain_http(auth_registry, tiny_oci_layout):
    assert (auth_registry.user, auth_registry.password) == ("student", "s3cret")
    status, headers, _ = get(auth_registry.url + "/v2/")
    assert status == 401
    assert parse_www_authenticate(headers["Www-Authenticate"])[0] == "Basic"
    assert auth_registry.request("GET", "/v2/")[0] == 200
    wrong = {"Authorization": "Basic " + "c3R1ZGVudDp3cm9uZw=="}  # student:wrong
    assert get(auth_registry.url + "/v2/", wrong)[0] == 401

    skopeo_copy_to(auth_registry, tiny_oci_layout["path"], "class/tiny")
    assert auth_registry.catalog() == ["class/tiny"]

    # and skopeo without credentials is refused
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet",
                        "--dest-tls-verify=false", "--dest-no-creds",
                        tiny_oci_layout["ref"],
                        f"docker://{auth_registry.host}/class/other:latest"],
                       check=True, capture_output=True, timeout=60,
                       env={**os.environ, "REGISTRY_AUTH_FILE": "/nonexistent/auth.json"})


def test_token_registry_push_with_skopeo_records_scopes(token_registry, tiny_oci_layout):
    reg = token_registry
    status, headers, _ = get(reg.url + "/v2/")
    assert status == 401
    scheme, params = parse_www_authenticate(headers["Www-Authenticate"])
    assert scheme == "Bearer"
    assert params == {"realm": reg.realm, "service": "sandbox-test"}

    skopeo_copy_to(reg, tiny_oci_layout["path"], "class/tiny", "v1")

    asked = [(r.user, r.scopes, r.status) for r in reg.token_requests]
    assert ("student", ["repository:class/tiny:pull,push"], 200) in asked
    assert all(r.service == "sandbox-test" for r in reg.token_requests)
    assert reg.catalog() == ["class/tiny"]
    assert reg.manifest("class/tiny", "v1")[0] == tiny_oci_layout["manifest"]


def test_token_dance_by_hand(token_registry, tiny_oci_layout):
    reg = token_registry
    skopeo_copy_to(reg, tiny_oci_layout["path"], "class/tiny")
    path = "/v2/class/tiny/manifests/latest"
    status, headers, _ = get(reg.url + path)
    assert status == 401
    _, ch = parse_www_authenticate(headers["Www-Authenticate"])
    assert ch["scope"] == "repository:class/tiny:pull"

    # anonymous: pull only, and the token works for pulling
    query = urllib.parse.urlencode({"service": ch["service"], "scope": ch["scope"]})
    status, _, body = get(f"{ch['realm']}?{query}")
    answer = json.loads(body)
    assert status == 200 and answer["token"] == answer["access_token"]
    assert answer["expires_in"] == 300 and answer["issued_at"]
    assert reg.token_requests[-1].user is None
    assert reg.token_requests[-1].granted == [
        {"type": "repository", "name": "class/tiny", "actions": ["pull"]}]
    bearer = {"Authorization": "Bearer " + answer["token"],
              "Accept": "application/vnd.oci.image.manifest.v1+json"}
    status, headers, _ = get(reg.url + path, bearer)
    assert status == 200 and headers["Docker-Content-Digest"] == tiny_oci_layout["manifest"]

    # an anonymous token asking for push gets pull only; the registry refuses the upload
    anon = reg.token("repository:class/tiny:pull,push", anonymous=True)
    status, headers, _ = request(reg.url, "POST", "/v2/class/tiny/blobs/uploads/", b"",
                                 {"Authorization": "Bearer " + anon})
    assert status == 401 and 'error="insufficient_scope"' in headers["Www-Authenticate"]
    pusher = reg.token("repository:class/tiny:pull,push")
    status, _, _ = request(reg.url, "POST", "/v2/class/tiny/blobs/uploads/", b"",
                           {"Authorization": "Bearer " + pusher})
    assert status == 202

    # wrong password: 401 from the token server; wrong service: 400
    wrong = {"Authorization": "Basic c3R1ZGVudDp3cm9uZw=="}  # student:wrong
    assert get(f"{ch['realm']}?{query}", wrong)[0] == 401
    assert get(f"{ch['realm']}?service=other&scope=x", wrong | {"Authorization": ""})[0] == 400

    # several scope parameters are recorded in order and granted together
    two = urllib.parse.urlencode([("service", "sandbox-test"),
                                  ("scope", "repository:a/b:pull"),
                                  ("scope", "repository:c/d:pull,push")])
    assert get(f"{reg.realm}?{two}")[0] == 200
    assert reg.token_requests[-1].scopes == ["repository:a/b:pull", "repository:c/d:pull,push"]
    assert [g["actions"] for g in reg.token_requests[-1].granted] == [["pull"], ["pull"]]

    # the registry really checks the signature's claims: a wrong audience is refused
    server = reg.token_server
    access = [{"type": "repository", "name": "class/tiny", "actions": ["pull"]}]
    for token, expect in [(server.make_token("student", access), 200),
                          (server.make_token("student", access, audience="elsewhere"), 401),
                          (server.make_token("student", access, issuer="mallory"), 401),
                          (server.make_token("student", access, expires_in=-3600), 401)]:
        assert get(reg.url + path, bearer | {"Authorization": "Bearer " + token})[0] == expect

    # injected failures
    server.fail_next(503)
    assert get(f"{ch['realm']}?{query}")[0] == 503
    assert get(f"{ch['realm']}?{query}")[0] == 200


# ---------------------------------------------------------------- fault proxy

@pytest.fixture
def seeded(registry):
    """A registry holding one 300 KiB blob in repo "fp/blob"."""
    data = os.urandom(300 * 1024)
    digest = push_blob(registry.url, "fp/blob", data)
    return registry, data, digest


def test_proxy_passes_skopeo_push_and_keeps_alive(registry, fault_proxy, tiny_oci_layout):
    proxy = fault_proxy(registry.host)
    skopeo_copy_to(registry, tiny_oci_layout["path"], "via/proxy", host=proxy.host)
    assert registry.catalog() == ["via/proxy"]
    methods = [s.method for s in proxy.requests]
    assert "PUT" in methods and any("/manifests/latest" in s.path for s in proxy.requests)
    assert all(s.status is not None and s.status < 500 for s in proxy.requests)
    # uploads stayed on the proxy: the registry's Location header named the Host we sent
    assert all(s.path.startswith("/v2/") for s in proxy.requests)

    # keep-alive on the client side: two requests, one connection
    conn = http.client.HTTPConnection(proxy.host, timeout=10)
    try:
        for _ in range(2):
            conn.request("GET", "/v2/via/proxy/tags/list")
            r = conn.getresponse()
            assert r.status == 200 and json.loads(r.read())["tags"] == ["latest"]
            assert r.getheader("Connection") is None
    finally:
        conn.close()


def test_proxy_cut_response_after(seeded, fault_proxy):
    registry, data, digest = seeded
    proxy = fault_proxy(registry.host)
    fault = proxy.cut_response_after(1000)
    url = f"{proxy.url}/v2/fp/blob/blobs/{digest}"
    with NO_PROXY.open(url, timeout=10) as r:
        assert r.status == 200 and int(r.headers["Content-Length"]) == len(data)
        with pytest.raises(http.client.IncompleteRead) as e:
            r.read()
    assert e.value.partial == data[:1000]
    assert fault.fired == 1
    # times=1: the retry goes through whole
    assert get(url)[2] == data
    assert proxy.requests[0] == ("GET", f"/v2/fp/blob/blobs/{digest}", 200)
    assert fault.fired == 1

    # a ranged resume through the proxy works too (the registry serves Range)
    status, _, body = get(url, {"Range": "bytes=1000-"})
    assert status == 206 and body == data[1000:]


@pytest.fixture
def chunked_server():
    """A tiny 127.0.0.1 server answering every GET with a chunked 100 KB body."""
    body = os.urandom(100_000)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 7000):
                piece = body[i:i + 7000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", body
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_proxy_chunked_responses(chunked_server, fault_proxy):
    host, body = chunked_server
    proxy = fault_proxy(host)
    conn = http.client.HTTPConnection(proxy.host, timeout=10)
    try:
        conn.request("GET", "/x")
        r = conn.getresponse()
        assert r.getheader("Transfer-Encoding") == "chunked" and r.read() == body
        tamper = proxy.tamper_response(path_contains="/x", offset=50_000)
        conn.request("GET", "/x")  # same connection: keep-alive after a chunked body
        got = conn.getresponse().read()
        assert len(got) == len(body) and got != body and got[50_001:] == body[50_001:]
        assert tamper.fired == 1
    finally:
        conn.close()
    cut = proxy.cut_response_after(30_000, path_contains="/x", times=None)
    with NO_PROXY.open(proxy.url + "/x", timeout=10) as r, \
            pytest.raises(http.client.IncompleteRead) as e:
        r.read()
    # http.client drops the unfinished chunk: 4 whole chunks of 7000 arrived
    assert e.value.partial == body[:28_000]
    # on the wire: the chunk framing is intact and exactly 30,000 data bytes came
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    rest, got = raw.split(b"\r\n\r\n", 1)[1], b""
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        got, rest = got + rest[:size], rest[size + 2:]
    assert got == body[:30_000]
    assert cut.fired == 2
    assert [s.status for s in proxy.requests] == [200] * 4


def test_proxy_tamper_response(seeded, fault_proxy):
    registry, data, digest = seeded
    proxy = fault_proxy(registry.host)
    fault = proxy.tamper_response(offset=12345)
    url = f"{proxy.url}/v2/fp/blob/blobs/{digest}"
    status, headers, body = get(url)
    assert status == 200 and int(headers["Content-Length"]) == len(body) == len(data)
    assert sha256(body) != digest
    assert [i for i in range(len(data)) if body[i] != data[i]] == [12345]
    assert fault.fired == 1
    assert sha256(get(url)[2]) == digest  # only once


def test_proxy_cut_request_after_content_length(registry, fault_proxy):
    proxy = fault_proxy(registry.host)
    fault = proxy.cut_request_after(4096, method="PATCH")
    data = os.urandom(200_000)
    status, headers, _ = request(proxy.url, "POST", "/v2/up/load/blobs/uploads/")
    assert status == 202
    loc = headers["Location"]
    assert loc.startswith(proxy.url)  # the registry builds it from our Host header

    conn = http.client.HTTPConnection(proxy.host, timeout=10)
    try:
        with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
            conn.request("PATCH", loc[len(proxy.url):], body=data,
                         headers={"Content-Type": "application/octet-stream"})
            conn.getresponse()
    finally:
        conn.close()
    assert fault.fired == 1
    assert proxy.requests[-1].method == "PATCH" and proxy.requests[-1].status is None

    # a fresh upload of the same data goes through (times=1)
    digest = push_blob(proxy.url, "up/load", data)
    assert get(f"{registry.url}/v2/up/load/blobs/{digest}")[2] == data
    assert [s.method for s in proxy.requests[-2:]] == ["POST", "PUT"]
    assert fault.fired == 1


def test_proxy_chunked_request_bodies(registry, fault_proxy):
    proxy = fault_proxy(registry.host)
    data = os.urandom(150_000)
    pieces = [data[i:i + 20_000] for i in range(0, len(data), 20_000)]

    def patch(conn):
        _, headers, _ = request(proxy.url, "POST", "/v2/chunk/ed/blobs/uploads/")
        path = headers["Location"][len(proxy.url):]
        conn.request("PATCH", path, body=iter(pieces), encode_chunked=True,
                     headers={"Content-Type": "application/octet-stream"})
        return conn.getresponse()

    conn = http.client.HTTPConnection(proxy.host, timeout=10)
    try:
        r = patch(conn)
        r.read()
        assert r.status == 202 and r.getheader("Range") == f"0-{len(data) - 1}"
        loc = r.getheader("Location")[len(proxy.url):]
        conn.request("PUT", f"{loc}&digest={sha256(data)}", body=b"")
        r = conn.getresponse()
        r.read()
        assert r.status == 201
    finally:
        conn.close()
    assert get(f"{registry.url}/v2/chunk/ed/blobs/{sha256(data)}")[2] == data

    fault = proxy.cut_request_after(50_000, method="PATCH")
    conn = http.client.HTTPConnection(proxy.host, timeout=10)
    try:
        with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
            patch(conn)
    finally:
        conn.close()
    assert fault.fired == 1 and proxy.requests[-1].status is None


def test_proxy_stop_closes_everything(registry):
    before = threading.active_count()
    proxy = FaultProxy(registry.host)
    conn = http.client.HTTPConnection(proxy.host, timeout=10)
    conn.request("GET", "/v2/")
    r = conn.getresponse()
    r.read()
    assert r.status == 200  # the connection stays open (keep-alive) ...
    proxy.stop()            # ... and stop() still returns promptly
    conn.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()


# ---------------------------------------------------------------- content helpers

def _tree_digest(root):
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(filenames + [d for d in dirnames]):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h.update(f"{os.path.relpath(p, root)} {st.st_mode:o} {int(st.st_mtime)}".encode())
            if os.path.islink(p):
                h.update(os.readlink(p).encode())
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def test_make_image_tree_is_deterministic(tmp_path):
    a = make_image_tree(tmp_path / "a", small_files=60, big_file_mb=1, seed=7)
    b = make_image_tree(tmp_path / "b", small_files=60, big_file_mb=1, seed=7)
    make_image_tree(tmp_path / "c", small_files=60, big_file_mb=1, seed=8)
    assert a["files"] == 61 and a["bytes"] == b["bytes"]
    assert a["big_file"].stat().st_size == 1 << 20
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "c")
    assert sum(1 for p in (tmp_path / "a").rglob("*")
               if p.is_file() and not p.is_symlink()) == 61


def test_make_oci_layout_is_readable_by_skopeo(tmp_path):
    info = make_oci_layout(tmp_path / "lay", tag="t1",
                           layers=[{"a.txt": b"a"}, {"b/c.txt": b"c"}])
    out = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{info['path']}:t1"],
                         check=True, capture_output=True, timeout=30).stdout
    assert sha256(out) == info["manifest"]
    assert len(json.loads(out)["layers"]) == 2


def test_token_server_stop_closes_kept_alive_connections(tmp_path):
    before = threading.active_count()
    server = TokenServer(tmp_path / "tok")
    conn = http.client.HTTPConnection(f"127.0.0.1:{server.port}", timeout=10)
    conn.request("GET", "/token?service=sandbox-test&scope=repository:a/b:pull")
    r = conn.getresponse()
    token = json.loads(r.read())["token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "RS256" and len(header["x5c"]) == 1
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["iss"] == "sandbox-test-issuer" and claims["aud"] == "sandbox-test"
    assert claims["sub"] == "" and claims["exp"] - claims["iat"] == 300
    server.stop()  # the client still holds its keep-alive connection open
    server.stop()
    conn.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before
