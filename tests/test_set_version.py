"""build/set_version.py: one command writes the version wherever it is written, or nowhere."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.firmware import recipe_check

pytestmark = pytest.mark.in_process

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "build" / "set_version.py"
FILES = (
    "caramel_embedded/version.py",
    "firmware-integration/buildroot/package/caramel-embedded/caramel-embedded.mk",
    "firmware-integration/caramel-embedded.1",
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The files the script writes, copied as they are in the repository."""
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    recipe = recipe_check.recipe_path()
    copy = tmp_path / recipe.relative_to(REPO)
    copy.parent.mkdir(parents=True)
    shutil.copy(recipe, copy)
    return tmp_path


def set_version(tree: Path, version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), version, "--repo", str(tree)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def snapshot(tree: Path) -> dict[str, str]:
    return {
        str(p.relative_to(tree)): p.read_text() for p in sorted(tree.rglob("*")) if p.is_file()
    }


def test_every_place_names_the_new_version(tree: Path) -> None:
    result = set_version(tree, "1.2.3")
    assert result.returncode == 0, result.stderr
    assert '__version__ = "1.2.3"\n' in (tree / FILES[0]).read_text()
    assert "\nCARAMEL_EMBEDDED_VERSION = 1.2.3\n" in (tree / FILES[1]).read_text()
    [title] = [
        line for line in (tree / FILES[2]).read_text().splitlines() if line.startswith(".TH")
    ]
    assert title == '.TH CARAMEL\\-EMBEDDED 1 "" "caramel\\-embedded 1.2.3" "User Commands"'
    [recipe] = tree.rglob("caramel-embedded_*.bb")
    assert recipe.name == "caramel-embedded_1.2.3.bb"
    assert recipe.read_text() == recipe_check.recipe_path().read_text()


@pytest.mark.parametrize("version", ["1.2", "v1.2.3", "1.02.3", "1.2.3-rc1", ""])
def test_a_version_that_is_not_x_y_z_changes_nothing(tree: Path, version: str) -> None:
    before = snapshot(tree)
    result = set_version(tree, version)
    assert result.returncode == 2
    assert "is not X.Y.Z" in result.stderr
    assert snapshot(tree) == before


def test_a_file_without_its_line_changes_nothing(tree: Path) -> None:
    (tree / FILES[1]).write_text("# no version line\n")
    before = snapshot(tree)
    result = set_version(tree, "1.2.3")
    assert result.returncode == 1
    assert "no line matches" in result.stderr
    assert snapshot(tree) == before
