"""Registry client logic that needs no server: challenges, endpoints, error words, credentials."""

from __future__ import annotations

import json
import os
import stat

import pytest

from sandbox.errors import RegistryError, RemoteNotFound, Unauthorized
from sandbox.registry import auth
from sandbox.registry.distribution import _choose_platform
from sandbox.registry.transport import Response, Transport, endpoint, is_insecure, parse_challenge
from sandbox.reference import parse


def test_parse_bearer_challenge():
    c = parse_challenge('Bearer realm="https://auth.example/token",service="registry.example",'
                        'scope="repository:library/busybox:pull"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.example/token", "service": "registry.example",
                        "scope": "repository:library/busybox:pull"}
    assert parse_challenge('Basic realm="basic-realm"').scheme == "basic"


@pytest.mark.parametrize("registry,insecure", [
    ("localhost:5000", True), ("localhost", True), ("127.0.0.1:5055", True), ("127.1.2.3", True),
    ("[::1]:5000", True), ("ghcr.io", False), ("10.0.0.1:5000", False), ("docker.io", False)])
def test_loopback_is_plain_http_everything_else_https(registry, insecure, monkeypatch, tmp_path):
    monkeypatch.setenv("SANDBOX_CONFIG", str(tmp_path))
    assert is_insecure(registry) is insecure


def test_insecure_list_and_docker_hub_endpoint(monkeypatch, tmp_path):
    monkeypatch.setenv("SANDBOX_CONFIG", str(tmp_path))
    monkeypatch.setenv("SANDBOX_INSECURE_REGISTRIES", "reg.lab:5000")
    assert endpoint("reg.lab:5000") == ("http", "reg.lab:5000")
    assert endpoint("docker.io") == ("https", "registry-1.docker.io")


def _error(status: int, code: str | None) -> Response:
    body = json.dumps({"errors": [{"code": code, "message": "detail"}]}).encode() if code else b""
    return Response(status, {}, body)


@pytest.mark.parametrize("status,code,cls,words", [
    (401, "UNAUTHORIZED", Unauthorized, "log in"),
    (404, "NAME_UNKNOWN", RemoteNotFound, "no repository"),
    (404, "MANIFEST_UNKNOWN", RemoteNotFound, "no such tag"),
    (404, None, RegistryError, "answered 404"),
    (400, "MANIFEST_BLOB_UNKNOWN", RegistryError, "does not have"),
    (400, "DIGEST_INVALID", RegistryError, "does not match its digest"),
    (500, None, RegistryError, "answered 500"),
])
def test_error_codes_in_plain_words(status, code, cls, words, monkeypatch, tmp_path):
    monkeypatch.setenv("SANDBOX_CONFIG", str(tmp_path))
    err = Transport("127.0.0.1:5000").error(_error(status, code), "x")
    assert type(err) is cls and words in str(err) and "\n" not in str(err)
    assert err.code == (code or err.code)


def test_credentials_file_is_dockers_shape_and_private(monkeypatch, tmp_path):
    monkeypatch.setenv("SANDBOX_CONFIG", str(tmp_path))
    path = auth.store_credentials("127.0.0.1:5000", "student", "s3cret")
    data = json.loads(path.read_text())
    assert data == {"auths": {"127.0.0.1:5000": {"auth": "c3R1ZGVudDpzM2NyZXQ="}}}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert auth.get_credentials("127.0.0.1:5000") == ("student", "s3cret")
    auth.store_credentials("docker.io", "u", "p")
    assert "https://index.docker.io/v1/" in json.loads(path.read_text())["auths"]
    assert auth.remove_credentials("127.0.0.1:5000") and auth.get_credentials("127.0.0.1:5000") is None


def test_platform_choice_from_an_index():
    index = {"manifests": [
        {"digest": "sha256:" + "a" * 64, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"digest": "sha256:" + "b" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "sha256:" + "c" * 64, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}}]}
    ref = parse("busybox")
    assert _choose_platform(index, ("linux", "amd64", None), ref) == "sha256:" + "b" * 64
    assert _choose_platform(index, ("linux", "arm64", "v8"), ref) == "sha256:" + "a" * 64
    with pytest.raises(RegistryError, match="linux/amd64, linux/arm, linux/arm64"):
        _choose_platform(index, ("linux", "s390x", None), ref)
