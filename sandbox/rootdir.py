"""Where the store lives when nobody says: a module small enough for a cold command.

``$SANDBOX_ROOT``; else /var/lib/sandbox as root (Docker's /var/lib/docker),
``$XDG_DATA_HOME/sandbox`` otherwise.  :func:`sandbox.engine.default_root`
returns the same as a Path; the quick ``sandbox run`` path needs it without
loading pathlib.
"""

from __future__ import annotations

import os


def default_root_dir() -> str:
    env = os.environ.get("SANDBOX_ROOT")
    if env:
        return env
    if os.geteuid() == 0 and not os.environ.get("SANDBOX_ROOTLESS"):  # (rootless: root in a user namespace)
        return "/var/lib/sandbox"
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "sandbox")
