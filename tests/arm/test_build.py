"""The ARM builds themselves: the right machine, nothing needed but glibc, the floor the
docs/firmware-integration.md states, and the same bytes from two builds of one commit.

The facts are read from the bytes by build/elf_report.py (the launcher and every library
packed inside the one-file binary; every ELF file of the bundle).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.arm.conftest import ELF_MACHINE, REPO, ArmBuild
from tests.firmware.test_recipes import GLIBC_FLOORS
from tests.frozen.conftest import assert_readme_states_glibc_floor, elf_report

FREEZE_IN_ROOT = REPO / "build" / "freeze-in-root.sh"


@pytest.mark.parametrize("form", ["onefile", "onedir"])
def test_the_build_is_for_the_arch_and_needs_nothing_but_glibc(
    arm_build: ArmBuild, form: str
) -> None:
    report = elf_report(arm_build.build_python, arm_build.output(form))
    assert report["machine"] == ELF_MACHINE[arm_build.arch]
    assert report["not_glibc"] == []
    # zlib is linked into the launcher: the target's libz.so.1 is not needed.
    assert "libz.so.1" not in report["system_libraries"]  # type: ignore[operator]
    info = arm_build.buildinfo(form)
    assert (info["arch"], info["form"]) == (arm_build.arch, form)


def test_the_readme_states_the_measured_glibc_floor(arm_build: ArmBuild) -> None:
    report = elf_report(arm_build.build_python, arm_build.onefile)
    floor = str(report["glibc_floor"]).removeprefix("GLIBC_")
    assert GLIBC_FLOORS[arm_build.arch] == floor, "the firmware recipes state another floor"
    assert_readme_states_glibc_floor(arm_build.arch, floor, arm_build.onefile)


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
