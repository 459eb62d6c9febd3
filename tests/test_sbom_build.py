"""build/sbom.py's decisions that the x86_64 build does not reach: which component a
carried file belongs to, and the versions of libraries that only the ARM builds carry
(Debian's libpython links libexpat there) or that no rule of the script knows. The whole
document is tested on the frozen builds (tests/frozen/test_sbom.py)."""

from __future__ import annotations

import pyexpat
import shutil
from pathlib import Path

import pytest

from tests.script_module import load

# build/sbom.py in this process: the package pass only.
pytestmark = pytest.mark.in_process

BUILD = Path(__file__).resolve().parents[1] / "build"


sbom = load(BUILD / "sbom.py", "sbom_build")


@pytest.mark.parametrize(
    ("path", "owner"),
    [
        ("libssl.so.3", "native:openssl"),
        ("libcrypto.so.3", "native:openssl"),
        ("libz.so.1", "native:zlib"),
        ("libexpat.so.1", "native:libexpat"),
        ("libgcc_s.so.1", "native:libgcc_s"),
        ("libpython3.11.so.1.0", "native:cpython"),
        ("python3.11/lib-dynload/_ssl.cpython-311-aarch64-linux-gnu.so", "native:cpython"),
        ("base_library.zip", "native:cpython"),
        ("libatomic.so.1", "system:libatomic.so.1"),
        ("caramel_embedded/embedded_ca.pem", "root"),
        ("urllib3/connection.py", "pypi:urllib3"),
        ("something/else.dat", None),
    ],
)
def test_each_carried_file_has_its_component(path: str, owner: str | None) -> None:
    records = {"urllib3/connection.py": "urllib3"}
    assert sbom.owner_of_file(path, records) == owner


def system_library(soname: str) -> Path:
    """The system's copy of a library, as PyInstaller would have taken it."""
    for directory in ("/lib", "/usr/lib"):
        for found in sorted(Path(directory).glob(f"*/{soname}")):
            return found
    pytest.fail(f"{soname}: not on this machine (make system-deps)")


def test_libexpat_version_is_read_from_its_bytes() -> None:
    """What the ARM builds carry for Debian's libpython: the same version pyexpat reports
    for the copy it loaded."""
    carried = sbom.Carried(
        launcher=b"", files={"libexpat.so.1": system_library("libexpat.so.1").read_bytes()}
    )
    component = sbom.native_components(carried, {"libexpat.so.1": "native:libexpat"})
    version = component["native:libexpat"]["version"]
    assert f"expat_{version}" == pyexpat.EXPAT_VERSION
    assert component["native:libexpat"]["licenses"] == [{"expression": "MIT"}]


def test_an_unknown_system_library_is_named_by_its_debian_package() -> None:
    if shutil.which("dpkg-query") is None:
        pytest.fail("the builds run on Debian (host and ARM roots): dpkg-query is needed")
    library = system_library("libuuid.so.1")
    carried = sbom.Carried(launcher=b"", files={"libuuid.so.1": library.read_bytes()})
    components = sbom.native_components(carried, {"libuuid.so.1": "system:libuuid.so.1"})
    component = components["system:libuuid.so.1"]
    package = sbom.debian_package("libuuid.so.1")
    assert package is not None
    assert component["name"] == package[0]
    assert component["purl"] == f"pkg:deb/debian/{package[0]}@{package[1]}"
    assert package[1].startswith(component["version"] + "-")


def test_a_file_of_no_component_stops_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sbom, "record_index", lambda: ({}, {}))
    carried = sbom.Carried(launcher=b"", files={"stray.bin": b"?"}, modules={"sys"})
    with pytest.raises(SystemExit, match=r"belonging to no component.*stray\.bin"):
        sbom.owners(carried)
