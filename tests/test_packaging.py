"""How the project installs: `pip install .` leaves nothing in the project's own build/.

build/ holds the freezing (spec, scripts, lock files) and is linted; setuptools' default
build directory is build/ too, so an install used to leave build/lib and build/bdist.* in
it. pyproject.toml moves setuptools' directory to .cache/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.in_process


def test_building_the_wheel_leaves_the_projects_build_directory_alone(tmp_path: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPOSITORY, capture_output=True, check=True
    ).stdout.split(b"\0")
    copy = tmp_path / "project"
    for name in filter(None, files):
        source = REPOSITORY / name.decode()
        if source.is_file():  # a file deleted in the work tree is not part of the build
            (copy / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name.decode())
    before = sorted(p.relative_to(copy) for p in (copy / "build").rglob("*"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "w"), "."],
        cwd=copy, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    assert list((tmp_path / "w").glob("caramel_embedded-*.whl"))
    after = sorted(p.relative_to(copy) for p in (copy / "build").rglob("*"))
    assert after == before
    assert (copy / ".cache" / "setuptools-build").is_dir()
