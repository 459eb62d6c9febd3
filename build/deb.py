"""The Debian package's metadata, written into a tree that `make install` staged.

    python build/deb.py --root STAGE --binary DIST/caramel-embedded --arch ARCH
                        [--maintainer "Name <address>"] [--revision N]

Run by build/deb.sh with the build venv's Python (build/elf_report.py reads the one-file
archive through PyInstaller). It prints the .deb's file name and writes into STAGE:

- DEBIAN/control: the version from caramel_embedded/version.py plus a Debian revision;
  ``Depends:`` from the ELF report of the binary, not from a list kept by hand: libc6 at
  the measured glibc floor, zlib1g only when a file needs libz.so.1 from the system (the
  one-file binary carries its own, so today it does not). The maintainer scripts'
  deb-systemd-helper comes with init-system-helpers, which is essential (never named in
  Depends:, lintian's rule). Any other library needed from the system stops
  the build: the binary promises to need nothing but the C library.
- DEBIAN/conffiles (/etc/default/caramel-embedded), DEBIAN/md5sums, and the maintainer
  scripts of firmware-integration/debian/ (mode 0755); lintian's overrides, each with
  its reason (firmware-integration/debian/lintian-overrides);
- usr/share/doc/caramel-embedded/: copyright in Debian's machine-readable format, made
  from the binary's software bill of materials (DIST/caramel-embedded.cdx.json, which
  build/sbom.py makes from what the binary really carries) so that a component added to
  the binary cannot be missing from it; changelog.Debian.gz; changelog.gz (CHANGELOG.md);
  README.Debian;
- the man page gzipped (Debian policy: man pages are compressed with gzip -9n).

Every gzip carries no name and no time, so two builds of one commit give the same bytes
(dpkg-deb takes the files' times from SOURCE_DATE_EPOCH, set by build/deb.sh).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEBIAN_FILES = REPO / "firmware-integration" / "debian"
LICENCE_TEXTS = DEBIAN_FILES / "licenses"
PACKAGE = "caramel-embedded"
DOC = f"usr/share/doc/{PACKAGE}"
CONFFILES = ("/etc/default/caramel-embedded",)
MAINTAINER_SCRIPTS = ("postinst", "prerm", "postrm")
DEFAULT_MAINTAINER = "The caramel-embedded developers <caramel-embedded@example.org>"

# build/freeze.sh's architecture names and Debian's.
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armhf": "armhf"}
# A library the system must provide, by soname: the Debian package that has it. glibc's
# own are libc6 (build/elf_report.py says which sonames are glibc's).
SYSTEM_PACKAGES = {"libz.so.1": "zlib1g"}

# SPDX licence identifiers (as the SBOM writes them) and the short names of Debian's
# copyright format, with where the text comes from: a file of LICENCE_TEXTS, or a licence
# every Debian system has in /usr/share/common-licenses (then named, not copied).
DEBIAN_LICENCE = {
    "MIT": "Expat",
    "MIT-0": "MIT-0",
    "PSF-2.0": "PSF-2.0",
    "Apache-2.0": "Apache-2.0",
    "BSD-3-Clause": "BSD-3-clause",
    "Zlib": "Zlib",
    "GPL-2.0-or-later": "GPL-2+",
    "GPL-3.0-or-later": "GPL-3+",
    "LGPL-2.1-or-later": "LGPL-2.1+",
    "GPL-2.0-or-later WITH Bootloader-exception": "GPL-2+ with Bootloader exception",
    "GPL-3.0-or-later WITH GCC-exception-3.1": "GPL-3+ with GCC-exception-3.1 exception",
}
COMMON_LICENCES = {"Apache-2.0": "Apache-2.0", "GPL-2+": "GPL-2", "GPL-3+": "GPL-3"}
EXCEPTION_TEXTS = {
    "GPL-2+ with Bootloader exception": ("GPL-2+", "Bootloader-exception"),
    "GPL-3+ with GCC-exception-3.1 exception": ("GPL-3+", "GCC-exception-3.1"),
}

# Where the SBOM names a licence by a PyPI classifier instead of an SPDX expression, the
# licence of what the binary carries of that distribution (checked against its licence
# files): PyInstaller's launcher and loader modules are GPL-2.0-or-later with its
# bootloader exception; of the community hooks only a run-time hook is carried, under
# Apache-2.0. Keyed by the SBOM's own wording, so a changed SBOM fails, never misleads.
CLASSIFIER_LICENCE = {
    ("pyinstaller", ("GNU General Public License v2 (GPLv2)",)): (
        "GPL-2.0-or-later WITH Bootloader-exception"
    ),
    (
        "pyinstaller-hooks-contrib",
        ("Apache Software License", "GNU General Public License v2 (GPLv2)"),
    ): "Apache-2.0",
}

# The copyright holders, as each component's own licence file names them (the SBOM has
# no copyright field).
COPYRIGHT = {
    "cpython": "2001-2023 Python Software Foundation",
    "openssl": "1998-2025 The OpenSSL Project Authors",
    "zlib": "1995-2024 Jean-loup Gailly and Mark Adler",
    "libgcc_s": "Free Software Foundation, Inc.",
    "libexpat": "1998-2000 Thai Open Source Software Center Ltd and Clark Cooper\n"
    "2001-2022 Expat maintainers",
    "libffi": "1996-2022 Anthony Green, Red Hat, Inc and others",
    "cffi": "The cffi authors (Armin Rigo, Maciej Fijalkowski and contributors)",
    "cryptography": "Individual contributors (the PyCA cryptography developers)",
    "urllib3": "2008-2020 Andrey Petrov and contributors",
    "pyinstaller": "2010-2023 PyInstaller Development Team\n"
    "2005-2009 Giovanni Bajo\n2002 McMillan Enterprises, Inc.",
    "pyinstaller-hooks-contrib": "PyInstaller Development Team",
}
OURS_COPYRIGHT = "2026 The caramel-embedded developers"
# The launcher's file name in the SBOM: the head of /usr/bin/caramel-embedded itself.
LAUNCHER = "caramel-embedded (launcher)"


class PackagingError(Exception):
    """The inputs cannot make a correct package: one line says which and why."""


@dataclass(frozen=True)
class Component:
    """One thing the binary carries, as the SBOM lists it."""

    name: str
    version: str
    licence: str  # an SPDX expression
    files: tuple[str, ...]


def debian_version(version: str, revision: str) -> str:
    """Upstream version and Debian revision: 0.1.0 and 1 give 0.1.0-1."""
    if not re.fullmatch(r"\d[0-9A-Za-z.+~]*", version):
        raise PackagingError(f"version {version!r} is not a Debian upstream version")
    if not re.fullmatch(r"[0-9A-Za-z.+~]+", revision):
        raise PackagingError(f"revision {revision!r} is not a Debian revision")
    return f"{version}-{revision}"


def depends(floor: str, system_libraries: Iterable[str], not_glibc: Iterable[str]) -> str:
    """The Depends: field from the ELF report: libc6 at the glibc floor (GLIBC_2.35 gives
    2.35), and the package of each other library needed from the system."""
    match = re.fullmatch(r"GLIBC_(\d+(?:\.\d+)+)", floor)
    if not match:
        raise PackagingError(f"glibc floor {floor!r}: expected GLIBC_x.y")
    unknown = sorted(set(not_glibc) - SYSTEM_PACKAGES.keys())
    if unknown:
        raise PackagingError(
            f"the binary needs {' '.join(unknown)} from the system besides glibc: "
            "it must carry them (build/caramel-embedded.spec)"
        )
    extra = sorted({SYSTEM_PACKAGES[lib] for lib in system_libraries if lib in SYSTEM_PACKAGES})
    return ", ".join([f"libc6 (>= {match[1]})", *extra])


def components(sbom: Mapping[str, Any]) -> list[Component]:
    """What the binary carries, by the SBOM: every component but those it marks as not
    carried (glibc, a dependency), with one SPDX licence expression each."""
    found = []
    for entry in sbom.get("components", []):
        properties = {p["name"]: p["value"] for p in entry.get("properties", [])}
        if properties.get("caramel-embedded:carried") == "false":
            continue
        files = tuple(f["name"] for f in entry.get("components", []) if f.get("type") == "file")
        found.append(Component(entry["name"], entry["version"], licence_of(entry), files))
    if not found:
        raise PackagingError("the SBOM lists no carried component")
    return found


# lintian's name for an embedded library -> the SBOM's component of it.
OVERRIDDEN_LIBRARY = {"zlib": "zlib", "expat": "libexpat"}


def carried_overrides(text: str, carried: set[str]) -> str:
    """The overrides file without the stanzas (an override and the comment lines above it)
    for an embedded library this build does not carry: lintian warns of an override that
    matches nothing (``mismatched-override``), and the x86_64 build has no libexpat."""
    kept: list[str] = []
    stanza: list[str] = []
    for line in text.splitlines(keepends=True):
        stanza.append(line)
        if line.startswith("#") or not line.strip():
            continue
        words = line.split()
        library = words[2] if len(words) > 2 and words[1] == "embedded-library" else None
        if library is None or OVERRIDDEN_LIBRARY.get(library, library) in carried:
            kept.extend(stanza)
        stanza = []
    return "".join(kept + stanza)


def licence_of(entry: Mapping[str, Any]) -> str:
    """The component's SPDX expression: as the SBOM writes it, or through
    CLASSIFIER_LICENCE where it has only PyPI classifier names."""
    licences = entry.get("licenses", [])
    expressions = [item["expression"] for item in licences if "expression" in item]
    if len(expressions) == 1 and len(licences) == 1:
        return str(expressions[0])
    names = tuple(item.get("license", {}).get("name", "") for item in licences)
    corrected = CLASSIFIER_LICENCE.get((entry["name"], names))
    if corrected is None:
        raise PackagingError(
            f"{entry['name']} {entry.get('version', '')}: the SBOM names its licence "
            f"{names or 'nowhere'}: add its SPDX expression to build/deb.py"
        )
    return corrected


def debian_licence(expression: str) -> str:
    """An SPDX expression in the copyright format's words: MIT is Expat, OR is or."""
    words = []
    for term in re.split(r" (OR|AND) ", expression):
        if term in ("OR", "AND"):
            words.append(term.lower())
        elif term in DEBIAN_LICENCE:
            words.append(DEBIAN_LICENCE[term])
        else:
            raise PackagingError(f"licence {term!r}: no Debian short name in build/deb.py")
    return " ".join(words)


def file_pattern(component: Component) -> tuple[str, ...]:
    """Where the component lies inside the binary: the SBOM's carried files (the launcher
    is the binary itself), or, for a pure-Python distribution whose modules travel in the
    PYZ archive, its import package."""
    if component.files:
        return tuple(PACKAGE if f == LAUNCHER else f for f in component.files)
    return (component.name.replace("-", "_") + "/*",)


def licence_paragraph(name: str) -> str:
    """A stand-alone License paragraph: the text, or the common-licenses file it is in."""
    base, exception = EXCEPTION_TEXTS.get(name, (name, None))
    lines = [f"License: {name}"]
    if base in COMMON_LICENCES:
        lines.append(
            f" On Debian systems the full text of the licence is in "
            f"/usr/share/common-licenses/{COMMON_LICENCES[base]}."
        )
    else:
        lines.extend(indented(licence_text(base)))
    if exception is not None:
        lines.append(" .")
        lines.extend(indented(licence_text(exception)))
    return "\n".join(lines)


def licence_text(name: str) -> str:
    path = LICENCE_TEXTS / name
    if not path.is_file():
        raise PackagingError(f"no text for licence {name}: add {path.relative_to(REPO)}")
    return path.read_text()


def indented(text: str) -> list[str]:
    """Text as a field's continuation lines: one space, an empty line as ' .'."""
    return [f" {line}" if line.strip() else " ." for line in text.strip("\n").splitlines()]


def copyright_file(binary_version: str, parts: list[Component]) -> str:
    """debian/copyright (format 1.0): caramel-embedded's own paragraph, then one per set of
    files inside the binary that the same components claim (the launcher carries
    PyInstaller's loader and zlib; cryptography's module carries OpenSSL)."""
    claims: dict[str, list[Component]] = {}
    for part in parts:
        for pattern in file_pattern(part):
            claims.setdefault(pattern, []).append(part)
    groups: dict[tuple[int, ...], list[str]] = {}
    for pattern, owners in claims.items():
        groups.setdefault(tuple(parts.index(o) for o in owners), []).append(pattern)
    paragraphs = [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        f"Upstream-Name: {PACKAGE}\n"
        "Comment: /usr/bin/caramel-embedded is one executable that carries, besides\n"
        f" caramel-embedded {binary_version} itself, the components below, as its\n"
        " software bill of materials lists them (caramel-embedded --sbom). Their Files\n"
        " name the files inside the executable's archive; a pure-Python distribution,\n"
        " whose modules travel in the archive's PYZ, is named by its import package.",
        f"Files: *\nCopyright: {OURS_COPYRIGHT}\nLicense: Expat",
    ]
    used: list[str] = ["Expat"]
    for owner_indexes, patterns in groups.items():
        owners = [parts[i] for i in owner_indexes]
        holders = list(
            dict.fromkeys(line for o in owners for line in copyright_of(o).splitlines())
        )
        licences = list(dict.fromkeys(debian_licence(o.licence) for o in owners))
        licence = " and ".join(
            f"({x})" if " or " in x and len(licences) > 1 else x for x in licences
        )
        for one in licences:
            for name in re.split(r" (?:or|and) ", one):
                if name not in used:
                    used.append(name)
        files = "\n".join(f" {p}" for p in patterns)
        comment = "; ".join(f"{o.name} {o.version}" for o in owners)
        holder_lines = "\n ".join(holders)
        paragraphs.append(
            f"Files:\n{files}\nCopyright: {holder_lines}\nLicense: {licence}\n"
            f"Comment: {comment}, inside /usr/bin/caramel-embedded"
        )
    paragraphs.extend(licence_paragraph(name) for name in used)
    return "\n\n".join(paragraphs) + "\n"


def copyright_of(component: Component) -> str:
    holder = COPYRIGHT.get(component.name)
    if holder is None:
        raise PackagingError(
            f"{component.name}: no copyright holder known: add it to COPYRIGHT in build/deb.py"
        )
    return holder


def release_dates(changelog: str) -> dict[str, str]:
    """Keep a Changelog's released versions and their dates: '## 0.1.0 - 2026-11-30'."""
    pattern = re.compile(r"^## \[?(\d[^\]\s]*)\]? - (\d{4}-\d{2}-\d{2})\s*$", re.MULTILINE)
    return dict(pattern.findall(changelog))


def debian_changelog(
    version: str, revision: str, maintainer: str, dates: Mapping[str, str], epoch: int
) -> str:
    """changelog.Debian: one entry for the package's version, dated by CHANGELOG.md's
    release (or SOURCE_DATE_EPOCH for a version not released yet), pointing at
    changelog.gz for what changed."""
    released = dates.get(version)
    when = (
        datetime.strptime(released, "%Y-%m-%d").replace(tzinfo=UTC)
        if released
        else datetime.fromtimestamp(epoch, UTC)
    )
    return (
        f"{PACKAGE} ({debian_version(version, revision)}) unstable; urgency=medium\n\n"
        f"  * Package of caramel-embedded {version}, made by `make deb` from the\n"
        "    one-file binary; what changed in the release is in changelog.gz.\n\n"
        f" -- {maintainer}  {format_datetime(when)}\n"
    )


def control_file(
    version: str, arch: str, maintainer: str, depends_field: str, installed_kib: int
) -> str:
    return (
        f"Package: {PACKAGE}\n"
        f"Version: {version}\n"
        f"Architecture: {arch}\n"
        f"Maintainer: {maintainer}\n"
        f"Installed-Size: {installed_kib}\n"
        f"Depends: {depends_field}\n"
        "Section: admin\n"
        "Priority: optional\n"
        "Description: one-shot Caramel certificate client for embedded devices\n"
        " caramel-embedded makes sure that a device holds a private key and a\n"
        " certificate signed by its fleet's Caramel certificate authority: one\n"
        " invocation makes the key and the request, fetches the signed certificate\n"
        " or its renewal, and reports the outcome in its exit status.\n"
        " .\n"
        " This package installs the self-contained one-file executable (it needs\n"
        " nothing from the system but the C library), an hourly systemd timer that\n"
        " is enabled at installation, a path unit that reloads the services named\n"
        " in /etc/default/caramel-embedded when a new certificate arrives, and the\n"
        " settings file.\n"
    )


def installed_size(root: Path) -> int:
    """Installed-Size in KiB as dpkg-gencontrol counts it: each file rounded up to a KiB,
    each directory and link one KiB (DEBIAN/ left out)."""
    total = 0
    for path in root.rglob("*"):
        if path.relative_to(root).parts[0] == "DEBIAN":
            continue
        if path.is_file() and not path.is_symlink():
            total += -(-path.stat().st_size // 1024)
        else:
            total += 1
    return total


def gzip_bytes(data: bytes) -> bytes:
    """gzip -9n: no name, no time in the header (reproducible bytes)."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def md5sums(root: Path) -> str:
    lines = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] == "DEBIAN" or not path.is_file() or path.is_symlink():
            continue
        lines.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {relative}")  # noqa: S324
    return "\n".join(lines) + "\n"


def read_buildinfo(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def stage(root: Path, binary: Path, arch: str, maintainer: str, revision: str) -> str:
    """Write the package's metadata into root (a `make install` tree); its file name."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from elf_report import report

    if arch not in DEBIAN_ARCH:
        raise PackagingError(f"ARCH={arch}: expected one of {', '.join(DEBIAN_ARCH)}")
    info = read_buildinfo(binary.with_name(binary.name + ".buildinfo"))
    if info.get("form") != "onefile" or info.get("arch") != arch:
        raise PackagingError(
            f"{binary}: built as {info.get('form')} for {info.get('arch')}, "
            f"expected the one-file binary for {arch}"
        )
    namespace: dict[str, str] = {}
    exec((REPO / "caramel_embedded" / "version.py").read_text(), namespace)  # noqa: S102
    version = namespace["__version__"]
    if info.get("version") != version:
        raise PackagingError(
            f"{binary} is version {info.get('version')}, the sources {version}: rebuild it"
        )
    sbom_path = binary.with_name(binary.name + ".cdx.json")
    sbom = json.loads(sbom_path.read_text())
    elf = report(binary)

    doc = root / DOC
    man = root / "usr/share/man/man1/caramel-embedded.1"
    write(man.with_name(man.name + ".gz"), gzip_bytes(man.read_bytes()))
    man.unlink()
    write(doc / "copyright", copyright_file(version, components(sbom)).encode())
    dates = release_dates((REPO / "CHANGELOG.md").read_text())
    epoch = int(info["source_date_epoch"])
    changelog = debian_changelog(version, revision, maintainer, dates, epoch)
    write(doc / "changelog.Debian.gz", gzip_bytes(changelog.encode()))
    write(doc / "changelog.gz", gzip_bytes((REPO / "CHANGELOG.md").read_bytes()))
    write(doc / "README.Debian", (DEBIAN_FILES / "README.Debian").read_bytes())
    overrides = carried_overrides(
        (DEBIAN_FILES / "lintian-overrides").read_text(), {c.name for c in components(sbom)}
    )
    write(root / "usr/share/lintian/overrides" / PACKAGE, overrides.encode())

    control = root / "DEBIAN"
    control.mkdir(mode=0o755, exist_ok=True)
    for script in MAINTAINER_SCRIPTS:
        write(control / script, (DEBIAN_FILES / script).read_bytes(), 0o755)
    write(control / "conffiles", "".join(f"{c}\n" for c in CONFFILES).encode())
    write(control / "md5sums", md5sums(root).encode())
    full_version = debian_version(version, revision)
    fields = control_file(
        full_version,
        DEBIAN_ARCH[arch],
        maintainer,
        depends(elf.glibc_floor, elf.system_libraries, elf.not_glibc),
        installed_size(root),
    )
    write(control / "control", fields.encode())
    return f"{PACKAGE}_{full_version}_{DEBIAN_ARCH[arch]}.deb"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--binary", type=Path, required=True)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--maintainer", default=DEFAULT_MAINTAINER)
    parser.add_argument("--revision", default="1")
    arguments = parser.parse_args(argv)
    try:
        name = stage(
            arguments.root,
            arguments.binary,
            arguments.arch,
            arguments.maintainer or DEFAULT_MAINTAINER,
            arguments.revision,
        )
    except ImportError as error:
        print(f"deb.py: {error}: run it with the build venv's Python", file=sys.stderr)
        return 1
    except (PackagingError, OSError, KeyError, ValueError) as error:
        print(f"deb.py: {error}", file=sys.stderr)
        return 1
    print(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
