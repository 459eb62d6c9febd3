"""The ARM builds carry their software bill of materials too (build/sbom.py runs inside
build/freeze.sh, so inside the emulated root): the same checks as tests/frozen/test_sbom.py
but for the versions, which only the root's build venv could report. The section is read
with the client's own ELF reader, which reads every architecture's files (the host's
binutils may not)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caramel_embedded import sbom
from testbed.command import run_client
from tests.arm.conftest import ELF_MACHINE, ArmBuild
from tests.frozen.test_sbom import (
    assert_glibc_floor_is_a_dependency,
    assert_lists_every_carried_file,
    assert_valid,
    beside,
)


def launcher(output: Path) -> Path:
    return output / "caramel-embedded" if output.is_dir() else output


@pytest.mark.parametrize("form", ["onefile", "onedir"])
def test_the_arm_build_carries_its_bill_of_materials(arm_build: ArmBuild, form: str) -> None:
    output = arm_build.output(form)
    carried = sbom.carried(str(launcher(output)))
    assert beside(output).read_text() == carried
    document = json.loads(carried)
    assert_valid(document)
    properties = {p["name"]: p["value"] for p in document["metadata"]["component"]["properties"]}
    assert properties["caramel-embedded:machine"] == ELF_MACHINE[arm_build.arch]
    assert properties["caramel-embedded:form"] == form
    assert_lists_every_carried_file(output, arm_build.build_python, document)
    assert_glibc_floor_is_a_dependency(output, arm_build.build_python, document)


def test_sbom_under_emulation_prints_what_the_binary_carries(arm_build: ArmBuild) -> None:
    printed = run_client(["--sbom"])
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == sbom.carried(str(arm_build.onefile))
