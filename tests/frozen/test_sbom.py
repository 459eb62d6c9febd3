"""The software bill of materials the frozen builds carry (build/sbom.py, issue 20).

Checked against the build itself, not against the generator's own reasoning: the files
come from PyInstaller's archive (what the launcher unpacks and what the spec defers into
the PYZ) or the bundle's directory, the versions from the build venv (the interpreter, the
distributions' metadata, cryptography's own report of its OpenSSL, ssl's and zlib's
run-time versions), the glibc floor from build/elf_report.py. The document is read the way
a scanner reads it, without running the binary (objcopy's dump of the ELF section), and
must equal what ``--sbom`` prints and the copy beside the binary. tests/arm/test_sbom.py
runs the same checks on the ARM builds.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from testbed.command import run_client
from tests.frozen.conftest import REPO, Binary, elf_report

SECTION = ".sbom"
# The files a one-file binary carries, as PyInstaller's reader and build/elf_report.py's
# reading of the deferred pieces see them: path -> SHA-256.
CARRIED_FILES = f"""
import hashlib, json, sys
sys.path.insert(0, {str(REPO / "build")!r})
from pathlib import Path
from elf_report import _packed_files
files = _packed_files(Path(sys.argv[1]))
print(json.dumps({{name: hashlib.sha256(data).hexdigest() for name, data in files}}))
"""
# What the build venv reports of the versions the binary carries.
BUILD_VENV_VERSIONS = """
import importlib.metadata, json, platform, ssl, sys, zlib
from cryptography.hazmat.backends.openssl.backend import backend
print(json.dumps({
    "python": platform.python_version(),
    "ssl": ssl.OPENSSL_VERSION,
    "zlib": zlib.ZLIB_RUNTIME_VERSION,
    "cryptography_openssl": backend.openssl_version_text(),
    "distributions": {
        name: importlib.metadata.version(name) for name in sys.argv[1:]
    },
}))
"""


def dump_section(binary: Path, tmp_path: Path) -> bytes:
    """The .sbom section as a scanner would take it: binutils, without running anything."""
    objcopy = shutil.which("objcopy")
    if objcopy is None:
        pytest.fail("objcopy is needed (make build-deps installs binutils)")
    out = tmp_path / "dumped.cdx.json"
    dumped = subprocess.run(
        [objcopy, "--dump-section", f"{SECTION}={out}", str(binary), str(tmp_path / "scratch")],
        capture_output=True,
        text=True,
        check=False,
    )
    if dumped.returncode != 0:
        pytest.fail(f"{binary} carries no {SECTION} section: {dumped.stderr.strip()}")
    return out.read_bytes()


def carried_files(output: Path, build_python: Path) -> dict[str, str]:
    """Every file a one-file binary or a bundle carries: path -> SHA-256 of its bytes."""
    if output.is_dir():
        contents = output / "_internal"
        return {
            path.relative_to(contents).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(contents.rglob("*"))
            if path.is_file() and not path.is_symlink() and path.suffix != ".pyc"
        }
    listed = subprocess.run(
        [str(build_python), "-c", CARRIED_FILES, str(output)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(listed.stdout)  # type: ignore[no-any-return]


def file_components(document: dict[str, Any]) -> dict[str, list[tuple[str, str | None]]]:
    """Each file listed in the document -> [(its component's bom-ref, its SHA-256)]."""
    found: dict[str, list[tuple[str, str | None]]] = {}
    owners = [document["metadata"]["component"], *document["components"]]
    for owner in owners:
        for file in owner.get("components", ()):
            assert file["type"] == "file", file
            digest = next((h["content"] for h in file.get("hashes", ())), None)
            found.setdefault(file["name"], []).append((owner["bom-ref"], digest))
    return found


def by_ref(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["bom-ref"]: c for c in document["components"]}


def assert_valid(document: dict[str, Any]) -> None:
    """Valid for its CycloneDX version (1.5 or later), by cyclonedx-python-lib's validator."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    version = SchemaVersion.from_version(document["specVersion"])
    assert version >= SchemaVersion.V1_5
    errors = JsonStrictValidator(version).validate_str(json.dumps(document), all_errors=True)
    assert errors is None, [str(e) for e in errors]  # type: ignore[union-attr]


def assert_lists_every_carried_file(
    output: Path, build_python: Path, document: dict[str, Any]
) -> None:
    """Every file the output carries (native ones above all) is listed, in a component
    with a version, with the SHA-256 of the bytes as carried; nothing else is listed."""
    carried = carried_files(output, build_python)
    native = [name for name in carried if re.search(r"\.so(\.|$)", name)]
    assert len(native) >= 10  # x86_64 carries 30; Debian's ARM Python, more built in: 14
    listed = file_components(document)
    launcher = [name for name in listed if name.endswith("(launcher)")]
    assert sorted(set(listed) - set(launcher)) == sorted(carried)
    components = {**by_ref(document), "root": document["metadata"]["component"]}
    for name, digest in carried.items():
        for owner, listed_digest in listed[name]:
            assert listed_digest == digest, name
            assert components[owner].get("version"), (name, owner)
    assert [c["name"] for c in components.values() if not c.get("licenses")] == []


def assert_glibc_floor_is_a_dependency(
    output: Path, build_python: Path, document: dict[str, Any]
) -> None:
    glibc = by_ref(document)["native:glibc"]
    floor = elf_report(build_python, output)["glibc_floor"]
    assert f"GLIBC_{glibc['version']}" == floor
    assert "components" not in glibc
    assert {"ref": "root", "dependsOn": sorted(by_ref(document))} in document["dependencies"]


def beside(output: Path) -> Path:
    """Where build/freeze.sh writes the document: OUTPUT.cdx.json."""
    return output.with_name(output.name + ".cdx.json")


@pytest.fixture(scope="module")
def carried_document(binary: Binary, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return dump_section(binary.path, tmp_path_factory.mktemp("sbom"))


@pytest.fixture(scope="module")
def document(carried_document: bytes) -> dict[str, Any]:
    return json.loads(carried_document)  # type: ignore[no-any-return]


def test_the_document_validates_against_the_cyclonedx_schema(document: dict[str, Any]) -> None:
    assert_valid(document)


def test_every_carried_file_belongs_to_a_component_with_its_hash(
    binary: Binary, document: dict[str, Any]
) -> None:
    assert_lists_every_carried_file(binary.path, binary.build_python, document)


def test_no_component_is_missing_and_versions_are_the_build_venvs(
    binary: Binary, document: dict[str, Any]
) -> None:
    components = by_ref(document)
    distributions = {
        c["name"]: c["version"] for c in components.values() if c["purl"].startswith("pkg:pypi/")
    }
    # The distributions whose code the binary runs, whatever else may join them.
    assert {"cryptography", "cffi", "urllib3", "pyinstaller"} <= set(distributions)
    reported = json.loads(
        subprocess.run(
            [str(binary.build_python), "-c", BUILD_VENV_VERSIONS, *distributions],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert distributions == reported["distributions"]
    for name, version in distributions.items():
        assert components[f"pypi:{name}"]["purl"] == f"pkg:pypi/{name}@{version}"
    assert components["native:cpython"]["version"] == reported["python"]
    # The OpenSSL of ssl (libssl/libcrypto as shipped), and the one inside cryptography.
    assert reported["ssl"].startswith(f"OpenSSL {components['native:openssl']['version']} ")
    static = components["native:openssl-in-cryptography"]
    assert reported["cryptography_openssl"].startswith(f"OpenSSL {static['version']} ")
    assert components["native:zlib"]["version"] == reported["zlib"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", components["native:libgcc_s"]["version"])


def test_the_glibc_floor_is_a_dependency_not_a_carried_file(
    binary: Binary, document: dict[str, Any]
) -> None:
    assert_glibc_floor_is_a_dependency(binary.path, binary.build_python, document)


def test_sbom_prints_what_the_binary_carries_and_the_copy_beside_it(
    binary: Binary, carried_document: bytes
) -> None:
    printed = run_client(["--sbom"])
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.encode() == carried_document
    assert beside(binary.path).read_bytes() == carried_document


def test_the_section_is_not_loaded_nor_unpacked(binary: Binary, carried_document: bytes) -> None:
    """Not in the archive (nothing to unpack at start) and in no segment the kernel maps."""
    digest = hashlib.sha256(carried_document).hexdigest()
    assert digest not in carried_files(binary.path, binary.build_python).values()
    headers = subprocess.run(
        ["readelf", "-S", "-l", "-W", str(binary.path)], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(rf"\]\s+{re.escape(SECTION)}\s+PROGBITS\s", headers), headers
    mapping = headers.split("Section to Segment mapping:")[1]
    assert SECTION not in mapping.split()
    assert ".text" in mapping.split()  # the mapping was read


def test_the_bundle_carries_its_own(binary: Binary, tmp_path: Path) -> None:
    """The one-dir bundle that `make test-binary` builds beside the binary: its launcher
    carries the bundle's document, which lists the bundle's files."""
    bundle = binary.path.with_name("caramel-embedded-dir")
    if not (bundle / "caramel-embedded").is_file():
        pytest.fail(f"{bundle}: no bundle beside the binary: build it with make test-binary")
    carried = dump_section(bundle / "caramel-embedded", tmp_path)
    assert beside(bundle).read_bytes() == carried
    document = json.loads(carried)
    assert_valid(document)
    assert_lists_every_carried_file(bundle, binary.build_python, document)
    assert_glibc_floor_is_a_dependency(bundle, binary.build_python, document)
