"""Unpacked layers as overlay lowerdirs: many layers mount, whiteouts hide lower files."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from sandbox import kernel
from sandbox.image import tarlayer
from sandbox.image.images import ImageStore, new_config
from sandbox.image.layers import write_layer_blob
from sandbox.image.store import Store

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="requires root (mount)")]


def _tar(entries: dict[str, bytes | None]) -> bytes:
    """A layer tar: name -> content, or None for a whiteout of that name."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in sorted(entries.items()):
            if data is None:
                d, _, base = name.rpartition("/")
                name, data = (f"{d}/" if d else "") + ".wh." + base, b""
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _image(store: Store, layers: list[bytes], tag: str):
    images = ImageStore(store)
    blobs = [write_layer_blob(store, lambda out, data=data: out.write(data)) for data in layers]
    config = new_config(blobs, [{"created_by": f"layer {i}"} for i in range(len(blobs))], config={})
    return images, images.create(config, blobs, tags=[tag])


def test_sixty_layers_mount_with_a_long_root(tmp_path):
    # A deliberately long store path: absolute lowerdirs would not fit in one page.
    root = tmp_path / ("x" * 60) / ("y" * 60) / "root"
    store = Store(root)
    layers = [_tar({f"file{i:02d}": f"layer {i}\n".encode()}) for i in range(60)]
    layers.append(_tar({"file00": None}))  # the 61st layer deletes the first layer's file
    images, image = _image(store, layers, "tall:latest")
    target = tmp_path / "merged"
    target.mkdir()
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir(), work.mkdir()
    images.layers.mount(image.chain_ids, target, upper=upper, work=work)
    try:
        names = sorted(os.listdir(target))
        assert names == [f"file{i:02d}" for i in range(1, 60)]
        assert (target / "file59").read_text() == "layer 59\n"
        (target / "new").write_text("written")
        assert (upper / "new").read_text() == "written"
    finally:
        kernel.umount(target)


def test_read_only_view_of_one_layer(tmp_path):
    store = Store(tmp_path / "root")
    images, image = _image(store, [_tar({"a": b"x"})], "one:latest")
    target = tmp_path / "view"
    target.mkdir()
    images.layers.mount(image.chain_ids, target)
    try:
        assert (target / "a").read_bytes() == b"x"
        with pytest.raises(OSError):
            (target / "b").write_text("no")
    finally:
        kernel.umount(target)


def test_upper_dir_becomes_a_layer_with_whiteouts(tmp_path):
    store = Store(tmp_path / "root")
    images, image = _image(store, [_tar({"keep": b"k", "gone": b"g", "dir/old": b"o"})], "base:latest")
    target, upper, work = (tmp_path / n for n in ("m", "u", "w"))
    for d in (target, upper, work):
        d.mkdir()
    images.layers.mount(image.chain_ids, target, upper=upper, work=work)
    try:
        (target / "gone").unlink()
        (target / "added").write_text("new")
        import shutil
        shutil.rmtree(target / "dir")
        (target / "dir").mkdir()  # overlay marks the recreated directory opaque
        (target / "dir" / "fresh").write_text("f")
    finally:
        kernel.umount(target)
    buf = io.BytesIO()
    tarlayer.write_overlay_upper(upper, buf)
    names = set(tarfile.open(fileobj=io.BytesIO(buf.getvalue())).getnames())
    assert ".wh.gone" in names and "added" in names
    assert "dir/.wh..wh..opq" in names and "dir/fresh" in names
    # Applied on the base in merge mode, the result is what the container saw.
    merged = tmp_path / "flat"
    merged.mkdir()
    images.layers.flatten(image.chain_ids, merged)
    tarlayer.apply_layer(io.BytesIO(buf.getvalue()), merged, mode="merge")
    assert sorted(p.relative_to(merged).as_posix() for p in merged.rglob("*")) == [
        "added", "dir", "dir/fresh", "keep"]
