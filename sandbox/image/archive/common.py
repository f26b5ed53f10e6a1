"""What save, load and import share: blob member names and the wording of errors."""

from __future__ import annotations

from ...errors import SandboxError

#: Where ``load`` sends someone who gave it a root filesystem instead of an image archive.
LOAD_HINT = "to turn a root filesystem tarball into an image use 'sandbox import'"


def blob_name(digest: str) -> str:
    """The member name of a blob in an OCI layout: ``blobs/sha256/<hex>``."""
    return "blobs/" + digest.replace(":", "/", 1)


def cause(e: BaseException) -> str:
    """The bare reason of ``e``: a SandboxError without its hint or its "layer is not..." lead-in."""
    text = str(e.args[0]) if isinstance(e, SandboxError) and e.args else str(e)
    return text.removeprefix("layer is not a valid tar archive: ")
