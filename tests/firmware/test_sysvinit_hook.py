"""The init script's CARAMEL_ON_INSTALL (boards without systemd): run only on an install.

From a `make install` tree, under BusyBox's sh and applets only, against the real one-file
binary: the hook (set in the installed defaults file, quoted as the file says) appends the
status line it was given to a log, so each run of it is counted.
"""

from __future__ import annotations

from pathlib import Path

from tests.firmware.conftest import Device
from tests.firmware.test_sysvinit import init_script


def test_hook_runs_after_an_install_only(
    device: Device, busybox_bin: Path, tmp_path: Path
) -> None:
    log = tmp_path / "hook-log"
    device.configure(CARAMEL_ON_INSTALL=f"'echo \"$CARAMEL_STATUS_LINE\" >>{log}'")
    assert init_script(device, busybox_bin, "run").returncode == 69
    assert not log.exists()

    device.server.sign()
    installed = init_script(device, busybox_bin, "run")
    assert installed.returncode == 0, installed.stderr
    assert (installed.stdout, installed.stderr) == ("", "")
    lines = log.read_text().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("status=installed exit=0 client_id=device-0001 not_after=")

    assert init_script(device, busybox_bin, "run").returncode == 0  # current
    assert len(log.read_text().splitlines()) == 1, "the hook ran for an unchanged run"


def test_hook_that_fails_is_said_and_the_status_stays(device: Device, busybox_bin: Path) -> None:
    device.configure(CARAMEL_ON_INSTALL="'exit 4'")
    assert init_script(device, busybox_bin, "run").returncode == 69
    device.server.sign()
    result = init_script(device, busybox_bin, "run")
    assert result.returncode == 0
    assert result.stderr == "caramel-embedded: CARAMEL_ON_INSTALL failed with status 4\n"
