"""Fixtures for registry tests: real docker-registry processes and a fault proxy.

All of them listen on 127.0.0.1 only and stop what they started at teardown,
also when the test failed. See ``tests/registry_env.py`` for the classes.

* ``registry``        Registry, no auth (function scope: ~30 ms to start).
* ``auth_registry``   AuthRegistry, htpasswd basic auth, .user/.password.
* ``token_registry``  TokenRegistry, bearer tokens from a TokenServer thread;
                      .token_requests records what the client asked for.
* ``fault_proxy``     factory: ``fault_proxy(registry.host) -> FaultProxy``.
* ``tiny_oci_layout`` an OCI image layout with one small layer (see make_oci_layout).

Each registry fixture skips (with the apt package to install) when a tool is
missing.
"""

from __future__ import annotations

import shutil

import pytest

from tests.registry_env import (
    AuthRegistry,
    FaultProxy,
    Registry,
    TokenRegistry,
    make_oci_layout,
)

_PACKAGES = {"docker-registry": "docker-registry", "htpasswd": "apache2-utils",
             "openssl": "openssl", "skopeo": "skopeo"}


def _need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"requires {tool} (apt install {_PACKAGES.get(tool, tool)})")


@pytest.fixture
def registry(tmp_path_factory):
    """A fresh, empty docker-registry without auth: .host, .url, .storage, .log."""
    _need("docker-registry")
    reg = Registry(tmp_path_factory.mktemp("registry"))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def auth_registry(tmp_path_factory):
    """A fresh docker-registry with htpasswd auth; user .user ("student"), .password ("s3cret")."""
    _need("docker-registry", "htpasswd")
    reg = AuthRegistry(tmp_path_factory.mktemp("auth-registry"))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def token_registry(tmp_path_factory):
    """A fresh docker-registry with token auth and its token server (.token_requests)."""
    _need("docker-registry", "openssl")
    reg = TokenRegistry(tmp_path_factory.mktemp("token-registry"))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def fault_proxy():
    """Factory: ``fault_proxy(target_host, timeout=30) -> FaultProxy``; all stopped at teardown."""
    proxies: list[FaultProxy] = []

    def make(target_host: str, **kw) -> FaultProxy:
        proxy = FaultProxy(target_host, **kw)
        proxies.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.stop()


@pytest.fixture
def tiny_oci_layout(tmp_path_factory):
    """make_oci_layout() result for a one-layer image tagged "latest" (path has no ':')."""
    return make_oci_layout(tmp_path_factory.mktemp("tiny-oci") / "layout")
