"""The one-file launcher between the caller and the client: statuses, signals, unpacking.

The one-file binary is a launcher that unpacks the client into ``$TMPDIR/_MEI*``, runs it
as a child process, forwards signals to it, removes the directory and exits with the
child's status. These tests pin what that adds or could change: each of 0, 1, 69 and 127
comes through unchanged; TERM sent to the launcher (what init systems and watchdogs do)
ends the invocation with 127 and leaves no directory behind; a tmpfs works as ``$TMPDIR``;
and the launcher's own failure, when it cannot unpack, is 255 (SPEC; docs/firmware-integration.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from werkzeug import Request, Response

from testbed.command import clean_environment, client_command
from testbed.tmpfs import tmpfs as mount_tmpfs
from tests.conftest import Client
from tests.fake_signer import FakeCaramel
from tests.frozen.conftest import Binary

pytestmark = pytest.mark.compressed_too


def wait_for(condition: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


@contextlib.contextmanager
def tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at mount_point (the tests run as root, as CI does)."""
    with mount_tmpfs(mount_point, size) as mounted:
        if mounted is None:
            pytest.fail("cannot mount a tmpfs (these tests need root)")
        yield mounted


def test_statuses_0_1_69_127_come_through_the_launcher(
    binary: Binary, client: Client, signer: FakeCaramel
) -> None:
    first = client.run()
    assert (first.returncode, first.stderr) == (69, "")
    signer.sign()
    assert client.run().returncode == 0
    with open(client.file, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        locked = client.run()
    assert locked.returncode == 1
    assert len(locked.stderr.splitlines()) <= 1
    signer.forced = lambda _request: Response("busy", 503)
    failed = client.run()
    assert failed.returncode == 127
    assert failed.stderr.startswith("caramel-embedded: ")
    assert failed.stderr.count("\n") == 1


@pytest.mark.parametrize("name", ["TERM", "INT", "HUP", "QUIT", "USR1", "USR2", "ALRM"])
def test_signal_to_the_launcher_ends_with_127_and_removes_its_directory(
    binary: Binary, client: Client, signer: FakeCaramel, tmp_path: Path, name: str
) -> None:
    unpack = tmp_path / "unpack"
    unpack.mkdir()
    arrived, release = threading.Event(), threading.Event()

    def hold(_request: Request) -> Response | None:
        arrived.set()
        release.wait(60)
        return None

    signer.forced = hold
    launcher = subprocess.Popen(
        [*client_command(), *client.args("--timeout", "120")],
        env=clean_environment({"TMPDIR": str(unpack)}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(arrived.is_set, 60, "the client's request at the server")
        assert [p.name[:4] for p in unpack.iterdir()] == ["_MEI"]
        (client_pid,) = children(launcher.pid)
        launcher.send_signal(signal.Signals[f"SIG{name}"])
        _, stderr = launcher.communicate(timeout=30)
    finally:
        release.set()
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 127
    assert stderr == f"caramel-embedded: interrupted by SIG{name}\n"
    assert list(unpack.iterdir()) == []
    assert not Path(f"/proc/{client_pid}").exists()


def test_one_file_start_with_its_temporary_directory_on_a_tmpfs(
    binary: Binary, client: Client, signer: FakeCaramel, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "tmpfs", "64m") as unpack:
        environment = {"TMPDIR": str(unpack)}
        first = client.run(env=environment)
        assert (first.returncode, first.stderr) == (69, "")
        signer.sign()
        second = client.run(env=environment)
        assert (second.returncode, second.stderr) == (0, "")
        assert list(unpack.iterdir()) == []


def test_launcher_exits_255_when_it_cannot_unpack(
    binary: Binary, client: Client, tmp_path: Path
) -> None:
    """A full $TMPDIR stops the launcher before the client runs: 255, its own lines."""
    with tmpfs(tmp_path / "full", "4m") as unpack:
        result = client.run(env={"TMPDIR": str(unpack)})
        left = [p.name[:4] for p in unpack.iterdir()]
    assert result.returncode == 255
    assert "[PYI-" in result.stderr
    assert not client.file.exists()
    # The launcher leaves its partial directory behind (docs/firmware-integration.md).
    assert left == ["_MEI"]


def test_launcher_leaves_nothing_in_tmpdir_after_each_status(
    binary: Binary, client: Client, signer: FakeCaramel, tmp_path: Path
) -> None:
    unpack = tmp_path / "unpack"
    unpack.mkdir()
    environment = {"TMPDIR": str(unpack)}
    assert client.run(env=environment).returncode == 69
    assert client.run("--bogus", env=environment).returncode == 127
    assert os.listdir(unpack) == []
