"""Glue for the ARM pass (``make test-arm``): which architecture, where its builds are.

``make test-arm`` runs the process-level suites once per architecture with
``CARAMEL_EMBEDDED_CMD="env QEMU_LD_PREFIX=<glibc-only root> <one-file binary>"``, so every
invocation runs under qemu-user with nothing but the target's glibc to load, and sets:

- ``CARAMEL_ARM_ARCH``: ``aarch64`` or ``armhf``;
- ``CARAMEL_ARM_DIST``: the directory build/freeze-in-root.sh wrote the one-file binary and
  the one-dir bundle into;
- ``CARAMEL_ARM_GLIBC_ROOT``: the root made by build/glibc-root.sh;
- ``CARAMEL_BUILD_PYTHON``: a Python with PyInstaller (the host's build venv), whose
  archive reader build/elf_report.py needs to look inside a one-file binary.

Run in any other way these tests fail with a line saying how to run them: a missing build
or a machine that cannot emulate ARM is a failure of the ARM pass, never a reason to skip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.folder_markers import mark_folder
from tests.frozen.conftest import ONEFILE_NAMES, read_buildinfo

REPO = Path(__file__).resolve().parents[2]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here is about the ARM builds: ``arm_only``, the ARM pass's alone."""
    mark_folder(items, Path(__file__).parent, pytest.mark.arm_only)


# What qemu-user is called for each architecture, and the ELF machine its binaries carry.
QEMU_NAME = {"aarch64": "aarch64", "armhf": "arm"}
ELF_MACHINE = {"aarch64": "aarch64", "armhf": "arm"}
LOADER = {"aarch64": "ld-linux-aarch64.so.1", "armhf": "ld-linux-armhf.so.3"}


@dataclass(frozen=True)
class ArmBuild:
    """The builds of one foreign architecture and the glibc-only root they run with."""

    arch: str
    dist: Path
    glibc_root: Path
    build_python: Path

    @property
    def onefile(self) -> Path:
        """The stored one-file form (the default; the one the ARM pass runs)."""
        return self.dist / ONEFILE_NAMES["yes"]

    def onefile_stored(self, store: str) -> Path:
        """The one-file form by build/freeze.sh's --store ('yes', 'no')."""
        return self.dist / ONEFILE_NAMES[store]

    @property
    def onedir(self) -> Path:
        return self.dist / "caramel-embedded-dir"

    def output(self, form: str) -> Path:
        """The one-file binary or the bundle's directory, by build/freeze.sh's form name."""
        return self.onefile if form == "onefile" else self.onedir

    def buildinfo(self, form: str) -> dict[str, str]:
        """The .buildinfo build/freeze-in-root.sh wrote beside that output."""
        output = self.output(form)
        return read_buildinfo(output.with_name(output.name + ".buildinfo"))


def _required(name: str) -> str:
    """An environment variable `make test-arm` sets: unset, the run is not the ARM pass."""
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(f"{name} is not set: tests/arm run through `make test-arm`")
    return value


@pytest.fixture(scope="session")
def arm_build() -> ArmBuild:
    """The ARM pass's builds, checked once: a missing piece fails, never skips."""
    arch = _required("CARAMEL_ARM_ARCH")
    if arch not in QEMU_NAME:
        pytest.fail(f"CARAMEL_ARM_ARCH={arch}: expected one of {sorted(QEMU_NAME)}")
    build = ArmBuild(
        arch,
        Path(_required("CARAMEL_ARM_DIST")),
        Path(_required("CARAMEL_ARM_GLIBC_ROOT")),
        Path(_required("CARAMEL_BUILD_PYTHON")),
    )
    binfmt = Path("/proc/sys/fs/binfmt_misc") / f"qemu-{QEMU_NAME[arch]}"
    try:
        enabled = binfmt.read_text().splitlines()[0] == "enabled"
    except OSError as error:
        pytest.fail(f"no emulation for {arch}: {error} (build/rootfs.sh sets it up)")
    if not enabled:
        pytest.fail(f"{binfmt} is disabled: {arch} binaries cannot run here")
    for path in (
        *(build.onefile_stored(store) for store in ONEFILE_NAMES),
        build.onedir / "caramel-embedded",
        build.build_python,
    ):
        if not path.is_file():
            pytest.fail(f"{path}: missing; build it with `make test-arm`")
    if not (build.glibc_root / "lib").exists():
        pytest.fail(f"{build.glibc_root}: no glibc-only root; build/glibc-root.sh {arch} makes it")
    return build
