"""Image reference parsing agrees with Docker's distribution/reference."""

from __future__ import annotations

import pytest

from sandbox import reference
from sandbox.errors import InvalidReference
from sandbox.reference import Reference, is_image_id_prefix, parse

SHA = "sha256:" + "a" * 64
HEX64 = "0123456789abcdef" * 4

# input -> (registry, repository, tag, digest, full_name, familiar)
VALID = {
    "busybox": ("docker.io", "library/busybox", "latest", None,
                "docker.io/library/busybox:latest", "busybox:latest"),
    "busybox:1.36": ("docker.io", "library/busybox", "1.36", None,
                     "docker.io/library/busybox:1.36", "busybox:1.36"),
    f"busybox@{SHA}": ("docker.io", "library/busybox", None, SHA,
                       f"docker.io/library/busybox@{SHA}", f"busybox@{SHA}"),
    f"busybox:1.36@{SHA}": ("docker.io", "library/busybox", "1.36", SHA,
                            f"docker.io/library/busybox:1.36@{SHA}", f"busybox:1.36@{SHA}"),
    "myorg/app": ("docker.io", "myorg/app", "latest", None,
                  "docker.io/myorg/app:latest", "myorg/app:latest"),
    "library/a/b": ("docker.io", "library/a/b", "latest", None,
                    "docker.io/library/a/b:latest", "library/a/b:latest"),
    "localhost/app": ("localhost", "app", "latest", None,
                      "localhost/app:latest", "localhost/app:latest"),
    "localhost:5000/app:v1": ("localhost:5000", "app", "v1", None,
                              "localhost:5000/app:v1", "localhost:5000/app:v1"),
    "127.0.0.1:5000/a/b/c:tag": ("127.0.0.1:5000", "a/b/c", "tag", None,
                                 "127.0.0.1:5000/a/b/c:tag", "127.0.0.1:5000/a/b/c:tag"),
    "[::1]:5000/app": ("[::1]:5000", "app", "latest", None,
                       "[::1]:5000/app:latest", "[::1]:5000/app:latest"),
    "ghcr.io/x/y": ("ghcr.io", "x/y", "latest", None,
                    "ghcr.io/x/y:latest", "ghcr.io/x/y:latest"),
    "index.docker.io/busybox": ("docker.io", "library/busybox", "latest", None,
                                "docker.io/library/busybox:latest", "busybox:latest"),
    "docker.io/busybox": ("docker.io", "library/busybox", "latest", None,
                          "docker.io/library/busybox:latest", "busybox:latest"),
    "docker.io/library/busybox:musl": ("docker.io", "library/busybox", "musl", None,
                                       "docker.io/library/busybox:musl", "busybox:musl"),
    "docker.io/myorg/app": ("docker.io", "myorg/app", "latest", None,
                            "docker.io/myorg/app:latest", "myorg/app:latest"),
    "a_b.c__d-e---f:V_1.x-Y": ("docker.io", "library/a_b.c__d-e---f", "V_1.x-Y", None,
                               "docker.io/library/a_b.c__d-e---f:V_1.x-Y",
                               "a_b.c__d-e---f:V_1.x-Y"),
    "localhost": ("docker.io", "library/localhost", "latest", None,
                  "docker.io/library/localhost:latest", "localhost:latest"),
    "localhost:5000": ("docker.io", "library/localhost", "5000", None,
                       "docker.io/library/localhost:5000", "localhost:5000"),
    "abc": ("docker.io", "library/abc", "latest", None,
            "docker.io/library/abc:latest", "abc:latest"),
    "busybox:" + "t" * 128: ("docker.io", "library/busybox", "t" * 128, None,
                             "docker.io/library/busybox:" + "t" * 128, "busybox:" + "t" * 128),
    "r.example.com/" + "a" * (255 - len("r.example.com/")):
        ("r.example.com", "a" * 241, "latest", None,
         "r.example.com/" + "a" * 241 + ":latest", "r.example.com/" + "a" * 241 + ":latest"),
    f"busybox@sha512:{'b' * 128}": ("docker.io", "library/busybox", None, "sha512:" + "b" * 128,
                                    f"docker.io/library/busybox@sha512:{'b' * 128}",
                                    f"busybox@sha512:{'b' * 128}"),
}

INVALID = {
    "": "empty",
    HEX64: "64-byte hexadecimal",
    "BusyBox": "lowercase",
    "myorg/App:v1": "lowercase",
    "localhost:5000/App": "lowercase",
    "busy box": "invalid characters",
    "busybox!": "invalid characters",
    "a/b$c": "invalid characters",
    "-busybox": "invalid characters",
    "busybox-": "invalid characters",
    "a..b": "invalid characters",
    "a//b": "invalid characters",
    "/busybox": "invalid characters",
    "ghcr.io/": "missing repository",
    ":latest": "missing repository",
    "busybox:": "trailing ':'",
    "busybox@": "trailing '@'",
    "busybox:1.36@": "trailing '@'",
    "busybox:" + "t" * 129: "tag",
    "busybox:.hidden": "tag",
    "busybox:-x": "tag",
    "busybox:a+b": "tag",
    "busybox:é": "tag",
    "busybox@sha256": "algorithm:hex",
    "busybox@sha256:abc": "64 lowercase hex",
    "busybox@sha256:" + "A" * 64: "64 lowercase hex",
    "busybox@sha256:" + "g" * 64: "64 lowercase hex",
    "busybox@sha256:" + "a" * 65: "64 lowercase hex",
    "busybox@md5:" + "a" * 32: "unsupported algorithm",
    "busybox@1sha:" + "a" * 64: "algorithm:hex",
    f"busybox@{SHA}@{SHA}": "64 lowercase hex",
    "r.example.com/" + "a" * (256 - len("r.example.com/")): "255 characters",
    "b" * 250: "255 characters",  # docker.io/library/ counts toward the limit
    "-bad.io/app": "registry host",
    "bad_host.io/app": "registry host",
    "localhost:port/app": "registry host",
}


@pytest.mark.parametrize("text", VALID)
def test_parse_valid(text: str) -> None:
    registry, repository, tag, digest, full_name, familiar = VALID[text]
    ref = parse(text)
    assert ref == Reference(registry, repository, tag, digest)
    assert ref.full_name == full_name
    assert ref.familiar == familiar
    assert str(ref) == familiar
    assert ref.name == f"{registry}/{repository}"


@pytest.mark.parametrize("text", VALID)
@pytest.mark.parametrize("default_tag", [True, False])
def test_round_trip(text: str, default_tag: bool) -> None:
    ref = parse(text, default_tag=default_tag)
    assert parse(str(ref), default_tag=default_tag) == ref
    assert parse(ref.full_name, default_tag=default_tag) == ref


@pytest.mark.parametrize("text", INVALID)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse(text)
    message = str(info.value)
    assert INVALID[text] in message
    assert "\n" not in message
    assert info.value.hint
    if text:
        assert repr(text) in message or repr(text.split("@", 1)[1]) in message


@pytest.mark.parametrize("ref, familiar_name", [
    ("busybox", "busybox"),
    ("docker.io/library/busybox", "busybox"),
    ("docker.io/myorg/app", "myorg/app"),
    ("docker.io/library/a/b", "library/a/b"),
    ("localhost:5000/app", "localhost:5000/app"),
    ("ghcr.io/library/x", "ghcr.io/library/x"),
])
def test_familiar_name(ref: str, familiar_name: str) -> None:
    assert parse(ref).familiar_name == familiar_name


def test_default_tag_off_leaves_bare_name_untagged() -> None:
    ref = parse("busybox", default_tag=False)
    assert ref.tag is None and ref.digest is None
    assert ref.full_name == "docker.io/library/busybox"
    assert ref.familiar == "busybox"


def test_digest_only_gets_no_default_tag() -> None:
    assert parse(f"busybox@{SHA}").tag is None


def test_with_tag_keeps_digest_and_validates() -> None:
    ref = parse(f"busybox@{SHA}")
    tagged = ref.with_tag("1.36")
    assert tagged.tag == "1.36" and tagged.digest == SHA
    assert tagged.full_name == f"docker.io/library/busybox:1.36@{SHA}"
    assert ref.tag is None  # frozen: with_tag returns a copy
    with pytest.raises(InvalidReference):
        ref.with_tag("-bad")


def test_reference_is_frozen_and_hashable() -> None:
    ref = parse("busybox")
    with pytest.raises(AttributeError):
        ref.tag = "x"  # type: ignore[misc]
    assert {ref, parse("docker.io/library/busybox:latest")} == {ref}


def test_defaults() -> None:
    assert reference.DEFAULT_REGISTRY == "docker.io"
    assert reference.DEFAULT_TAG == "latest"


@pytest.mark.parametrize("text, expected", [
    ("a", True),
    ("abc123", True),
    (HEX64, True),
    ("sha256:abc", True),
    (f"sha256:{HEX64}", True),
    ("", False),
    ("sha256:", False),
    (HEX64 + "0", False),
    ("ABC", False),
    ("abcg", False),
    ("busybox", False),
    ("sha512:abc", False),
    ("abc:latest", False),
])
def test_is_image_id_prefix(text: str, expected: bool) -> None:
    assert is_image_id_prefix(text) is expected
