"""nftables through libnftables' JSON API (``libnftables.so.1``, Debian's libnftables1).

Rules are data: the caller builds the JSON document nft(8)'s ``-j`` mode
reads (https://manpages.debian.org/nftables/libnftables-json.5), and
:func:`nft_run` hands it to the library in one call, which applies it as one
netlink transaction: all of it or none.  Nothing is parsed from command
output; a listing comes back as the same JSON.

One context per process, made on first use (a quarter of a millisecond);
the library is loaded only then, so nothing pays for it unless it uses the
firewall.
"""

from __future__ import annotations

import ctypes
import json
from typing import Any

from ..errors import NetworkError

__all__ = ["nft_run"]

_LIBRARY = "libnftables.so.1"
_OUTPUT_JSON = 1 << 4           # NFT_CTX_OUTPUT_JSON: JSON out, and JSON accepted in
_ctx: int | None = None
_lib: Any = None


def _load() -> tuple[Any, int]:
    global _ctx, _lib
    if _ctx is None:
        try:
            lib = ctypes.CDLL(_LIBRARY, use_errno=True)
        except OSError:
            raise NetworkError(f"cannot load {_LIBRARY}: nftables is needed for NAT and published ports",
                               hint="install it: apt-get install libnftables1") from None
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            raise NetworkError("nft_ctx_new failed", hint="out of memory?")
        lib.nft_ctx_output_set_flags(ctx, _OUTPUT_JSON)
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        _lib, _ctx = lib, ctx
    return _lib, _ctx


def nft_run(document: dict[str, Any]) -> dict[str, Any]:
    """Apply (or list) ``{"nftables": [...]}``; the library's JSON answer, ``{}`` when it printed none."""
    lib, ctx = _load()
    rc = lib.nft_run_cmd_from_buffer(ctx, json.dumps(document).encode())
    out = lib.nft_ctx_get_output_buffer(ctx) or b""
    err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace").strip()
    if rc != 0:
        reason = err.splitlines()[0] if err else "refused"
        reason = reason.split("Error: ", 1)[-1]
        hint = ("changing firewall rules needs root (CAP_NET_ADMIN)" if "Operation not permitted" in err
                else "`nft list ruleset` shows the current rules")
        raise NetworkError(f"nftables: {reason}", hint=hint)
    if not out.strip():
        return {}
    answer: dict[str, Any] = json.loads(out)
    return answer
