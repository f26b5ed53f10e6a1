"""Plain-class stand-ins for ``@dataclass``, for the records a cold command passes around.

Why not dataclasses: ``@dataclass`` writes and ``exec``s each class's methods
when its module is imported, about half a millisecond a class here, and
``import dataclasses`` brings ``inspect`` (with ``ast``, ``dis`` and
``tokenize``), ~5 ms more.  A full cache hit of ``sandbox build`` as a new
process is mostly imports (issue 18: no slower than ``docker build``), and the
build's records, the image store's descriptors, layers and images and the
parsed image reference are all on its way.

A record class writes its ``__init__`` by hand and names its fields in
``_fields``; :class:`Record` gives it the dataclass's ``repr`` and ``==``
(field by field, same class only; unhashable, as a dataclass with ``eq``
is); :class:`FrozenRecord` is ``@dataclass(frozen=True)``: its fields are set
once, in ``__init__`` through :meth:`FrozenRecord._set`, and it hashes by
them.  No ``__slots__``: ``vars(record)`` is its fields, as the Go template
``json`` function reads an object.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: this module is on every cold command's way
if TYPE_CHECKING:
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


class FrozenError(AttributeError):
    """Assigning to a field of a frozen record (dataclasses' ``FrozenInstanceError`` is one too)."""


class FrozenRecord(Record):
    """A :class:`Record` whose fields cannot change after ``__init__``; hashable by its fields."""

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenError(f"cannot assign to field {name!r} of a {type(self).__qualname__}")

    def __delattr__(self, name: str) -> None:
        raise FrozenError(f"cannot delete field {name!r} of a {type(self).__qualname__}")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(getattr(self, name) for name in self._fields))

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` (``dataclasses.replace``)."""
        values = {name: getattr(self, name) for name in self._fields}
        values.update(changes)
        return type(self)(**values)
