"""Token auth details a real token service insists on, found in review: scopes, expiry, refused mounts."""

from __future__ import annotations

import time

import pytest

from sandbox import Engine
from sandbox.registry import pull, push
from sandbox.registry.transport import Transport
from tests.integration.test_registry import make_image

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def private_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_CONFIG", str(tmp_path / "config"))


def test_mount_asks_for_each_scope_separately(token_registry, tmp_path):
    engine = Engine(tmp_path / "root")
    engine.login(token_registry.host, "student", "s3cret")
    name = f"{token_registry.host}/class/app:v1"
    make_image(engine, name)
    push(engine.image_store, name)
    engine.images.tag(name, f"{token_registry.host}/other/app:v1")
    before = len(token_registry.token_requests)
    result = push(engine.image_store, f"{token_registry.host}/other/app:v1")
    asked = [r.scopes for r in token_registry.token_requests[before:]]
    assert any(set(s) >= {"repository:other/app:pull,push", "repository:class/app:pull"} for s in asked), asked
    assert not any(" " in scope for scopes in asked for scope in scopes)
    assert len(result.mounted) == 3


def test_an_expired_token_is_replaced_mid_session(token_registry, tmp_path):
    # The registry allows 60 s of clock leeway: this token really lives about 3 s.
    token_registry.token_server.expires_in = -57
    engine = Engine(tmp_path / "root")
    engine.login(token_registry.host, "student", "s3cret")
    t = Transport(token_registry.host)
    try:
        make_image(engine, f"{token_registry.host}/class/app:v1")
        push(engine.image_store, f"{token_registry.host}/class/app:v1", transport=t)
        time.sleep(4)
        make_image(engine, f"{token_registry.host}/class/app:v2", seed=b"later")
        push(engine.image_store, f"{token_registry.host}/class/app:v2", transport=t)
    finally:
        t.close()


def test_a_refused_mount_falls_back_to_an_upload(token_registry, tmp_path):
    server = token_registry.token_server
    grant = server.grant
    engine = Engine(tmp_path / "root")
    engine.login(token_registry.host, "student", "s3cret")
    name = f"{token_registry.host}/secret/base:v1"
    make_image(engine, name)
    push(engine.image_store, name)
    server.grant = lambda user, scopes: [a for a in grant(user, scopes) if not a["name"].startswith("secret/")]
    engine.images.tag(name, f"{token_registry.host}/class/app:v1")
    result = push(engine.image_store, f"{token_registry.host}/class/app:v1")
    assert result.mounted == [] and result.uploaded > 0


def test_pull_by_tag_and_digest_pins_without_tagging(registry, tmp_path):
    src = Engine(tmp_path / "src")
    name = f"{registry.host}/class/app:v1"
    make_image(src, name)
    digest = push(src.image_store, name).digest
    dst = Engine(tmp_path / "dst")
    pulled = pull(dst.image_store, f"{name}@{digest}")
    assert pulled.image.tags == [] and pulled.image.repo_digests == [f"{registry.host}/class/app@{digest}"]
