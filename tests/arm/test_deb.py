"""The Debian package of each ARM binary (`make deb ARCH=aarch64|armhf`), in the ARM pass:
its fields, lintian, and its whole life in the architecture's Debian root (the build root
of build/rootfs.sh, seen through an overlay, every program in it under qemu-user)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from testbed.harness import CaramelStack
from tests.arm.conftest import ArmBuild
from tests.firmware.debian_package import (
    DEBIAN_ARCH,
    build_deb,
    deb_root,
    fields,
    install_round_and_remove,
    lintian,
    real_caramel,
    sources_version,
)
from tests.frozen.conftest import elf_report


@pytest.mark.e2e
def test_package_installs_runs_and_keeps_the_key(
    arm_build: ArmBuild, stack: CaramelStack, tmp_path: Path
) -> None:
    """Its fields, lintian, then dpkg -i into the architecture's root, --version, --sbom
    and a round against the real Caramel server, dpkg -r and -P keeping the key."""
    deb = build_deb(arm_build.onefile, arm_build.arch, tmp_path / "deb", arm_build.build_python)
    control = fields(deb)
    assert control["Architecture"] == DEBIAN_ARCH[arm_build.arch]
    assert control["Version"] == f"{sources_version()}-1"
    report = elf_report(arm_build.build_python, arm_build.onefile)
    floor = str(report["glibc_floor"]).removeprefix("GLIBC_")
    assert control["Depends"].startswith(f"libc6 (>= {floor})")
    result = lintian(deb)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not re.search(r"^[EW]: ", result.stdout, re.MULTILINE), result.stdout
    root = deb_root(arm_build.arch)
    install_round_and_remove(root, deb, real_caramel(stack), tmp_path / "overlay")
