"""A folder's conftest marks its own tests and no others: the passes select by markers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.folder_markers import mark_folder

pytestmark = pytest.mark.in_process

FOLDER = Path("/repo/tests/frozen")


@dataclass
class Item:
    """A collected test as mark_folder sees it: its file and the markers added."""

    path: Path
    markers: list[str] = field(default_factory=list)

    def add_marker(self, marker: pytest.MarkDecorator) -> None:
        self.markers.append(marker.name)


@pytest.mark.parametrize(
    ("path", "marked"),
    [
        pytest.param("/repo/tests/frozen/test_build.py", True, id="in-the-folder"),
        pytest.param("/repo/tests/frozen/sub/test_x.py", True, id="in-a-subfolder"),
        pytest.param("/repo/tests/test_options.py", False, id="the-parent-folder"),
        pytest.param("/repo/tests/firmware/test_units.py", False, id="a-sibling-folder"),
        pytest.param("/repo/tests/frozen_other/test_x.py", False, id="a-name-with-the-prefix"),
    ],
)
def test_only_the_folders_own_tests_are_marked(path: str, marked: bool) -> None:
    item = Item(Path(path))
    mark_folder([item], FOLDER, pytest.mark.onefile_only)
    assert item.markers == (["onefile_only"] if marked else [])
