"""``make image-size``: what each frozen form takes in a compressed firmware root.

    python bench/image_size.py DIST_DIR...      (each DIST_DIR/ARCH/ holding the builds)

Each form of each architecture found (the stored one-file binary, the compressed one, the
one-dir bundle) goes alone into a squashfs image, once per compressor a firmware build
offers (xz, zstd, gzip, lzo), made by mksquashfs (Debian's squashfs-tools, `make
bench-deps`) with its default block size; the figure is the image file's size, what the
form costs in flash. Prints a table per architecture and the goal of issue 20: the stored
binary no larger than the compressed one on xz and zstd (zlib-compressed entries do not
compress again, so on a squashfs root the stored form can take less flash, not more).
Figures, not a test: PASS/FAIL lines, exit 0 whatever they say.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

ARCHES = ("x86_64", "aarch64", "armhf")
COMPRESSORS = ("xz", "zstd", "gzip", "lzo")
GOAL_COMPRESSORS = ("xz", "zstd")
# Column name -> where that form is, under DIST_DIR/ARCH/.
FORMS = {
    "one-file, compressed": "caramel-embedded-compressed",
    "one-file, stored": "caramel-embedded",
    "one-dir bundle": "caramel-embedded-dir",
}
STORED, COMPRESSED = "one-file, stored", "one-file, compressed"

Sizes = Mapping[str, Mapping[str, int]]  # compressor -> form -> image bytes


def find_mksquashfs() -> str | None:
    """mksquashfs on PATH or in /usr/sbin (Debian puts it there, off a user's PATH)."""
    return shutil.which("mksquashfs") or shutil.which("mksquashfs", path="/usr/sbin:/sbin")


def image_bytes(source: Path, compressor: str, mksquashfs: str) -> int:
    """The size of a squashfs image holding only `source` (a file or a directory)."""
    with tempfile.TemporaryDirectory(prefix="image-size-") as scratch:
        content = Path(scratch) / "content"
        if source.is_dir():
            shutil.copytree(source, content / source.name, symlinks=True)
        else:
            content.mkdir()
            shutil.copy2(source, content)
        image = Path(scratch) / "image.sqfs"
        subprocess.run(
            [
                *(mksquashfs, str(content), str(image), "-comp", compressor),
                *("-noappend", "-quiet", "-no-progress", "-all-root", "-no-xattrs"),
            ],
            stdout=subprocess.DEVNULL,
            check=True,
        )
        return image.stat().st_size


def forms_of(dists: list[Path], arch: str) -> dict[str, Path]:
    """The forms built for arch, from the first dist directory that has each."""
    found: dict[str, Path] = {}
    for form, name in FORMS.items():
        for dist in dists:
            if (dist / arch / name).exists():
                found[form] = dist / arch / name
                break
    return found


def measure(forms: Mapping[str, Path], mksquashfs: str) -> dict[str, dict[str, int]]:
    return {
        compressor: {
            form: image_bytes(path, compressor, mksquashfs) for form, path in forms.items()
        }
        for compressor in COMPRESSORS
    }


def table(arch: str, sizes: Sizes, raw: Mapping[str, int]) -> list[str]:
    """A Markdown table: a row per compressor, a column per form, and stored vs compressed."""
    forms = [form for form in FORMS if form in raw]
    lines = [
        f"| {arch}: squashfs compressor | " + " | ".join(forms) + " | stored vs compressed |",
        "|---|" + "---:|" * (len(forms) + 1),
        "| (the file itself) | " + " | ".join(f"{raw[form]:,} B" for form in forms) + " | |",
    ]
    for compressor, row in sizes.items():
        cells = [f"{row[form]:,} B" for form in forms]
        change = (
            f"{(row[STORED] - row[COMPRESSED]) / row[COMPRESSED]:+.1%}"
            if STORED in row and COMPRESSED in row
            else ""
        )
        lines.append(f"| {compressor} | " + " | ".join(cells) + f" | {change} |")
    return lines


def goals(arch: str, sizes: Sizes) -> list[str]:
    """Issue 20's goal: the stored binary no larger than the compressed one (xz, zstd)."""
    lines = []
    for compressor in GOAL_COMPRESSORS:
        row = sizes.get(compressor, {})
        if STORED not in row or COMPRESSED not in row:
            lines.append(f"- FAIL: {arch}, squashfs {compressor}: both one-file forms needed")
            continue
        verdict = "PASS" if row[STORED] <= row[COMPRESSED] else "FAIL"
        lines.append(
            f"- {verdict}: {arch}, squashfs {compressor}: stored one-file {row[STORED]:,} B, "
            f"at most the compressed one's {row[COMPRESSED]:,} B"
        )
    return lines


def report(dists: list[Path]) -> list[str]:
    """Tables and goals for every architecture with a one-file build in dists."""
    mksquashfs = find_mksquashfs()
    if mksquashfs is None:
        return ["- FAIL: squashfs image sizes: no mksquashfs (make bench-deps installs it)"]
    tables: list[str] = []
    verdicts: list[str] = []
    for arch in ARCHES:
        forms = forms_of(dists, arch)
        if STORED not in forms and COMPRESSED not in forms:
            continue
        raw = {
            form: sum(
                p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()
            )
            if path.is_dir()
            else path.stat().st_size
            for form, path in forms.items()
        }
        sizes = measure(forms, mksquashfs)
        tables += ["", *table(arch, sizes, raw)]
        verdicts += goals(arch, sizes)
    if not tables:
        return ["- FAIL: squashfs image sizes: no one-file build found"]
    return [
        "",
        "### Each form alone in a squashfs image (mksquashfs, default block size)",
        *tables,
        "",
        *verdicts,
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dists", nargs="+", type=Path, help="directories holding ARCH/")
    arguments = parser.parse_args(argv)
    print("\n".join(report(arguments.dists)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
