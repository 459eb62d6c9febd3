"""The build itself: reproducible bytes, nothing needed from the target but glibc.

The glibc floor is measured from the binary by build/elf_report.py, and
docs/firmware-integration.md must state the measured value for this architecture: the
document cannot drift from the bytes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.frozen.conftest import (
    ELF_REPORT,
    FREEZE,
    Binary,
    assert_readme_states_glibc_floor,
    elf_report,
    freeze,
    read_buildinfo,
)


def test_two_builds_of_one_commit_give_the_same_bytes(binary: Binary, tmp_path: Path) -> None:
    again = freeze(
        "--arch",
        binary.arch,
        "--form",
        "onefile",
        "--dist",
        str(tmp_path),
        epoch=binary.info["source_date_epoch"],
    )
    assert again.returncode == 0, again.stderr
    rebuilt = tmp_path / "caramel-embedded"
    assert rebuilt.stat().st_size == binary.path.stat().st_size
    assert rebuilt.read_bytes() == binary.path.read_bytes()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_two_bundle_builds_of_one_commit_give_the_same_files(
    binary: Binary, tmp_path: Path
) -> None:
    """The one-dir form keeps its modules as .pyc files (noarchive): those, too, must come
    out byte for byte the same, or a firmware image could not be rebuilt identically.

    The first build is the bundle `make test-binary` froze beside the binary (one of its
    prerequisites), as the one-file check above compares with the binary itself: one
    freeze here instead of two, and a build from another time and directory to match.
    """
    bundle = binary.path.with_name("caramel-embedded-dir")
    info_path = bundle.with_name(bundle.name + ".buildinfo")
    if not (bundle / "caramel-embedded").is_file() or not info_path.is_file():
        pytest.fail(f"{bundle}: no one-dir bundle beside the binary: build it with make")
    rebuilt = freeze(
        *("--arch", binary.arch, "--form", "onedir", "--dist", str(tmp_path)),
        epoch=read_buildinfo(info_path)["source_date_epoch"],
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    files = _tree(bundle)
    assert any(name.endswith(".pyc") for name in files)
    assert files == _tree(tmp_path / "caramel-embedded-dir")


def test_the_binary_needs_nothing_but_glibc(binary: Binary) -> None:
    report = elf_report(binary.build_python, binary.path)
    assert report["not_glibc"] == []
    # zlib is linked into the launcher: the system libz.so.1 is not needed, not even by it.
    assert "libz.so.1" not in report["system_libraries"]  # type: ignore[operator]
    launcher_needs = subprocess.run(
        [str(binary.build_python), str(ELF_REPORT), "--needs-only-libc", str(binary.path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert launcher_needs.returncode == 0, launcher_needs.stderr


def test_the_readme_states_the_measured_glibc_floor(binary: Binary) -> None:
    report = elf_report(binary.build_python, binary.path)
    floor = str(report["glibc_floor"]).removeprefix("GLIBC_")
    assert_readme_states_glibc_floor(binary.arch, floor, binary.path)


def test_a_foreign_architecture_is_refused_with_a_pointer(binary: Binary) -> None:
    foreign = "aarch64" if binary.arch != "aarch64" else "x86_64"
    result = subprocess.run(
        [str(FREEZE), "--arch", foreign, "--form", "onefile"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "freeze-in-root.sh" in result.stderr


def test_a_ca_cert_that_is_not_a_ca_certificate_is_refused(binary: Binary, tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello\n")
    result = freeze(
        "--arch",
        binary.arch,
        "--form",
        "onefile",
        "--ca-cert",
        str(not_pem),
        "--dist",
        str(tmp_path / "dist"),
        epoch=binary.info["source_date_epoch"],
    )
    assert result.returncode != 0
    assert "not one PEM certificate" in result.stderr
    assert not (tmp_path / "dist" / "caramel-embedded").exists()
