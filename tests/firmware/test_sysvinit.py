"""The init script for boards without systemd, under BusyBox's sh and applets only.

It runs from a `make install` tree (DESTDIR) against the real one-file binary and the
fake Caramel server, with PATH holding nothing but BusyBox applets, as on a board.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.firmware.conftest import Device, busybox_env


def init_script(
    device: Device, busybox_bin: Path, action: str
) -> subprocess.CompletedProcess[str]:
    env = busybox_env(busybox_bin, {"CARAMEL_DEFAULTS": str(device.defaults)})
    return subprocess.run(
        [str(busybox_bin / "sh"), str(device.init_script), action],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start_run(device: Device, busybox_bin: Path) -> subprocess.Popen[str]:
    env = busybox_env(busybox_bin, {"CARAMEL_DEFAULTS": str(device.defaults)})
    return subprocess.Popen(
        [str(busybox_bin / "sh"), str(device.init_script), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run_dirs(device: Device) -> list[Path]:
    """The per-run unpack directories the init script makes under CARAMEL_RUNTIME_TMPDIR."""
    return sorted(device.runtime_tmpdir.glob("run.*"))


def wait_for_unpacked(device: Device, timeout: float = 20) -> Path:
    """The run directory of a run whose launcher has unpacked (a _MEI* directory in it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run_dir in run_dirs(device):
            if any(run_dir.glob("_MEI*/base_library.zip")):
                return run_dir
        time.sleep(0.05)
    raise AssertionError(f"no unpacked run under {device.runtime_tmpdir}")


def children(pid: int) -> list[int]:
    """The pids whose parent is pid, from /proc/*/stat (the script's launcher, its client)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def wait_gone(pid: int, timeout: float = 30) -> None:
    """Until pid has exited: gone, or a zombie (an orphan nobody reaps in a container)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
        except FileNotFoundError:  # reaped, possibly between two looks
            return
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still runs")


def test_run_posts_then_installs_and_status_follows(device: Device, busybox_bin: Path) -> None:
    first = init_script(device, busybox_bin, "run")
    assert first.returncode == 69, first.stderr
    assert init_script(device, busybox_bin, "status").returncode == 3

    device.server.sign()
    second = init_script(device, busybox_bin, "run")
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""
    status = init_script(device, busybox_bin, "status")
    assert status.returncode == 0
    assert "holds a certificate" in status.stdout
    assert oct(device.file.stat().st_mode & 0o777) == "0o600"
    # Each run unpacked into a directory of its own and removed it when it ended.
    assert run_dirs(device) == []


def test_error_status_is_passed_on(device: Device, busybox_bin: Path) -> None:
    device.configure(CARAMEL_SERVER="https://127.0.0.1:1")
    result = init_script(device, busybox_bin, "run")
    assert result.returncode == 127
    assert result.stderr.startswith("caramel-embedded: ")


def test_start_returns_at_once_and_checks_in_the_background(
    device: Device, busybox_bin: Path
) -> None:
    device.configure(CARAMEL_BOOT_DELAY="0")
    started = time.monotonic()
    result = init_script(device, busybox_bin, "start")
    assert result.returncode == 0, result.stderr
    assert "Starting caramel-embedded" in result.stdout
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 30
    while not device.file.exists() or device.server.requests("POST") == []:
        assert time.monotonic() < deadline, "the background check never posted"
        time.sleep(0.1)
    assert init_script(device, busybox_bin, "stop").returncode == 0


def test_cron_action_runs_after_its_delay(device: Device, busybox_bin: Path) -> None:
    device.configure(CARAMEL_CRON_DELAY="0")
    result = init_script(device, busybox_bin, "cron")
    assert result.returncode == 69, result.stderr
    assert len(device.server.requests("POST")) == 1


def test_unknown_action_is_a_usage_error(device: Device, busybox_bin: Path) -> None:
    result = init_script(device, busybox_bin, "frobnicate")
    assert result.returncode == 2
    assert "Usage:" in result.stderr


def test_a_killed_run_is_cleaned_before_the_next(device: Device, busybox_bin: Path) -> None:
    device.server.delay = 1.5
    victim = start_run(device, busybox_bin)
    leftover = wait_for_unpacked(device)
    # SIGKILL to the whole run: script, launcher and client. Nothing removes the unpacked
    # files then; this is what a power-less cleanup has to find.
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    time.sleep(0.2)
    assert any(leftover.glob("_MEI*")), "the killed run left nothing: the test proves nothing"

    device.server.delay = 0
    result = init_script(device, busybox_bin, "run")
    assert result.returncode in (0, 69), result.stderr
    assert not leftover.exists()
    assert run_dirs(device) == []


def test_cleanup_spares_a_run_that_is_still_going(device: Device, busybox_bin: Path) -> None:
    init_script(device, busybox_bin, "run")  # posted: the next runs GET, slowly
    device.server.delay = 2.0
    running = start_run(device, busybox_bin)
    its_dir = wait_for_unpacked(device)

    second = init_script(device, busybox_bin, "run")
    assert second.returncode == 1, second.stderr  # the first holds the lock
    assert any(its_dir.glob("_MEI*/base_library.zip")), "a live run's files were removed"

    assert running.wait(timeout=30) == 69
    assert not its_dir.exists()


def test_cleanup_spares_a_client_whose_launcher_was_killed(
    device: Device, busybox_bin: Path
) -> None:
    """Script and launcher killed, the client still running from the unpacked files."""
    init_script(device, busybox_bin, "run")
    # Long enough for the second run below to start while the orphan still waits.
    device.server.delay = 10.0
    asked_before = len(device.server.requests("GET"))
    running = start_run(device, busybox_bin)
    its_dir = wait_for_unpacked(device)
    # Unpacked is not yet started: wait until the client holds the lock and has asked the
    # server (its GET arrived; the answer waits out the server's delay).
    deadline = time.monotonic() + 30
    while len(device.server.requests("GET")) == asked_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(device.server.requests("GET")) > asked_before, "the client never asked"
    [launcher] = children(running.pid)
    [client] = children(launcher)
    os.kill(running.pid, signal.SIGKILL)
    os.kill(launcher, signal.SIGKILL)
    running.wait(timeout=10)

    second = init_script(device, busybox_bin, "run")
    assert second.returncode == 1, second.stderr  # the orphaned client holds the lock
    assert any(its_dir.glob("_MEI*/base_library.zip")), "files in use were removed"

    device.server.delay = 0
    wait_gone(client)
    third = init_script(device, busybox_bin, "run")
    assert third.returncode == 69, third.stderr
    assert not its_dir.exists()


def mount_type(path: Path) -> str | None:
    """The file system type mounted exactly at path, or None."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4].replace("\\040", " ") == str(path):
            return fields[fields.index("-") + 1]
    return None


def test_each_run_unpacks_into_a_tmpfs_of_its_own(device: Device, busybox_bin: Path) -> None:
    """CARAMEL_RUNTIME_TMPDIR here is on the test machine's disk, as /run may be on a board
    that does not mount it: the script mounts a tmpfs on the run's directory, so the
    one-file binary writes nothing to persistent storage, and unmounts it afterwards."""
    device.server.delay = 1.5
    running = start_run(device, busybox_bin)
    try:
        its_dir = wait_for_unpacked(device)
        assert mount_type(its_dir) == "tmpfs"
    finally:
        status = running.wait(timeout=30)
    assert status == 69
    assert mount_type(its_dir) is None
    assert not its_dir.exists()
