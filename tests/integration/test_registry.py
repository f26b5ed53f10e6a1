"""Push and pull against a real docker-registry on 127.0.0.1, with real faults in between.

Every test asserts on state: digests on both sides, what the registry received
(through the fault proxy's request log), what the store holds afterwards.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from sandbox import Engine
from sandbox.errors import BlobCorrupt, RegistryError, RegistryUnreachable, RemoteNotFound, Unauthorized
from sandbox.image.images import new_config
from sandbox.image.layers import write_layer_blob
from sandbox.image.mediatypes import REF_NAME
from sandbox.registry import auth, pull, push
from sandbox.registry.transport import Transport

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def private_credentials(tmp_path, monkeypatch):
    """Credentials go to a temp dir, never to the real ~/.sandbox."""
    monkeypatch.setenv("SANDBOX_CONFIG", str(tmp_path / "config"))


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_image(engine: Engine, tag: str, big: int = 64 * 1024, seed: bytes = b"") -> None:
    """A two-layer image: a base layer and a second layer of ``big`` random-ish bytes."""
    store = engine.store
    base = write_layer_blob(store, lambda out: out.write(_tar({"etc/motd": b"registry lab\n" + seed})))
    data = (seed + os.urandom(big // 2)) * 2
    top = write_layer_blob(store, lambda out: out.write(_tar({"data.bin": data})))
    config = new_config([base, top], [{"created_by": "base"}, {"created_by": "data"}], config={"Cmd": ["sh"]})
    engine.image_store.create(config, [base, top], tags=[tag])


def validate(engine: Engine) -> None:
    """The store still reads: index.json parses, every named image's blobs verify."""
    for desc in engine.store.manifests():
        manifest = engine.store.read_json_blob(desc.digest)
        for layer in manifest["layers"] + [manifest["config"]]:
            engine.store.verify_blob(layer["digest"])


def test_push_then_pull_into_a_fresh_store(registry, tmp_path):
    src = Engine(tmp_path / "src")
    name = f"{registry.host}/class/app:v1"
    make_image(src, name)
    result = push(src.image_store, name)
    image = src.images.get(name)
    assert result.digest == image.manifest_digest
    assert registry.catalog() == ["class/app"] and registry.tags("class/app") == ["v1"]
    assert src.images.get(name).repo_digests == [f"{registry.host}/class/app@{result.digest}"]

    dst = Engine(tmp_path / "dst")
    pulled = pull(dst.image_store, name)
    assert pulled.digest == result.digest
    assert pulled.image.id == image.id and pulled.image.diff_ids == image.diff_ids
    assert pulled.image.repo_digests == [f"{registry.host}/class/app@{result.digest}"]
    again = pull(dst.image_store, name)
    assert again.downloaded == 0 and again.status.startswith("Image is up to date")
    by_digest = pull(dst.image_store, f"{registry.host}/class/app@{result.digest}")
    assert by_digest.image.id == image.id


def test_second_push_skips_and_another_repo_mounts(registry, fault_proxy, tmp_path):
    proxy = fault_proxy(registry.host)
    engine = Engine(tmp_path / "root")
    name = f"{proxy.host}/class/app:v1"
    make_image(engine, name)
    first = push(engine.image_store, name)
    assert len(first.skipped) == 0 and first.uploaded > 0
    before = len(proxy.requests)
    second = push(engine.image_store, name)
    assert len(second.skipped) == 3 and second.uploaded == 0  # two layers and the config
    assert not [r for r in proxy.requests[before:] if r.method in ("PATCH", "POST")]
    other = f"{proxy.host}/other/app:v1"
    engine.images.tag(name, other)
    third = push(engine.image_store, other)
    assert len(third.mounted) == 3 and third.uploaded == 0
    assert any("mount=" in p for p in proxy.paths("POST"))


def test_chunked_upload(registry, fault_proxy, tmp_path):
    proxy = fault_proxy(registry.host)
    engine = Engine(tmp_path / "root")
    name = f"{proxy.host}/class/big:1"
    make_image(engine, name, big=3 << 20)
    push(engine.image_store, name, chunk_size=1 << 20)
    assert len(proxy.paths("PATCH")) >= 3
    pulled = pull(Engine(tmp_path / "other").image_store, name)
    assert pulled.image.id == engine.images.get(name).id


def test_dropped_download_resumes(registry, fault_proxy, tmp_path):
    engine = Engine(tmp_path / "src")
    make_image(engine, f"{registry.host}/class/app:v1", big=2 << 20)
    push(engine.image_store, f"{registry.host}/class/app:v1")
    proxy = fault_proxy(registry.host)
    big = engine.images.get(f"{registry.host}/class/app:v1").layers[1].digest
    proxy.cut_response_after(300_000, path_contains=big, times=1)
    dst = Engine(tmp_path / "dst")
    pulled = pull(dst.image_store, f"{proxy.host}/class/app:v1")
    assert pulled.image.id == engine.images.get(f"{registry.host}/class/app:v1").id
    assert proxy.faults[0].fired == 1
    assert len(proxy.paths("GET", big)) == 2  # the cut request, then the resumed one
    assert os.listdir(dst.store.ingest_dir) == []


def test_download_that_keeps_dropping_fails_clearly_and_tags_nothing(registry, fault_proxy, tmp_path):
    engine = Engine(tmp_path / "src")
    make_image(engine, f"{registry.host}/class/app:v1", big=1 << 20)
    push(engine.image_store, f"{registry.host}/class/app:v1")
    proxy = fault_proxy(registry.host)
    proxy.cut_response_after(1000, path_contains="/blobs/sha256:", times=None)
    dst = Engine(tmp_path / "dst")
    with pytest.raises(RegistryUnreachable) as e:
        pull(dst.image_store, f"{proxy.host}/class/app:v1")
    assert "failed 3 times" in str(e.value) and "\n" not in str(e.value)
    assert dst.store.manifests() == [] and os.listdir(dst.store.ingest_dir) == []
    validate(dst)


def test_dropped_upload_retries_then_fails_and_a_second_push_skips_what_arrived(registry, fault_proxy, tmp_path):
    proxy = fault_proxy(registry.host)
    engine = Engine(tmp_path / "root")
    name = f"{proxy.host}/class/app:v1"
    make_image(engine, name, big=1 << 20)
    base, top = engine.images.get(name).layers
    proxy.cut_request_after(50_000, method="PUT", path_contains=top.digest.split(":")[1], times=None)
    with pytest.raises(RegistryUnreachable) as e:
        push(engine.image_store, name)
    assert "failed 3 times" in str(e.value) and "push again" in str(e.value)
    assert proxy.faults[0].fired == 3
    assert registry.tags("class/app") == []  # no manifest went up
    proxy.clear_faults()
    second = push(engine.image_store, name)
    assert base.digest in second.skipped and top.digest not in second.skipped
    assert registry.tags("class/app") == ["v1"]


def test_tampered_blob_is_refused_and_nothing_is_tagged(registry, fault_proxy, tmp_path):
    engine = Engine(tmp_path / "src")
    make_image(engine, f"{registry.host}/class/app:v1")
    push(engine.image_store, f"{registry.host}/class/app:v1")
    top = engine.images.get(f"{registry.host}/class/app:v1").layers[1].digest
    proxy = fault_proxy(registry.host)
    proxy.tamper_response(path_contains=top, offset=100)
    dst = Engine(tmp_path / "dst")
    with pytest.raises(BlobCorrupt) as e:
        pull(dst.image_store, f"{proxy.host}/class/app:v1")
    assert top in str(e.value)
    assert dst.store.manifests() == [] and not dst.store.has_blob(top)
    validate(dst)


def test_registry_errors_in_plain_words(registry, tmp_path):
    engine = Engine(tmp_path / "root")
    with pytest.raises(RemoteNotFound) as e:
        pull(engine.image_store, f"{registry.host}/nobody/here:1")
    assert "no" in str(e.value) and e.value.hint
    name = f"{registry.host}/class/app:v1"
    make_image(engine, name)
    push(engine.image_store, name)
    with pytest.raises(RemoteNotFound) as e:
        pull(engine.image_store, f"{registry.host}/class/app:nope")
    assert e.value.code == "MANIFEST_UNKNOWN" and "tag" in str(e.value)
    # a manifest naming a blob the registry does not have
    other = Engine(tmp_path / "other")
    make_image(other, f"{registry.host}/class/lonely:1", seed=b"different")
    lonely = other.images.get(f"{registry.host}/class/lonely:1")
    t = Transport(registry.host)
    with pytest.raises(RegistryError) as e:
        t.request("PUT", "/v2/class/lonely/manifests/1", scope="repository:class/lonely:pull,push",
                  headers={"Content-Type": lonely.manifest["mediaType"]},
                  body=other.store.read_blob(lonely.manifest_digest), ok=(201,), what="the manifest")
    assert e.value.code == "MANIFEST_BLOB_UNKNOWN" and "push again" in str(e.value)
    # an upload whose content does not match the digest it claims
    r = t.request("POST", "/v2/class/x/blobs/uploads/", scope="repository:class/x:pull,push", ok=(202,))
    wrong = "sha256:" + "0" * 64
    with pytest.raises(RegistryError) as e:
        t.request("PUT", r.header("location") + f"&digest={wrong}", scope="repository:class/x:pull,push",
                  body=b"some bytes", ok=(201,), what="a blob")
    assert e.value.code == "DIGEST_INVALID" and "does not match" in str(e.value)
    t.close()


def test_cli_pull_of_a_missing_tag_is_one_line(registry, tmp_path):
    env = dict(os.environ, SANDBOX_ROOT=str(tmp_path / "root"),
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    r = subprocess.run([sys.executable, "-m", "sandbox", "pull", f"{registry.host}/class/none:1"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_login_wrong_password_stores_nothing_then_push_with_stored_credentials(auth_registry, tmp_path):
    engine = Engine(tmp_path / "root")
    name = f"{auth_registry.host}/class/app:v1"
    make_image(engine, name)
    with pytest.raises(Unauthorized) as e:
        push(engine.image_store, name)
    assert "sandbox login" in str(e.value)
    with pytest.raises(Unauthorized) as e:
        engine.login(auth_registry.host, auth_registry.user, "wrong")
    assert "\n" not in str(e.value) and "nothing was stored" in str(e.value)
    assert not auth.config_path().exists() or auth.get_credentials(auth_registry.host) is None
    engine.login(auth_registry.host, auth_registry.user, auth_registry.password)
    assert auth.get_credentials(auth_registry.host) == (auth_registry.user, auth_registry.password)
    assert push(engine.image_store, name).digest == engine.images.get(name).manifest_digest
    assert engine.logout(auth_registry.host) and auth.get_credentials(auth_registry.host) is None


def test_bearer_token_flow(token_registry, tmp_path):
    engine = Engine(tmp_path / "root")
    name = f"{token_registry.host}/class/app:v1"
    make_image(engine, name)
    with pytest.raises(Unauthorized):
        push(engine.image_store, name)  # anonymous tokens only allow pull
    engine.login(token_registry.host, "student", "s3cret")
    digest = push(engine.image_store, name).digest
    scopes = [s for r in token_registry.token_requests for s in r.scopes]
    assert "repository:class/app:pull,push" in scopes
    engine.logout(token_registry.host)
    pulled = pull(Engine(tmp_path / "anon").image_store, name)  # anonymous pull
    assert pulled.digest == digest


def test_skopeo_preserves_our_digests_both_ways(registry, tmp_path):
    if shutil.which("skopeo") is None:
        pytest.skip("requires skopeo (apt install skopeo)")
    engine = Engine(tmp_path / "root")
    name = f"{registry.host}/class/app:v1"
    make_image(engine, name)
    ours = push(engine.image_store, name).digest
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--preserve-digests", "--src-tls-verify=false",
                    "--dest-tls-verify=false", f"docker://{name}", f"docker://{registry.host}/copied/app:v1"],
                   check=True, capture_output=True)
    assert registry.manifest("copied/app", "v1")[0] == ours
    # and the reverse: skopeo pushes from our store, we pull, the digest is the same
    engine.images.tag(name, "local/app:v2")
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--preserve-digests", "--dest-tls-verify=false",
                    f"oci:{engine.store.oci}:local/app:v2", f"docker://{registry.host}/from-skopeo/app:v2"],
                   check=True, capture_output=True)
    pulled = pull(Engine(tmp_path / "other").image_store, f"{registry.host}/from-skopeo/app:v2")
    assert pulled.digest == ours


def test_tools_read_the_store_after_a_pull(registry, tmp_path):
    for tool in ("umoci", "oci-image-tool"):
        if shutil.which(tool) is None:
            pytest.skip(f"requires {tool}")
    src = Engine(tmp_path / "src")
    name = f"{registry.host}/class/app:v1"
    make_image(src, name)
    push(src.image_store, name)
    dst = Engine(tmp_path / "dst")
    pull(dst.image_store, name)
    tag = next(d.annotations[REF_NAME] for d in dst.store.manifests())
    subprocess.run(["oci-image-tool", "validate", "--type", "image", "--ref", f"name={tag}",
                    str(dst.store.oci)], check=True, capture_output=True)
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{dst.store.oci}:{tag}", str(bundle)],
                   check=True, capture_output=True)
    assert (bundle / "rootfs" / "etc" / "motd").read_bytes() == b"registry lab\n"
    assert json.loads((bundle / "config.json").read_text())["process"]["args"] == ["sh"]


def test_pull_picks_this_platform_from_an_index(registry, tmp_path):
    """An OCI index with an amd64 and an arm64 image: pull takes this machine's, --platform the other."""
    from sandbox.image.images import host_platform
    from sandbox.image.mediatypes import OCI_INDEX
    engine = Engine(tmp_path / "src")
    os_name, arch, _ = host_platform()
    other_arch = "arm64" if arch != "arm64" else "amd64"
    entries = []
    for a, seed in ((arch, b"native"), (other_arch, b"foreign")):
        name = f"{registry.host}/multi/app:{a}"
        layer = write_layer_blob(engine.store, lambda out, s=seed: out.write(_tar({"arch": s})))
        config = new_config([layer], [{"created_by": a}], config={})
        config["architecture"] = a
        image = engine.image_store.create(config, [layer], tags=[name])
        push(engine.image_store, name)
        entries.append({"mediaType": image.manifest["mediaType"], "digest": image.manifest_digest,
                        "size": engine.store.blob_size(image.manifest_digest),
                        "platform": {"os": os_name, "architecture": a}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    t = Transport(registry.host)
    t.request("PUT", "/v2/multi/app/manifests/latest", scope="repository:multi/app:pull,push",
              headers={"Content-Type": OCI_INDEX}, body=index, ok=(201,))
    t.close()
    native = pull(Engine(tmp_path / "a").image_store, f"{registry.host}/multi/app:latest")
    assert native.image.config["architecture"] == arch
    assert native.image.manifest_digest == entries[0]["digest"]
    assert native.digest == "sha256:" + __import__("hashlib").sha256(index).hexdigest()  # RepoDigests name the index
    foreign = pull(Engine(tmp_path / "b").image_store, f"{registry.host}/multi/app:latest",
                   platform=f"linux/{other_arch}")
    assert foreign.image.config["architecture"] == other_arch
    with pytest.raises(RegistryError, match="no image for linux/s390x"):
        pull(Engine(tmp_path / "c").image_store, f"{registry.host}/multi/app:latest", platform="linux/s390x")
