"""Device access rules: OCI ``linux.resources.devices`` as the kernel sees them.

An OCI rule is ``{"allow": bool, "type": "a"|"c"|"b", "major": int|None,
"minor": int|None, "access": "rwm"}``; a missing major or minor is a wildcard,
a missing type is "a" and a missing access is "rwm" (runc's defaults).  The
list is applied in order, and Docker's always starts with a deny-all.

What the list means is what cgroup v1's devices controller makes of it
(Documentation/admin-guide/cgroup-v1/devices.rst, security/device_cgroup.c),
which :class:`DeviceRuleSet` models the way runc's devices emulator does:

* a type "a" rule resets everything: default allow or default deny, no exceptions;
* a rule with the other action than the default adds an exception (or widens
  one with the same type, major and minor);
* a rule with the default's action removes access from the exception with
  exactly the same type, major and minor, and from no other.  So "allow c 1:*"
  then "deny c 1:3" in a deny-by-default group leaves /dev/null (c 1:3) open,
  and "allow c 1:5" then "deny c 1:*" leaves /dev/zero open.  Such a list is
  refused here (runc refuses the first kind) instead of leaving open a device
  the list seems to close;
* an access is allowed in a deny-by-default group when one exception matches
  the device and holds every requested bit; in an allow-by-default group it is
  denied when any exception matches the device and shares a requested bit.

With those lists refused, what is left means "the last matching rule wins"
for each access letter; a request for several letters at once (open with
O_RDWR asks for "rw") needs one exception that grants them all.  The
engine starts from deny-all like runc (:func:`DeviceRuleSet.from_rules`), so a
list without a leading "a" rule means the same on v1 and v2: cgroup v1 gets
an explicit deny-all first, and cgroup v2's eBPF program (:mod:`.ebpf`) is
built from this same model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidResources

#: The access letters in the order the kernel prints them.
ACCESS = "rwm"
#: Largest major or minor the kernel parses (a u32).
MAX_NUMBER = 0xFFFF_FFFF
#: The fields of an OCI device rule (runtime-spec config-linux.md "Allowed Device List").
_KNOWN_KEYS = frozenset({"allow", "type", "major", "minor", "access"})


@dataclass(frozen=True)
class DeviceRule:
    """One checked rule.  ``major``/``minor`` None is the wildcard ``*``;
    ``access`` is a non-empty subset of "rwm", in that order."""

    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = ACCESS

    @property
    def is_reset(self) -> bool:
        """A type "a" rule: every device, every access (the kernel's reset)."""
        return self.type == "a"

    def cgroup_line(self) -> str:
        """The rule as cgroup v1's devices.allow/deny read it: ``c 1:3 rwm``."""
        if self.is_reset:
            return "a *:* rwm"
        return f"{self.type} {_star(self.major)}:{_star(self.minor)} {self.access}"

    def __str__(self) -> str:
        return f"{'allow' if self.allow else 'deny'} {self.cgroup_line()}"


def _star(n: int | None) -> str:
    return "*" if n is None else str(n)


def _sorted_access(access: Iterable[str]) -> str:
    letters = set(access)
    return "".join(c for c in ACCESS if c in letters)


# ------------------------------------------------------------------ parsing OCI rules

def parse_device_rule(entry: Mapping[str, Any] | DeviceRule, where: str) -> DeviceRule:
    """Check one OCI device rule; InvalidResources names ``where.field`` on a bad value."""
    if isinstance(entry, DeviceRule):
        return entry
    if not isinstance(entry, Mapping):
        raise InvalidResources(f"{where} must be an object",
                               hint='e.g. {"allow": true, "type": "c", "major": 1, "minor": 3, '
                                    '"access": "rwm"}')
    allow = entry.get("allow")
    if not isinstance(allow, bool):
        raise InvalidResources(f"{where}.allow must be true or false"
                               + (" (it is required)" if allow is None else f", not {allow!r}"))
    kind = entry.get("type", "a")
    if kind is None:
        kind = "a"
    if kind not in ("a", "b", "c"):
        raise InvalidResources(f"{where}.type must be \"a\", \"b\" or \"c\", not {kind!r}",
                               hint="c is a character device, b a block device, a every device")
    major = _number(entry.get("major"), f"{where}.major")
    minor = _number(entry.get("minor"), f"{where}.minor")
    access = entry.get("access")
    if access is None:
        access = ACCESS
    if not isinstance(access, str) or not access or set(access) - set(ACCESS) \
            or len(set(access)) != len(access):
        raise InvalidResources(f"{where}.access must be a combination of r, w and m, not {access!r}",
                               hint="r is read, w write, m mknod; e.g. \"rwm\" or \"rw\"")
    rule = DeviceRule(allow, kind, major, minor, _sorted_access(access))
    if rule.is_reset and (major is not None or minor is not None or rule.access != ACCESS):
        raise InvalidResources(
            f"{where}: type \"a\" means every device with every access ({rule.access!r} "
            f"{_star(major)}:{_star(minor)} cannot narrow it; the kernel would ignore that)",
            hint='use type "c" or "b" with a major number to restrict a range of devices')
    return rule


def _number(value: object, where: str) -> int | None:
    """A major or minor: None or -1 (runc's spelling) is the wildcard."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidResources(f"{where} must be an integer, not {value!r}",
                               hint="leave it out (or null) to match every number")
    if value == -1:
        return None
    if not 0 <= value <= MAX_NUMBER:
        raise InvalidResources(f"{where} must be between 0 and {MAX_NUMBER}, not {value}",
                               hint="-1 or null matches every number")
    return value


def parse_device_rules(rules: Iterable[Mapping[str, Any] | DeviceRule] | None,
                       where: str = "linux.resources.devices") -> list[DeviceRule]:
    """Check an OCI rule list; the first bad entry raises InvalidResources naming it
    (``linux.resources.devices[2].access must be ...``)."""
    if rules is None:
        return []
    if isinstance(rules, (str, bytes, Mapping)) or not isinstance(rules, Iterable):
        raise InvalidResources(f"{where} must be a list of device rules")
    return [parse_device_rule(entry, f"{where}[{i}]") for i, entry in enumerate(rules)]


def unknown_rule_keys(rules: Iterable[Any], where: str = "linux.resources.devices") -> list[str]:
    """Warnings for keys of OCI device rules this engine does not know."""
    out = []
    for i, entry in enumerate(rules):
        if isinstance(entry, Mapping):
            for key in sorted(set(entry) - _KNOWN_KEYS):
                out.append(f"{where}[{i}].{key} is not an OCI device rule field; ignored")
    return out


# ------------------------------------------------------------------ the kernel's model

Meta = tuple[str, "int | None", "int | None"]   # (type, major, minor) of an exception


@dataclass
class DeviceRuleSet:
    """A devices cgroup: a default and exceptions keyed by exact (type, major, minor).

    ``exceptions`` maps a device pattern to the access letters that differ from
    the default (allowed ones in a deny-by-default set, denied ones otherwise).
    """

    default_allow: bool = False
    exceptions: dict[Meta, str] = field(default_factory=dict)

    @classmethod
    def from_rules(cls, rules: Iterable[Mapping[str, Any] | DeviceRule] | None,
                   where: str = "linux.resources.devices") -> DeviceRuleSet:
        """The state after applying ``rules`` in order to a deny-all group (runc's start)."""
        state = cls()
        for i, rule in enumerate(parse_device_rules(rules, where)):
            state.apply(rule, f"{where}[{i}]")
        return state

    def apply(self, rule: DeviceRule, where: str = "rule") -> None:
        """Apply one rule as devices.allow / devices.deny would."""
        if rule.is_reset:
            self.default_allow, self.exceptions = rule.allow, {}
            return
        meta: Meta = (rule.type, rule.major, rule.minor)
        if rule.allow != self.default_allow:
            self.exceptions[meta] = _sorted_access(self.exceptions.get(meta, "") + rule.access)
            return
        self._refuse_hole(rule, meta, where)
        left = _sorted_access(set(self.exceptions.get(meta, "")) - set(rule.access))
        if left:
            self.exceptions[meta] = left
        else:
            self.exceptions.pop(meta, None)

    def _refuse_hole(self, rule: DeviceRule, meta: Meta, where: str) -> None:
        """Refuse a rule that takes access back from devices another exception covers.

        cgroup v1 only removes access from the exception with exactly the same
        pattern: "deny c 1:3" leaves an earlier "allow c 1:*" as it was, and
        "deny c 1:*" leaves an earlier "allow c 1:3".  Either way a device the
        list seems to close stays open (or the reverse), without any error.
        """
        for other, letters in self.exceptions.items():
            shared = set(letters) & set(rule.access)
            if other == meta or not shared or not _overlap(other, meta):
                continue
            earlier = DeviceRule(not rule.allow, other[0], other[1], other[2], letters)
            raise InvalidResources(
                f"{where} ({rule}) cannot take {_sorted_access(shared)!r} back from the "
                f"earlier rule {earlier}: the devices cgroup only changes a rule with exactly "
                f"the same type, major and minor, so it would ignore this one",
                hint="give each device its own rule (or use the same wildcard in both)")

    def allowed(self, kind: str, major: int, minor: int, access: str) -> bool:
        """Whether the kernel lets a process open (r/w) or mknod (m) that device."""
        if kind not in ("b", "c"):
            raise ValueError(f"device type must be 'b' or 'c', not {kind!r}")
        wanted = set(access)
        if not wanted or wanted - set(ACCESS):
            raise ValueError(f"access must be a combination of r, w and m, not {access!r}")
        for (t, ma, mi), letters in self.exceptions.items():
            if t != kind or ma not in (None, major) or mi not in (None, minor):
                continue
            if self.default_allow and wanted & set(letters):
                return False      # any denied bit refuses the access
            if not self.default_allow and wanted <= set(letters):
                return True       # one exception must grant every bit
        return self.default_allow

    def rules(self) -> list[DeviceRule]:
        """The minimal equivalent list: the reset, then the exceptions, sorted."""
        out = [DeviceRule(self.default_allow)]
        for (t, ma, mi), letters in sorted(self.exceptions.items(), key=_meta_key):
            out.append(DeviceRule(not self.default_allow, t, ma, mi, letters))
        return out


def _overlap(a: Meta, b: Meta) -> bool:
    """Whether two patterns of the same type name at least one common device."""
    return a[0] == b[0] and all(x is None or y is None or x == y for x, y in zip(a[1:], b[1:]))


def _meta_key(item: tuple[Meta, str]) -> tuple[str, int, int]:
    (t, ma, mi), _ = item
    return (t, -1 if ma is None else ma, -1 if mi is None else mi)


def device_allowed(rules: Sequence[Mapping[str, Any] | DeviceRule] | None, kind: str,
                   major: int, minor: int, access: str = "rw") -> bool:
    """Whether ``rules`` (an OCI list, applied from deny-all) let a process have
    ``access`` ("r", "w", "m" or a mix) to device ``kind`` ("c"/"b") ``major:minor``.

    For the runtime's check that a ``linux.devices`` entry is not shut out by
    ``linux.resources.devices``.  Raises InvalidResources for a list the kernel
    would not take (see :class:`DeviceRuleSet`).
    """
    return DeviceRuleSet.from_rules(rules).allowed(kind, major, minor, access)
