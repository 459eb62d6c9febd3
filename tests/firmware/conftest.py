"""Fixtures of the firmware-integration checks: the frozen binary, BusyBox, an installed tree.

The checks that run caramel-embedded run the real frozen one-file binary, never the
package: ``CARAMEL_EMBEDDED_BINARY`` names it (``make test-firmware``), or
``CARAMEL_EMBEDDED_CMD`` when it is a frozen binary (the binary pass of ``make test``).
Without one (``make test-unit``, ``make test-e2e``, the bundle pass) they are skipped and
only the static checks run (shellcheck, systemd-analyze, the recipe checks); the package
pass of ``make test`` leaves tests/firmware out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import fake_signer
from tests.folder_markers import mark_folder

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware-integration"
ELF_MAGIC = b"\x7fELF"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here is a firmware check: ``firmware``, not in the package or ARM pass."""
    mark_folder(items, Path(__file__).parent, pytest.mark.firmware)


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as stream:
            return stream.read(4) == ELF_MAGIC
    except OSError:
        return False


def frozen_binary_path() -> Path | None:
    """The one-file binary under test, or None when this run has none."""
    named = os.environ.get("CARAMEL_EMBEDDED_BINARY", "").strip()
    if named:
        path = Path(named).resolve()
        if not _is_elf(path):
            raise pytest.UsageError(f"CARAMEL_EMBEDDED_BINARY={named} is not an ELF binary")
        return path
    command = os.environ.get("CARAMEL_EMBEDDED_CMD", "").strip()
    if command and " " not in command and _is_elf(Path(command)):
        path = Path(command).resolve()
        # A one-dir bundle's launcher (beside its _internal/) is not a one-file binary.
        if not (path.parent / "_internal").is_dir():
            return path
    return None


def require_tool(name: str) -> str:
    """The tool's path; a missing one fails with the target that installs it."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `make firmware-deps`")
    return found


@pytest.fixture(scope="session")
def frozen_binary() -> Path:
    """The one-file binary; runs that test none (package, unit, bundle) skip these checks."""
    path = frozen_binary_path()
    if path is None:
        pytest.skip(
            "no frozen binary in this run (CARAMEL_EMBEDDED_BINARY): "
            "the binary pass of `make test` and `make test-firmware` run it"
        )
    return path


@pytest.fixture(scope="session")
def frozen_bundle(frozen_binary: Path) -> Path:
    """The one-dir bundle's directory: CARAMEL_EMBEDDED_BUNDLE, else beside the binary.

    The binary pass of `make test` and `make test-firmware` both build the bundle beside
    the binary, so a missing one is a broken build: it fails, never skips.
    """
    named = os.environ.get("CARAMEL_EMBEDDED_BUNDLE", "").strip()
    bundle = Path(named) if named else frozen_binary.parent / "caramel-embedded-dir"
    if not _is_elf(bundle / "caramel-embedded"):
        pytest.fail(f"no one-dir bundle at {bundle} (make test-bundle or make bundle builds it)")
    return bundle.resolve()


@pytest.fixture(scope="session")
def busybox_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of BusyBox applet links: a PATH with BusyBox's tools and nothing else."""
    busybox = require_tool("busybox")
    directory = tmp_path_factory.mktemp("busybox-bin")
    subprocess.run([busybox, "--install", "-s", str(directory)], check=True)
    assert (directory / "sh").exists()
    return directory


def busybox_env(busybox_bin: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment like a BusyBox board's: its PATH, no CARAMEL_* from the test run."""
    env = {"PATH": str(busybox_bin), "HOME": "/", "LANG": "C"}
    if extra:
        env.update(extra)
    return env


def make_env() -> dict[str, str]:
    """Our environment without the make variables of a `make test-*` around us, so that a
    make the checks run is a top-level one, as in a firmware build."""
    return {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}


def make_install(
    destdir: Path | None, dist: Path, *variables: str
) -> subprocess.CompletedProcess[str]:
    """`make install` of the repository into DESTDIR (None: none), as a firmware build would."""
    return subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(REPO),
            "install",
            f"DESTDIR={destdir or ''}",
            f"DIST={dist}",
            *variables,
        ],
        env=make_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@dataclass
class Device:
    """A device's installed tree (DESTDIR) whose defaults file points at the fake server."""

    root: Path
    server: fake_signer.FakeCaramel
    state: Path
    runtime_tmpdir: Path

    @property
    def defaults(self) -> Path:
        return self.root / "etc/default/caramel-embedded"

    @property
    def init_script(self) -> Path:
        return self.root / "etc/init.d/caramel-embedded"

    @property
    def file(self) -> Path:
        return self.state / "client.pem"

    @property
    def binary(self) -> Path:
        return self.root / "usr/bin/caramel-embedded"

    def configure(self, **values: str) -> None:
        """Set NAME=value lines in the defaults file, as an integrator edits it."""
        configure(self.defaults, values)


def configure(defaults: Path, values: Mapping[str, str]) -> None:
    """Set each NAME=value in a defaults file: in place of its line (commented out or not),
    else appended, so the installed file's layout and comments stay."""
    pending = dict(values)
    lines = []
    for line in defaults.read_text().splitlines():
        name = line.split("=", 1)[0].lstrip("#")
        lines.append(f"{name}={pending.pop(name)}" if "=" in line and name in pending else line)
    lines.extend(f"{name}={value}" for name, value in pending.items())
    defaults.write_text("\n".join(lines) + "\n")


@pytest.fixture
def device(
    frozen_binary: Path,
    signer: fake_signer.FakeCaramel,
    ca_file: Path,
    tmp_path: Path,
) -> Device:
    """make install INIT=both into a temporary root, configured for the fake server.

    The defaults file keeps the installed layout and only its values change, as a firmware
    team would edit it: the server, a fixed client id, paths inside the temporary root.
    """
    root = tmp_path / "root"
    result = make_install(root, frozen_binary.parent, "INIT=both", f"CA_CERT={ca_file}")
    assert result.returncode == 0, result.stderr
    state = tmp_path / "state"
    runtime = tmp_path / "run" / "caramel-embedded"
    installed = Device(root, signer, state, runtime)
    installed.configure(
        CARAMEL_SERVER=signer.url,  # type: ignore[attr-defined]
        CARAMEL_CLIENT_ID_FROM="",
        CARAMEL_CLIENT_ID="device-0001",
        CARAMEL_FILE=str(state / "client.pem"),
        CARAMEL_CA_CERT=str(root / "etc/caramel/ca.pem"),
        CARAMEL_RUNTIME_TMPDIR=str(runtime),
        CARAMEL_EMBEDDED=str(root / "usr/bin/caramel-embedded"),
        CARAMEL_SYSLOG="no",
    )
    return installed
