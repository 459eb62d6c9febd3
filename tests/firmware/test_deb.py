"""The Debian package of the host's one-file binary (`make deb`): what it holds, lintian,
and its whole life in a bare Debian root (build/deb-root.sh: bookworm's minbase).

Run where a one-file binary is under test (the binary pass of `make test`,
`make test-deb`, `make test-firmware`); the ARM packages are tested by tests/arm/test_deb.py
in the ARM pass.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from testbed.harness import CaramelStack
from tests.firmware.conftest import FIRMWARE
from tests.firmware.debian_package import (
    DEBIAN_ARCH,
    build_deb,
    chroot,
    contents,
    control_member,
    data_member,
    deb_root,
    dpkg_deb,
    fields,
    install_round_and_remove,
    lintian,
    overlay,
    real_caramel,
    record_unit_starts,
    sources_version,
)
from tests.frozen.conftest import elf_report, read_buildinfo

REPO = Path(__file__).resolve().parents[2]
DOC = "usr/share/doc/caramel-embedded"
UNIT_DIR = "usr/lib/systemd/system"
# Every file of the package and its mode: the `make install` tree (INIT=systemd), the man
# page gzipped, the documentation and lintian's overrides.
FILES = {
    "etc/default/caramel-embedded": "-rw-r--r--",
    "usr/bin/caramel-embedded": "-rwxr-xr-x",
    f"{UNIT_DIR}/caramel-embedded.service": "-rw-r--r--",
    f"{UNIT_DIR}/caramel-embedded.timer": "-rw-r--r--",
    f"{UNIT_DIR}/caramel-embedded-wait.service": "-rw-r--r--",
    f"{UNIT_DIR}/caramel-embedded-reload.path": "-rw-r--r--",
    f"{UNIT_DIR}/caramel-embedded-reload.service": "-rw-r--r--",
    "usr/share/caramel-embedded/caramel-ensure.sh": "-rw-r--r--",
    "usr/share/caramel-embedded/caramel-reload.sh": "-rw-r--r--",
    "usr/share/caramel-embedded/needs-certificate.conf": "-rw-r--r--",
    "usr/share/caramel-embedded/tpm2.conf": "-rw-r--r--",
    "usr/share/caramel-embedded/wait-for-certificate.conf": "-rw-r--r--",
    "usr/share/man/man1/caramel-embedded.1.gz": "-rw-r--r--",
    f"{DOC}/copyright": "-rw-r--r--",
    f"{DOC}/changelog.Debian.gz": "-rw-r--r--",
    f"{DOC}/changelog.gz": "-rw-r--r--",
    f"{DOC}/README.Debian": "-rw-r--r--",
    "usr/share/lintian/overrides/caramel-embedded": "-rw-r--r--",
}


@pytest.fixture(scope="module")
def arch(frozen_binary: Path) -> str:
    return read_buildinfo(frozen_binary.with_name(frozen_binary.name + ".buildinfo"))["arch"]


@pytest.fixture(scope="module")
def build_python(arch: str) -> Path:
    """The build venv's Python (PyInstaller reads the archive); made by the freeze."""
    venv = os.environ.get("BUILD_VENV") or REPO / ".cache" / f"build-venv-{arch}"
    python = Path(venv) / "bin" / "python"
    if not python.is_file():
        pytest.fail(f"no build venv at {venv}: the freeze of the binary under test makes it")
    return python


@pytest.fixture(scope="module")
def deb(
    frozen_binary: Path, arch: str, build_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return build_deb(frozen_binary, arch, tmp_path_factory.mktemp("deb"), build_python)


def test_control_fields_come_from_the_sources_and_the_elf_report(
    deb: Path, frozen_binary: Path, arch: str, build_python: Path
) -> None:
    control = fields(deb)
    assert control["Package"] == "caramel-embedded"
    assert control["Version"] == f"{sources_version()}-1"
    assert control["Architecture"] == DEBIAN_ARCH[arch]
    assert deb.name == f"caramel-embedded_{sources_version()}-1_{DEBIAN_ARCH[arch]}.deb"
    report = elf_report(build_python, frozen_binary)
    floor = str(report["glibc_floor"]).removeprefix("GLIBC_")
    needs_zlib = "libz.so.1" in report["system_libraries"]  # type: ignore[operator]
    assert control["Depends"] == f"libc6 (>= {floor})" + (", zlib1g" if needs_zlib else "")
    assert re.fullmatch(r"[^<>]+ <[^@\s]+@[^@\s]+>", control["Maintainer"])
    assert int(control["Installed-Size"]) * 1024 >= frozen_binary.stat().st_size


def test_files_modes_and_owners(deb: Path, frozen_binary: Path) -> None:
    """The files are those of `make install` (INIT=systemd) and the package's own, all
    root's; the binary is the one built, byte for byte; directories 0755."""
    entries = contents(deb)
    files = {path: e.mode for path, e in entries.items() if not e.mode.startswith("d")}
    assert files == FILES
    assert {e.owner for e in entries.values()} == {"root/root"}
    assert {e.mode for e in entries.values() if e.mode.startswith("d")} == {"drwxr-xr-x"}
    assert data_member(deb, "usr/bin/caramel-embedded") == frozen_binary.read_bytes()


def test_man_page_and_changelogs_are_gzipped_without_a_time(deb: Path) -> None:
    """Debian policy: man pages and changelogs gzip -9n (no name, no time: reproducible)."""
    man = data_member(deb, "usr/share/man/man1/caramel-embedded.1.gz")
    assert gzip.decompress(man) == (FIRMWARE / "caramel-embedded.1").read_bytes()
    changelog = data_member(deb, f"{DOC}/changelog.gz")
    assert gzip.decompress(changelog) == (REPO / "CHANGELOG.md").read_bytes()
    debian = gzip.decompress(data_member(deb, f"{DOC}/changelog.Debian.gz")).decode()
    assert debian.startswith(f"caramel-embedded ({sources_version()}-1) ")
    for member in (man, changelog):
        assert member[4:8] == b"\0\0\0\0", "a gzip time in the header"


def test_conffile_and_maintainer_scripts(deb: Path) -> None:
    """The scripts are those of firmware-integration/debian/ (tests/firmware/test_shell.py
    shellchecks them there), executable as dpkg needs them."""
    assert control_member(deb, "conffiles") == "/etc/default/caramel-embedded\n"
    info = dpkg_deb("--info", str(deb))
    for script in ("postinst", "prerm", "postrm"):
        assert control_member(deb, script) == (FIRMWARE / "debian" / script).read_text()
        assert re.search(rf"^\s+\d+ bytes,\s+\d+ lines\s+\*\s+{script}\s", info, re.MULTILINE)


def test_copyright_names_every_component_the_sbom_lists(deb: Path, frozen_binary: Path) -> None:
    """Machine-readable copyright: every carried component of the binary's SBOM, by name
    and version, and a License paragraph for every licence a Files paragraph names."""
    text = data_member(deb, f"{DOC}/copyright").decode()
    paragraphs = text.split("\n\n")
    assert paragraphs[0].startswith(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    )
    sbom = json.loads(frozen_binary.with_name(frozen_binary.name + ".cdx.json").read_text())
    comments = " ".join(re.findall(r"^Comment: (.*)$", text, re.MULTILINE))
    for component in sbom["components"]:
        carried = {p["name"]: p["value"] for p in component.get("properties", [])}
        if carried.get("caramel-embedded:carried") != "false":
            assert f"{component['name']} {component['version']}" in comments
    named = set()
    for paragraph in paragraphs:
        if paragraph.startswith("Files:"):
            licence = re.search(r"^License: (.*)$", paragraph, re.MULTILINE)
            assert licence, paragraph
            named.update(re.split(r" (?:or|and) ", licence[1].replace("(", "").replace(")", "")))
    standalone = {p.split("\n")[0].removeprefix("License: ") for p in paragraphs}
    assert named <= standalone, named - standalone
    assert {"Expat", "PSF-2.0", "Apache-2.0", "Zlib", "BSD-3-clause"} <= named
    assert "GPL-2+ with Bootloader exception" in named  # PyInstaller's launcher
    assert "GPL-3+ with GCC-exception-3.1 exception" in named  # libgcc_s


def test_lintian_finds_no_error_nor_warning(deb: Path) -> None:
    """Warnings too: an override that matches nothing is one (mismatched-override)."""
    result = lintian(deb)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not re.search(r"^[EW]: ", result.stdout, re.MULTILINE), result.stdout


def test_two_builds_give_the_same_bytes(
    deb: Path, frozen_binary: Path, arch: str, build_python: Path, tmp_path: Path
) -> None:
    again = build_deb(frozen_binary, arch, tmp_path, build_python)
    assert again.read_bytes() == deb.read_bytes()


@pytest.mark.e2e
def test_life_in_a_bare_debian_root(
    deb: Path, arch: str, stack: CaramelStack, tmp_path: Path
) -> None:
    """dpkg -i into bookworm's minbase; --version, --sbom and a round against the real
    Caramel server (69, signed by its administrator, 0) through /usr/bin/caramel-embedded
    and the installed defaults file; dpkg -r and dpkg -P keep the key."""
    install_round_and_remove(deb_root(arch), deb, real_caramel(stack), tmp_path / "overlay")


def test_postinst_starts_the_units_only_where_systemd_runs(
    deb: Path, arch: str, tmp_path: Path
) -> None:
    """The same postinst that starts nothing in a chroot (test above) starts the timer and
    the path unit when /run/systemd/system says systemd is the running init."""
    with overlay(deb_root(arch), tmp_path / "overlay") as root:
        shutil.copy(deb, root / "tmp" / deb.name)
        unpacked = chroot(root, "dpkg", "--unpack", f"/tmp/{deb.name}")
        assert unpacked.returncode == 0, unpacked.stderr
        calls = record_unit_starts(root)
        (root / "run/systemd/system").mkdir(parents=True)
        configured = chroot(root, "dpkg", "--configure", "caramel-embedded")
        assert configured.returncode == 0, configured.stdout + configured.stderr
        made = calls.read_text().splitlines()
        assert "systemctl --system daemon-reload" in made, made
        starts = [call for call in made if " start " in f" {call} "]
        assert starts == [
            "deb-systemd-invoke start caramel-embedded.timer caramel-embedded-reload.path"
        ], made
