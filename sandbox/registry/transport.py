"""HTTP to one registry: connections, authentication, errors in plain words.

The distribution spec's auth dance: a request answered 401 carries a
``WWW-Authenticate`` challenge; ``Bearer realm=...,service=...,scope=...`` means
"fetch a token for this scope from the realm" (with Basic credentials if we
have some), ``Basic`` means "send credentials directly".  Tokens are cached per
scope for the life of the transport.

Loopback registries (localhost, 127.0.0.0/8, ::1) and those listed as insecure
are spoken to over plain HTTP; everything else over HTTPS, like Docker.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import re
import select
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import IO, Any
from collections.abc import Iterable

from ..errors import RegistryError, RegistryUnreachable, RemoteNotFound, Unauthorized
from . import auth

#: Where Docker Hub's API lives (``docker.io`` is only the name people type).
DOCKER_HUB_API = "registry-1.docker.io"
USER_AGENT = "sandbox-kit/0.1 (+python)"
RETRIES = 3
BACKOFF = (0.2, 0.6, 1.5)
TIMEOUT = 60
#: The most a manifest, token or error answer may be: Docker and containerd refuse
#: manifests over 4 MiB, so a longer (or endless) answer is not one.
MAX_BODY = 4 << 20


def endpoint(registry: str) -> tuple[str, str]:
    """(scheme, host[:port]) to reach ``registry`` at."""
    host = DOCKER_HUB_API if registry in ("docker.io", "index.docker.io") else registry
    return ("http" if is_insecure(registry) else "https"), host


def _hostname(registry: str) -> str:
    """'127.0.0.1:5000' -> '127.0.0.1', '[::1]:5000' -> '::1', 'localhost' -> 'localhost'."""
    if registry.startswith("["):
        return registry[1:registry.find("]")]
    return registry.split(":", 1)[0]


def is_insecure(registry: str) -> bool:
    name = _hostname(registry)
    if name == "localhost":
        return True
    try:
        if ipaddress.ip_address(name).is_loopback:
            return True
    except ValueError:
        pass
    return registry in auth.insecure_registries()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    raw: http.client.HTTPResponse | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


@dataclass
class Challenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenge(value: str) -> Challenge:
    """``Bearer realm="https://auth",service="reg",scope="repository:a:pull"`` -> Challenge."""
    scheme, _, rest = value.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    params.update({k.lower(): v for k, v in re.findall(r'(\w+)=([^",\s]+)', rest) if k.lower() not in params})
    return Challenge(scheme.lower(), params)


class Transport:
    """Requests to one registry, with auth and plain-words errors.  Not thread-safe."""

    def __init__(self, registry: str, credentials: tuple[str, str] | None = None,
                 *, use_stored_credentials: bool = True) -> None:
        self.registry = registry
        self.scheme, self.host = endpoint(registry)
        self.credentials = credentials or (auth.get_credentials(registry) if use_stored_credentials else None)
        self._conn: http.client.HTTPConnection | None = None
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, expires at, monotonic)
        self._basic = False

    # -- connections ------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is not None and self._conn.sock is not None:
            # An idle keep-alive socket that is readable has been closed by the server
            # (or has junk): reconnect now rather than fail the next, maybe unretried, request.
            if select.select([self._conn.sock], [], [], 0)[0]:
                self.close()
        if self._conn is None:
            if self.scheme == "https":
                self._conn = http.client.HTTPSConnection(self.host, timeout=TIMEOUT,
                                                         context=ssl.create_default_context())
            else:
                self._conn = http.client.HTTPConnection(self.host, timeout=TIMEOUT)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _tls_error(self, e: ssl.SSLError) -> RegistryUnreachable:
        if isinstance(e, ssl.SSLCertVerificationError):
            hint = "its certificate is not trusted here: install its CA in the system trust store"
        else:
            hint = (f"the registry may speak plain HTTP: add {self.registry} to SANDBOX_INSECURE_REGISTRIES "
                    f"or to \"insecure-registries\" in {auth.config_path()}")
        return RegistryUnreachable(f"cannot talk HTTPS to {self.registry}: {e.reason or e}", hint=hint)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.scheme}://{self.host}{path}"

    # -- requests ---------------------------------------------------------------

    def request(self, method: str, path: str, *, scope: str | None = None, headers: dict[str, str] | None = None,
                body: bytes | IO[bytes] | None = None, length: int | None = None, stream: bool = False,
                ok: Iterable[int] = (200,), retry: bool = True, what: str = "") -> Response:
        """Send one request; authenticate and retry once on 401; retry connection drops if ``retry``.

        A response whose status is not in ``ok`` raises the matching RegistryError.
        """
        attempts = RETRIES if retry else 1
        for attempt in range(attempts):
            try:
                response = self._send(method, path, scope, headers, body, length, stream)
                if response.status == 401:
                    # Never answer a challenge from another host (a redirect target):
                    # it could ask us to send this registry's password elsewhere.
                    if urllib.parse.urlsplit(self.url(path)).netloc != self.host or \
                            not self._authenticate(response, scope):
                        raise self.error(response, what or f"{method} {path}", path)
                    if hasattr(body, "seek"):
                        body.seek(0)  # type: ignore[union-attr]
                    response = self._send(method, path, scope, headers, body, length, stream)
                if response.status not in ok:
                    raise self.error(response, what or f"{method} {path}", path)
                return response
            except ssl.SSLError as e:
                self.close()
                raise self._tls_error(e) from None
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if attempt + 1 >= attempts:
                    raise RegistryUnreachable(
                        f"cannot reach {self.registry} ({self.url('/v2/')}): {e}",
                        hint="check that the registry is running and the address is right") from None
                time.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
                if hasattr(body, "seek"):
                    body.seek(0)  # type: ignore[union-attr]
        raise AssertionError("unreachable")

    def _send(self, method: str, path: str, scope: str | None, headers: dict[str, str] | None,
              body: bytes | IO[bytes] | None, length: int | None, stream: bool) -> Response:
        target = urllib.parse.urlsplit(self.url(path))
        if target.netloc != self.host:  # a redirect to blob storage elsewhere
            return self._send_elsewhere(method, target, headers, body, length, stream)
        h = {"User-Agent": USER_AGENT, "Host": self.host}
        h.update(self._auth_header(scope))
        h.update(headers or {})
        if body is not None and length is not None:
            h["Content-Length"] = str(length)
        elif isinstance(body, bytes):
            h["Content-Length"] = str(len(body))
        elif body is None and method in ("POST", "PUT", "PATCH"):
            h["Content-Length"] = "0"
        conn = self._connection()
        uri = target.path + (f"?{target.query}" if target.query else "")
        conn.request(method, uri, body=body, headers=h)
        raw = conn.getresponse()
        try:
            return self._wrap(raw, stream, method)
        except RegistryError:
            self.close()  # the rest of the refused answer is still on the connection
            raise

    def _send_elsewhere(self, method: str, target: urllib.parse.SplitResult, headers: dict[str, str] | None,
                        body: Any, length: int | None, stream: bool) -> Response:
        cls = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
        conn = cls(target.netloc, timeout=TIMEOUT)
        conn.request(method, target.path + (f"?{target.query}" if target.query else ""), body=body,
                     headers={"User-Agent": USER_AGENT, **(headers or {})})
        return self._wrap(conn.getresponse(), stream, method)

    def _wrap(self, raw: http.client.HTTPResponse, stream: bool, method: str) -> Response:
        headers = {k.lower(): v for k, v in raw.getheaders()}
        if 300 <= raw.status < 400 and "location" in headers:
            read_body(raw, self.registry)
            return Response(raw.status, headers)
        if stream and raw.status in (200, 206) and method != "HEAD":
            return Response(raw.status, headers, raw=raw)
        return Response(raw.status, headers, read_body(raw, self.registry))

    def get_following(self, path: str, *, scope: str, headers: dict[str, str] | None = None,
                      stream: bool = False, what: str = "", retry: bool = True) -> Response:
        """GET that follows redirects (registries may send blob downloads to storage elsewhere)."""
        for _ in range(5):
            r = self.request("GET", path, scope=scope, headers=headers, stream=stream,
                             ok=(200, 206, 301, 302, 303, 307, 308), what=what, retry=retry)
            if r.status in (200, 206):
                return r
            path = urllib.parse.urljoin(self.url(path), r.header("location") or "")
        raise RegistryError(f"too many redirects fetching {what or path} from {self.registry}")

    # -- authentication ---------------------------------------------------------

    def _token(self, scope: str | None) -> str | None:
        for key in (scope or "", ""):
            entry = self._tokens.get(key)
            if entry and entry[1] > time.monotonic():
                return entry[0]
        return None

    def _auth_header(self, scope: str | None) -> dict[str, str]:
        token = self._token(scope)
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self._basic and self.credentials:
            raw = f"{self.credentials[0]}:{self.credentials[1]}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def _authenticate(self, response: Response, scope: str | None) -> bool:
        """Answer a 401 challenge; False when we have nothing new to offer."""
        challenge = parse_challenge(response.header("www-authenticate") or "")
        if challenge.scheme == "basic":
            if self._basic or not self.credentials:
                return False
            self._basic = True
            return True
        if challenge.scheme == "bearer":
            if challenge.params.get("error") == "insufficient_scope" and self._token(scope):
                return False  # a fresh token for the same scope would be refused too
            self._tokens[scope or ""] = self._fetch_token(challenge, scope)
            return True
        return False

    def _fetch_token(self, challenge: Challenge, scope: str | None) -> tuple[str, float]:
        """Ask the realm for a token; returns (token, expiry on the monotonic clock).

        Each scope is its own ``scope=`` parameter, as Docker's token spec asks
        (a cross-repository mount needs two: push here, pull there).
        """
        realm = challenge.params.get("realm")
        if not realm:
            raise Unauthorized(f"{self.registry} asked for a token but named no realm")
        query = [("service", challenge.params["service"])] if "service" in challenge.params else []
        for s in " ".join(filter(None, [scope, challenge.params.get("scope")])).split():
            if ("scope", s) not in query:
                query.append(("scope", s))
        url = urllib.parse.urlsplit(realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query))
        headers = {"User-Agent": USER_AGENT}
        if self.credentials:
            raw = f"{self.credentials[0]}:{self.credentials[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        try:
            conn = cls(url.netloc, timeout=TIMEOUT)
            conn.request("GET", url.path + "?" + url.query, headers=headers)
            raw_response = conn.getresponse()
            body = read_body(raw_response, realm)
            conn.close()
        except (OSError, http.client.HTTPException) as e:
            raise RegistryUnreachable(f"cannot reach the token service {realm} of {self.registry}: {e}",
                                      hint="the registry sends clients there to log in; check that it is running") from None
        if raw_response.status in (401, 403):
            if self.credentials is None:
                raise Unauthorized(f"{self.registry} requires a login for this", status=raw_response.status,
                                   code="UNAUTHORIZED", hint=f"log in with 'sandbox login {self.registry}'")
            raise Unauthorized(f"{self.registry} refused the credentials for {self.credentials[0]}",
                               status=raw_response.status, code="UNAUTHORIZED",
                               hint=f"check the user name and password; log in with 'sandbox login {self.registry}'")
        if raw_response.status != 200:
            raise RegistryError(f"the token service {realm} answered {raw_response.status}", status=raw_response.status,
                                hint="try again later; if it persists, the registry's token service is misconfigured")
        try:
            data = json.loads(body)
            token = str(data.get("token") or data["access_token"])
            lifetime = max(int(data.get("expires_in") or 60), 60)
        except (ValueError, KeyError, AttributeError, TypeError):
            raise RegistryError(f"the token service {realm} sent no token") from None
        return token, time.monotonic() + lifetime - 10

    # -- errors -----------------------------------------------------------------

    def error(self, response: Response, what: str, path: str = "") -> RegistryError:
        """A RegistryError in plain words from an error response (spec: "Error codes")."""
        code, detail = _first_error(response)
        where = f"{self.registry}"
        login = f"log in with 'sandbox login {self.registry}'"
        table: dict[str, tuple[type[RegistryError], str, str | None]] = {
            "UNAUTHORIZED": (Unauthorized, f"{where} wants you to log in to {what}", login),
            "DENIED": (Unauthorized, f"{where} denied access to {what}",
                       "check that this account may use that repository, or log in as another user"),
            "NAME_UNKNOWN": (RemoteNotFound, f"{where} has no repository for {what}",
                             "check the name (and the registry host), or push the image first"),
            "MANIFEST_UNKNOWN": (RemoteNotFound, f"{where} has no such tag or manifest for {what}",
                                 "check the tag; the registry only has what was pushed to it"),
            "BLOB_UNKNOWN": (RemoteNotFound, f"{where} does not have a blob needed for {what}",
                             "push the image again"),
            "MANIFEST_BLOB_UNKNOWN": (RegistryError, f"{where} refused the manifest for {what}: "
                                      "it names a layer or config the registry does not have",
                                      "push again: the layers go up before the manifest"),
            "DIGEST_INVALID": (RegistryError, f"{where} says uploaded content for {what} does not match its digest",
                               "the upload was damaged on the way; push again"),
            "SIZE_INVALID": (RegistryError, f"{where} says the size of {what} does not match", "push again"),
            "MANIFEST_INVALID": (RegistryError, f"{where} rejected the manifest for {what} as invalid",
                                 "the image may use a format this registry does not accept"),
            "TAG_INVALID": (RegistryError, f"{where} rejected the tag of {what}", "use a tag of letters, digits, . _ -"),
            "BLOB_UPLOAD_UNKNOWN": (RegistryError, f"{where} lost the upload session of {what}", "push again"),
            "TOOMANYREQUESTS": (RegistryError, f"{where} is rate-limiting requests for {what}", "wait and try again"),
            "UNSUPPORTED": (RegistryError, f"{where} does not support the operation {what}", None),
        }
        if code is None:
            code = {401: "UNAUTHORIZED", 403: "DENIED", 429: "TOOMANYREQUESTS"}.get(response.status)
            if response.status == 404 and "/manifests/" in path:
                code = "MANIFEST_UNKNOWN"
        if code in table:
            cls, message, hint = table[code]
        else:
            cls, message, hint = RegistryError, f"{where} answered {response.status} to {what}", None
        if detail and code not in ("UNAUTHORIZED", "NAME_UNKNOWN", "MANIFEST_UNKNOWN"):
            message += f" ({detail})"
        return cls(message, code=code, status=response.status, hint=hint)


def read_body(raw: http.client.HTTPResponse, source: str) -> bytes:
    """A whole small answer: at most MAX_BODY bytes, within TIMEOUT seconds in all.

    The socket timeout only bounds each read, so a server that sends a byte a
    second would otherwise keep us forever.  A body cut short raises
    ``IncompleteRead`` and a slow one ``TimeoutError``, which the callers retry
    as dropped connections; one too long raises RegistryError.
    """
    deadline = time.monotonic() + TIMEOUT
    body = bytearray()
    try:
        while chunk := raw.read1(1 << 16):
            body += chunk
            if len(body) > MAX_BODY:
                raise RegistryError(f"{source} sent an answer of more than {MAX_BODY} bytes",
                                    hint="that is no manifest; check the registry's address")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{source} took more than {TIMEOUT}s to send an answer of {len(body)} bytes")
        if raw.length:  # read1 ends quietly at a connection closed before Content-Length
            raise http.client.IncompleteRead(bytes(body), raw.length)
        return bytes(body)
    finally:
        raw.close()  # read1 does not mark a finished answer read; the connection needs that for the next


def _first_error(response: Response) -> tuple[str | None, str | None]:
    try:
        errors = json.loads(response.body or b"{}").get("errors") or []
        first = errors[0]
        return str(first.get("code")), str(first.get("message") or "") or None
    except (ValueError, AttributeError, IndexError, TypeError):
        return None, None
