"""Registry credentials, kept like Docker's ``config.json`` ``auths``.

The file is ``$SANDBOX_CONFIG/config.json`` (default ``~/.sandbox/config.json``),
mode 0600, in Docker's shape, so a student who has seen ``~/.docker/config.json``
recognises it::

    {"auths": {"localhost:5000": {"auth": "<base64 of user:password>"}}}

``login`` only stores credentials the registry accepted; a wrong password
stores nothing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from ..image import fsutil

#: Docker Hub's credentials are filed under this key, as Docker does.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"


def config_dir() -> Path:
    env = os.environ.get("SANDBOX_CONFIG")
    return Path(env) if env else Path(os.path.expanduser("~")) / ".sandbox"


def config_path() -> Path:
    return config_dir() / "config.json"


def _key(registry: str) -> str:
    return DOCKER_HUB_KEY if registry in ("docker.io", "index.docker.io", "registry-1.docker.io") else registry


def read_config() -> dict[str, Any]:
    try:
        data = json.loads(config_path().read_bytes())
        return data if isinstance(data, dict) else {}
    except (FileNotFoundError, ValueError):
        return {}


def _write_config(config: dict[str, Any]) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fsutil.atomic_write(path, json.dumps(config, indent="\t").encode() + b"\n", mode=0o600)


def get_credentials(registry: str) -> tuple[str, str] | None:
    """(user, password) stored for ``registry``, or None."""
    entry = read_config().get("auths", {}).get(_key(registry))
    if not isinstance(entry, dict) or not entry.get("auth"):
        return None
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        return user, password
    return None


def store_credentials(registry: str, user: str, password: str) -> Path:
    config = read_config()
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    config.setdefault("auths", {})[_key(registry)] = {"auth": token}
    _write_config(config)
    return config_path()


def remove_credentials(registry: str) -> bool:
    config = read_config()
    if _key(registry) not in config.get("auths", {}):
        return False
    del config["auths"][_key(registry)]
    _write_config(config)
    return True


def insecure_registries() -> set[str]:
    """Registries to reach over plain HTTP besides loopback: config.json and ``$SANDBOX_INSECURE_REGISTRIES``."""
    names = set(read_config().get("insecure-registries", []))
    names.update(n.strip() for n in os.environ.get("SANDBOX_INSECURE_REGISTRIES", "").split(",") if n.strip())
    return names
