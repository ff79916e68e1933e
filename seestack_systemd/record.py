"""``Record``: the small part of ``@dataclass`` the hooks need, at no import cost.

``import dataclasses`` pulls in ``inspect`` (and with it ``ast`` and ``dis``):
several milliseconds on every ``start`` and ``finish`` around every job. A
subclass declares its fields as annotations, defaults as class attributes
(immutable ones: a default is shared, not copied).
"""

from __future__ import annotations


class Record:
    """Fields from the class's own annotations; ``__init__``, ``__repr__``, ``__eq__``."""

    _fields: tuple = ()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._fields = cls._fields + tuple(cls.__dict__.get("__annotations__", ()))

    def __init__(self, *args: object, **kwargs: object) -> None:
        name = type(self).__name__
        if len(args) > len(self._fields):
            raise TypeError(f"{name} takes at most {len(self._fields)} fields")
        values = dict(zip(self._fields, args))
        for key in kwargs:
            if key not in self._fields or key in values:
                raise TypeError(f"{name}: unexpected or repeated field {key!r}")
        values.update(kwargs)
        for field in self._fields:
            if field in values:
                setattr(self, field, values[field])
            elif not hasattr(type(self), field):
                raise TypeError(f"{name}: missing field {field!r}")

    def __repr__(self) -> str:
        shown = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({shown})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, f) == getattr(other, f) for f in self._fields)
