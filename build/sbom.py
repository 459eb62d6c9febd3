"""The software bill of materials of a frozen build: CycloneDX JSON from what it carries.

    python build/sbom.py [--embed] OUTPUT DOCUMENT   (the build venv's Python; freeze.sh)
    python build/sbom.py --list OUTPUT               each carried file and its component

OUTPUT is build/freeze.sh's output (the one-file binary or the one-dir bundle). The
document lists what the output really carries, read back from it (PyInstaller's archive,
the files the spec defers into the PYZ, or the bundle's directory), not what the locks
say: every Python distribution frozen in (from the build venv's metadata: name, version,
licence, purl), CPython as the build venv's interpreter reports it, and every native
library with its own version: OpenSSL's libssl/libcrypto and zlib from the version strings
in the carried files, the OpenSSL inside cryptography's ``_rust`` module as cryptography
reports it, libgcc_s from the Debian package it came from, the launcher's static zlib from
its own string; and glibc, which is not carried, as a dependency at the floor that
build/elf_report.py measures. Every carried file is one ``file`` component (with the
SHA-256 of its bytes as carried) inside the component it belongs to; a file that belongs
to none stops the build, so a new library cannot slip in unlisted.

With --embed the document also goes into the launcher as the ELF section ``.sbom`` (plain
JSON, not loaded: the kernel maps only the loadable segments, and the launcher reads only
its ``pydata`` section, so no start reads it and none pays for it). A scanner reads it
without running the binary: ``objcopy --dump-section .sbom=sbom.json BINARY scratch``
(binutils of another architecture than the binary's need ``-I elf64-little`` or ``-I
elf32-little``), ``llvm-objcopy`` alike, or ``readelf -x .sbom`` to look at it;
``caramel-embedded --sbom`` prints it (caramel_embedded/sbom.py). A section survives the
strip that image builds run on installed binaries (``strip --strip-unneeded
--remove-section=.comment``, tried), where data appended to the file would not. The same
bytes go to DOCUMENT, beside the output.

Written here rather than with cyclonedx-python-lib: the build venv stays what the locks
hold (the library's validator pulls native wheels that the ARM freeze under emulation would
have to build), and the bytes are reproducible (the library draws a random serial number
and stamps the time; here both come from the content and SOURCE_DATE_EPOCH). The tests
validate the document with the library's own schema validator (tests/frozen/test_sbom.py).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from elf_report import Report, _deferred_files, report

REPO = Path(__file__).resolve().parents[1]
SECTION = ".sbom"
NAME = "caramel-embedded"
SPEC_VERSION = "1.6"
PROPERTY = "caramel-embedded:"  # the prefix of this document's own property names

# Native files that no Python distribution's RECORD lists, taken by PyInstaller from the
# system or from the interpreter: carried path -> component. Then each component's SPDX
# licence and CPE vendor:product (what cve-check and other scanners match on).
NATIVE = (
    (re.compile(r"libssl\.so\.\d+|libcrypto\.so\.\d+"), "openssl"),
    (re.compile(r"libz\.so\.\d+"), "zlib"),
    (re.compile(r"libgcc_s\.so\.\d+"), "libgcc_s"),
    (re.compile(r"libffi\.so\.\d+"), "libffi"),
    (re.compile(r"libexpat\.so\.\d+"), "libexpat"),
    (re.compile(r"libpython3\.\d+\.so[.\d]*|python3\.\d+/.*|base_library\.zip"), "cpython"),
)
LICENCES = {
    "openssl": "Apache-2.0",
    "zlib": "Zlib",
    "libgcc_s": "GPL-3.0-or-later WITH GCC-exception-3.1",
    "libffi": "MIT",
    "libexpat": "MIT",
    "cpython": "PSF-2.0",
    "glibc": "LGPL-2.1-or-later",
}
CPE = {
    "openssl": "openssl:openssl",
    "zlib": "zlib:zlib",
    "libgcc_s": "gnu:gcc",
    "libffi": "libffi_project:libffi",
    "libexpat": "libexpat_project:libexpat",
    "cpython": "python:python",
    "glibc": "gnu:glibc",
}
# Where a library's own version is written in its bytes (the same string it reports).
VERSION_STRINGS = {
    "openssl": rb"OpenSSL (\d+\.\d+\.\d+[a-z]?) ",
    "zlib": rb"deflate (\d+\.\d+(?:\.\d+)*) Copyright",
    "libexpat": rb"expat_(\d+\.\d+\.\d+)",
}
DESCRIPTIONS = {
    "openssl": "OpenSSL's libssl and libcrypto, for ssl",
    "zlib": "zlib, shared, for Python's zlib and binascii",
    "libexpat": "Expat, which libpython links",
    "libgcc_s": "GCC's runtime library, which cryptography's Rust module links",
    "libffi": "libffi",
}
# Any other shared library taken from the system: its Debian package says what it is.
SYSTEM_LIBRARY = re.compile(r"lib[\w+.-]*\.so(\.\d+)*")
# Files of the client itself, and what the spec generates for it.
OWN = re.compile(r"caramel_embedded(/.*)?|embedded_ca\.pem")
OWN_MODULES = re.compile(
    r"caramel_embedded(\..*)?|caramel_startup|__main__|pyi_rth_caramel_startup"
)


@dataclass
class Carried:
    """What an output carries: files (path as carried -> bytes) and Python modules."""

    launcher: bytes
    files: dict[str, bytes] = field(default_factory=dict)
    modules: set[str] = field(default_factory=set)


def read_onefile(binary: Path) -> Carried:
    """The launcher's archive: extracted files, modules, and the files deferred into the PYZ."""
    from PyInstaller.archive.readers import CArchiveReader  # type: ignore[import-untyped]

    archive = CArchiveReader(str(binary))
    carried = Carried(launcher=binary.read_bytes()[: archive._start_offset])
    for name, entry in archive.toc.items():
        typecode = entry[-1]
        if typecode in ("b", "x"):
            carried.files[name] = archive.extract(name)
        elif typecode in ("m", "M", "s"):
            carried.modules.add(name)
        elif typecode == "z":
            pyz = archive.open_embedded_archive(name)
            carried.modules.update(m for m in pyz.toc if not m.startswith("pyi_deferred_"))
            carried.files.update(_deferred_files(pyz))
    return carried


def read_onedir(bundle: Path) -> Carried:
    """The bundle's files beside its launcher (PyInstaller's contents directory), and the
    modules and scripts in the launcher's own small archive."""
    from PyInstaller.archive.readers import CArchiveReader

    contents = bundle / "_internal"
    archive = CArchiveReader(str(bundle / NAME))
    carried = Carried(launcher=(bundle / NAME).read_bytes()[: archive._start_offset])
    carried.modules.update(n for n, e in archive.toc.items() if e[-1] in ("m", "M", "s"))
    for path in sorted(contents.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        relative = path.relative_to(contents).as_posix()
        if relative.endswith(".pyc") and not relative.startswith("python3"):
            module = relative.removesuffix(".pyc").removesuffix("/__init__").replace("/", ".")
            carried.modules.add(module)
        else:
            carried.files[relative] = path.read_bytes()
    return carried


def read(output: Path) -> Carried:
    return read_onedir(output) if output.is_dir() else read_onefile(output)


# --- what belongs to whom ----------------------------------------------------------------
def record_index() -> tuple[dict[str, str], dict[str, str]]:
    """Every file the build venv's distributions installed (their RECORD): path -> name,
    and the stems of PyInstaller's loader modules and run-time hooks -> name (the archive
    names those by stem)."""
    paths: dict[str, str] = {}
    stems: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        for file in dist.files or ():
            posix = PurePosixPath(str(file))
            paths[str(posix)] = name
            if posix.suffix == ".py" and posix.parent.name in ("loader", "rthooks"):
                stems[posix.stem] = name
            if posix.suffix == ".py":
                module = str(posix.with_suffix("")).replace("/", ".").removesuffix(".__init__")
                paths.setdefault("module:" + module, name)
    return paths, stems


def owner_of_file(path: str, records: dict[str, str]) -> str | None:
    """The component a carried file belongs to: a distribution's name, a NATIVE one, ours."""
    if path in records:
        return "pypi:" + records[path]
    if OWN.fullmatch(path):
        return "root"
    for pattern, component in NATIVE:
        if pattern.fullmatch(path):
            return "native:" + component
    if SYSTEM_LIBRARY.fullmatch(path):
        return "system:" + path
    return None


def owner_of_module(
    module: str, records: dict[str, str], stems: dict[str, str], stdlib: Iterable[str]
) -> str | None:
    if OWN_MODULES.fullmatch(module):
        return "root"
    if module in stems:
        return "pypi:" + stems[module]
    if module.split(".", maxsplit=1)[0] in stdlib:
        return "native:cpython"
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        name = records.get("module:" + ".".join(parts[:length]))
        if name is not None:
            return "pypi:" + name
    return None


# --- versions ----------------------------------------------------------------------------
def version_in(data: bytes, pattern: bytes) -> str:
    found = re.search(pattern, data)
    if found is None:
        raise SystemExit(f"sbom.py: no version string matching {pattern!r} in the file")
    return found[1].decode("ascii")


def openssl_version(text: str) -> str:
    """'OpenSSL 3.0.19 27 Jan 2026' -> '3.0.19'."""
    found = re.match(r"OpenSSL (\d+\.\d+\.\d+[a-z]?)\b", text)
    if found is None:
        raise SystemExit(f"sbom.py: not an OpenSSL version text: {text!r}")
    return found[1]


def debian_package(soname: str) -> tuple[str, str] | None:
    """(package, version) of the Debian package holding the system's soname, if any."""
    try:
        ldconfig = next(
            (p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.path.exists(p)), "ldconfig"
        )
        listed = subprocess.run(
            [ldconfig, "-p"], capture_output=True, text=True, check=True
        ).stdout
        path = re.search(rf"^\s*{re.escape(soname)} \(.*\) => (\S+)$", listed, re.MULTILINE)
        if path is None:
            return None
        for candidate in dict.fromkeys((path[1], os.path.realpath(path[1]))):
            owner = subprocess.run(
                ["dpkg-query", "-S", candidate], capture_output=True, text=True, check=False
            )
            if owner.returncode == 0:
                package = owner.stdout.split(":")[0].split(",")[0].strip()
                version = subprocess.run(
                    ["dpkg-query", "-W", "-f", "${Version}", package],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                return package, version
    except (OSError, subprocess.CalledProcessError):
        return None
    return None


def upstream(debian_version: str) -> str:
    """'12.2.0-14+deb12u1' -> '12.2.0'."""
    return debian_version.rsplit(":", maxsplit=1)[-1].rsplit("-", 1)[0]


# --- the document ----------------------------------------------------------------------
def file_component(path: str, data: bytes | None) -> dict[str, Any]:
    component: dict[str, Any] = {"type": "file", "name": path}
    if data is not None:
        component["hashes"] = [{"alg": "SHA-256", "content": hashlib.sha256(data).hexdigest()}]
    return component


def licences(expression: str) -> list[dict[str, Any]]:
    return [{"expression": expression}]


def distribution_licences(name: str) -> list[dict[str, Any]]:
    """A distribution's licence as its metadata says it: the SPDX expression (PEP 639),
    else the License field, else the licence classifiers."""
    metadata = importlib.metadata.metadata(name)
    if metadata.get("License-Expression"):
        return licences(metadata["License-Expression"])
    text = (metadata.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 100:
        return [{"license": {"name": text}}]
    classifiers = [
        c.split(" :: ")[-1]
        for c in metadata.get_all("Classifier") or ()
        if c.startswith("License")
    ]
    return [{"license": {"name": c}} for c in classifiers]


def distribution_component(name: str) -> dict[str, Any]:
    normalized = re.sub(r"[-_.]+", "-", name).lower()
    version = importlib.metadata.version(name)
    return {
        "type": "library",
        "bom-ref": "pypi:" + name,
        "name": normalized,
        "version": version,
        "licenses": distribution_licences(name),
        "purl": f"pkg:pypi/{normalized}@{version}",
    }


def native_component(
    ref: str, name: str, version: str, description: str, purl_name: str | None = None
) -> dict[str, Any]:
    vendor_product = CPE[name]
    return {
        "type": "library",
        "bom-ref": ref,
        "name": name,
        "version": version,
        "description": description,
        "licenses": licences(LICENCES[name]),
        "purl": f"pkg:generic/{purl_name or name}@{version}",
        "cpe": f"cpe:2.3:a:{vendor_product}:{version}:*:*:*:*:*:*:*",
    }


def native_components(carried: Carried, owners: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The components no distribution's metadata describes, each with its own version:
    from the string in the library's bytes where it has one (for OpenSSL, libcrypto's),
    else from the Debian package the system's copy belongs to."""
    components: dict[str, dict[str, Any]] = {}
    components["native:cpython"] = native_component(
        "native:cpython",
        "cpython",
        platform.python_version(),
        "the Python interpreter (libpython), its extension modules and standard library; "
        "the version as the build venv's interpreter reports it",
        purl_name="python",
    )
    for path, ref in sorted(owners.items()):
        if ref in components or not ref.startswith(("native:", "system:")):
            continue
        name = ref.split(":", 1)[1]
        package = debian_package(PurePosixPath(path).name)
        if name in VERSION_STRINGS:
            source = path
            if name == "openssl":
                source = next(p for p in carried.files if p.startswith("libcrypto.so"))
            version = version_in(carried.files[source], VERSION_STRINGS[name])
            description = f"{DESCRIPTIONS[name]}; version from {source}"
        elif package is not None:
            version = upstream(package[1])
            what = DESCRIPTIONS.get(name, path)
            description = f"{what}; version from the Debian package {package[0]} {package[1]}"
        else:
            raise SystemExit(f"sbom.py: {path}: no version string and no Debian package")
        if name in LICENCES:
            components[ref] = native_component(ref, name, version, description)
        else:  # a library this script does not know: what its Debian package says
            assert package is not None
            components[ref] = {
                "type": "library",
                "bom-ref": ref,
                "name": package[0],
                "version": version,
                "description": description,
                "licenses": [{"license": {"name": f"see /usr/share/doc/{package[0]}/copyright"}}],
                "purl": f"pkg:deb/debian/{package[0]}@{package[1]}",
            }
        if package is not None:
            components[ref]["properties"] = [
                {"name": PROPERTY + "debian-package", "value": f"{package[0]} {package[1]}"}
            ]
    return components


def owners(carried: Carried) -> tuple[dict[str, str], dict[str, str]]:
    """Each carried file's and module's component (bom-ref); one that has none stops the
    build, so that nothing new slips in unlisted."""
    records, stems = record_index()
    files = {path: owner_of_file(path, records) for path in carried.files}
    modules = {
        module: owner_of_module(module, records, stems, sys.stdlib_module_names)
        for module in carried.modules
    }
    strays = [p for p, o in files.items() if o is None]
    strays += [f"module {m}" for m, o in modules.items() if o is None]
    if strays:
        raise SystemExit(
            "sbom.py: carried but belonging to no component (teach build/sbom.py): "
            + ", ".join(sorted(strays))
        )
    return (
        {p: o for p, o in files.items() if o is not None},
        {m: o for m, o in modules.items() if o is not None},
    )


def inside_components(carried: Carried) -> dict[str, dict[str, Any]]:
    """What is linked into other files: zlib in PyInstaller's launcher (PYI_STATIC_ZLIB,
    build/freeze.sh), OpenSSL in cryptography's Rust module (as cryptography reports it)."""
    launcher = file_component(NAME + " (launcher)", None)
    zlib = native_component(
        "native:zlib-in-launcher",
        "zlib",
        version_in(carried.launcher, rb"inflate (\d+\.\d+(?:\.\d+)*) Copyright"),
        "zlib, linked into PyInstaller's launcher (version from the launcher's own string)",
    )
    zlib["components"] = [launcher]
    from cryptography.hazmat.backends.openssl.backend import backend

    text = backend.openssl_version_text()
    openssl = native_component(
        "native:openssl-in-cryptography",
        "openssl",
        openssl_version(text),
        f"OpenSSL linked statically into cryptography's Rust module ({text}, as "
        "cryptography reports it)",
    )
    rust = next(p for p in carried.files if p.startswith("cryptography/hazmat/bindings/_rust"))
    openssl["components"] = [file_component(rust, carried.files[rust])]
    return {zlib["bom-ref"]: zlib, openssl["bom-ref"]: openssl}


def glibc_component(elf: Report) -> dict[str, Any]:
    """Not carried: the target's C library, at the floor measured from the carried files."""
    glibc = native_component(
        "native:glibc",
        "glibc",
        elf.glibc_floor.removeprefix("GLIBC_"),
        "the target's C library: not carried; the version is the lowest the target may "
        "have (the highest GLIBC_ symbol version that a carried file needs)",
    )
    glibc["scope"] = "required"
    glibc["properties"] = [
        {"name": PROPERTY + "carried", "value": "false"},
        {"name": PROPERTY + "glibc-floor", "value": elf.glibc_floor},
        {"name": PROPERTY + "glibc-floor-from", "value": " ".join(elf.glibc_floor_from)},
    ]
    return glibc


def root_component(
    form: str, machine: str, files: list[dict[str, Any]], modules: int
) -> dict[str, Any]:
    version = _own_version()
    root: dict[str, Any] = {
        "type": "application",
        "bom-ref": "root",
        "name": NAME,
        "version": version,
        "licenses": licences("MIT"),
        "purl": f"pkg:generic/{NAME}@{version}",
        "properties": [
            {"name": PROPERTY + "machine", "value": machine},
            {"name": PROPERTY + "form", "value": form},
            {"name": PROPERTY + "python-modules", "value": str(modules)},
        ],
    }
    if files:
        root["components"] = files
    return root


def build(output: Path, carried: Carried, epoch: int) -> dict[str, Any]:
    """The CycloneDX document of one output."""
    file_owners, module_owners = owners(carried)
    components = native_components(carried, file_owners)
    for ref in sorted({*file_owners.values(), *module_owners.values()}):
        if ref.startswith("pypi:"):
            components[ref] = distribution_component(ref.removeprefix("pypi:"))
    components.setdefault("pypi:pyinstaller", distribution_component("pyinstaller"))
    components["pypi:pyinstaller"]["components"] = [file_component(NAME + " (launcher)", None)]
    components.update(inside_components(carried))
    own_files = []
    for path, ref in sorted(file_owners.items()):
        listed = file_component(path, carried.files[path])
        if ref == "root":
            own_files.append(listed)
        else:
            components[ref].setdefault("components", []).append(listed)
    counts = Counter(module_owners.values())
    for ref, count in sorted(counts.items()):
        if ref != "root":
            components[ref].setdefault("properties", []).append(
                {"name": PROPERTY + "python-modules", "value": str(count)}
            )
    elf = report(output)
    components["native:glibc"] = glibc_component(elf)
    form = "onedir" if output.is_dir() else "onefile"
    refs = sorted(components)
    document: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": {
            "timestamp": datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "build/sbom.py"}]},
            "component": root_component(form, elf.machine, own_files, counts["root"]),
        },
        "components": [components[ref] for ref in refs],
        "dependencies": [
            {"ref": "root", "dependsOn": refs},
            *(
                {"ref": ref, "dependsOn": ["native:glibc"]}
                for ref in refs
                if ref != "native:glibc"
            ),
        ],
    }
    # Reproducible: the serial number is a digest of everything else.
    digest = hashlib.sha256(render(document)).digest()
    document["serialNumber"] = uuid.UUID(bytes=digest[:16], version=4).urn
    return document


def _own_version() -> str:
    """The client's version, as --version prints it (the package need not be installed)."""
    sys.path.insert(0, str(REPO))
    import caramel_embedded

    return str(caramel_embedded.__version__)


def render(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=1, sort_keys=False) + "\n").encode("utf-8")


def embed(output: Path, document: Path) -> None:
    """The document into the launcher as a non-loaded ELF section (replacing one there)."""
    launcher = output / NAME if output.is_dir() else output
    sys.path.insert(0, str(REPO))
    from caramel_embedded.errors import BillOfMaterialsError
    from caramel_embedded.sbom import carried

    try:
        carried(str(launcher))
        verb = "--update-section"
    except BillOfMaterialsError:
        verb = "--add-section"
    subprocess.run(
        ["objcopy", verb, f"{SECTION}={document}", "--set-section-flags",
         f"{SECTION}=noload,readonly", str(launcher)],
        check=True,
    )  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("document", type=Path, nargs="?")
    parser.add_argument("--embed", action="store_true", help="also into the launcher")
    parser.add_argument("--list", action="store_true", help="each carried file's component")
    arguments = parser.parse_args(argv)
    carried = read(arguments.output)
    if arguments.list:
        records, _stems = record_index()
        for path in sorted(carried.files):
            print(f"{owner_of_file(path, records)}\t{path}")
        return 0
    if arguments.document is None:
        parser.error("DOCUMENT is required")
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    arguments.document.write_bytes(render(build(arguments.output, carried, epoch)))
    if arguments.embed:
        embed(arguments.output, arguments.document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
