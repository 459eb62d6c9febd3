"""Set the release's version everywhere it is written, from one command.

The version lives in ``caramel_embedded/version.py`` (the package, ``--version``, the SBOM,
the Debian package read it there); two files of the firmware integration must name it in
their own syntax: the Yocto recipe's file name (``caramel-embedded_X.Y.Z.bb``, as BitBake
takes PV from it) and the Buildroot package's ``CARAMEL_EMBEDDED_VERSION``; and the man
page kept in the tree (``make man`` writes it from the option table) names it in its
title line. This script writes all four, so that a release is one command and an edit of
the CHANGELOG; ``tests/firmware/recipe_check.py`` and ``tests/test_manpage.py`` fail
whenever they disagree.

Usage: python3 build/set_version.py X.Y.Z [--repo DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

VERSION = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
VERSION_FILE = Path("caramel_embedded/version.py")
RECIPE_DIR = Path(
    "firmware-integration/yocto/meta-caramel-embedded/recipes-security/caramel-embedded"
)
BUILDROOT_MK = Path("firmware-integration/buildroot/package/caramel-embedded/caramel-embedded.mk")
MAN_PAGE = Path("firmware-integration/caramel-embedded.1")


def replace_once(text: str, pattern: str, replacement: str, where: Path) -> str:
    new, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    if count != 1:
        raise SystemExit(f"set_version: {where}: no line matches {pattern!r}")
    return new


def set_version(repo: Path, version: str) -> None:
    """Every place, or none: all four are read and checked before any is written."""
    version_file = repo / VERSION_FILE
    version_text = replace_once(
        version_file.read_text(),
        r'^__version__ = "[^"]*"$',
        f'__version__ = "{version}"',
        version_file,
    )
    buildroot_mk = repo / BUILDROOT_MK
    buildroot_text = replace_once(
        buildroot_mk.read_text(),
        r"^CARAMEL_EMBEDDED_VERSION = \S+$",
        f"CARAMEL_EMBEDDED_VERSION = {version}",
        buildroot_mk,
    )
    man_page = repo / MAN_PAGE
    # groff's escaped hyphen, as build/manpage.py writes the title line.
    man_text = replace_once(
        man_page.read_text(),
        r'^(\.TH .* "caramel\\-embedded )[^"]*(")',
        rf"\g<1>{version}\g<2>",
        man_page,
    )
    recipes = sorted((repo / RECIPE_DIR).glob("caramel-embedded_*.bb"))
    if len(recipes) != 1:
        raise SystemExit(f"set_version: expected one recipe in {RECIPE_DIR}, found {len(recipes)}")
    version_file.write_text(version_text)
    buildroot_mk.write_text(buildroot_text)
    man_page.write_text(man_text)
    recipes[0].rename(recipes[0].with_name(f"caramel-embedded_{version}.bb"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="X.Y.Z, as SemVer writes a release")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    arguments = parser.parse_args(argv)
    if not VERSION.fullmatch(arguments.version):
        parser.error(f"{arguments.version!r} is not X.Y.Z (three numbers, no leading zeros)")
    set_version(arguments.repo, arguments.version)
    places = f"{VERSION_FILE}, {BUILDROOT_MK.name}, the Yocto recipe, the man page"
    print(f"version {arguments.version}: {places}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
