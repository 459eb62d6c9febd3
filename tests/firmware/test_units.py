"""The systemd units of firmware-integration/: systemd-analyze, and what the issue asks of them."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.firmware import units
from tests.firmware.conftest import FIRMWARE
from tests.firmware.test_shell import shellcheck

SERVICE = FIRMWARE / "systemd" / "caramel-embedded.service"
TIMER = FIRMWARE / "systemd" / "caramel-embedded.timer"
DROP_IN = FIRMWARE / "drop-in" / "wait-for-certificate.conf"
DEFAULTS = FIRMWARE / "default" / "caramel-embedded"
CERTIFICATE_LIFETIME_HOURS = 48
# The highest exposure `systemd-analyze security` may give the service (its level x 10).
EXPOSURE_CEILING = 25


def unit_root(tmp_path: Path, service: str | None = None, timer: str | None = None) -> Path:
    """A --root= for systemd-analyze with the units (or altered texts of them) in place."""
    return units.make_root(
        tmp_path / "root",
        {
            "caramel-embedded.service": SERVICE.read_text() if service is None else service,
            "caramel-embedded.timer": TIMER.read_text() if timer is None else timer,
        },
        executables=["/usr/bin/caramel-embedded", "/bin/mkdir", "/bin/rm"],
    )


def test_units_verify_clean(tmp_path: Path) -> None:
    root = unit_root(tmp_path)
    units.assert_verifies(root, "caramel-embedded.service", "caramel-embedded.timer")


BROKEN = {
    "unknown key": ("service", "ProtectSystem=strict", "ProtectSystm=strict"),
    "bad exit status": ("service", "SuccessExitStatus=1 69", "SuccessExitStatus=1 sixtynine"),
    "bad type": ("service", "Type=oneshot", "Type=oneshoot"),
    "missing binary": (
        "service",
        "ExecStart=/usr/bin/caramel-embedded",
        "ExecStart=/usr/bin/caramel-embeded",
    ),
    "relative command": ("service", "ExecStart=/usr/bin/caramel-embedded", "ExecStart=x"),
    "bad time span": ("timer", "OnUnitActiveSec=1h", "OnUnitActiveSec=1 hour-ish"),
    "timer key in the wrong unit": ("service", "Nice=10", "Nice=10\nFixedRandomDelay=yes"),
}


@pytest.mark.parametrize("breakage", BROKEN, ids=list(BROKEN))
def test_verification_fails_on_a_broken_unit(tmp_path: Path, breakage: str) -> None:
    """The check above is meaningful: each of these mistakes makes it fail."""
    which, good, bad = BROKEN[breakage]
    source = SERVICE if which == "service" else TIMER
    text = source.read_text()
    assert good in text
    broken = text.replace(good, bad, 1)
    root = (
        unit_root(tmp_path, service=broken)
        if which == "service"
        else unit_root(tmp_path, timer=broken)
    )
    result = units.verify(root, "caramel-embedded.service", "caramel-embedded.timer")
    assert result.returncode != 0 or result.stdout != "", f"{breakage} went unnoticed"


def test_service_contract() -> None:
    text = SERVICE.read_text()
    assert units.value(text, "Service", "Type") == "oneshot"
    assert set(units.value(text, "Service", "SuccessExitStatus").split()) == {"1", "69"}
    assert units.value(text, "Service", "EnvironmentFile") == "/etc/default/caramel-embedded"
    assert units.value(text, "Service", "ExecStart") == "/usr/bin/caramel-embedded"
    assert units.value(text, "Service", "PrivateTmp") == "yes"
    assert units.value(text, "Service", "ProtectSystem") == "strict"
    assert units.value(text, "Service", "NoNewPrivileges") == "yes"
    families = set(units.value(text, "Service", "RestrictAddressFamilies").split())
    assert families == {"AF_INET", "AF_INET6", "AF_UNIX"}
    # The one place it writes is the directory of the default combined file.
    default_file = re.search(r"^CARAMEL_FILE=(.+)$", DEFAULTS.read_text(), re.M)
    assert default_file is not None
    state_dir = str(Path(default_file.group(1)).parent)
    assert units.value(text, "Service", "ReadWritePaths") == state_dir
    assert "/var/lib/" + units.value(text, "Service", "StateDirectory") == state_dir
    assert not units.values(text, "Service", "ProcSubset"), "it would hide /proc/cpuinfo"


def test_the_hint_outlives_the_run_and_the_unpacked_files_do_not() -> None:
    """The client keeps the server's hint in $RUNTIME_DIRECTORY (its --runtime-dir default):
    systemd would remove that directory at every stop, so it is preserved, and the launcher's
    $TMPDIR is a directory of its own inside it, made before and removed after every run."""
    text = SERVICE.read_text()
    assert units.value(text, "Service", "RuntimeDirectory") == "caramel-embedded"
    assert units.value(text, "Service", "RuntimeDirectoryPreserve") == "yes"
    tmpdir = units.value(text, "Service", "Environment").removeprefix("TMPDIR=")
    assert tmpdir.startswith("%t/caramel-embedded/")
    assert tmpdir != "%t/caramel-embedded/"
    assert shlex.split(units.value(text, "Service", "ExecStartPre")) == [
        "/bin/mkdir", "-p", "-m", "0700", tmpdir
    ]  # fmt: skip
    assert shlex.split(units.value(text, "Service", "ExecStopPost")) == [
        "-/bin/rm", "-rf", tmpdir
    ]  # fmt: skip


def test_timer_refreshes_a_48_hour_certificate_well_before_it_expires() -> None:
    text = TIMER.read_text()
    period = units.microseconds(units.value(text, "Timer", "OnUnitActiveSec"))
    spread = units.microseconds(units.value(text, "Timer", "RandomizedDelaySec"))
    accuracy = units.microseconds(units.value(text, "Timer", "AccuracySec"))
    assert units.microseconds(units.value(text, "Timer", "OnBootSec")) <= 5 * 60 * 10**6
    assert spread > 0, "a fleet that boots together must be spread"
    assert units.value(text, "Timer", "FixedRandomDelay") == "yes"
    longest_gap_hours = (period + spread + accuracy) / 3600e6
    # At least 24 checks in a certificate's life: it is fetched within a small fraction
    # of its lifetime after being re-signed, and survives a day of unreachable server.
    assert CERTIFICATE_LIFETIME_HOURS / longest_gap_hours >= 24, longest_gap_hours
    assert units.value(text, "Install", "WantedBy") == "timers.target"


def test_service_exposure_stays_low(tmp_path: Path) -> None:
    root = unit_root(tmp_path)
    result = units.security(root, "caramel-embedded.service", EXPOSURE_CEILING)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


def test_drop_in_verifies_on_a_service_that_needs_the_certificate(tmp_path: Path) -> None:
    root = unit_root(tmp_path)
    units.make_root(
        root,
        {
            "app.service": "[Unit]\nDescription=app\n\n[Service]\nExecStart=/usr/bin/app\n",
            "etc/systemd/system/app.service.d/caramel.conf": DROP_IN.read_text(),
        },
        executables=["/usr/bin/app", "/bin/sh"],
    )
    units.assert_verifies(root, "app.service")
    text = DROP_IN.read_text()
    assert units.value(text, "Unit", "After") == "caramel-embedded.service"
    assert units.value(text, "Service", "Restart") == "on-failure"


def drop_in_shell_code() -> str:
    """The sh -c code of the drop-in's ExecStartPre, which has to be free of $ (systemd)."""
    command = units.value(DROP_IN.read_text(), "Service", "ExecStartPre")
    words = shlex.split(command.lstrip("+"))
    assert words[:2] == ["/bin/sh", "-c"], words
    assert "$" not in words[2], "systemd would expand it"
    return words[2]


def test_drop_in_shell_code_is_clean(tmp_path: Path) -> None:
    script = tmp_path / "exec-start-pre.sh"
    # The files it sources are on the device, not here (test_install runs the code).
    script.write_text("#!/bin/sh\n# shellcheck disable=SC1091\n" + drop_in_shell_code() + "\n")
    shellcheck(script)


# --- the wait mode, for servers whose services need the certificate ------------------------

WAIT_SERVICE = FIRMWARE / "systemd" / "caramel-embedded-wait.service"
NEEDS_DROP_IN = FIRMWARE / "drop-in" / "needs-certificate.conf"


def wait_root(tmp_path: Path, service: str | None = None) -> Path:
    """A --root= with the wait unit and a service that needs the certificate through the
    drop-in example."""
    return units.make_root(
        tmp_path / "wait-root",
        {
            "caramel-embedded-wait.service": (
                WAIT_SERVICE.read_text() if service is None else service
            ),
            "app.service": "[Unit]\nDescription=app\n\n[Service]\nExecStart=/usr/bin/app\n",
            "etc/systemd/system/app.service.d/caramel.conf": NEEDS_DROP_IN.read_text(),
        },
        executables=["/usr/bin/caramel-embedded", "/usr/bin/app"],
    )


def test_wait_unit_and_its_drop_in_verify_clean(tmp_path: Path) -> None:
    units.assert_verifies(wait_root(tmp_path), "caramel-embedded-wait.service", "app.service")


def test_wait_unit_verification_fails_when_broken(tmp_path: Path) -> None:
    text = WAIT_SERVICE.read_text()
    broken = text.replace("RemainAfterExit=yes", "RemainAfterExit=sometimes", 1)
    assert broken != text
    result = units.verify(wait_root(tmp_path, broken), "caramel-embedded-wait.service")
    assert result.returncode != 0 or result.stdout != ""


def test_wait_unit_contract() -> None:
    """Succeeds only once a certificate is held, stays active for the units after it, and
    waits as long as the signing takes: 69 and 127 fail it (no SuccessExitStatus)."""
    text = WAIT_SERVICE.read_text()
    assert units.value(text, "Service", "Type") == "oneshot"
    assert units.value(text, "Service", "RemainAfterExit") == "yes"
    assert shlex.split(units.value(text, "Service", "ExecStart")) == [
        "/usr/bin/caramel-embedded",
        "--wait",
    ]
    assert units.values(text, "Service", "SuccessExitStatus") == []
    assert units.values(text, "Service", "Restart") == []  # an error is for an administrator
    assert units.value(text, "Service", "TimeoutStartSec") == "infinity"
    assert units.value(text, "Service", "EnvironmentFile") == "/etc/default/caramel-embedded"
    assert units.value(text, "Install", "WantedBy") == "multi-user.target"
    # The same place to write as the device's service, and a tmpfs for the launcher.
    device = SERVICE.read_text()
    for key in ("ReadWritePaths", "StateDirectory", "SystemCallFilter", "CapabilityBoundingSet"):
        assert units.value(text, "Service", key) == units.value(device, "Service", key), key
    assert units.value(text, "Service", "Environment") == "TMPDIR=/run/caramel-embedded-wait"
    drop_in = NEEDS_DROP_IN.read_text()
    assert units.value(drop_in, "Unit", "Requires") == "caramel-embedded-wait.service"
    assert units.value(drop_in, "Unit", "After") == "caramel-embedded-wait.service"


def test_wait_unit_exposure_stays_low(tmp_path: Path) -> None:
    result = units.security(wait_root(tmp_path), "caramel-embedded-wait.service", EXPOSURE_CEILING)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


TPM2_DROP_IN = FIRMWARE / "drop-in" / "tpm2.conf"


def test_the_units_order_after_the_tpm() -> None:
    for unit in (SERVICE, FIRMWARE / "systemd" / "caramel-embedded-wait.service"):
        assert "tpm2.target" in units.value(unit.read_text(), "Unit", "After").split(), unit


def test_the_tpm2_drop_in_gives_the_service_the_tpm_and_verifies(tmp_path: Path) -> None:
    """tpm2 mode's drop-in on the shipped service: the device it needs, nothing more, and
    the whole still verifies and stays within the exposure ceiling."""
    text = TPM2_DROP_IN.read_text()
    assert units.value(text, "Service", "PrivateDevices") == "no"
    assert units.values(text, "Service", "DeviceAllow") == ["/dev/tpmrm0 rw"]
    assert units.value(SERVICE.read_text(), "Service", "DevicePolicy") == "closed"
    root = unit_root(tmp_path)
    units.make_root(root, {"etc/systemd/system/caramel-embedded.service.d/tpm2.conf": text})
    units.assert_verifies(root, "caramel-embedded.service", "caramel-embedded.timer")
    result = units.security(root, "caramel-embedded.service", EXPOSURE_CEILING)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
