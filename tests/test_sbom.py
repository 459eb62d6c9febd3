"""``--sbom`` in the package: a pip-installed package carries no software bill of materials
(only the frozen builds do, tests/frozen/test_sbom.py), so it says so in one line and ends
with 127, as a build without an embedded CA does for the CA. The reader of the ELF section
is tested here on a small ELF file that carries one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from caramel_embedded import sbom
from caramel_embedded.errors import BillOfMaterialsError
from tests.test_output import one_error_line

# The package itself, whatever CARAMEL_EMBEDDED_CMD names: the frozen builds carry one.
pytestmark = pytest.mark.in_process


def run_package(*arguments: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "caramel_embedded", *arguments],
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_package_carries_none_127_and_one_line() -> None:
    result = run_package("--sbom")
    assert result.returncode == 127
    assert result.stdout == b""
    line = one_error_line(result.stderr)
    assert "no software bill of materials: this build carries none" in line


def test_sbom_does_not_go_with_status() -> None:
    result = run_package("--sbom", "--status")
    assert result.returncode == 127
    line = one_error_line(result.stderr)
    assert "--status goes with a run" in line
    assert "--sbom" in line


def elf_with_section(tmp_path: Path, name: str, content: bytes) -> Path:
    """A copy of a small ELF file of this machine with a section added by objcopy."""
    objcopy = shutil.which("objcopy")
    if objcopy is None:
        pytest.fail("objcopy is needed (make build-deps installs binutils)")
    source = tmp_path / "content"
    source.write_bytes(content)
    target = tmp_path / "elf"
    shutil.copyfile(shutil.which("true") or "/bin/true", target)
    subprocess.run([objcopy, "--add-section", f"{name}={source}", str(target)], check=True)
    return target


def test_reads_the_section_of_an_elf_file(tmp_path: Path) -> None:
    document = '{"bomFormat": "CycloneDX"}\n'
    target = elf_with_section(tmp_path, ".sbom", document.encode())
    assert sbom.carried(str(target)) == document


def test_another_section_is_not_taken_for_it(tmp_path: Path) -> None:
    target = elf_with_section(tmp_path, ".sbom2", b"{}")
    with pytest.raises(BillOfMaterialsError, match="carries none"):
        sbom.carried(str(target))


@pytest.mark.parametrize("content", [b"", b"not an ELF file", b"\x7fELF\x02\x01\x01"])
def test_what_is_not_an_elf_file_carries_none(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "file"
    path.write_bytes(content)
    with pytest.raises(BillOfMaterialsError, match="carries none"):
        sbom.carried(str(path))
