"""build/deb.py's decisions, without a binary: the Depends: field from an ELF report,
licences from an SBOM in the copyright format's words, the copyright file's paragraphs,
the changelog's date. The package itself is tested on the frozen builds
(tests/firmware/test_deb.py, tests/arm/test_deb.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.script_module import REPO, load

# build/deb.py in this process: the package pass only.
pytestmark = pytest.mark.in_process

deb = load(REPO / "build" / "deb.py", "deb_build")


def component(
    name: str, version: str, licence: Any, files: list[str] | None = None
) -> dict[str, Any]:
    licences = [{"expression": licence}] if isinstance(licence, str) else licence
    return {
        "name": name,
        "version": version,
        "licenses": licences,
        "components": [{"type": "file", "name": f} for f in files or []],
    }


@pytest.mark.parametrize(
    ("floor", "system", "expected"),
    [
        ("GLIBC_2.35", ["libc.so.6"], "libc6 (>= 2.35)"),
        ("GLIBC_2.28", ["libc.so.6", "libz.so.1"], "libc6 (>= 2.28), zlib1g"),
        ("GLIBC_2.17.1", [], "libc6 (>= 2.17.1)"),
    ],
)
def test_depends_follows_the_elf_report(floor: str, system: list[str], expected: str) -> None:
    not_glibc = [lib for lib in system if lib != "libc.so.6"]
    assert deb.depends(floor, system, not_glibc) == expected


def test_a_library_the_package_cannot_name_stops_the_build() -> None:
    with pytest.raises(deb.PackagingError, match=r"libffi\.so\.8 .*must carry them"):
        deb.depends("GLIBC_2.35", ["libffi.so.8"], ["libffi.so.8"])
    with pytest.raises(deb.PackagingError, match=r"expected GLIBC_x\.y"):
        deb.depends("2.35", [], [])


def test_licences_in_the_copyright_formats_words() -> None:
    assert deb.debian_licence("MIT") == "Expat"
    assert deb.debian_licence("Apache-2.0 OR BSD-3-Clause") == "Apache-2.0 or BSD-3-clause"
    assert (
        deb.debian_licence("GPL-3.0-or-later WITH GCC-exception-3.1")
        == "GPL-3+ with GCC-exception-3.1 exception"
    )
    with pytest.raises(deb.PackagingError, match="'WTFPL'"):
        deb.debian_licence("WTFPL")


def test_classifier_licences_are_corrected_only_as_recorded() -> None:
    gpl = [{"license": {"name": "GNU General Public License v2 (GPLv2)"}}]
    assert deb.licence_of(component("pyinstaller", "6.22.3", gpl)) == (
        "GPL-2.0-or-later WITH Bootloader-exception"
    )
    with pytest.raises(deb.PackagingError, match="add its SPDX expression"):
        deb.licence_of(component("somelib", "1.0", gpl))
    with pytest.raises(deb.PackagingError, match="nowhere"):
        deb.licence_of(component("somelib", "1.0", []))


def test_components_leave_out_what_is_not_carried() -> None:
    glibc = component("glibc", "2.35", "LGPL-2.1-or-later")
    glibc["properties"] = [{"name": "caramel-embedded:carried", "value": "false"}]
    sbom = {"components": [glibc, component("zlib", "1.3.2", "Zlib", ["libz.so.1"])]}
    assert deb.components(sbom) == [deb.Component("zlib", "1.3.2", "Zlib", ("libz.so.1",))]
    with pytest.raises(deb.PackagingError, match="no carried component"):
        deb.components({"components": [glibc]})


def test_copyright_groups_the_files_that_components_share() -> None:
    """The launcher carries PyInstaller's loader and zlib: one paragraph naming both; a
    pure-Python distribution is named by its import package; each licence once."""
    parts = [
        deb.Component("zlib", "1.3.2", "Zlib", (deb.LAUNCHER,)),
        deb.Component(
            "pyinstaller", "6.22.3", "GPL-2.0-or-later WITH Bootloader-exception", (deb.LAUNCHER,)
        ),
        deb.Component("urllib3", "2.8.0", "MIT", ()),
    ]
    text = deb.copyright_file("0.1.0", parts)
    paragraphs = text.split("\n\n")
    launcher = next(p for p in paragraphs if p.startswith("Files:\n caramel-embedded\n"))
    assert "License: Zlib and GPL-2+ with Bootloader exception" in launcher
    assert "Comment: zlib 1.3.2; pyinstaller 6.22.3," in launcher
    assert any(p.startswith("Files:\n urllib3/*\n") and "License: Expat" in p for p in paragraphs)
    standalone = [p.split("\n")[0] for p in paragraphs if p.startswith("License:")]
    assert standalone == [
        "License: Expat",
        "License: Zlib",
        "License: GPL-2+ with Bootloader exception",
    ]
    gpl = next(p for p in paragraphs if p.startswith("License: GPL-2+ with"))
    assert "/usr/share/common-licenses/GPL-2" in gpl
    assert "unlimited permission to link or embed compiled bootloader" in gpl


def test_a_component_without_a_known_holder_stops_the_build() -> None:
    with pytest.raises(deb.PackagingError, match="no copyright holder known"):
        deb.copyright_file("0.1.0", [deb.Component("newlib", "1", "MIT", ("libnew.so",))])


def test_changelog_entry_is_dated_by_the_release() -> None:
    dates = deb.release_dates("# Changelog\n\n## Unreleased\n\n## 0.1.0 - 2026-11-30\n")
    assert dates == {"0.1.0": "2026-11-30"}
    released = deb.debian_changelog("0.1.0", "1", "A <a@example.org>", dates, 0)
    assert released.startswith("caramel-embedded (0.1.0-1) unstable; urgency=medium\n")
    assert released.endswith(" -- A <a@example.org>  Mon, 30 Nov 2026 00:00:00 +0000\n")
    unreleased = deb.debian_changelog("0.2.0", "2", "A <a@example.org>", dates, 86400)
    assert "(0.2.0-2)" in unreleased
    assert unreleased.endswith("Fri, 02 Jan 1970 00:00:00 +0000\n")


def test_versions_debian_accepts() -> None:
    assert deb.debian_version("0.1.0", "1") == "0.1.0-1"
    for version, revision in (("v0.1.0", "1"), ("0.1.0", "1 2"), ("0.1 .0", "1")):
        with pytest.raises(deb.PackagingError):
            deb.debian_version(version, revision)


OVERRIDES = (REPO / "firmware-integration/debian/lintian-overrides").read_text()


def test_an_override_for_a_library_not_carried_is_left_out() -> None:
    """x86_64 carries no libexpat: its override would be lintian's mismatched-override."""
    x86_64 = deb.carried_overrides(OVERRIDES, {"cpython", "zlib", "openssl"})
    assert "embedded-library zlib" in x86_64
    assert "expat" not in x86_64
    arm = deb.carried_overrides(OVERRIDES, {"cpython", "zlib", "libexpat"})
    assert arm == OVERRIDES
