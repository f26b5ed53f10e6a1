"""``check(...)``: how a lab answers a student's exercise.

``check("what is checked", condition, hint)`` evaluates ``condition`` (a value
or a function; an exception counts as "not yet" and its message is shown) and
returns a :class:`Check`: it shows as a green ✓ or as a red ✗ with the hint,
and is truthy only when the answer is right, so a lab's own solution cell can
``assert check(...)``.  A placeholder ``...`` left in an exercise reads as
"not answered yet", never as an error.

``needs(...)`` and the ``%%needs`` cell magic are how a lab degrades on a
machine that gives less than root (rootless, or no namespaces at all as on
Binder): the cell or check that needs more prints one line saying what is
missing and what would give it, and the lab carries on.
"""

from __future__ import annotations

import html
from typing import Any


class Check:
    def __init__(self, label: str, ok: bool, detail: str = "", skipped: bool = False) -> None:
        self.label, self.ok, self.detail, self.skipped = label, ok, detail, skipped

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        if self.skipped:
            return f"○ {self.label}: {self.detail}"
        return f"✓ {self.label}" if self.ok else f"✗ {self.label}: {self.detail}"

    def _repr_html_(self) -> str:
        if self.skipped:
            return (f'<div style="color:#9a6700"><b>○</b> {html.escape(self.label)}: '
                    f'<span style="color:#444">{html.escape(self.detail)}</span></div>')
        if self.ok:
            return f'<div style="color:#1a7f37"><b>✓</b> {html.escape(self.label)}</div>'
        return (f'<div style="color:#cf222e"><b>✗</b> {html.escape(self.label)}: '
                f'<span style="color:#444">{html.escape(self.detail)}</span></div>')


_UNSET = object()


def check(label: str, condition: Any, hint: str = "", *, answer: Any = _UNSET,
          needs: str | None = None) -> Check:
    """✓ when ``condition`` (a value, or a function called now) is true; else ✗ with ``hint``.

    ``answer`` is the student's variable: while it still holds ``...`` the check
    says "not answered yet" instead of evaluating anything.  ``needs`` names
    what the check needs (see :func:`lacks`); on a machine without it the check
    is shown as skipped (○, truthy) with the reason, and nothing is evaluated.
    """
    if needs is not None:
        missing = lacks(needs)
        if missing:
            return Check(label, True, "skipped: " + missing, skipped=True)
    if answer is Ellipsis:
        return Check(label, False, "not answered yet: replace the ... in the cell above")
    try:
        value = condition() if callable(condition) else condition
    except Exception as e:  # noqa: BLE001 - a student's half-finished answer may raise anything
        return Check(label, False, f"{hint} (it raised {type(e).__name__}: {e})" if hint
                     else f"it raised {type(e).__name__}: {e}")
    if value is Ellipsis:
        return Check(label, False, "not answered yet: replace the ... " + (f"({hint})" if hint else ""))
    return Check(label, bool(value), hint or "not yet")



# What a lab cell may need beyond images and builds, and what gives it.
_NEEDS = {
    "root": ({"root"}, "run Jupyter as root (sudo make lab) for this part"),
    "namespaces": ({"root", "rootless"},
                   "containers need namespaces: run as root, or where unprivileged user namespaces are allowed"),
    "cgroups": ({"root"}, "resource limits need root here (rootless limits need a delegated cgroup v2 subtree, "
                          "e.g. systemd's Delegate=yes for the user)"),
    "networks": ({"root"}, "bridges, veth pairs and network namespaces made by hand need root"),
    "ports": ({"root", "rootless"}, "published ports need a network namespace: root, or rootless with "
                                    "slirp4netns"),
}


def lacks(what: str) -> str:
    """'' when this kernel has everything in ``what`` (names separated by spaces or commas), else one line why not.

    The names are ``root``, ``namespaces``, ``cgroups``, ``networks`` and ``ports`` (found
    from :func:`sandbox.hostinfo.mode`, which tries rather than assumes), or a
    command that must be on PATH (``runc``, ``docker-registry``).
    """
    import shutil
    from sandbox import hostinfo
    mode = None
    for name in what.replace(",", " ").split():
        if name in _NEEDS:
            modes, fix = _NEEDS[name]
            mode = mode or hostinfo.mode()
            if mode.name not in modes:
                return f"this needs {name} and this kernel runs in {mode.name} mode; {fix}"
            if name == "ports" and mode.name == "rootless":
                from sandbox.network import slirp
                if not slirp.available():
                    return ("this needs published ports, which rootless mode gives through slirp4netns: "
                            "apt install slirp4netns, and /dev/net/tun must be usable (mode 0666)")
            if name == "cgroups":
                missing = _missing_controllers()
                if missing:
                    return f"this needs cgroup limits and {missing}"
        elif shutil.which(name) is None:
            return f"this needs the {name} command, which is not installed here (apt install {name})"
    return ""


def _missing_controllers(wanted: tuple[str, ...] = ("cpu", "memory", "pids")) -> str:
    """'' when the controllers the labs' limits use are all here, else which are not and why."""
    from sandbox.cgroups import detect
    from sandbox.cgroups.fs import read_mountinfo
    try:
        mounts = read_mountinfo()
        if detect() == "v2":
            root = next(m.mount_point for m in mounts if m.fstype == "cgroup2")
            with open(f"{root}/cgroup.controllers") as f:
                have = set(f.read().split())
            where = "the cgroup v2 hierarchy"
        else:
            have = {o for m in mounts if m.fstype == "cgroup" for o in m.super_options}
            where = "the cgroup v1 mounts"
    except (OSError, StopIteration, ValueError) as e:
        return f"no cgroup file system was found ({e})"
    missing = [c for c in wanted if c not in have]
    if not missing:
        return ""
    return (f"{where} here lack{'s' if where.endswith('hierarchy') else ''} the "
            f"{', '.join(missing)} controller{'s' if len(missing) > 1 else ''} "
            "(on cgroup v2: echo +memory > /sys/fs/cgroup/cgroup.subtree_control, as root)")


def needs(what: str) -> bool:
    """True when this kernel has ``what`` (see :func:`lacks`); else print the one line why not and return False.

    For a lab's code: ``if needs("cgroups"): ...``; whole cells use ``%%needs cgroups``.
    """
    missing = lacks(what)
    if missing:
        print(f"○ skipped: {missing}")
    return not missing
