"""A plain-class stand-in for ``@dataclass``, for the records a build passes around.

Why not dataclasses: ``@dataclass`` writes and ``exec``s each class's methods
when its module is imported, about half a millisecond a class here; the build's
dozen records cost 7 ms of every ``sandbox build``, a full cache hit included
(issue 18: a hit as a new process no slower than ``docker build``).  A record
class writes its ``__init__`` by hand and names its fields in ``_fields``;
this base gives it the dataclass's ``repr`` and ``==`` (field by field, same
class only; unhashable, as a dataclass with ``eq`` is).
"""

from __future__ import annotations

from typing import Any, ClassVar


class Record:
    """Fields in ``_fields``, in order; ``repr`` and ``==`` as a dataclass has them."""

    _fields: ClassVar[tuple[str, ...]] = ()

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._fields)

    __hash__ = None  # type: ignore[assignment]

    def as_dict(self) -> dict[str, Any]:
        """The fields and their values (``dataclasses.asdict`` one level deep)."""
        return {name: getattr(self, name) for name in self._fields}
