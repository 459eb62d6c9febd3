"""``Record``, the package's small immutable values (caramel_embedded/record.py).

It stands in for NamedTuple and frozen dataclasses on the cold path, so it must keep
what the code relies on from them: construction by position, keyword and default, no
assignment, equality within a class only, a hash, a repr, and ``replace``.
"""

from __future__ import annotations

import pytest

from caramel_embedded.decision import Post, Wait
from caramel_embedded.record import Record

pytestmark = pytest.mark.in_process


class Point(Record):
    x: int
    y: int = 0
    label: str | None = None


class Other(Record):
    x: int
    y: int = 0
    label: str | None = None


def test_construction_by_position_keyword_and_default() -> None:
    assert Point(1, 2, "a") == Point(x=1, y=2, label="a") == Point(1, label="a", y=2)
    point = Point(5)
    assert (point.x, point.y, point.label) == (5, 0, None)


@pytest.mark.parametrize(
    ("values", "named", "message"),
    [
        pytest.param((), {}, "missing 'x'", id="missing"),
        pytest.param((1, 2, "a", 4), {}, "takes 3 values", id="too-many"),
        pytest.param((1,), {"z": 1}, "unexpected z", id="unknown-keyword"),
        pytest.param((1,), {"x": 2}, "unexpected x", id="given-twice"),
    ],
)
def test_wrong_arguments_are_type_errors(
    values: tuple[object, ...], named: dict[str, object], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        Point(*values, **named)  # type: ignore[arg-type]


def test_immutable() -> None:
    point = Point(1)
    with pytest.raises(AttributeError):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del point.x  # type: ignore[misc]
    assert point.x == 1


def test_equal_within_its_class_only() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(1, 3)
    assert Point(1, 2) != Other(1, 2)  # a tuple would say equal
    assert Wait() != Post()  # records without fields, told apart by class
    assert Point(1, 2) != (1, 2, None)
    assert {Point(1, 2), Point(1, 2), Other(1, 2)} == {Point(1, 2), Other(1, 2)}


def test_repr_and_replace() -> None:
    point = Point(1, label="a")
    assert repr(point) == "Point(x=1, y=0, label='a')"
    moved = point.replace(y=7)
    assert moved == Point(1, 7, "a")
    assert point == Point(1, 0, "a")  # the original is untouched
    with pytest.raises(TypeError):
        point.replace(z=1)


def test_a_default_is_shared_not_copied() -> None:
    """As with NamedTuple: a default is one value (the records' defaults are immutable)."""
    assert Point(1).label is Point(2).label
