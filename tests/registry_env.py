"""Real registries and a fault-injecting proxy for the registry client's tests.

Everything here listens on 127.0.0.1 only and stops every process and thread
it starts (``stop()`` is idempotent; each class is also a context manager).
The pytest fixtures that wrap these live in ``tests/integration/conftest.py``.

* ``Registry``       docker-registry (distribution 2.8) without auth, plain HTTP.
* ``AuthRegistry``   the same with htpasswd (bcrypt) basic auth, plain HTTP:
                     distribution 2.8 accepts basic auth without TLS (no
                     refusal, not even a warning), so no certificate is needed.
* ``TokenServer``    Docker's token protocol (GET /token) in a thread, signing
                     RS256 JWTs with ``openssl dgst`` and putting the signing
                     certificate in the ``x5c`` header, which distribution 2.8
                     verifies against ``auth.token.rootcertbundle``.
* ``TokenRegistry``  docker-registry with ``auth: token:`` pointing at a
                     ``TokenServer``.
* ``FaultProxy``     an HTTP/1.1 proxy in threads that can cut a response or a
                     request body after N bytes, or flip a byte of a response.
* ``make_image_tree``, ``make_oci_layout``, ``skopeo_copy_to``: content helpers.

Facts about distribution 2.8.2 these helpers rely on:

* it starts in about 30 ms, so a fresh registry per test is cheap;
* with token auth it answers 401 with ``WWW-Authenticate: Bearer
  realm="...",service="...",scope="repository:NAME:pull,push"``; for
  ``/v2/_catalog`` the scope is ``registry:catalog:*``;
* a token's header may carry ``x5c`` (chain verified against the root bundle;
  a self-signed leaf that is itself in the bundle verifies), ``jwk``, or a
  ``kid`` in libtrust fingerprint form; ``x5c`` is the simplest;
* ``aud`` must be a single string equal to ``auth.token.service``; ``exp`` and
  ``nbf`` are checked with 60 s of leeway.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import gzip
import hashlib
import http.server
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable
from pathlib import Path

LOCALHOST = "127.0.0.1"
REGISTRY_BINARY = "docker-registry"
REQUIRED_TOOLS = ("docker-registry", "htpasswd", "openssl", "skopeo")

TEST_USER = "student"
TEST_PASSWORD = "s3cret"
TOKEN_SERVICE = "sandbox-test"
TOKEN_ISSUER = "sandbox-test-issuer"


def missing_tools(tools: Iterable[str] = REQUIRED_TOOLS) -> list[str]:
    """The tools of ``tools`` that are not on PATH."""
    return [t for t in tools if shutil.which(t) is None]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def _wait_port_closed(port: int, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((LOCALHOST, port), timeout=0.2).close()
        except OSError:
            return
        time.sleep(0.01)


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    return subprocess.run(cmd, check=kw.pop("check", True), **kw)


# ---------------------------------------------------------------- registries

class RegistryError(RuntimeError):
    """docker-registry did not start (the message carries the log's tail)."""


class Registry:
    """A docker-registry process with filesystem storage below ``workdir``.

    Attributes: ``host`` ("127.0.0.1:PORT"), ``url`` ("http://127.0.0.1:PORT"),
    ``port``, ``storage`` (Path of the blob store), ``log`` (Path of its
    stdout+stderr), ``config`` (Path of config.yml), ``process``.
    Plain HTTP: docker clients treat 127.0.0.1:PORT as insecure by default.
    """

    auth_kind = "none"

    def __init__(self, workdir: Path | str, *, start: bool = True,
                 start_timeout: float = 10.0):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage = self.workdir / "storage"
        self.config = self.workdir / "config.yml"
        self.log = self.workdir / "registry.log"
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.start_timeout = start_timeout
        self.start_seconds: float | None = None
        if start:
            self.start()

    # -- properties
    @property
    def host(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    # -- configuration (YAML is JSON's superset, so config.yml is written as JSON)
    def _auth_config(self) -> dict | None:
        return None

    def _config(self) -> dict:
        cfg = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False},
                    "fields": {"service": "registry"}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": f"{LOCALHOST}:{self.port}",
                "secret": "sandbox-test-secret",
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        }
        auth = self._auth_config()
        if auth:
            cfg["auth"] = auth
        return cfg

    # -- life cycle
    def start(self) -> Registry:
        if self.process is not None:
            raise RegistryError("registry already started")
        if shutil.which(REGISTRY_BINARY) is None:
            raise RegistryError(f"{REGISTRY_BINARY} not found (apt install docker-registry)")
        self.storage.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        last = ""
        for _attempt in range(5):  # retry when another process took the port
            self.port = free_port()
            self.config.write_text(json.dumps(self._config(), indent=2) + "\n")
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    [REGISTRY_BINARY, "serve", str(self.config)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    cwd=self.workdir, start_new_session=True)
            try:
                self._wait_ready()
                self.start_seconds = time.monotonic() - t0
                return self
            except RegistryError as e:
                last = str(e)
                self._kill()
                if "address already in use" not in last:
                    break
        raise RegistryError(last)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.process.poll() is not None:
                raise RegistryError(f"docker-registry exited with {self.process.returncode}:\n"
                                    + self.log_tail())
            try:
                status = self._probe()
                if status in self._ready_statuses():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RegistryError(f"docker-registry not ready after {self.start_timeout}s:\n"
                                    + self.log_tail())
            time.sleep(0.01)

    def _ready_statuses(self) -> tuple[int, ...]:
        return (200,)

    def _probe(self) -> int:
        req = urllib.request.Request(self.url + "/v2/", headers=self._probe_headers())
        try:
            with _NO_PROXY.open(req, timeout=1) as r:
                return r.status
        except urllib.error.HTTPError as e:
            e.close()
            return e.code

    def _probe_headers(self) -> dict:
        return {}

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _kill(self) -> None:
        p, self.process = self.process, None
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; reaps the process. Idempotent."""
        port = self.port
        self._kill()
        if port:
            _wait_port_closed(port)

    def __enter__(self):
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} auth={self.auth_kind}>"

    # -- a tiny HTTP client for assertions (the client under test is not used)
    def auth_headers(self, scope: str | Iterable[str] | None = None,
                     anonymous: bool = False) -> dict:
        """Headers that authorize a request for ``scope`` (none needed here)."""
        return {}

    def request(self, method: str, path: str, *, data: bytes | None = None,
                headers: dict | None = None, scope=None, anonymous: bool = False,
                timeout: float = 10) -> tuple[int, dict, bytes]:
        """One HTTP request to the registry: (status, headers, body); never raises on 4xx/5xx."""
        h = dict(self.auth_headers(scope, anonymous=anonymous))
        h.update(headers or {})
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with _NO_PROXY.open(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, dict(e.headers), e.read()

    def catalog(self) -> list[str]:
        """Repository names from GET /v2/_catalog."""
        status, _, body = self.request("GET", "/v2/_catalog?n=1000",
                                       scope="registry:catalog:*")
        if status != 200:
            raise RegistryError(f"GET /v2/_catalog: {status} {body[:200]!r}")
        return json.loads(body)["repositories"] or []

    def tags(self, repo: str) -> list[str]:
        status, _, body = self.request("GET", f"/v2/{repo}/tags/list",
                                       scope=f"repository:{repo}:pull")
        if status == 404:
            return []
        if status != 200:
            raise RegistryError(f"GET /v2/{repo}/tags/list: {status} {body[:200]!r}")
        return json.loads(body)["tags"] or []

    def manifest(self, repo: str, ref: str) -> tuple[str, dict]:
        """(Docker-Content-Digest, manifest JSON) of repo:ref."""
        accept = ("application/vnd.oci.image.manifest.v1+json, "
                  "application/vnd.oci.image.index.v1+json, "
                  "application/vnd.docker.distribution.manifest.v2+json, "
                  "application/vnd.docker.distribution.manifest.list.v2+json")
        status, headers, body = self.request(
            "GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept},
            scope=f"repository:{repo}:pull")
        if status != 200:
            raise RegistryError(f"GET /v2/{repo}/manifests/{ref}: {status} {body[:200]!r}")
        return headers.get("Docker-Content-Digest", ""), json.loads(body)

    def blob(self, repo: str, digest: str) -> bytes:
        status, _, body = self.request("GET", f"/v2/{repo}/blobs/{digest}",
                                       scope=f"repository:{repo}:pull")
        if status != 200:
            raise RegistryError(f"GET /v2/{repo}/blobs/{digest}: {status}")
        return body

    def skopeo_args(self, side: str = "dest") -> list[str]:
        """skopeo flags for using this registry as ``--src`` or ``--dest``."""
        return [f"--{side}-tls-verify=false"]


class AuthRegistry(Registry):
    """docker-registry with htpasswd basic auth (bcrypt). ``.user``, ``.password``.

    distribution 2.8 serves htpasswd auth over plain HTTP without complaint.
    """

    auth_kind = "htpasswd"

    def __init__(self, workdir, *, user: str = TEST_USER, password: str = TEST_PASSWORD,
                 **kw):
        self.user, self.password = user, password
        self.htpasswd = Path(workdir) / "htpasswd"
        Path(workdir).mkdir(parents=True, exist_ok=True)
        out = _run(["htpasswd", "-Bbn", user, password]).stdout
        self.htpasswd.write_bytes(out.strip() + b"\n")
        super().__init__(workdir, **kw)

    def _auth_config(self):
        return {"htpasswd": {"realm": "sandbox-test-realm", "path": str(self.htpasswd)}}

    def _probe_headers(self):
        return {"Authorization": _basic(self.user, self.password)}

    def auth_headers(self, scope=None, anonymous=False):
        return {} if anonymous else {"Authorization": _basic(self.user, self.password)}

    def skopeo_args(self, side="dest"):
        return [f"--{side}-tls-verify=false", f"--{side}-creds", f"{self.user}:{self.password}"]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ---------------------------------------------------------------- token server

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclasses.dataclass
class TokenRequest:
    """One request the token server answered."""
    method: str
    path: str
    service: str | None
    scopes: list[str]               # every scope= parameter, in order
    user: str | None                # Basic auth user name, None when anonymous
    status: int
    granted: list[dict]             # the token's "access" claim ([] for errors)
    query: dict                     # all query parameters (lists)
    headers: dict


_SIGNER: dict = {}
_SIGNER_LOCK = threading.Lock()


class TokenServer:
    """Docker's token protocol on 127.0.0.1 in a thread (https://docs.docker.com/registry/spec/auth/token/).

    ``GET /token?service=S&scope=repository:NAME:pull,push[&scope=...]`` with
    optional Basic auth. ``users`` (default {"student": "s3cret"}) may push,
    pull and delete; anonymous callers get ``pull`` only; a wrong password or
    unknown user gets 401. ``registry:catalog:*`` is granted to users only.
    A wrong ``service`` gets 400. ``POST /token`` (OAuth2) answers 404 so that
    clients fall back to GET, as with Docker Hub's older servers.

    Every request is recorded in ``token_requests`` (a list of TokenRequest).
    ``fail_next(status, times)`` makes the next requests fail, to test errors.
    """

    def __init__(self, workdir: Path | str, *, service: str = TOKEN_SERVICE,
                 issuer: str = TOKEN_ISSUER, users: dict | None = None,
                 expires_in: int = 300):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.service, self.issuer, self.expires_in = service, issuer, expires_in
        self.users = dict(users if users is not None else {TEST_USER: TEST_PASSWORD})
        self.key_file = self.workdir / "token-key.pem"
        self.cert_file = self.workdir / "token-cert.pem"
        self.token_requests: list[TokenRequest] = []
        self._failures: list[int] = []
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._make_cert()
        self._server = None
        self._thread = None
        self.start()

    def _make_cert(self) -> None:
        # RSA key generation costs 0.1-0.5 s, so one key pair serves the whole
        # test process (held in memory; each server writes its own copy).
        with _SIGNER_LOCK:
            if not _SIGNER:
                with tempfile.TemporaryDirectory(prefix="token-signer-") as tmp:
                    key, cert = Path(tmp) / "key.pem", Path(tmp) / "cert.pem"
                    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                          "-keyout", str(key), "-out", str(cert), "-days", "7",
                          "-subj", "/CN=sandbox-test-token-signer"])
                    der = _run(["openssl", "x509", "-in", str(cert), "-outform", "DER"]).stdout
                    _SIGNER.update(key=key.read_bytes(), cert=cert.read_bytes(),
                                   der_b64=base64.b64encode(der).decode())
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(_SIGNER["key"])
        self.cert_file.write_bytes(_SIGNER["cert"])
        self.cert_der_b64 = _SIGNER["der_b64"]

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def realm(self) -> str:
        return self.url + "/token"

    def start(self) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def log_message(self, *args):  # keep pytest output clean
                pass

            def setup(self):
                super().setup()
                with server._lock:
                    server._conns.add(self.connection)

            def finish(self):
                try:
                    super().finish()
                finally:
                    with server._lock:
                        server._conns.discard(self.connection)

            def do_GET(self):
                server._handle(self)

            def do_POST(self):
                server._handle(self)

        self._server = http.server.ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="token-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close kept-alive client connections. Idempotent."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = self._thread = None
            with self._lock:
                conns = list(self._conns)
            for c in conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` and no token."""
        with self._lock:
            self._failures.extend([status] * times)

    # -- tokens
    def sign(self, claims: dict) -> str:
        """A compact RS256 JWT for ``claims`` with the certificate in ``x5c``."""
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.cert_der_b64]}
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         _b64url(json.dumps(claims, separators=(",", ":")).encode()))
        sig = _run(["openssl", "dgst", "-sha256", "-sign", str(self.key_file)],
                   input=signing_input.encode()).stdout
        return signing_input + "." + _b64url(sig)

    def make_token(self, subject: str, access: list[dict], *, expires_in: int | None = None,
                   audience: str | None = None, issuer: str | None = None) -> str:
        now = int(time.time())
        exp = expires_in if expires_in is not None else self.expires_in
        return self.sign({
            "iss": issuer or self.issuer, "sub": subject, "aud": audience or self.service,
            "exp": now + exp, "nbf": now - 1, "iat": now, "jti": uuid.uuid4().hex,
            "access": access})

    def grant(self, user: str | None, scopes: list[str]) -> list[dict]:
        """The access claim for ``user`` (None: anonymous) asking for ``scopes``."""
        allowed = {"pull", "push", "delete", "*"} if user else {"pull"}
        merged: dict[tuple[str, str], list[str]] = {}
        for scope in scopes:
            for part in scope.split(" "):  # a scope parameter may hold several
                try:
                    typ, rest = part.split(":", 1)
                    name, actions = rest.rsplit(":", 1)
                except ValueError:
                    continue
                if typ == "registry" and not user:
                    continue
                acts = merged.setdefault((typ, name), [])
                for a in actions.split(","):
                    if a in allowed and a not in acts:
                        acts.append(a)
        return [{"type": t, "name": n, "actions": a} for (t, n), a in merged.items()]

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        if length:
            h.rfile.read(length)
        parsed = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        scopes = query.get("scope", [])
        service = (query.get("service") or [None])[0]
        user, password = None, None
        authz = h.headers.get("Authorization", "")
        if authz.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(authz[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", None
        status, body, granted = 200, None, []
        with self._lock:
            forced = self._failures.pop(0) if self._failures else None
        if forced is not None:
            status, body = forced, {"errors": [{"code": "UNKNOWN", "message": "injected failure"}]}
        elif h.command == "POST" or parsed.path != "/token":
            status, body = 404, {"errors": [{"code": "NOT_FOUND", "message": "not found"}]}
        elif user is not None and self.users.get(user) != password:
            status, body = 401, {"errors": [{"code": "UNAUTHORIZED",
                                             "message": "wrong user name or password"}]}
        elif service != self.service:
            status, body = 400, {"errors": [{"code": "INVALID_SERVICE",
                                             "message": f"unknown service {service!r}"}]}
        else:
            granted = self.grant(user, scopes)
            token = self.make_token(user or "", granted)
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            body = {"token": token, "access_token": token, "expires_in": self.expires_in,
                    "issued_at": now}
        data = json.dumps(body).encode()
        with self._lock:
            self.token_requests.append(TokenRequest(
                method=h.command, path=h.path, service=service, scopes=scopes, user=user,
                status=status, granted=granted, query=query, headers=dict(h.headers)))
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        if status == 401:
            h.send_header("WWW-Authenticate", 'Basic realm="sandbox-test-token"')
        h.end_headers()
        h.wfile.write(data)


class TokenRegistry(Registry):
    """docker-registry with ``auth: token:`` backed by a ``TokenServer``.

    ``.token_server``, ``.token_requests`` (its record), ``.realm``, ``.service``,
    ``.issuer``, ``.user``, ``.password``, ``.cert_file`` (the rootcertbundle).
    """

    auth_kind = "token"

    def __init__(self, workdir, *, user: str = TEST_USER, password: str = TEST_PASSWORD,
                 service: str = TOKEN_SERVICE, issuer: str = TOKEN_ISSUER, **kw):
        self.user, self.password = user, password
        self.token_server = TokenServer(Path(workdir) / "token", service=service,
                                        issuer=issuer, users={user: password})
        try:
            super().__init__(workdir, **kw)
        except BaseException:
            self.token_server.stop()
            raise

    service = property(lambda self: self.token_server.service)
    issuer = property(lambda self: self.token_server.issuer)
    realm = property(lambda self: self.token_server.realm)
    cert_file = property(lambda self: self.token_server.cert_file)
    token_requests = property(lambda self: self.token_server.token_requests)

    def _auth_config(self):
        return {"token": {"realm": self.realm, "service": self.service,
                          "issuer": self.issuer,
                          "rootcertbundle": str(self.cert_file)}}

    def _ready_statuses(self):
        return (401,)  # GET /v2/ without a token: 401 with the Bearer challenge

    def stop(self):
        try:
            super().stop()
        finally:
            self.token_server.stop()

    def token(self, scope=None, anonymous: bool = False) -> str:
        """Fetch a token for ``scope`` (a string or several) from the token server."""
        scopes = [scope] if isinstance(scope, str) else list(scope or [])
        q = urllib.parse.urlencode([("service", self.service)] + [("scope", s) for s in scopes])
        headers = {} if anonymous else {"Authorization": _basic(self.user, self.password)}
        req = urllib.request.Request(self.realm + "?" + q, headers=headers)
        with _NO_PROXY.open(req, timeout=10) as r:
            return json.loads(r.read())["token"]

    def auth_headers(self, scope=None, anonymous=False):
        return {"Authorization": "Bearer " + self.token(scope, anonymous=anonymous)}

    def skopeo_args(self, side="dest"):
        return [f"--{side}-tls-verify=false", f"--{side}-creds", f"{self.user}:{self.password}"]


# urllib without any proxy from the environment (http_proxy must never apply here)
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def parse_www_authenticate(value: str) -> tuple[str, dict]:
    """('Bearer', {'realm': ..., 'service': ..., 'scope': ...}) from a challenge."""
    scheme, _, rest = value.strip().partition(" ")
    params, i = {}, 0
    while i < len(rest):
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().strip(",").strip()
        i = eq + 1
        if i < len(rest) and rest[i] == '"':
            end = rest.find('"', i + 1)
            end = len(rest) if end < 0 else end
            params[key] = rest[i + 1:end]
            i = end + 1
        else:
            end = rest.find(",", i)
            end = len(rest) if end < 0 else end
            params[key] = rest[i:end].strip()
            i = end
        while i < len(rest) and rest[i] in ", ":
            i += 1
    return scheme, params


# ---------------------------------------------------------------- fault proxy

Seen = collections.namedtuple("Seen", "method path status")
Seen.__doc__ = """One request through the proxy: status None when no response came back."""


@dataclasses.dataclass
class Fault:
    """An armed fault; ``fired`` counts how often it took effect."""
    kind: str                      # "cut_response" | "cut_request" | "tamper_response"
    methods: tuple[str, ...]
    path_contains: str
    times: int | None              # None: every matching request
    n_bytes: int = 0               # cut after / tamper at this body offset
    reset: bool = False            # close with RST instead of FIN
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (method.upper() in self.methods and self.path_contains in path
                and (self.times is None or self.fired < self.times))


_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
               "expect"}


class _Cut(Exception):
    """A fault closed the connection on purpose."""


class FaultProxy:
    """An HTTP/1.1 forwarding proxy on 127.0.0.1 in front of ``target_host``.

    Clients talk to ``proxy.url`` as if it were the registry. The ``Host``
    header is passed through untouched, so the registry's ``Location`` headers
    point back at the proxy and whole uploads go through it.

    Connection handling: the client side keeps HTTP/1.1 keep-alive (unless the
    client asks for ``Connection: close`` or a response has no framing); every
    request is forwarded on a *fresh* upstream connection with ``Connection:
    close``. Request and response bodies framed by Content-Length or chunked
    transfer encoding are both handled. ``Expect: 100-continue`` is answered by
    the proxy itself (it sends ``100 Continue`` at once and drops the header).
    A TLS ClientHello gets Go's "HTTP request to an HTTPS server" 400 answer,
    so clients that try HTTPS first (skopeo) fall back to HTTP at once.

    Faults (each applies to the first ``times`` matching requests; times=None
    means always; ``path_contains`` is a substring of the request target):

    * ``cut_response_after(n)``: send the response head (with its original
      Content-Length) and n body bytes, then close the client connection.
      Applies only to 2xx responses whose body is longer than n.
    * ``cut_request_after(n)``: forward n bytes of the request body upstream,
      then close both connections; no response reaches the client. Applies
      only to requests whose body is longer than n (body bytes are counted
      without chunk framing).
    * ``tamper_response(offset=0)``: flip every bit of the body byte at
      ``offset`` (Content-Length unchanged). 2xx responses longer than offset.

    ``requests`` lists ``Seen(method, path, status)`` for every request in
    arrival order of its completion; ``faults`` lists the armed faults.
    """

    def __init__(self, target_host: str, *, timeout: float = 30.0):
        host, _, port = target_host.rpartition(":")
        if host not in (LOCALHOST, "localhost"):
            raise ValueError(f"FaultProxy only forwards to 127.0.0.1, not {target_host}")
        self.target = (LOCALHOST, int(port))
        self.timeout = timeout
        self.requests: list[Seen] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._closing = False
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOCALHOST, 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name="fault-proxy",
                                          daemon=True)
        self._acceptor.start()

    @property
    def host(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    # -- faults
    def _arm(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    @staticmethod
    def _methods(method) -> tuple[str, ...]:
        if isinstance(method, str):
            return (method.upper(),)
        return tuple(m.upper() for m in method)

    def cut_response_after(self, n_bytes: int, path_contains: str = "/blobs/sha256:",
                           times: int | None = 1, method="GET", reset: bool = False) -> Fault:
        return self._arm(Fault("cut_response", self._methods(method), path_contains, times,
                               n_bytes, reset))

    def cut_request_after(self, n_bytes: int, method=("PATCH", "PUT"),
                          path_contains: str = "/blobs/uploads/", times: int | None = 1,
                          reset: bool = True) -> Fault:
        return self._arm(Fault("cut_request", self._methods(method), path_contains, times,
                               n_bytes, reset))

    def tamper_response(self, path_contains: str = "/blobs/sha256:", times: int | None = 1,
                        offset: int = 0, method="GET") -> Fault:
        return self._arm(Fault("tamper_response", self._methods(method), path_contains,
                               times, offset))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _find(self, kinds: tuple[str, ...], method: str, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.kind in kinds and f.matches(method, path):
                    return f
        return None

    def _take(self, fault: Fault) -> bool:
        """Atomically use one of the fault's shots; False if none is left."""
        with self._lock:
            if fault.times is not None and fault.fired >= fault.times:
                return False
            fault.fired += 1
            return True

    def _refund(self, fault: Fault) -> None:
        with self._lock:
            fault.fired -= 1

    def paths(self, method: str | None = None, contains: str = "") -> list[str]:
        """Paths of recorded requests, optionally filtered."""
        return [s.path for s in list(self.requests)
                if (method is None or s.method == method.upper()) and contains in s.path]

    # -- threads
    def _track(self, sock):
        with self._lock:
            self._socks.add(sock)

    def _untrack_close(self, sock, reset: bool = False):
        with self._lock:
            self._socks.discard(sock)
        try:
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            else:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def _accept_loop(self):
        while not self._closing:
            try:
                csock, _ = self._listener.accept()
            except OSError:
                return
            if self._closing:
                csock.close()
                return
            csock.settimeout(self.timeout)
            self._track(csock)
            t = threading.Thread(target=self._serve, args=(csock,), name="fault-proxy-conn",
                                 daemon=True)
            with self._lock:
                self._threads.add(t)
            t.start()

    def stop(self) -> None:
        """Close the listener and every open connection; join all threads."""
        if self._closing:
            return
        self._closing = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._acceptor.join(5)
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in threads:
            t.join(5)
        with self._lock:
            for s in self._socks:
                s.close()
            self._socks.clear()

    close = stop

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _record(self, method, path, status):
        with self._lock:
            self.requests.append(Seen(method, path, status))

    def _serve(self, csock: socket.socket) -> None:
        cin = csock.makefile("rb")
        reset = False
        try:
            while not self._closing:
                keep = self._one_exchange(csock, cin)
                if not keep:
                    break
        except _Cut as cut:
            reset = bool(cut.args and cut.args[0])
        except (OSError, ValueError):
            pass
        finally:
            try:
                cin.close()
            except OSError:
                pass
            self._untrack_close(csock, reset=reset)
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _one_exchange(self, csock, cin) -> bool:
        """Forward one request and its response; True to keep the client connection."""
        if cin.peek(1)[:1] == b"\x16":
            # A TLS ClientHello (clients such as skopeo try HTTPS first). Answer
            # as Go's net/http does, so the client falls back to plain HTTP at
            # once instead of waiting for its handshake timeout (10 s).
            csock.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n"
                          b"Client sent an HTTP request to an HTTPS server.\n")
            return False
        line = cin.readline(65537)
        while line in (b"\r\n", b"\n"):
            line = cin.readline(65537)
        if not line:
            return False
        method, target, version = line.decode("latin-1").split()
        headers = _read_headers(cin)
        conn_tokens = {t.strip().lower() for k, v in headers if k.lower() == "connection"
                       for t in v.split(",")}
        keep = version == "HTTP/1.1" and "close" not in conn_tokens
        expect = _get(headers, "expect")
        framing, length = _framing(headers)

        drop = _HOP_BY_HOP | conn_tokens | {"transfer-encoding"}
        fwd = [(k, v) for k, v in headers if k.lower() not in drop]
        if framing == "chunked":  # the only transfer coding passed on
            fwd = [(k, v) for k, v in fwd if k.lower() != "content-length"]
            fwd.append(("Transfer-Encoding", "chunked"))
        fwd.append(("Connection", "close"))
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fwd)

        upstream = socket.create_connection(self.target, timeout=self.timeout)
        self._track(upstream)
        uin = upstream.makefile("rb")
        status = None
        try:
            upstream.sendall(head.encode("latin-1") + b"\r\n")
            if expect and expect.lower() == "100-continue" and framing != "none":
                csock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            fault = self._find(("cut_request",), method, target) if framing != "none" else None
            cut_at = None
            if fault is not None and (framing == "chunked" or length > fault.n_bytes) \
                    and self._take(fault):
                cut_at = fault.n_bytes
            else:
                fault = None
            try:
                done = _forward_body(cin, upstream, framing, length,
                                     _Hook(cut_after=cut_at))
            except _WriteFailed:
                # the server answered early and closed: pass its answer on, and
                # close the client connection, whose body is still unread
                done, keep = True, False
            if not done:  # the request cut fired
                self._record(method, target, None)
                raise _Cut(fault.reset)
            if fault is not None:  # a chunked body ended before n bytes: no cut
                self._refund(fault)
            # the response (skip any 1xx interim answers)
            while True:
                sline = uin.readline(65537)
                if not sline:
                    raise OSError("upstream closed without a response")
                parts = sline.decode("latin-1").split(None, 2)
                status = int(parts[1])
                rheaders = _read_headers(uin)
                if not 100 <= status < 200:
                    break
            if method == "HEAD" or status in (204, 304):
                rframing, rlength = "none", 0
            else:
                rframing, rlength = _framing(rheaders, response=True)
            hook = _Hook()
            rfault = None
            if 200 <= status < 300 and rframing != "none":
                rfault = self._find(("cut_response", "tamper_response"), method, target)
                if rfault is not None:
                    if (rframing == "length" and rlength <= rfault.n_bytes) \
                            or not self._take(rfault):
                        rfault = None
                    elif rfault.kind == "cut_response":
                        hook = _Hook(cut_after=rfault.n_bytes)
                    else:
                        hook = _Hook(flip_at=rfault.n_bytes)
            if rframing == "close":
                keep = False
            rconn = {t.strip().lower() for k, v in rheaders if k.lower() == "connection"
                     for t in v.split(",")}
            out = [(k, v) for k, v in rheaders
                   if k.lower() not in {"connection", "keep-alive"} | rconn]
            if not keep:
                out.append(("Connection", "close"))
            rhead = (sline.decode("latin-1").rstrip("\r\n") + "\r\n" +
                     "".join(f"{k}: {v}\r\n" for k, v in out) + "\r\n")
            csock.sendall(rhead.encode("latin-1"))
            try:
                done = _forward_body(uin, csock, rframing, rlength, hook)
            except _WriteFailed as e:
                raise OSError("client went away") from e
            if not done:
                self._record(method, target, status)
                raise _Cut(rfault.reset)
            if rfault is not None and hook.offset <= rfault.n_bytes:
                self._refund(rfault)  # a chunked/unframed body too short for it
            self._record(method, target, status)
            return keep
        except _Cut:
            raise
        except OSError:
            self._record(method, target, status)
            raise
        finally:
            try:
                uin.close()
            except OSError:
                pass
            self._untrack_close(upstream)


class _WriteFailed(Exception):
    """Writing to the receiving side of a body failed (that peer went away)."""


class _Hook:
    """Cuts a body after ``cut_after`` bytes or flips the byte at ``flip_at``."""

    def __init__(self, cut_after: int | None = None, flip_at: int | None = None):
        self.cut_after, self.flip_at, self.offset = cut_after, flip_at, 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to send, stop now)."""
        start, self.offset = self.offset, self.offset + len(data)
        if self.flip_at is not None and start <= self.flip_at < self.offset:
            i = self.flip_at - start
            data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
        if self.cut_after is not None and self.offset > self.cut_after:
            return data[:self.cut_after - start], True
        return data, False


def _read_headers(f) -> list[tuple[str, str]]:
    headers = []
    while True:
        line = f.readline(65537)
        if not line:
            raise OSError("connection closed inside the headers")
        if line in (b"\r\n", b"\n"):
            return headers
        if line[:1] in (b" ", b"\t") and headers:  # obsolete line folding
            k, v = headers[-1]
            headers[-1] = (k, v + " " + line.decode("latin-1").strip())
            continue
        k, _, v = line.decode("latin-1").partition(":")
        headers.append((k.strip(), v.strip()))


def _get(headers, name):
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _framing(headers, response: bool = False) -> tuple[str, int]:
    te = _get(headers, "transfer-encoding")
    if te and te.lower().split(",")[-1].strip() == "chunked":
        return "chunked", 0
    cl = _get(headers, "content-length")
    if cl is not None:
        return "length", int(cl)
    return ("close", 0) if response else ("none", 0)


def _forward_body(src, dst: socket.socket, framing: str, length: int, hook: _Hook,
                  piece: int = 65536) -> bool:
    """Copy one message body; False when the hook cut it.

    Raises _WriteFailed when writing to ``dst`` fails, OSError when ``src`` does.
    """

    def send(b: bytes) -> None:
        try:
            dst.sendall(b)
        except OSError as e:
            raise _WriteFailed() from e

    def data(n: int) -> bool:
        while n > 0:
            chunk = src.read(min(piece, n))
            if not chunk:
                raise OSError("peer closed inside a body")
            n -= len(chunk)
            out, stop = hook.feed(chunk)
            if out:
                send(out)
            if stop:
                return False
        return True

    if framing == "none":
        return True
    if framing == "length":
        if hook.cut_after is not None and hook.cut_after == 0 and length > 0:
            return False
        return data(length)
    if framing == "close":
        while True:
            chunk = src.read1(piece) if hasattr(src, "read1") else src.read(piece)
            if not chunk:
                return True
            out, stop = hook.feed(chunk)
            if out:
                send(out)
            if stop:
                return False
    # chunked: pass the framing through, count only the data
    while True:
        size_line = src.readline(65537)
        if not size_line:
            raise OSError("peer closed inside a chunked body")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size and hook.cut_after is not None and hook.offset >= hook.cut_after:
            return False
        send(size_line)
        if size == 0:
            while True:  # trailers, then the empty line
                t = src.readline(65537)
                send(t)
                if t in (b"\r\n", b"\n", b""):
                    return True
        if not data(size):
            return False
        send(src.readline(65537))  # the CRLF after the chunk


# ---------------------------------------------------------------- content helpers

EPOCH = 1_700_000_000  # fixed mtime for deterministic trees


def make_image_tree(root: Path | str, small_files: int = 2000, big_file_mb: int = 100,
                    seed: int = 0) -> dict:
    """Write a deterministic file tree below ``root`` (created if missing).

    ``small_files`` files of 0..16 KiB spread over nested directories (about
    half text, which compresses, half random bytes, which does not), plus one
    ``big_file_mb`` MiB file of random bytes (none when 0), a symlink and an
    empty directory. Same arguments, same names, bytes, modes and mtimes.
    Returns {"files": n, "bytes": total, "big_file": Path | None}.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    words = [f"w{i:03d}" for i in range(256)]
    total = 0
    dirs = set()
    for i in range(small_files):
        d = root / f"d{i % 40:02d}" / f"s{(i // 40) % 8}"
        if d not in dirs:
            d.mkdir(parents=True, exist_ok=True)
            dirs.add(d)
        size = min(int(rng.expovariate(1 / 2048)), 16384)
        if i % 2:
            body = rng.randbytes(size)
        else:
            text = " ".join(rng.choice(words) for _ in range(size // 4 + 1)) + "\n"
            body = text.encode()[:size]
        p = d / f"f{i:05d}.{'bin' if i % 2 else 'txt'}"
        p.write_bytes(body)
        os.chmod(p, 0o755 if i % 97 == 0 else 0o644)
        os.utime(p, (EPOCH, EPOCH))
        total += len(body)
    big = None
    if big_file_mb:
        big = root / "big" / "blob.bin"
        big.parent.mkdir(exist_ok=True)
        with open(big, "wb") as f:
            f.writelines(rng.randbytes(1 << 20) for _ in range(big_file_mb))
        os.chmod(big, 0o644)
        os.utime(big, (EPOCH, EPOCH))
        total += big_file_mb << 20
    (root / "empty-dir").mkdir(exist_ok=True)
    link = root / "link-to-first"
    if not link.is_symlink():
        link.symlink_to("d00/s0/f00000.txt")
    os.utime(link, (EPOCH, EPOCH), follow_symlinks=False)
    all_dirs = {p for d in dirs for p in (d, d.parent)} | {root / "empty-dir"}
    if big:
        all_dirs.add(big.parent)
    for d in sorted(all_dirs, reverse=True):
        os.utime(d, (EPOCH, EPOCH))
    os.utime(root, (EPOCH, EPOCH))
    return {"files": small_files + (1 if big else 0), "bytes": total, "big_file": big}


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """(gzipped tar, diff_id) of ``files`` {path: content}, deterministic."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(files[name]), EPOCH, 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    tar_bytes = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as g:
        g.write(tar_bytes)
    return gz.getvalue(), _sha256(tar_bytes)


def make_oci_layout(path: Path | str, tag: str = "latest",
                    layers: list[dict[str, bytes]] | None = None) -> dict:
    """Write a minimal OCI image layout (one image, tagged ``tag``) at ``path``.

    ``layers`` is a list of {path: bytes}; default: one layer with hello.txt.
    Returns {"manifest": digest, "config": digest, "layers": [digests],
    "diff_ids": [...], "blobs": {digest: bytes}, "path": Path, "ref": "oci:PATH:TAG"}.
    """
    path = Path(path)
    blobs_dir = path / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> str:
        d = _sha256(data)
        (blobs_dir / d.split(":", 1)[1]).write_bytes(data)
        blobs[d] = data
        return d

    layers = layers if layers is not None else [{"hello.txt": b"hello from a tiny image\n"}]
    layer_descs, diff_ids = [], []
    for files in layers:
        gz, diff_id = make_layer(files)
        layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": put(gz), "size": len(gz)})
        diff_ids.append(diff_id)
    config = json.dumps({
        "created": "2023-11-14T22:13:20Z", "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "make_oci_layout"}
                    for _ in layers],
    }, sort_keys=True).encode()
    config_digest = put(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": layer_descs,
    }, sort_keys=True).encode()
    manifest_digest = put(manifest)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (path / "index.json").write_text(json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }))
    return {"manifest": manifest_digest, "config": config_digest,
            "layers": [d["digest"] for d in layer_descs], "diff_ids": diff_ids,
            "blobs": blobs, "path": path, "ref": f"oci:{path}:{tag}"}


def skopeo_copy_to(registry: Registry, layout: Path | str, repo: str, tag: str = "latest",
                   src_tag: str = "latest", host: str | None = None,
                   timeout: float = 60) -> subprocess.CompletedProcess:
    """Push an OCI layout into ``registry`` with skopeo (seeds a registry for pull tests).

    ``host`` overrides the destination (e.g. a FaultProxy's host). Raises
    CalledProcessError (stderr attached) on failure.
    """
    layout = Path(layout)
    if ":" in str(layout):
        raise ValueError("skopeo cannot name an OCI layout whose path contains ':'")
    cmd = ["skopeo", "--insecure-policy", "copy", "--quiet", *registry.skopeo_args("dest"),
           f"oci:{layout}:{src_tag}",
           f"docker://{host or registry.host}/{repo}:{tag}"]
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    with tempfile.TemporaryDirectory(prefix="skopeo-auth-") as tmp:
        # never read or write the user's own credentials file
        env["REGISTRY_AUTH_FILE"] = os.path.join(tmp, "auth.json")
        return _run(cmd, env=env, timeout=timeout, text=True)
