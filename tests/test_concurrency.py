"""Many invocations on one combined file: exactly one works, the others exit 1 at once.

Every invocation is the real command in its own process. The one that wins the lock is held
inside the fake signer (a gate in ``signer.forced``) until every other invocation has ended,
so "the others ran while the winner held the lock" is a fact of the test, not a hope about
timing; the gate opens after a generous bound even if something goes wrong, so a broken lock
fails the assertions instead of hanging the suite.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.combined_check import parse_combined, temporaries
from tests.conftest import Client
from tests.fake_signer import FakeCaramel, Gate

pytestmark = pytest.mark.arm

INVOCATIONS = 32
LOSERS_END_WITHIN = 60.0  # seconds for 31 cold starts on a loaded 2-core machine
GATE_LIMIT = 90.0  # the gate opens by itself after this, whatever happens

# --- helpers -------------------------------------------------------------------------------


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return process.returncode, stderr


def assert_lock_line(stderr: str, path: Path) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    assert "lock" in lines[0].lower(), lines[0]
    assert str(path) in lines[0], lines[0]


@pytest.fixture
def gate(signer: FakeCaramel) -> Iterator[Gate]:
    gate = Gate(limit=GATE_LIMIT)
    signer.forced = gate
    try:
        yield gate
    finally:
        gate.opened.set()
        signer.forced = None


# --- 32 at once ----------------------------------------------------------------------------


def _round(client: Client, signer: FakeCaramel, gate: Gate) -> tuple[int, list[str]]:
    """Start 32 invocations; return the winner's status and the requests it made."""
    gate.reset()
    seen_before = len(signer.seen)
    processes = [client.start() for _ in range(INVOCATIONS)]
    try:
        deadline = time.monotonic() + LOSERS_END_WITHIN
        while time.monotonic() < deadline:
            running = [p for p in processes if p.poll() is None]
            if len(running) <= 1 or len(gate.arrived) > 1:
                break
            time.sleep(0.05)
        assert len(gate.arrived) <= 1, f"several invocations at the server: {gate.arrived}"
        running = [p for p in processes if p.poll() is None]
        # While the winner is still held inside the server, every other one has ended.
        assert len(running) == 1, f"{len(running)} invocations still running after the rest"
        assert gate.arrival.wait(30), "the winning invocation never reached the server"
        held_requests = list(gate.arrived)
    finally:
        gate.opened.set()
    results = [finish(p) for p in processes]
    winner = processes.index(running[0])
    for index, (status, stderr) in enumerate(results):
        if index != winner:
            assert status == 1, f"invocation {index}: status {status}, stderr {stderr!r}"
            assert_lock_line(stderr, client.file)
    winner_status, winner_stderr = results[winner]
    assert winner_stderr == "", winner_stderr
    assert len(held_requests) == 1, held_requests  # one invocation talked to the server
    requests = [f"{s.method} {s.path}" for s in signer.seen[seen_before:]]
    return winner_status, requests


@pytest.mark.slow
def test_32_concurrent_invocations_one_works_the_others_exit_1_each_round(
    client: Client, signer: FakeCaramel, gate: Gate
) -> None:
    # Round 1: no file. The winner makes the key and request and posts it: 69.
    status, requests = _round(client, signer, gate)
    assert status == 69
    assert [r.split()[0] for r in requests] == ["POST"], requests
    first = parse_combined(client.file.read_bytes())
    assert first.certificate is None
    assert temporaries(client.file) == []

    # Round 2: pending. The winner asks, the request still waits: 69, file untouched.
    status, requests = _round(client, signer, gate)
    assert status == 69
    assert [r.split()[0] for r in requests] == ["GET"], requests
    assert client.file.read_bytes() == first.data

    # Round 3: signed. The winner installs the certificate: 0, same key and request.
    issued = signer.sign()
    status, requests = _round(client, signer, gate)
    assert status == 0
    assert [r.split()[0] for r in requests] == ["GET"], requests
    third = parse_combined(client.file.read_bytes())
    assert third.key_modulus == first.key_modulus
    assert third.request_der == first.request_der
    assert third.certificate == issued
    assert temporaries(client.file) == []


# --- the lock across the atomic replacement ---------------------------------------------


def test_a_lock_held_by_another_process_on_the_file_means_exit_1(
    client: Client, signer: FakeCaramel
) -> None:
    assert client.run().returncode == 69
    before = client.file.read_bytes()
    seen_before = len(signer.seen)
    with client.file.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        started = time.monotonic()
        result = client.run()
        elapsed = time.monotonic() - started
    assert result.returncode == 1, result
    assert_lock_line(result.stderr, client.file)
    assert result.stdout == ""
    assert elapsed < 30, "exit 1 must not wait for the lock"
    assert client.file.read_bytes() == before
    assert len(signer.seen) == seen_before, "a locked-out invocation must not ask the server"
    # The lock released, the next invocation works again.
    assert client.run().returncode == 69


def test_the_lock_follows_the_file_across_atomic_replacement(
    client: Client, signer: FakeCaramel, gate: Gate
) -> None:
    gate.opened.set()  # let the set-up invocations through
    assert client.run().returncode == 69
    signer.sign()
    assert client.run().returncode == 0  # installs: a new inode at the path
    installed = parse_combined(client.file.read_bytes())
    installed_inode = client.file.stat().st_ino
    old_inode = client.file.open("rb")  # the inode that is about to be replaced
    try:
        # The CA rejects the request; the next invocation replaces the file with a new key
        # and request, then posts it, and is held in the server while it still holds the lock.
        signer.reject()
        gate.reset()
        gate.methods = ("POST",)
        slow = client.start()
        try:
            assert gate.arrival.wait(60), "the slow invocation never posted"
            assert slow.poll() is None
            replaced = client.file.stat().st_ino
            assert replaced != installed_inode, "the file was not replaced"
            fresh = parse_combined(client.file.read_bytes())
            assert fresh.key_modulus != installed.key_modulus
            assert fresh.certificate is None

            # The new inode at the path is already locked by the slow invocation.
            second = client.run("--timeout", "5")  # if it got in, it would wait at the gate
            assert second.returncode == 1, second
            assert_lock_line(second.stderr, client.file)
            with client.file.open("rb") as at_path, pytest.raises(BlockingIOError):
                fcntl.flock(at_path, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            gate.opened.set()
        status, stderr = finish(slow)
        assert status == 69, stderr
        assert client.file.stat().st_ino == replaced
        assert client.file.read_bytes() == fresh.data

        # A lock on the replaced inode is no lock on the combined file.
        fcntl.flock(old_inode, fcntl.LOCK_EX | fcntl.LOCK_NB)
        after = client.run()
        assert after.returncode == 69, after
        assert client.file.read_bytes() == fresh.data
    finally:
        old_inode.close()
    assert temporaries(client.file) == []
    assert os.stat(client.file).st_mode & 0o777 == 0o600
