"""The build itself: reproducible bytes, nothing needed from the target but glibc, and
the two one-file forms holding the files they unpack at every start as their names say.

The glibc floor is measured from the binary by build/elf_report.py, and
docs/firmware-integration.md must state the measured value for this architecture: the
document cannot drift from the bytes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.frozen.conftest import (
    ELF_REPORT,
    FREEZE,
    ONEFILE_FORMS,
    ONEFILE_NAMES,
    Binary,
    archive_report,
    assert_readme_states_glibc_floor,
    elf_report,
    freeze,
    onefile_form,
    read_buildinfo,
)


@pytest.mark.parametrize("form", ONEFILE_FORMS)
def test_two_builds_of_one_commit_give_the_same_bytes(
    binary: Binary, form: str, tmp_path: Path
) -> None:
    """Each one-file form, against the one make built (the binary under test or beside it)."""
    built = onefile_form(binary, ONEFILE_FORMS[form])
    again = freeze(
        *("--arch", binary.arch, "--form", "onefile", "--store", ONEFILE_FORMS[form]),
        *("--dist", str(tmp_path)),
        epoch=built.info["source_date_epoch"],
    )
    assert again.returncode == 0, again.stderr
    rebuilt = tmp_path / ONEFILE_NAMES[ONEFILE_FORMS[form]]
    assert (
        read_buildinfo(rebuilt.with_name(rebuilt.name + ".buildinfo"))["store"]
        == ONEFILE_FORMS[form]
    )
    assert rebuilt.stat().st_size == built.path.stat().st_size
    assert rebuilt.read_bytes() == built.path.read_bytes()


def _archive(binary: Binary) -> dict[str, object]:
    result = archive_report(binary.build_python, "--json", str(binary.path))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_each_one_file_form_holds_its_unpacked_files_as_its_name_says(binary: Binary) -> None:
    """Read from the archive's table of contents: every file the launcher unpacks is
    stored in the stored form and compressed in the other; the same files in both."""
    stored = _archive(onefile_form(binary, "yes"))
    compressed = _archive(onefile_form(binary, "no"))
    assert (stored["form"], compressed["form"]) == ("stored", "compressed")
    assert stored["compressed"] == []
    assert compressed["stored"] == []
    assert stored["stored"] == compressed["compressed"]
    assert any("libpython" in str(name) for name in stored["stored"])  # type: ignore[attr-defined]
    assert stored["unpacked_bytes"] == compressed["unpacked_bytes"]
    # Stored: the archive holds the unpacked bytes as they are. Compressed: far fewer.
    assert stored["archive_bytes"] == stored["unpacked_bytes"]
    assert compressed["archive_bytes"] < 0.8 * compressed["unpacked_bytes"]  # type: ignore[operator]
    assert (stored["pyz_compressed"], compressed["pyz_compressed"]) == (False, False)


@pytest.mark.parametrize("form", ONEFILE_FORMS)
def test_the_archive_check_refuses_the_other_form(binary: Binary, form: str) -> None:
    """What build/freeze.sh runs after each one-file freeze says no to the wrong claim."""
    other = {"yes": "no", "no": "yes"}[ONEFILE_FORMS[form]]
    built = onefile_form(binary, ONEFILE_FORMS[form])
    assert (
        archive_report(
            built.build_python, "--expect", ONEFILE_FORMS[form], str(built.path)
        ).returncode
        == 0
    )
    refused = archive_report(built.build_python, "--expect", other, str(built.path))
    assert refused.returncode == 1
    assert f"{built.path}: " in refused.stderr
    assert (
        "unpacked files " + ("compressed" if form == "compressed" else "stored") in refused.stderr
    )


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


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--form", "onefile", "--store", "maybe"), "--store maybe: expected yes or no"),
        (("--form", "onedir", "--store", "yes"), "--store is for the one-file form"),
    ],
)
def test_a_store_choice_that_makes_no_form_is_refused(
    binary: Binary, arguments: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    result = freeze("--arch", binary.arch, *arguments, "--dist", str(tmp_path), epoch="0")
    assert result.returncode == 2
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []
