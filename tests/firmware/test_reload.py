"""The reload path for systemd: caramel-embedded-reload.path, its service, caramel-reload.sh.

No systemd manager runs here, so the pieces are checked apart: the units with
systemd-analyze verify (and their wiring: the path unit watches the default combined file
and starts the service, the service runs the script with the defaults file); the script
itself, run by BusyBox's sh and by dash with a stand-in systemctl that records each call,
on real combined files. What PathChanged= sees of an install and of an unchanged run is
tests/test_reload_trigger.py's part.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from testbed.ca_factory import key_pem, make_authority, name, new_key, pem_of
from tests.firmware import units
from tests.firmware.conftest import FIRMWARE, busybox_env, require_tool
from tests.firmware.test_shell import shellcheck

PATH_UNIT = FIRMWARE / "systemd" / "caramel-embedded-reload.path"
SERVICE = FIRMWARE / "systemd" / "caramel-embedded-reload.service"
SCRIPT = FIRMWARE / "caramel-reload.sh"
DEFAULTS = FIRMWARE / "default" / "caramel-embedded"
SCRIPT_INSTALLED = "/usr/share/caramel-embedded/caramel-reload.sh"


def reload_root(tmp_path: Path, path_unit: str | None = None) -> Path:
    return units.make_root(
        tmp_path / "root",
        {
            "caramel-embedded-reload.path": path_unit or PATH_UNIT.read_text(),
            "caramel-embedded-reload.service": SERVICE.read_text(),
            SCRIPT_INSTALLED: SCRIPT.read_text(),
        },
        executables=["/bin/sh"],
    )


def test_reload_units_verify_clean(tmp_path: Path) -> None:
    root = reload_root(tmp_path)
    units.assert_verifies(root, "caramel-embedded-reload.path", "caramel-embedded-reload.service")


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("PathChanged=/var/lib/caramel/client.pem", "PathChanged=var/lib/caramel/client.pem"),
        ("Unit=caramel-embedded-reload.service", "Unit=caramel-embedded-reload"),
        ("[Path]", "[Paht]"),
    ],
    ids=["relative-path", "unit-without-suffix", "bad-section"],
)
def test_verification_fails_on_a_broken_path_unit(tmp_path: Path, good: str, bad: str) -> None:
    text = PATH_UNIT.read_text()
    assert good in text
    root = reload_root(tmp_path, text.replace(good, bad, 1))
    result = units.verify(root, "caramel-embedded-reload.path")
    assert result.returncode != 0 or result.stdout != "", f"{bad} went unnoticed"


def test_path_unit_watches_the_default_file_and_starts_the_reload() -> None:
    path_unit, service = PATH_UNIT.read_text(), SERVICE.read_text()
    default_file = re.search(r"^CARAMEL_FILE=(.+)$", DEFAULTS.read_text(), re.M)
    assert default_file is not None
    assert units.value(path_unit, "Path", "PathChanged") == default_file.group(1)
    assert units.value(path_unit, "Path", "Unit") == "caramel-embedded-reload.service"
    assert units.value(service, "Service", "Type") == "oneshot"
    assert units.value(service, "Service", "EnvironmentFile") == "-/etc/default/caramel-embedded"
    assert shlex.split(units.value(service, "Service", "ExecStart")) == [
        "/bin/sh",
        SCRIPT_INSTALLED,
    ]
    assert re.search(r"^RELOAD_UNITS=$", DEFAULTS.read_text(), re.M)


def test_reload_script_is_clean() -> None:
    shellcheck(SCRIPT)


# --- the script's logic -------------------------------------------------------------------


def combined(tmp_path: Path, with_certificate: bool, slot: int = 0) -> bytes:
    """A combined file's bytes: a key, a certificate (a fresh one per call) if asked."""
    key = new_key(slot)
    text = key_pem(key)
    if with_certificate:
        authority = make_authority(key_slot=4)
        certificate = authority.issue(key.public_key(), name(()))
        text += pem_of(certificate)
    return text + b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"


class Device:
    """The script's world: a combined file, a state file, a systemctl that records."""

    def __init__(self, tmp_path: Path, shell: list[str], env: dict[str, str]) -> None:
        self.file = tmp_path / "client.pem"
        self.calls = tmp_path / "systemctl-calls"
        self.state = tmp_path / "run" / "certificate.sha256"
        systemctl = tmp_path / "systemctl"
        systemctl.write_text(
            f'#!/bin/sh\necho "$*" >>"{self.calls}"\ncase $2 in fails*) exit 1;; esac\n'
        )
        systemctl.chmod(0o755)
        self.shell = shell
        self.env = {
            **env,
            "CARAMEL_FILE": str(self.file),
            "RELOAD_STATE": str(self.state),
            "SYSTEMCTL": str(systemctl),
            "RELOAD_UNITS": "nginx.service,log-uploader.service",
        }

    def reload(self, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.shell, str(SCRIPT)],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def taken_calls(self) -> list[str]:
        calls = self.calls.read_text().splitlines() if self.calls.exists() else []
        self.calls.unlink(missing_ok=True)
        return calls


@pytest.fixture(params=["busybox-sh", "dash"])
def device(request: pytest.FixtureRequest, tmp_path: Path, busybox_bin: Path) -> Device:
    if request.param == "busybox-sh":
        return Device(tmp_path, [str(busybox_bin / "sh")], busybox_env(busybox_bin))
    return Device(tmp_path, [require_tool("dash")], {"PATH": "/usr/bin:/bin"})


RELOADED = [
    "try-reload-or-restart nginx.service",
    "try-reload-or-restart log-uploader.service",
]


def test_each_new_certificate_reloads_the_units_once(device: Device, tmp_path: Path) -> None:
    device.file.write_bytes(combined(tmp_path, with_certificate=False))
    assert device.reload().returncode == 0  # a key and its request: nothing to announce
    assert device.taken_calls() == []

    device.file.write_bytes(combined(tmp_path, with_certificate=True))
    result = device.reload()
    assert result.returncode == 0, result.stderr
    assert device.taken_calls() == RELOADED

    mode_corrected = device.reload()  # the same certificate: a change of attributes only
    assert mode_corrected.returncode == 0
    assert device.taken_calls() == []

    device.file.write_bytes(combined(tmp_path, with_certificate=True))  # re-signed
    assert device.reload().returncode == 0
    assert device.taken_calls() == RELOADED


def test_no_units_named_reloads_nothing(device: Device, tmp_path: Path) -> None:
    device.file.write_bytes(combined(tmp_path, with_certificate=True))
    assert device.reload(RELOAD_UNITS="").returncode == 0
    assert device.taken_calls() == []


def test_a_unit_that_fails_is_said_and_tried_again_next_time(
    device: Device, tmp_path: Path
) -> None:
    device.file.write_bytes(combined(tmp_path, with_certificate=True))
    result = device.reload(RELOAD_UNITS="fails.service,nginx.service")
    assert result.returncode == 1
    assert "could not reload or restart fails.service" in result.stderr
    assert device.taken_calls() == [
        "try-reload-or-restart fails.service",
        "try-reload-or-restart nginx.service",
    ]
    assert device.reload(RELOAD_UNITS="nginx.service").returncode == 0
    assert device.taken_calls() == ["try-reload-or-restart nginx.service"]
