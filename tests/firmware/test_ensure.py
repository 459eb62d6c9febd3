"""caramel-ensure.sh: the POSIX sh function firmware tools source, for each exit status.

It runs the real one-file binary against the fake Caramel server, under BusyBox's sh (with
BusyBox applets only on PATH) and under dash. A small wrapper in front of the binary
counts the runs, so the lock retries are seen, not guessed from timings.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import fake_signer
from tests.firmware.conftest import FIRMWARE, busybox_env, require_tool

ENSURE = FIRMWARE / "caramel-ensure.sh"
# BusyBox's sh for every case; dash as well for the main paths.
EACH_SHELL = pytest.mark.parametrize("tool", ["busybox-sh", "dash"], indirect=True)
CALL = '. "$0" && caramel_ensure "$@"'


@dataclass
class Tool:
    """A firmware tool that sources caramel-ensure.sh, in one shell."""

    shell: list[str]
    env: dict[str, str]
    runs_log: Path
    file: Path
    server: fake_signer.FakeCaramel

    def command(self, *args: str) -> list[str]:
        """The shell sourcing caramel-ensure.sh and calling caramel_ensure with args."""
        return [*self.shell, "-c", CALL, str(ENSURE), *args]

    def ensure(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def runs(self) -> int:
        """How many times the binary was started (the counting wrapper's log)."""
        return len(self.runs_log.read_text().splitlines()) if self.runs_log.exists() else 0


@pytest.fixture
def tool(
    request: pytest.FixtureRequest,
    frozen_binary: Path,
    signer: fake_signer.FakeCaramel,
    ca_file: Path,
    tmp_path: Path,
    busybox_bin: Path,
) -> Tool:
    """caramel-ensure.sh configured for the fake server, under BusyBox's sh (default) or dash."""
    runs_log = tmp_path / "runs"
    wrapper = tmp_path / "counting-caramel-embedded"
    wrapper.write_text(f'#!/bin/sh\necho run >>"{runs_log}"\nexec "{frozen_binary}" "$@"\n')
    wrapper.chmod(0o755)
    file = tmp_path / "state" / "client.pem"
    settings = {
        "CARAMEL_EMBEDDED": str(wrapper),
        "CARAMEL_SERVER": signer.url,  # type: ignore[attr-defined]
        "CARAMEL_CLIENT_ID": "device-0001",
        "CARAMEL_FILE": str(file),
        "CARAMEL_CA_CERT": str(ca_file),
        "CARAMEL_ENSURE_MAX_SLEEP": "1",
    }
    if getattr(request, "param", "busybox-sh") == "busybox-sh":
        shell = [str(busybox_bin / "sh")]
        env = busybox_env(busybox_bin, settings)
    else:
        shell = [require_tool("dash")]
        env = {"PATH": "/usr/bin:/bin", **settings}
    return Tool(shell, env, runs_log, file, signer)


@EACH_SHELL
def test_0_when_the_certificate_is_installed(tool: Tool) -> None:
    assert tool.ensure().returncode == 69
    tool.server.sign()
    result = tool.ensure()
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert b"-----BEGIN CERTIFICATE-----" in tool.file.read_bytes()
    written = tool.file.stat()
    # And 0 again while it is current, without writing.
    assert tool.ensure().returncode == 0
    assert tool.runs() == 3
    now = tool.file.stat()
    assert (now.st_ino, now.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)


@EACH_SHELL
def test_69_is_reported_as_waiting_for_signature(tool: Tool) -> None:
    result = tool.ensure()
    assert result.returncode == 69
    assert "caramel-ensure: waiting for signature" in result.stderr
    assert tool.runs() == 1
    assert len(tool.server.requests("POST")) == 1


def test_arguments_reach_the_binary(tool: Tool) -> None:
    result = tool.ensure("--print-client-id")
    assert result.returncode == 0
    assert result.stdout == "device-0001\n"


def test_127_is_an_error(tool: Tool) -> None:
    result = tool.ensure(CARAMEL_SERVER="https://127.0.0.1:1")
    assert result.returncode == 127
    first, second = result.stderr.splitlines()
    assert first.startswith("caramel-embedded: ")
    assert second == "caramel-ensure: error: caramel-embedded exited with status 127"
    assert tool.runs() == 1


def test_255_from_a_launcher_that_cannot_unpack_is_an_error(tool: Tool, tmp_path: Path) -> None:
    """A TMPDIR too small for the one-file binary: its launcher fails before the client."""
    small = tmp_path / "small-tmpfs"
    small.mkdir()
    mount_then_run = 'mount -t tmpfs -o size=2m tmpfs "$0" && exec "$@"'
    in_small_tmpfs = ["unshare", "--mount", "sh", "-c", mount_then_run, str(small)]
    probe = subprocess.run([*in_small_tmpfs, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        # As tests/frozen's tmpfs: the checks run as root (chown, chroot); not being able to
        # mount is a machine that cannot run them, not a reason to pass over the 255 case.
        pytest.fail(f"cannot mount a private tmpfs (these checks need root): {probe.stderr!r}")
    result = subprocess.run(
        [*in_small_tmpfs, *tool.command()],
        env={**tool.env, "TMPDIR": str(small), "PATH": tool.env["PATH"] + ":/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 255, result.stderr
    assert "caramel-ensure: error: caramel-embedded exited with status 255" in result.stderr
    assert tool.runs() == 1


def test_a_binary_that_cannot_run_is_an_error(tool: Tool, tmp_path: Path) -> None:
    result = tool.ensure(CARAMEL_EMBEDDED=str(tmp_path / "missing"))
    assert result.returncode == 127
    assert "caramel-ensure: error:" in result.stderr


class HeldLock:
    """The combined file's flock, held by the test as another run would hold it."""

    def __init__(self, file: Path) -> None:
        self.fd = os.open(file, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def test_1_is_retried_then_given_up(tool: Tool) -> None:
    assert tool.ensure().returncode == 69  # the file exists now
    posts = len(tool.server.seen)
    lock = HeldLock(tool.file)
    try:
        result = tool.ensure(CARAMEL_ENSURE_TRIES="2")
    finally:
        lock.release()
    assert result.returncode == 1
    assert "stayed locked by another run (2 tries)" in result.stderr
    assert tool.runs() == 1 + 2
    assert len(tool.server.seen) == posts  # a locked run asks nothing


@EACH_SHELL
def test_1_is_retried_until_the_lock_is_released(tool: Tool) -> None:
    assert tool.ensure().returncode == 69
    tool.server.sign()
    lock = HeldLock(tool.file)
    try:
        waiting = subprocess.Popen(
            tool.command(),
            env={**tool.env, "CARAMEL_ENSURE_TRIES": "30"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while tool.runs() < 1 + 2:  # a locked run, and the retry after it started
            assert time.monotonic() < deadline, "caramel_ensure did not retry"
            assert waiting.poll() is None, waiting.communicate()
            time.sleep(0.05)
    finally:
        lock.release()
    _, stderr = waiting.communicate(timeout=30)
    assert waiting.returncode == 0, stderr
    # The client's own line for each locked run, and nothing from caramel_ensure.
    lines = stderr.splitlines()
    assert len(lines) == tool.runs() - 2
    assert all(line.endswith("locked by another invocation") for line in lines), lines
    assert b"-----BEGIN CERTIFICATE-----" in tool.file.read_bytes()
