"""The ARM builds themselves: the right machine, nothing needed but glibc, the floor the
docs/firmware-integration.md states, and, for both one-file forms (stored and compressed),
the same bytes from two builds of one commit and an archive that holds its unpacked files
as the name says.

The facts are read from the bytes by build/elf_report.py (the launcher and every library
packed inside the one-file binary; every ELF file of the bundle).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.arm.conftest import ELF_MACHINE, REPO, ArmBuild
from tests.firmware.test_recipes import GLIBC_FLOORS
from tests.frozen.conftest import (
    ONEFILE_FORMS,
    archive_report,
    assert_readme_states_glibc_floor,
    elf_report,
    read_buildinfo,
)

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


@pytest.mark.parametrize("form", ONEFILE_FORMS)
def test_two_builds_of_one_commit_give_the_same_bytes(
    arm_build: ArmBuild, form: str, tmp_path: Path
) -> None:
    """Both one-file forms (the stored one the pass runs, and the compressed one)."""
    built = arm_build.onefile_stored(ONEFILE_FORMS[form])
    epoch = read_buildinfo(built.with_name(built.name + ".buildinfo"))["source_date_epoch"]
    again = subprocess.run(
        [
            str(FREEZE_IN_ROOT),
            *("--arch", arm_build.arch, "--form", "onefile", "--store", ONEFILE_FORMS[form]),
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
    rebuilt = tmp_path / "dist" / built.name
    assert rebuilt.stat().st_size == built.stat().st_size
    assert rebuilt.read_bytes() == built.read_bytes()


@pytest.mark.parametrize("form", ONEFILE_FORMS)
def test_each_one_file_form_holds_its_unpacked_files_as_its_name_says(
    arm_build: ArmBuild, form: str
) -> None:
    """The archive's table of contents, read as on the host (build/archive_report.py)."""
    built = arm_build.onefile_stored(ONEFILE_FORMS[form])
    result = archive_report(arm_build.build_python, "--json", str(built))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["form"] == form
    assert summary["unpacked_files"] > 0
    assert (summary["archive_bytes"] == summary["unpacked_bytes"]) == (form == "stored")
