"""build/archive_report.py's verdict: is a one-file binary the form its name claims?

The two one-file forms differ only in how the archive holds the files the launcher
unpacks at every start: stored, or zlib-compressed. build/freeze.sh refuses an output
that is not what --store asked for, on this verdict; tests/frozen/test_build.py runs it
on both real binaries. Here: the decision itself, on tables of contents made up for it.

In-process tests of a module of the build: the package pass only (``in_process``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.script_module import load

pytestmark = pytest.mark.in_process

BUILD = Path(__file__).resolve().parents[1] / "build"


report = load(BUILD / "archive_report.py", "archive_report")


def toc(
    *, library_compressed: bool, data_compressed: bool, pyz_compressed: bool = False
) -> list[object]:
    """A table of contents like a real one: scripts, the PYZ, a library, a data file."""
    return [
        report.Entry("pyiboot01_bootstrap", 900, 2_000, True, "s"),
        report.Entry("PYZ.pyz", 3_000_000, 3_000_000, pyz_compressed, "z"),
        report.Entry(
            "libpython3.11.so.1.0",
            2_000_000 if library_compressed else 5_000_000,
            5_000_000,
            library_compressed,
            "b",
        ),
        report.Entry(
            "base_library.zip",
            700_000 if data_compressed else 800_000,
            800_000,
            data_compressed,
            "x",
        ),
        report.Entry("lib/libcrypto.so", 0, 0, False, "n"),
    ]


def test_a_stored_binary_is_stored_and_nothing_else() -> None:
    summary = report.summarize("bin", toc(library_compressed=False, data_compressed=False))
    assert summary.form == "stored"
    assert (summary.unpacked_files, summary.unpacked_bytes) == (2, 5_800_000)
    assert summary.archive_bytes == 5_800_000
    assert report.problems(summary, store=True) == []
    assert report.problems(summary, store=False) == [
        "2 unpacked files stored, e.g. base_library.zip, libpython3.11.so.1.0"
    ]


def test_a_compressed_binary_is_compressed_and_nothing_else() -> None:
    summary = report.summarize("bin", toc(library_compressed=True, data_compressed=True))
    assert summary.form == "compressed"
    assert summary.archive_bytes == 2_700_000
    assert report.problems(summary, store=False) == []
    assert report.problems(summary, store=True) == [
        "2 unpacked files compressed, e.g. base_library.zip, libpython3.11.so.1.0"
    ]


def test_one_file_held_the_other_way_fails_either_claim() -> None:
    summary = report.summarize("bin", toc(library_compressed=True, data_compressed=False))
    assert summary.form == "mixed"
    assert report.problems(summary, store=True) == [
        "1 unpacked files compressed, e.g. libpython3.11.so.1.0"
    ]
    assert report.problems(summary, store=False) == [
        "1 unpacked files stored, e.g. base_library.zip"
    ]


def test_the_scripts_and_links_are_not_unpacked_files() -> None:
    """Scripts run from memory (compressed in both forms), links are made, not written."""
    summary = report.summarize("bin", toc(library_compressed=False, data_compressed=False))
    assert "pyiboot01_bootstrap" not in summary.stored + summary.compressed
    assert "lib/libcrypto.so" not in summary.stored + summary.compressed


def test_a_compressed_pyz_or_an_empty_archive_is_no_form_of_ours() -> None:
    pyz = report.summarize(
        "bin", toc(library_compressed=False, data_compressed=False, pyz_compressed=True)
    )
    assert report.problems(pyz, store=True) == [
        "the PYZ is compressed as a whole (the launcher could not read it)"
    ]
    empty = report.summarize("bin", [])
    assert report.problems(empty, store=True) == [
        "no unpacked file in its archive: not a one-file binary of this build"
    ]
