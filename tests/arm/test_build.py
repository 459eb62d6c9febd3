"""The ARM builds themselves: the right machine, nothing needed but glibc, the floor the
README states, and the same bytes from two builds of one commit.

The facts are read from the bytes by build/elf_report.py (the launcher and every library
packed inside the one-file binary; every ELF file of the bundle).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.arm.conftest import ELF_MACHINE, REPO, ArmBuild
from tests.firmware.test_recipes import GLIBC_FLOORS

FREEZE_IN_ROOT = REPO / "build" / "freeze-in-root.sh"
ELF_REPORT = REPO / "build" / "elf_report.py"


def elf_report(build: ArmBuild, target: Path) -> dict[str, object]:
    result = subprocess.run(
        [str(build.build_python), str(ELF_REPORT), "--json", str(target)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("form", ["onefile", "onedir"])
def test_the_build_is_for_the_arch_and_needs_nothing_but_glibc(
    arm_build: ArmBuild, form: str
) -> None:
    target = arm_build.onefile if form == "onefile" else arm_build.onedir
    report = elf_report(arm_build, target)
    assert report["machine"] == ELF_MACHINE[arm_build.arch]
    assert report["not_glibc"] == []
    # zlib is linked into the launcher: the target's libz.so.1 is not needed.
    assert "libz.so.1" not in report["system_libraries"]  # type: ignore[operator]
    info = arm_build.buildinfo(form)
    assert (info["arch"], info["form"]) == (arm_build.arch, form)


def test_the_readme_states_the_measured_glibc_floor(arm_build: ArmBuild) -> None:
    report = elf_report(arm_build, arm_build.onefile)
    floor = str(report["glibc_floor"]).removeprefix("GLIBC_")
    readme = (REPO / "README.md").read_text()
    rows = [line for line in readme.splitlines() if re.match(rf"\|\s*{arm_build.arch}\s*\|", line)]
    assert rows, f"README.md has no table row for {arm_build.arch}"
    assert GLIBC_FLOORS[arm_build.arch] == floor, "the firmware recipes state another floor"
    assert any(re.search(rf"\bglibc {re.escape(floor)}\b", row) for row in rows), (
        f"README.md must say 'glibc {floor}' for {arm_build.arch} "
        f"(measured from {arm_build.onefile}): " + " / ".join(rows)
    )


def test_two_builds_of_one_commit_give_the_same_bytes(arm_build: ArmBuild, tmp_path: Path) -> None:
    epoch = arm_build.buildinfo("onefile")["source_date_epoch"]
    again = subprocess.run(
        [
            str(FREEZE_IN_ROOT),
            "--arch",
            arm_build.arch,
            "--form",
            "onefile",
            "--dist",
            str(tmp_path / "dist"),
        ],
        env={**os.environ, "SOURCE_DATE_EPOCH": epoch},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    rebuilt = tmp_path / "dist" / "caramel-embedded"
    assert rebuilt.stat().st_size == arm_build.onefile.stat().st_size
    assert rebuilt.read_bytes() == arm_build.onefile.read_bytes()
