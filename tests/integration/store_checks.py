"""Checks that a store survived a fault: everything in it reads, and nothing half-made is left.

* ``check_store(engine)``     index.json parses; every manifest, config and layer
                              blob it names verifies; every tagged image's
                              unpacked layers exist (and, with oci-image-tool on
                              PATH, the layout and every named image validate).
* ``leftovers(engine)``       what killed writers may leave: ingest files,
                              ``.incomplete`` layers, scratch directories.  The
                              store's recovery (every ``Engine`` start, so every
                              CLI command) removes them once their writer is gone.
* ``unreferenced_blobs(engine)``  complete blobs no image, lease or layer uses:
                              what garbage collection (``rmi``, ``image prune``,
                              ``system prune``) deletes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from sandbox import Engine
from sandbox.image.mediatypes import REF_NAME


def check_store(engine: Engine) -> None:
    """Every image the index names reads back whole (raises on the first that does not)."""
    index = json.loads((engine.store.oci / "index.json").read_text())  # valid JSON, whole
    for entry in index["manifests"]:
        manifest = engine.store.read_json_blob(entry["digest"])  # verifies the digest
        engine.store.read_json_blob(manifest["config"]["digest"])
        for layer in manifest["layers"]:
            engine.store.verify_blob(layer["digest"])
        if REF_NAME in entry.get("annotations", {}):
            tag = entry["annotations"][REF_NAME]
            image = engine.images.get(tag)
            for chain_id in image.chain_ids:
                assert engine.image_store.layers.exists(chain_id), f"{tag}: layer {chain_id} not unpacked"
    if shutil.which("oci-image-tool"):
        # No --ref: the tool then validates every named image in one run (and its --ref
        # filter is unreliable with several entries, see test_archive_interop).
        r = subprocess.run(["oci-image-tool", "validate", "--type", "image", str(engine.store.oci)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def leftovers(engine: Engine) -> list[str]:
    """Ingest files, incomplete layers and scratch directories in the store now (names, sorted)."""
    store = engine.store
    found = [f"ingest/{n}" for n in os.listdir(store.ingest_dir)]
    found += [f"layers/{n}" for n in os.listdir(store.layers_dir) if ".incomplete" in n]
    found += [f"tmp/{n}" for n in os.listdir(store.tmp_dir)]
    return sorted(found)


def unreferenced_blobs(engine: Engine) -> set[str]:
    """Blobs garbage collection would delete: no image, lease or unpacked layer uses them."""
    keep, _, _ = engine.image_store._marks()
    return set(engine.store.all_blobs()) - keep
