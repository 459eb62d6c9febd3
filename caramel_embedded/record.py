"""``Record``: the package's small immutable values, typed as frozen dataclasses are.

Every run of the command is a cold start, and the records are built at import time:
dataclasses would import ``inspect`` (about 8 ms frozen), and ``typing.NamedTuple``
compiles a ``__new__`` for every class (``eval``) and every annotation that is a string:
about 60 µs per record, 1.4 ms for the 23 records of the unchanged path. A ``Record``
subclass is a plain class: its fields are read from its annotations (never evaluated),
once, and one ``__init__`` serves every record. For mypy, ``dataclass_transform`` makes
each subclass a frozen dataclass: a typed constructor, no assignment.

What a record gives: construction by position or keyword with defaults, equality with
records of its own class only (``Wait() != Post()``, which empty tuples could not tell
apart), a hash, a readable repr, and ``replace(**changes)``. It is not a tuple: no
unpacking, no indexing, no ordering.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self, dataclass_transform


@dataclass_transform(frozen_default=True, eq_default=True)
class Record:
    """Base of a small immutable value: annotate the fields, give defaults as values."""

    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, object]] = {}

    def __init_subclass__(cls) -> None:
        # Read, never evaluated: inspect.get_annotations would cost inspect's import.
        own = tuple(cls.__dict__.get("__annotations__", ()))  # noqa: RUF063
        cls._fields = cls._fields + own
        cls._defaults = {
            **cls._defaults,
            **{name: cls.__dict__[name] for name in own if name in cls.__dict__},
        }

    def __init__(self, *values: Any, **named: Any) -> None:
        fields = self._fields
        if len(values) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} values")
        state = dict(zip(fields, values, strict=False))
        for name in fields[len(values) :]:
            if name in named:
                state[name] = named.pop(name)
            elif name in self._defaults:
                state[name] = self._defaults[name]
            else:
                raise TypeError(f"{type(self).__name__}() is missing {name!r}")
        if named:
            raise TypeError(f"{type(self).__name__}() got unexpected {', '.join(named)}")
        object.__setattr__(self, "__dict__", state)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.__dict__ == self.__dict__

    def __hash__(self) -> int:
        return hash((type(self), *self.__dict__.values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__dict__.items())
        return f"{type(self).__name__}({fields})"

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (dataclasses.replace, NamedTuple._replace)."""
        return type(self)(**{**self.__dict__, **changes})
