"""What a one-file binary's launcher unpacks at every start, and whether it is stored.

    python build/archive_report.py [--json] BINARY...
    python build/archive_report.py --expect yes|no BINARY...

The one-file binary comes in two forms (build/caramel-embedded.spec, "the two one-file
forms"): the files the launcher writes into $TMPDIR at every start held stored (``yes``,
for a compressed root filesystem) or zlib-compressed (``no``, for raw flash). The name of
the file says which; this reads it back from the archive's table of contents, through
PyInstaller's own reader (so run it with the build venv's Python), so that the claim is
checked on the bytes: build/freeze.sh runs it after every one-file freeze, and the frozen
tests run it on both forms.

Exit 1 when ``--expect`` does not hold (one line per binary says what is wrong), 0 else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

# CArchive typecodes of the entries the launcher writes into its unpack directory:
# binaries (shared libraries, extension modules) and data files. Symbolic links ('n') are
# made, not written, and the PYZ ('z') stays in the binary, its modules each compressed.
UNPACKED_KINDS = ("b", "x")
PYZ_KIND = "z"


@dataclass(frozen=True)
class Entry:
    """One table-of-contents entry: name, bytes in the archive and unpacked, its kind."""

    name: str
    archive_bytes: int
    unpacked_bytes: int
    compressed: bool
    kind: str


@dataclass(frozen=True)
class Summary:
    """What a start unpacks, and how the archive holds it."""

    binary: str
    unpacked_files: int
    unpacked_bytes: int
    archive_bytes: int
    stored: list[str]
    compressed: list[str]
    pyz_compressed: bool

    @property
    def form(self) -> str:
        """'stored', 'compressed', or 'mixed' (no build makes that one)."""
        if not self.compressed:
            return "stored"
        return "compressed" if not self.stored else "mixed"


def summarize(binary: str, entries: Iterable[Entry]) -> Summary:
    """The unpacked entries' totals and which of them are stored or compressed."""
    listed = list(entries)
    unpacked = [entry for entry in listed if entry.kind in UNPACKED_KINDS]
    return Summary(
        binary=binary,
        unpacked_files=len(unpacked),
        unpacked_bytes=sum(entry.unpacked_bytes for entry in unpacked),
        archive_bytes=sum(entry.archive_bytes for entry in unpacked),
        stored=sorted(entry.name for entry in unpacked if not entry.compressed),
        compressed=sorted(entry.name for entry in unpacked if entry.compressed),
        pyz_compressed=any(entry.compressed for entry in listed if entry.kind == PYZ_KIND),
    )


def problems(summary: Summary, store: bool) -> list[str]:
    """Why the binary is not the form ``store`` names (empty when it is)."""
    found = []
    if summary.unpacked_files == 0:
        found.append("no unpacked file in its archive: not a one-file binary of this build")
    wrong = summary.compressed if store else summary.stored
    if wrong:
        how = "compressed" if store else "stored"
        found.append(f"{len(wrong)} unpacked files {how}, e.g. {', '.join(wrong[:3])}")
    if summary.pyz_compressed:
        found.append("the PYZ is compressed as a whole (the launcher could not read it)")
    return found


def read_entries(binary: Path) -> list[Entry]:
    """The table of contents of a one-file binary, by PyInstaller's archive reader."""
    from PyInstaller.archive.readers import (  # type: ignore[import-untyped]
        CArchiveReader,
        NotAnArchiveError,
    )

    try:
        archive = CArchiveReader(str(binary))
    except (NotAnArchiveError, ValueError) as error:
        raise SystemExit(
            f"archive_report.py: {binary}: no PyInstaller archive ({error})"
        ) from None
    return [
        Entry(name, length, size, bool(flag), kind)
        for name, (_offset, length, size, flag, kind) in archive.toc.items()
    ]


def describe(summary: Summary) -> str:
    """One line: what a start unpacks and how the binary holds it."""
    return (
        f"{summary.binary}: {summary.unpacked_files} files, {summary.unpacked_bytes:,} B "
        f"unpacked at every start, {summary.form} ({summary.archive_bytes:,} B in the archive)"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binaries", nargs="+", type=Path)
    parser.add_argument("--json", action="store_true", help="one JSON object per binary")
    parser.add_argument(
        "--expect", choices=("yes", "no"), help="yes: all stored; no: all compressed"
    )
    arguments = parser.parse_args(argv)
    failed = False
    for binary in arguments.binaries:
        if not binary.is_file():
            print(f"archive_report.py: {binary}: no such file", file=sys.stderr)
            failed = True
            continue
        summary = summarize(str(binary), read_entries(binary))
        if arguments.json:
            print(json.dumps({**asdict(summary), "form": summary.form}))
        else:
            print(describe(summary))
        if arguments.expect is not None:
            for problem in problems(summary, arguments.expect == "yes"):
                print(f"archive_report.py: {binary}: {problem}", file=sys.stderr)
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
