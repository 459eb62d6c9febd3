"""The wait mode (``--wait``): one-shot passes repeated until a certificate is held.

The process-level tests run the real command against the fake signer; the loop's own
arithmetic (limit, jitter, which statuses go on) is checked with a fake clock.
"""

from __future__ import annotations

import fcntl
import signal
import threading
import time

import pytest

from caramel_embedded import errors, waiting
from tests.conftest import Client
from tests.fake_signer import FakeCaramel
from tests.test_failed_run_keeps_file import dead_server
from tests.test_protocol import assert_error

INTERVAL = "0.3"


def sign_when_posted(signer: FakeCaramel, after: float = 0.5) -> threading.Thread:
    """An administrator who signs the request a moment after it arrives."""

    def administrator() -> None:
        for _ in range(600):
            if signer.entries:
                time.sleep(after)
                signer.sign()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=administrator, daemon=True)
    thread.start()
    return thread


def test_waits_through_202_until_the_certificate_is_installed(
    client: Client, signer: FakeCaramel
) -> None:
    sign_when_posted(signer, after=1.0)
    result = client.run("--wait", "--wait-interval", INTERVAL, timeout=120)
    assert (result.returncode, result.stderr) == (0, "")
    assert signer.requests("POST")
    assert len(signer.requests("GET")) >= 2  # asked while 202, then got the certificate
    assert b"CERTIFICATE-----" in client.file.read_bytes().split(b"REQUEST")[0]


def test_the_environment_turns_it_on(client: Client, signer: FakeCaramel) -> None:
    sign_when_posted(signer)
    env = {"CARAMEL_WAIT": "1", "CARAMEL_WAIT_INTERVAL": INTERVAL}
    assert client.run(env=env, timeout=120).returncode == 0


def test_ends_with_69_at_its_limit(client: Client, signer: FakeCaramel) -> None:
    started = time.monotonic()
    result = client.run("--wait", "--wait-limit", "1.5", "--wait-interval", INTERVAL)
    took = time.monotonic() - started
    assert result.returncode == 69, result.stderr
    assert "still waiting for a signature after 1.5 s" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert len(signer.requests("GET")) >= 2
    assert took >= 1.5


def test_an_error_ends_the_wait_at_once_with_advice(client: Client) -> None:
    client.server = dead_server()
    started = time.monotonic()
    result = client.run("--wait", "--wait-interval", "60")
    assert time.monotonic() - started < 30  # not after a pause of a minute
    assert_error(result, "cannot connect", "the wait has ended", "check SERVER")


def test_term_ends_the_wait_at_once(client: Client, signer: FakeCaramel) -> None:
    process = client.start("--wait", "--wait-interval", "60")
    for _ in range(600):  # until the first pass has posted and the loop sleeps
        if signer.requests("POST"):
            break
        time.sleep(0.05)
    time.sleep(0.5)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 127
    assert time.monotonic() - sent < 10
    assert "interrupted by SIGTERM" in stderr or "TERM" in stderr


def test_a_held_lock_is_waited_out(client: Client, signer: FakeCaramel) -> None:
    client.file.parent.mkdir(parents=True, exist_ok=True)
    with client.file.open("a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        threading.Timer(1.0, fcntl.flock, (holder, fcntl.LOCK_UN)).start()
        sign_when_posted(signer)
        result = client.run("--wait", "--wait-interval", INTERVAL, timeout=120)
    assert result.returncode == 0, result.stderr


# --- the loop itself ---------------------------------------------------------------------


def cli_waits(status: int) -> bool:
    """What the command waits through: 69 (no signature yet) and 1 (the file locked)."""
    return status in (69, 1)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


@pytest.mark.in_process
@pytest.mark.parametrize(
    ("statuses", "limit", "expected", "passes"),
    [
        pytest.param([0], None, 0, 1, id="held-at-once"),
        pytest.param([69, 69, 0], None, 0, 3, id="waits-then-held"),
        pytest.param([1, 69, 0], None, 0, 3, id="locked-is-waited-out"),
        pytest.param([69, 127], None, 127, 2, id="error-ends-it"),
        pytest.param([69] * 100, 35.0, None, 5, id="limit-ends-it-with-none"),
    ],
)
def test_until_held(
    statuses: list[int], limit: float | None, expected: int | None, passes: int
) -> None:
    clock = FakeTime()
    remaining = iter(statuses)
    notes: list[str] = []
    status = waiting.until_held(
        lambda: next(remaining), still_waiting=cli_waits, interval=10.0, limit=limit,
        clock=lambda: clock.now,
        sleep=clock.sleep, note=notes.append, jitter=lambda: 0.0,
    )  # fmt: skip
    assert status == expected
    assert len(clock.pauses) == passes - 1
    assert all(0 < pause <= 10.0 for pause in clock.pauses)
    assert bool(notes) is (limit is not None)


@pytest.mark.in_process
def test_jitter_stays_within_a_fifth() -> None:
    clock = FakeTime()
    statuses = iter([69] * 200 + [0])
    waiting.until_held(
        lambda: next(statuses), still_waiting=cli_waits, interval=10.0, limit=None,
        clock=lambda: clock.now,
        sleep=clock.sleep, note=lambda _: None,
    )  # fmt: skip
    assert all(8.0 <= pause <= 12.0 for pause in clock.pauses)
    assert len(set(clock.pauses)) > 100  # spread, not one fixed pause


@pytest.mark.in_process
def test_every_error_class_gets_advice() -> None:
    for kind in (errors.NetworkError, errors.CACertificateError, errors.ServerAnswerError):
        line = waiting.for_administrator(kind("what failed"))
        assert line.startswith("what failed; the wait has ended: ")
        assert len(line.split(": ", 1)[1]) > 10
