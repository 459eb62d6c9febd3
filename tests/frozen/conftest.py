"""What freezing changes, tested on the one-file binary that ``make test`` built.

These tests run only in the binary pass (``make test-binary``, part of ``make test``), with
``CARAMEL_EMBEDDED_CMD`` naming the binary. Run in any other way they fail with a line that
says how to run them: a missing binary is a broken build, never a reason to skip.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbed.command import ENV_VAR, client_command
from tests.folder_markers import mark_folder

REPO = Path(__file__).resolve().parents[2]
FREEZE = REPO / "build" / "freeze.sh"
ELF_REPORT = REPO / "build" / "elf_report.py"
ARCHIVE_REPORT = REPO / "build" / "archive_report.py"
# The one-file forms by build/freeze.sh's --store, and the name each is written under.
ONEFILE_NAMES = {"yes": "caramel-embedded", "no": "caramel-embedded-compressed"}
# build/archive_report.py's name of each form -> its --store.
ONEFILE_FORMS = {"stored": "yes", "compressed": "no"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here needs the host's one-file binary: ``onefile_only``, the binary pass's."""
    mark_folder(items, Path(__file__).parent, pytest.mark.onefile_only)


@dataclass(frozen=True)
class Binary:
    """A one-file binary made by build/freeze.sh, and the facts its .buildinfo records."""

    path: Path
    info: dict[str, str]

    @property
    def arch(self) -> str:
        """The architecture it was frozen for, as build/freeze.sh names it."""
        return self.info["arch"]

    @property
    def store(self) -> str:
        """build/freeze.sh's --store: 'yes' (the stored form) or 'no' (compressed)."""
        return self.info["store"]

    @property
    def build_python(self) -> Path:
        """The build venv's Python: it has PyInstaller, whose archive reader we need."""
        venv = os.environ.get("BUILD_VENV") or REPO / ".cache" / f"build-venv-{self.arch}"
        return Path(venv) / "bin" / "python"


def read_buildinfo(path: Path) -> dict[str, str]:
    """The NAME=value lines build/freeze.sh writes beside each output (arch, form, epoch)."""
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def elf_report(build_python: Path, target: Path) -> dict[str, object]:
    """build/elf_report.py --json on a one-file binary or a bundle, for every architecture.

    It needs a Python with PyInstaller (the build venv) to read the one-file archive. Exit
    status 1 only says that something beyond glibc is needed: the report shows what, and the
    tests assert on it, so only other statuses fail here.
    """
    result = subprocess.run(
        [str(build_python), str(ELF_REPORT), "--json", str(target)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def assert_readme_states_glibc_floor(arch: str, floor: str, measured_from: Path) -> None:
    """docs/firmware-integration.md's table row for arch must say 'glibc FLOOR', the floor
    measured from the bytes: the document cannot drift from the build (host and ARM alike)."""
    readme = (REPO / "docs" / "firmware-integration.md").read_text()
    rows = [line for line in readme.splitlines() if re.match(rf"\|\s*{arch}\s*\|", line)]
    assert rows, f"docs/firmware-integration.md has no table row for {arch}"
    assert any(re.search(rf"\bglibc {re.escape(floor)}\b", row) for row in rows), (
        f"docs/firmware-integration.md must say 'glibc {floor}' for {arch} "
        f"(measured from {measured_from}): " + " / ".join(rows)
    )


def freeze(*arguments: str, epoch: str) -> subprocess.CompletedProcess[str]:
    """Run build/freeze.sh with a fixed SOURCE_DATE_EPOCH (that of the binary under test)."""
    return subprocess.run(
        [str(FREEZE), *arguments],
        env={**os.environ, "SOURCE_DATE_EPOCH": epoch},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="session")
def binary() -> Binary:
    """The one-file binary of this run; anything else fails: these tests never skip."""
    command = client_command()
    if not os.environ.get(ENV_VAR) or len(command) != 1:
        pytest.fail(
            f"tests/frozen test the one-file binary: run them through `make test` (or set "
            f"{ENV_VAR} to dist/ARCH/caramel-embedded built by build/freeze.sh)"
        )
    path = Path(command[0]).resolve()
    info_path = path.with_name(path.name + ".buildinfo")
    if not path.is_file() or not info_path.is_file():
        pytest.fail(f"{path}: no one-file binary with its .buildinfo: build it with make")
    info = read_buildinfo(info_path)
    if info.get("form") != "onefile" or info.get("store") not in ONEFILE_NAMES:
        pytest.fail(f"{path}: built as {info.get('form')}, these tests need the one-file form")
    return Binary(path, info)


def onefile_form(binary: Binary, store: str) -> Binary:
    """The one-file binary of the form `store` ('yes', 'no') beside the one under test: the
    binary pass tests the stored form and checks the compressed one's build (make builds
    both into one directory); it is a broken build if it is missing, never a skip."""
    path = binary.path.with_name(ONEFILE_NAMES[store])
    info_path = path.with_name(path.name + ".buildinfo")
    if not path.is_file() or not info_path.is_file():
        pytest.fail(f"{path}: no one-file binary (--store {store}) beside {binary.path}: make")
    return Binary(path, read_buildinfo(info_path))


def archive_report(build_python: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """build/archive_report.py (with the build venv's Python: PyInstaller's reader)."""
    return subprocess.run(
        [str(build_python), str(ARCHIVE_REPORT), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="session")
def embedded_bundle(ca_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's CA, then a fleet's next CA: a rollover bundle, as firmware ships it."""
    from testbed.ca_factory import make_authority

    bundle = tmp_path_factory.mktemp("bundle") / "fleet-cas.pem"
    bundle.write_bytes(ca_file.read_bytes() + make_authority(key_slot=5).pem)
    return bundle


@pytest.fixture(scope="session")
def ca_binary(
    binary: Binary, embedded_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Binary:
    """The same sources frozen again, with the session's CA (and a next one) embedded."""
    dist = tmp_path_factory.mktemp("dist-with-ca")
    built = freeze(
        "--arch",
        binary.arch,
        "--form",
        "onefile",
        "--store",
        binary.store,
        "--ca-cert",
        str(embedded_bundle),
        "--dist",
        str(dist),
        epoch=binary.info["source_date_epoch"],
    )
    assert built.returncode == 0, built.stderr
    path = dist / binary.path.name
    return Binary(path, read_buildinfo(path.with_name(path.name + ".buildinfo")))
