"""Where a folder's tests run, said by the folder: its conftest marks every test in it.

pytest hands ``pytest_collection_modifyitems`` of any conftest every collected item, not
only the folder's own, so the marker goes to the items under the folder alone. The hooks
that call this run first (``tryfirst``), before ``-m`` deselects by markers.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import pytest


class Markable(Protocol):
    """What ``mark_folder`` needs of a collected item (``pytest.Item`` has both)."""

    @property
    def path(self) -> Path: ...

    def add_marker(self, marker: pytest.MarkDecorator) -> None: ...


def mark_folder(items: Iterable[Markable], folder: Path, marker: pytest.MarkDecorator) -> None:
    """Add ``marker`` to each item whose file lies under ``folder`` (a path, not a prefix:
    tests/frozen does not hold tests/frozen_other)."""
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(marker)
