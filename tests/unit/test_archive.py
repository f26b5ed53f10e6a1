"""save / load / import: round trips, hostile input, and reproducible imports.

Images here are made by ``import_rootfs`` from a tiny tree, so no busybox is needed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from sandbox.errors import ArchiveError, BlobCorrupt, SandboxError
from sandbox.image import archive
from sandbox.image.images import ImageStore, host_platform
from sandbox.image.mediatypes import FULL_NAME, OCI_INDEX, OCI_MANIFEST, REF_NAME
from sandbox.image.store import Store

EPOCH = 1700000000

#: The fixed tree of the pinned-digest test: (path, kind, mode, content or link target).
TREE = [
    ("bin", "dir", 0o755, None),
    ("bin/hello", "file", 0o755, b"#!/bin/sh\necho hello\n"),
    ("bin/hi", "symlink", 0o777, "hello"),
    ("etc", "dir", 0o755, None),
    ("etc/hostname", "file", 0o644, b"tiny\n"),
    ("etc/motd", "file", 0o600, b"welcome to the sandbox\n"),
    ("var", "dir", 0o755, None),
    ("var/empty", "dir", 0o700, None),
]

#: diff_id of TREE imported under SOURCE_DATE_EPOCH=1700000000 (owner 0:0): the same on every machine.
PINNED_DIFF_ID = "sha256:c1bb9cddae1455dfb41f3cbf2f74fb57ebe1dc445fac384c48670d148fd4c02f"
#: Image id of that import on linux/amd64 (the config names the architecture).
PINNED_IMAGE_ID_AMD64 = "sha256:4abd38e238e8efd6dcb727587774ed2bd3c064974fe22735e817cdd37c31dc63"


# -- helpers -------------------------------------------------------------------

def new_images(tmp_path: Path, name: str = "root") -> ImageStore:
    return ImageStore(Store(tmp_path / name))


def make_tree(root: Path, *, order: list[int] | None = None, mtime: int = EPOCH + 100,
              umask: int = 0o022) -> Path:
    """Create TREE under ``root`` in the given entry order, with explicit modes and the given mtimes."""
    old = os.umask(umask)
    try:
        root.mkdir(parents=True)
        entries = [TREE[i] for i in (order or range(len(TREE)))]
        for path, kind, _mode, content in entries:
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if kind == "dir":
                target.mkdir(exist_ok=True)
            elif kind == "file":
                target.write_bytes(content)
            else:
                os.symlink(content, target)
        for path, kind, mode, _ in entries:
            if kind != "symlink":
                os.chmod(root / path, mode)
            os.utime(root / path, (mtime, mtime), follow_symlinks=False)
        os.chmod(root, 0o755)
    finally:
        os.umask(old)
    return root


def rootfs_tar(root: Path, names: list[str] | None = None, *, compress: str | None = None) -> bytes:
    """A rootfs tarball of ``root`` (entries in ``names`` order), owners forced to 0:0."""
    def owner0(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name in names or [p for p, *_ in TREE]:
            tf.add(root / name, arcname=name, recursive=False, filter=owner0)
    data = buf.getvalue()
    if compress == "gzip":
        return gzip.compress(data)
    return data


def import_tiny(images: ImageStore, tmp_path: Path, tag: str | None = "tiny:1.0", **options):
    tree = tmp_path / f"tree-{len(list(tmp_path.iterdir()))}"
    make_tree(tree)
    return archive.import_rootfs(images, io.BytesIO(rootfs_tar(tree)), tag=tag, **options)


def save_bytes(images: ImageStore, names: list[str], format: str = "docker") -> bytes:
    out = io.BytesIO()
    archive.save(images, names, out, format=format)
    return out.getvalue()


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: m for m in tf.getmembers()}


def member_bytes(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        f = tf.extractfile(name)
        assert f is not None
        return f.read()


def index_is_valid(images: ImageStore) -> bool:
    json.loads((images.store.oci / "index.json").read_bytes())
    return True


def unpacked_file(images: ImageStore, image, path: str) -> bytes:
    layer = images.layers.get(image.chain_ids[-1])
    return (layer.path / path).read_bytes()


@pytest.fixture
def epoch(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))


# -- save and load round trips -------------------------------------------------

@pytest.mark.parametrize("format", ["docker", "oci"])
def test_save_then_load_into_a_fresh_store_gives_the_same_image(tmp_path, format):
    src = new_images(tmp_path, "src")
    image = import_tiny(src, tmp_path, changes=["CMD [\"/bin/hello\"]", "ENV A=1"])
    data = save_bytes(src, ["tiny:1.0"], format)

    dst = new_images(tmp_path, "dst")
    loaded = archive.load(dst, io.BytesIO(data))

    assert [i.id for i in loaded] == [image.id]
    assert loaded[0].diff_ids == image.diff_ids
    assert dst.get("tiny:1.0").tags == ["tiny:1.0"]
    assert dst.get("tiny:1.0").config["config"]["Cmd"] == ["/bin/hello"]
    assert unpacked_file(dst, loaded[0], "etc/hostname") == b"tiny\n"
    assert archive.describe_loaded(loaded) == ["Loaded image: tiny:1.0"]


def test_docker_format_has_manifest_json_and_an_oci_layout(tmp_path):
    images = new_images(tmp_path)
    image = import_tiny(images, tmp_path)
    data = save_bytes(images, ["tiny:1.0"])
    names = members(data)
    for required in ("manifest.json", "repositories", "index.json", "oci-layout"):
        assert required in names
    [entry] = json.loads(member_bytes(data, "manifest.json"))
    assert entry["Config"] == "blobs/sha256/" + image.id.split(":")[1]
    assert entry["RepoTags"] == ["tiny:1.0"]
    assert entry["Layers"] == ["blobs/sha256/" + l.digest.split(":")[1] for l in image.layers]
    index = json.loads(member_bytes(data, "index.json"))
    [desc] = index["manifests"]
    # Docker v25 writes the bare tag in ref.name and the full name for containerd.
    assert desc["annotations"] == {REF_NAME: "1.0", FULL_NAME: "docker.io/library/tiny:1.0"}
    assert json.loads(member_bytes(data, "repositories")) == {
        "tiny": {"1.0": image.layers[-1].digest.split(":")[1]}}


def test_oci_format_names_images_by_familiar_name(tmp_path):
    images = new_images(tmp_path)
    import_tiny(images, tmp_path)
    data = save_bytes(images, ["tiny:1.0"], "oci")
    assert "manifest.json" not in members(data)
    index = json.loads(member_bytes(data, "index.json"))
    assert index["mediaType"] == OCI_INDEX
    [desc] = index["manifests"]
    assert desc["mediaType"] == OCI_MANIFEST
    assert desc["annotations"] == {REF_NAME: "tiny:1.0", FULL_NAME: "docker.io/library/tiny:1.0"}
    assert json.loads(member_bytes(data, "oci-layout")) == {"imageLayoutVersion": "1.0.0"}


def test_save_is_deterministic_and_streams_to_a_non_seekable_output(tmp_path):
    images = new_images(tmp_path)
    import_tiny(images, tmp_path)

    class Sink(io.RawIOBase):  # write-only, cannot seek or tell
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        def writable(self) -> bool:
            return True

        def write(self, b) -> int:
            self.chunks.append(bytes(b))
            return len(b)

    sink = Sink()
    archive.save(images, ["tiny:1.0"], sink)
    data = b"".join(sink.chunks)
    assert data == save_bytes(images, ["tiny:1.0"])
    infos = list(members(data).values())
    assert [i.name for i in infos] == sorted(i.name for i in infos)
    assert all(i.mtime == 0 and i.uid == 0 and i.gid == 0 for i in infos)
    assert all(i.mode == (0o755 if i.isdir() else 0o644) for i in infos)


def test_save_by_id_writes_no_tags_and_load_reports_the_id(tmp_path):
    src = new_images(tmp_path, "src")
    image = import_tiny(src, tmp_path)
    data = save_bytes(src, [image.short_id])
    assert json.loads(member_bytes(data, "manifest.json"))[0]["RepoTags"] == []

    dst = new_images(tmp_path, "dst")
    loaded = archive.load(dst, io.BytesIO(data))
    assert loaded[0].tags == []
    assert archive.describe_loaded(loaded) == [f"Loaded image ID: {image.id}"]


def test_save_several_images_and_tags_in_one_archive(tmp_path):
    src = new_images(tmp_path, "src")
    one = import_tiny(src, tmp_path, tag="tiny:1.0")
    src.tag("tiny:1.0", "tiny:latest")
    two = import_tiny(src, tmp_path, tag="other:2", changes=["LABEL which=two"])
    assert one.id != two.id and one.diff_ids == two.diff_ids

    data = save_bytes(src, ["tiny:1.0", "other:2", "tiny:latest"])
    entries = json.loads(member_bytes(data, "manifest.json"))
    assert [e["RepoTags"] for e in entries] == [["tiny:1.0", "tiny:latest"], ["other:2"]]
    layer_members = [n for n in members(data) if n.startswith("blobs/")]
    assert len(layer_members) == len(set(layer_members))

    dst = new_images(tmp_path, "dst")
    loaded = archive.load(dst, io.BytesIO(data))
    assert sorted(i.id for i in loaded) == sorted([one.id, two.id])
    assert dst.get("tiny:latest").id == one.id and dst.get("other:2").id == two.id


def test_save_a_repository_name_saves_all_its_tags(tmp_path):
    images = new_images(tmp_path)
    import_tiny(images, tmp_path, tag="tiny:1.0")
    images.tag("tiny:1.0", "tiny:edge")
    entries = json.loads(member_bytes(save_bytes(images, ["tiny"]), "manifest.json"))
    assert entries[0]["RepoTags"] == ["tiny:1.0", "tiny:edge"]


@pytest.mark.parametrize("compress", [gzip.compress, lzma.compress])
def test_load_a_compressed_archive(tmp_path, compress):
    src = new_images(tmp_path, "src")
    image = import_tiny(src, tmp_path)
    data = compress(save_bytes(src, ["tiny:1.0"]))
    dst = new_images(tmp_path, "dst")
    assert [i.id for i in archive.load(dst, io.BytesIO(data))] == [image.id]


def test_load_a_zstd_archive_and_report_progress(tmp_path):
    if shutil.which("zstd") is None:
        pytest.skip("requires the zstd command (apt-get install zstd)")
    src = new_images(tmp_path, "src")
    image = import_tiny(src, tmp_path)
    data = subprocess.run(["zstd", "-q", "-c"], input=save_bytes(src, ["tiny:1.0"]),
                          capture_output=True, check=True).stdout
    lines: list[str] = []
    dst = new_images(tmp_path, "dst")
    assert [i.id for i in archive.load(dst, io.BytesIO(data), progress=lines.append)] == [image.id]
    assert lines == [f"Loaded layer {image.diff_ids[0][7:19]} ({image.layers[0].size}B)"]


def test_load_from_a_pipe(tmp_path):
    src = new_images(tmp_path, "src")
    image = import_tiny(src, tmp_path)
    data = gzip.compress(save_bytes(src, ["tiny:1.0"], "oci"))
    dst = new_images(tmp_path, "dst")

    r, w = os.pipe()

    def writer() -> None:
        with open(w, "wb") as f:
            f.write(data)

    thread = threading.Thread(target=writer)
    thread.start()
    with open(r, "rb") as stream:
        assert not stream.seekable()
        loaded = archive.load(dst, stream)
    thread.join()
    assert loaded[0].id == image.id and loaded[0].tags == ["tiny:1.0"]
    assert list(dst.store.tmp_dir.iterdir()) == []  # the spool file is gone


def test_load_an_old_style_docker_archive(tmp_path):
    """docker save before v25 (and skopeo): <id>.json config, uncompressed <dir>/layer.tar, a symlinked layer."""
    src = new_images(tmp_path, "src")
    image = import_tiny(src, tmp_path)
    config_bytes = src.store.read_blob(image.id)
    layer = gzip.decompress(src.store.read_blob(image.layers[0].digest))
    legacy = legacy_archive(config_bytes, layer, tags=["tiny:1.0"])
    config_name = next(n for n in members(legacy) if n.endswith(".json") and n != "manifest.json")

    dst = new_images(tmp_path, "dst")
    [loaded] = archive.load(dst, io.BytesIO(legacy))
    assert loaded.id == "sha256:" + config_name[:-5] and loaded.tags == ["tiny:1.0"]
    assert loaded.diff_ids == image.diff_ids * 2
    assert loaded.layers[0] == loaded.layers[1]
    assert loaded.layers[0].media_type == "application/vnd.oci.image.layer.v1.tar"
    assert loaded.layers[0].digest == image.diff_ids[0]


def legacy_archive(config_bytes: bytes, layer: bytes, *, tags: list[str]) -> bytes:
    config = json.loads(config_bytes)
    config["rootfs"]["diff_ids"] = config["rootfs"]["diff_ids"] * 2  # the same layer twice
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": tags, "Layers": ["aaaa/layer.tar", "bbbb/layer.tar"]}]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, content in [(config_name, config_bytes), ("aaaa/layer.tar", layer),
                              ("manifest.json", json.dumps(manifest).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
        link = tarfile.TarInfo("bbbb/layer.tar")
        link.type, link.linkname = tarfile.SYMTYPE, "../aaaa/layer.tar"
        tf.addfile(link)
    return buf.getvalue()


def test_load_oci_archive_with_nested_index_picks_this_platform(tmp_path):
    """An index entry naming an image index (multi-platform), tagged containerd-style: ref.name is the bare tag."""
    src = new_images(tmp_path, "src")
    image = import_tiny(src, tmp_path)
    data = save_bytes(src, ["tiny:1.0"], "oci")
    files = {n: member_bytes(data, n) for n, m in members(data).items() if m.isfile()}
    [desc] = json.loads(files["index.json"])["manifests"]
    os_name, arch, variant = host_platform()
    host = {**desc, "platform": {"os": os_name, "architecture": arch, **({"variant": variant} if variant else {})}}
    host.pop("annotations")
    other = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "0" * 64, "size": 10,
             "platform": {"os": "linux", "architecture": "s390x" if arch != "s390x" else "arm64"}}
    nested = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [other, host]}).encode()
    nested_digest = "sha256:" + hashlib.sha256(nested).hexdigest()
    files["blobs/sha256/" + nested_digest[7:]] = nested
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_INDEX, "digest": nested_digest, "size": len(nested),
        "annotations": {REF_NAME: "2.0", FULL_NAME: "docker.io/library/tiny:2.0"}}]}).encode()

    dst = new_images(tmp_path, "dst")
    [loaded] = archive.load(dst, io.BytesIO(tar_of(files)))
    assert loaded.id == image.id and loaded.tags == ["tiny:2.0"]


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


# -- hostile and wrong input ----------------------------------------------------

@pytest.mark.parametrize("data, expect", [
    (os.urandom(4096), "is not an image archive"),
    (b"", "is not an image archive"),
    (gzip.compress(b"not a tar at all" * 100), "is not an image archive"),
    (gzip.compress(os.urandom(100))[:40], "is not a valid gzip stream"),
])
def test_load_rejects_what_is_not_an_archive(tmp_path, data, expect):
    images = new_images(tmp_path)
    with pytest.raises(ArchiveError, match=expect):
        archive.load(images, io.BytesIO(data))
    assert images.list() == []


def test_load_of_a_rootfs_tarball_points_to_import(tmp_path):
    images = new_images(tmp_path)
    tree = make_tree(tmp_path / "tree")
    with pytest.raises(ArchiveError, match="no manifest.json or index.json found") as err:
        archive.load(images, io.BytesIO(rootfs_tar(tree)))
    assert "sandbox import" in str(err.value)


@pytest.mark.parametrize("format", ["docker", "oci"])
def test_load_of_an_archive_with_a_flipped_layer_byte_changes_nothing(tmp_path, format):
    src = new_images(tmp_path, "src")
    image = import_tiny(src, tmp_path)
    data = bytearray(save_bytes(src, ["tiny:1.0"], format))
    layer_member = "blobs/sha256/" + image.layers[0].digest.split(":")[1]
    info = members(bytes(data))[layer_member]
    data[info.offset_data + info.size // 2] ^= 0x01

    dst = new_images(tmp_path, "dst")
    before = import_tiny(dst, tmp_path, tag="keep:me", changes=["LABEL keep=1"])
    with pytest.raises((BlobCorrupt, ArchiveError), match=layer_member):
        archive.load(dst, io.BytesIO(bytes(data)))
    assert [(i.id, i.tags) for i in dst.list()] == [(before.id, ["keep:me"])]
    assert index_is_valid(dst)


def test_load_of_an_old_style_archive_with_a_flipped_byte_names_the_layer(tmp_path):
    src = new_images(tmp_path, "src")
    image = import_tiny(src, tmp_path)
    layer = bytearray(gzip.decompress(src.store.read_blob(image.layers[0].digest)))
    layer[600] ^= 0x01  # inside the first file's content
    data = legacy_archive(src.store.read_blob(image.id), bytes(layer), tags=["tiny:1.0"])
    dst = new_images(tmp_path, "dst")
    with pytest.raises(BlobCorrupt, match="aaaa/layer.tar"):
        archive.load(dst, io.BytesIO(data))
    assert dst.list() == [] and index_is_valid(dst)


def test_load_with_a_missing_member_names_it(tmp_path):
    src = new_images(tmp_path, "src")
    image = import_tiny(src, tmp_path)
    data = save_bytes(src, ["tiny:1.0"])
    layer_member = "blobs/sha256/" + image.layers[0].digest.split(":")[1]
    files = {n: member_bytes(data, n) for n, m in members(data).items() if m.isfile() and n != layer_member}
    dst = new_images(tmp_path, "dst")
    with pytest.raises(ArchiveError, match=f"member {layer_member} is missing"):
        archive.load(dst, io.BytesIO(tar_of(files)))
    assert dst.list() == []


def test_save_notices_a_corrupt_blob_in_the_store(tmp_path):
    images = new_images(tmp_path)
    image = import_tiny(images, tmp_path)
    path = images.store.blob_path(image.layers[0].digest)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(BlobCorrupt, match=image.layers[0].digest):
        save_bytes(images, ["tiny:1.0"])


# -- import -----------------------------------------------------------------------

def test_import_records_history_changes_and_tag(tmp_path):
    images = new_images(tmp_path)
    image = import_tiny(images, tmp_path, tag="tiny", changes=["WORKDIR /srv", "USER 1000"])
    assert image.tags == ["tiny:latest"]
    assert image.config["history"][0]["comment"] == "Imported from -"
    assert image.config["config"] == {"WorkingDir": "/srv", "User": "1000"}
    assert len(image.diff_ids) == 1
    with_message = import_tiny(images, tmp_path, tag=None, message="from a tarball", source_name="rootfs.tar")
    assert with_message.config["history"][0]["comment"] == "from a tarball"
    assert with_message.tags == []


def test_import_accepts_gzip(tmp_path):
    images = new_images(tmp_path)
    tree = make_tree(tmp_path / "tree")
    plain = archive.import_rootfs(images, io.BytesIO(rootfs_tar(tree)))
    packed = archive.import_rootfs(images, io.BytesIO(rootfs_tar(tree, compress="gzip")))
    assert packed.diff_ids == plain.diff_ids


def test_import_rejects_what_is_not_a_tar(tmp_path):
    images = new_images(tmp_path)
    with pytest.raises(ArchiveError, match="cannot import junk.bin") as err:
        archive.import_rootfs(images, io.BytesIO(os.urandom(3000)), source_name="junk.bin")
    assert "sandbox load" in str(err.value)
    assert images.list() == []
    assert list(images.store.tmp_dir.iterdir()) == []


def test_import_of_an_image_archive_says_so(tmp_path):
    images = new_images(tmp_path)
    import_tiny(images, tmp_path)
    data = save_bytes(images, ["tiny:1.0"])
    with pytest.raises(ArchiveError, match="it is an image archive") as err:
        archive.import_rootfs(images, io.BytesIO(data), tag="oops", source_name="tiny.tar")
    assert "sandbox load" in str(err.value)
    assert [i.tags for i in images.list()] == [["tiny:1.0"]]


def test_import_is_reproducible_across_mtimes_order_and_umask(tmp_path, epoch):
    order_b = [3, 5, 4, 0, 2, 1, 6, 7]  # etc before bin, files in another order
    tree_a = make_tree(tmp_path / "a", mtime=EPOCH + 100, umask=0o022)
    tree_b = make_tree(tmp_path / "b", order=order_b, mtime=EPOCH + 99999, umask=0o077)
    names_a = [p for p, *_ in TREE]
    names_b = [TREE[i][0] for i in order_b]

    old = os.umask(0o022)
    try:
        a = archive.import_rootfs(new_images(tmp_path, "store-a"), io.BytesIO(rootfs_tar(tree_a, names_a)))
        os.umask(0o077)
        b = archive.import_rootfs(new_images(tmp_path, "store-b"), io.BytesIO(rootfs_tar(tree_b, names_b)))
    finally:
        os.umask(old)
    assert a.diff_ids == b.diff_ids
    assert a.id == b.id
    assert a.created == b.created == "2023-11-14T22:13:20Z"


def test_import_pinned_digest(tmp_path, epoch):
    if os.geteuid() != 0:
        pytest.skip("requires root: the pinned layer has owner 0:0, which only root can keep")
    tree = make_tree(tmp_path / "tree", mtime=EPOCH + 3600)
    image = archive.import_rootfs(new_images(tmp_path), io.BytesIO(rootfs_tar(tree)))
    assert image.diff_ids == [PINNED_DIFF_ID]
    if host_platform() != ("linux", "amd64", None):
        pytest.skip("the pinned image id is for linux/amd64 (the config names the architecture)")
    assert image.id == PINNED_IMAGE_ID_AMD64


# -- changes --------------------------------------------------------------------

@pytest.mark.parametrize("changes, expected", [
    (['CMD ["/bin/sh", "-c", "echo hi"]'], {"Cmd": ["/bin/sh", "-c", "echo hi"]}),
    (["CMD echo hi"], {"Cmd": ["/bin/sh", "-c", "echo hi"]}),
    (["CMD [not json"], {"Cmd": ["/bin/sh", "-c", "[not json"]}),
    (['ENTRYPOINT ["/bin/app"]'], {"Entrypoint": ["/bin/app"]}),
    (["CMD x", "ENTRYPOINT /bin/app"], {"Cmd": ["/bin/sh", "-c", "x"],
                                        "Entrypoint": ["/bin/sh", "-c", "/bin/app"]}),
    (['ENV A=1 B="two words" C=\'$A\''], {"Env": ["A=1", "B=two words", "C=$A"]}),
    (["ENV NAME hello world"], {"Env": ["NAME=hello world"]}),
    (["ENV A=1", "ENV A=2 B=${A}0 C=${NOPE:-dflt}"], {"Env": ["A=2", "B=10", "C=dflt"]}),
    (["env PATH=/usr/bin", "ENV PATH=$PATH:/opt/bin"], {"Env": ["PATH=/usr/bin:/opt/bin"]}),
    (["EXPOSE 80 80/tcp 53/udp 8000-8001"],
     {"ExposedPorts": {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}}),
    (['LABEL a=b "c d"="e f"', "LABEL a=z"], {"Labels": {"a": "z", "c d": "e f"}}),
    (["USER nobody:nogroup"], {"User": "nobody:nogroup"}),
    (['VOLUME ["/data"]', "VOLUME /a /b"], {"Volumes": {"/data": {}, "/a": {}, "/b": {}}}),
    (["WORKDIR /srv", "WORKDIR app", "WORKDIR ../x"], {"WorkingDir": "/srv/x"}),
    (["ENV D=/data", "WORKDIR $D/in"], {"Env": ["D=/data"], "WorkingDir": "/data/in"}),
    (["ONBUILD RUN make", "ONBUILD COPY . /src"], {"OnBuild": ["RUN make", "COPY . /src"]}),
    (["STOPSIGNAL SIGTERM"], {"StopSignal": "SIGTERM"}),
    (["", "  CMD  [\"a\"]  "], {"Cmd": ["a"]}),
])
def test_apply_changes(changes, expected):
    config: dict = {}
    archive.apply_changes(config, changes)
    assert config == expected


def test_apply_changes_entrypoint_drops_an_inherited_cmd():
    config = {"Cmd": ["old"]}
    archive.apply_changes(config, ["ENTRYPOINT /bin/app"])
    assert "Cmd" not in config


@pytest.mark.parametrize("change, expect", [
    ("RUN echo hi", "RUN is not a valid change command"),
    ("FROM busybox", "FROM is not a valid change command"),
    ("CMD", "CMD requires at least one argument"),
    ("EXPOSE 99999", "invalid port"),
    ("EXPOSE 80/icmp", "invalid port"),
    ("ENV A", "expected ENV KEY=VALUE"),
    ("ENV A=1 B", "'B' is not KEY=VALUE"),
    ('ENV A="open', "unterminated"),
    ("USER a b", "exactly one argument"),
    ("ONBUILD ONBUILD RUN x", "isn't allowed"),
])
def test_apply_changes_rejects(change, expect):
    with pytest.raises(SandboxError, match=expect) as err:
        archive.apply_changes({}, [change])
    if "valid change" in expect:
        assert "CMD, ENTRYPOINT, ENV" in str(err.value)


def test_import_with_a_bad_change_does_no_work(tmp_path):
    images = new_images(tmp_path)
    with pytest.raises(SandboxError, match="RUN is not a valid change command"):
        import_tiny(images, tmp_path, changes=["RUN rm -rf /"])
    assert images.store.all_blobs() == []


def test_load_checks_a_layer_it_need_not_unpack_and_names_it(tmp_path):
    """A layer whose chain is unpacked already is not unpacked again, but its blob is still
    checked against the config's diff_id (hashed once); a mismatch names the member."""
    src = new_images(tmp_path, "src")
    image = import_tiny(src, tmp_path)
    plain = gzip.decompress(src.store.read_blob(image.layers[0].digest))
    dst = new_images(tmp_path, "dst")
    [first] = archive.load(dst, io.BytesIO(legacy_archive(src.store.read_blob(image.id), plain, tags=["a:1"])))
    assert dst.layers.exists(first.chain_ids[0])
    flipped = bytearray(plain)
    flipped[600] ^= 0x01  # inside the first file's content: a valid tar, another diff_id
    data = legacy_archive(src.store.read_blob(image.id), bytes(flipped), tags=["b:1"])
    with pytest.raises(BlobCorrupt, match="aaaa/layer.tar.*diff_id"):
        archive.load(dst, io.BytesIO(data))
    assert [i.tags for i in dst.list()] == [["a:1"]] and index_is_valid(dst)
    assert not [n for n in os.listdir(dst.store.layers_dir) if n.endswith(".incomplete")]


def test_load_of_a_layer_that_is_no_tar_names_the_member(tmp_path):
    src = new_images(tmp_path, "src")
    image = import_tiny(src, tmp_path)
    data = legacy_archive(src.store.read_blob(image.id), gzip.compress(os.urandom(5000)), tags=["c:1"])
    dst = new_images(tmp_path, "dst")
    with pytest.raises((ArchiveError, BlobCorrupt), match="aaaa/layer.tar"):
        archive.load(dst, io.BytesIO(data))
    assert dst.list() == [] and os.listdir(dst.store.layers_dir) == []
