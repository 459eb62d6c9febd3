"""SIGKILL at random moments: the combined file is old or new and complete, the key kept.

A SIGKILL cannot be handled, so it stands in for a crash or a power cut. Each trial starts
the real command in its own session, kills the whole process group (a one-file frozen
binary is a launcher and a child) at a moment drawn uniformly from [0, 1.2 x the duration of
a full run], inspects the file, then runs one normal invocation that must succeed and clear
whatever the killed one left. The full-run duration is re-measured from the recovery runs
that did the whole work again, so the window follows the machine's load.

Random moments rarely land inside the write itself (well under a millisecond on a fast disk),
so a last test pins down what makes every moment safe: the path is only ever replaced by a
rename, never written in place (watched with inotify, so it holds for a frozen binary too).

The seed is printed and recorded (``-rP`` or ``-s`` shows it with the outcome counts); set
``CARAMEL_KILL_SEED`` to replay a run's kill moments.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import os
import random
import secrets
import signal
import statistics
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testbed.combined_check import Combined, parse_combined, temporaries
from tests.conftest import Client
from tests.fake_signer import FakeCaramel

KEY_TRIALS = 25
INSTALL_TRIALS = 30
WINDOW_FACTOR = 1.2
POST_DELAY = 0.1  # the signer's answer time while enrolling: the file is written before it

# --- helpers -------------------------------------------------------------------------------


def mode_of(path: Path) -> int:
    return os.stat(path, follow_symlinks=False).st_mode & 0o777


@pytest.fixture
def seed(record_property: Callable[[str, object], None]) -> int:
    value = int(os.environ.get("CARAMEL_KILL_SEED") or secrets.randbits(32))
    print(f"CARAMEL_KILL_SEED={value}")
    record_property("seed", value)
    return value


def timed_run(client: Client) -> tuple[int, float]:
    """One normal invocation: its status and wall time (as a killed trial measures it)."""
    started = time.monotonic()
    process = client.start(stdout=subprocess.DEVNULL)
    _, stderr = process.communicate(timeout=60)
    elapsed = time.monotonic() - started
    assert stderr == "", stderr
    return process.returncode, elapsed


def killed_run(client: Client, after: float, scratch: Path) -> int:
    """Start an invocation and SIGKILL its process group ``after`` seconds later.

    ``scratch`` is its ``$TMPDIR``: a killed one-file launcher cannot remove what it unpacked
    (25 MB a start), which would otherwise pile up in the machine's /tmp at every test run."""
    scratch.mkdir(exist_ok=True)
    process = client.start(
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        new_session=True,
        env={"TMPDIR": str(scratch)},
    )
    time.sleep(after)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    status = process.wait(timeout=60)
    # A launcher's child is in the same group: wait until the whole group is gone.
    gone_by = time.monotonic() + 5
    while time.monotonic() < gone_by:
        try:
            os.killpg(process.pid, 0)
        except (ProcessLookupError, PermissionError):
            break
        time.sleep(0.01)
    return status


def check_leftovers(path: Path) -> int:
    """Temporary files a kill left: never readable by others. Returns how many."""
    left = temporaries(path)
    for temporary in left:
        assert mode_of(temporary) == 0o600, f"{temporary.name}: mode {mode_of(temporary):o}"
    return len(left)


def report(
    record_property: Callable[[str, object], None],
    title: str,
    seed: int,
    window: float,
    outcomes: collections.Counter[str],
) -> None:
    summary = ", ".join(f"{name}={count}" for name, count in sorted(outcomes.items()))
    line = f"{title}: seed={seed} last window=[0, {window:.3f}] s: {summary}"
    print(line)
    record_property(title, summary)


# --- killed while making the key ------------------------------------------------------------


@pytest.mark.slow
def test_kill_while_creating_the_key_leaves_no_file_or_a_complete_one(
    client: Client,
    signer: FakeCaramel,
    tmp_path: Path,
    seed: int,
    record_property: Callable[[str, object], None],
) -> None:
    rng = random.Random(seed)
    signer.delay = POST_DELAY
    durations = []
    for warm_up in range(3):
        device = dataclasses.replace(client, file=tmp_path / f"measure-{warm_up}" / "client.pem")
        status, elapsed = timed_run(device)
        assert status == 69
        durations.append(elapsed)

    outcomes: collections.Counter[str] = collections.Counter()
    window = 0.0
    for trial in range(KEY_TRIALS):
        window = WINDOW_FACTOR * statistics.median(durations[-5:])
        moment = rng.uniform(0, window)
        device = dataclasses.replace(client, file=tmp_path / f"trial-{trial}" / "client.pem")
        status = killed_run(device, moment, tmp_path / "launcher-tmp")
        context = f"trial {trial}, kill at {moment:.3f} s (seed {seed})"
        killed = status == -signal.SIGKILL
        assert killed or status == 69, f"{context}: status {status}"
        if check_leftovers(device.file):
            outcomes["temporary left"] += 1

        before: Combined | None = None
        if not device.file.exists():
            outcome = "none"
        elif device.file.stat().st_size == 0:
            outcome = "empty"
            assert mode_of(device.file) == 0o600, context
        else:
            before = parse_combined(device.file.read_bytes())
            assert before.certificate is None, context
            assert mode_of(device.file) == 0o600, context
            outcome = "new"
        outcomes[f"{outcome} ({'killed' if killed else 'completed'})"] += 1

        status, elapsed = timed_run(device)
        assert status == 69, f"{context}: the next invocation ended {status}"
        after = parse_combined(device.file.read_bytes())
        if before is not None:
            assert after.key_modulus == before.key_modulus, f"{context}: the key was lost"
        else:
            durations.append(elapsed)  # the recovery did the whole run again
        assert temporaries(device.file) == [], context

    report(record_property, "kill while creating the key", seed, window, outcomes)
    # The kills spanned the window: some before the file was written, some after.
    assert outcomes["none (killed)"] + outcomes["empty (killed)"] >= 1, outcomes
    assert outcomes["new (killed)"] >= 1, outcomes


# --- killed while installing the certificate -----------------------------------------------


def _restore(path: Path, data: bytes) -> None:
    staged = path.with_name("restore.tmp")
    staged.write_bytes(data)
    staged.chmod(0o600)
    os.replace(staged, path)


@pytest.mark.slow
def test_kill_while_installing_the_certificate_leaves_old_or_new_and_keeps_the_key(
    client: Client,
    signer: FakeCaramel,
    tmp_path: Path,
    seed: int,
    record_property: Callable[[str, object], None],
) -> None:
    rng = random.Random(seed)
    assert client.run().returncode == 69
    pending = parse_combined(client.file.read_bytes())
    issued = signer.sign()

    durations = []
    for _ in range(3):
        _restore(client.file, pending.data)
        status, elapsed = timed_run(client)
        assert status == 0
        durations.append(elapsed)

    outcomes: collections.Counter[str] = collections.Counter()
    window = 0.0
    for trial in range(INSTALL_TRIALS):
        window = WINDOW_FACTOR * statistics.median(durations[-5:])
        moment = rng.uniform(0, window)
        _restore(client.file, pending.data)
        status = killed_run(client, moment, tmp_path / "launcher-tmp")
        context = f"trial {trial}, kill at {moment:.3f} s (seed {seed})"
        killed = status == -signal.SIGKILL
        assert killed or status == 0, f"{context}: status {status}"
        if check_leftovers(client.file):
            outcomes["temporary left"] += 1

        assert client.file.exists(), f"{context}: the file is gone"
        assert mode_of(client.file) == 0o600, context
        found = parse_combined(client.file.read_bytes())
        assert found.key_modulus == pending.key_modulus, f"{context}: the key was lost"
        assert found.request_der == pending.request_der, context
        if found.data == pending.data:
            outcome = "old"
        else:
            assert found.certificate == issued, f"{context}: an unexpected certificate"
            outcome = "new"
        outcomes[f"{outcome} ({'killed' if killed else 'completed'})"] += 1

        status, elapsed = timed_run(client)
        assert status == 0, f"{context}: the next invocation ended {status}"
        after = parse_combined(client.file.read_bytes())
        assert after.key_modulus == pending.key_modulus, context
        assert after.certificate == issued, context
        if outcome == "old":
            durations.append(elapsed)  # the recovery installed: a whole run
        assert temporaries(client.file) == [], context

    report(record_property, "kill while installing", seed, window, outcomes)
    # The kills spanned the window: some before the install, some after it.
    assert outcomes["old (killed)"] >= 1, outcomes
    assert outcomes["new (killed)"] + outcomes["new (completed)"] >= 1, outcomes


# --- what makes every moment safe: the path is never written in place ----------------------

_IN_MODIFY = 0x00000002
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_Q_OVERFLOW = 0x00004000


def _checked(result: int, call: str) -> int:
    """A failed inotify call is an error, not a skip: inotify is part of every Linux this
    suite runs on, and skipping would quietly drop the only check that holds for every
    kill moment (a full instance table, say, must show up)."""
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{call}: {os.strerror(error)}")
    return result


@contextlib.contextmanager
def watched(directory: Path) -> Iterator[list[tuple[str, int]]]:
    """Record (name, mask) of every create, modify and rename-into in ``directory``."""
    libc = ctypes.CDLL(None, use_errno=True)
    descriptor = _checked(libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC), "inotify_init1")
    events: list[tuple[str, int]] = []
    try:
        mask = _IN_MODIFY | _IN_MOVED_TO | _IN_CREATE
        _checked(libc.inotify_add_watch(descriptor, os.fsencode(directory), mask), "watch")
        yield events
        while True:
            try:
                buffer = os.read(descriptor, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(buffer):
                _, event_mask, _, length = struct.unpack_from("iIII", buffer, offset)
                name = buffer[offset + 16 : offset + 16 + length].rstrip(b"\0")
                assert not event_mask & _IN_Q_OVERFLOW, "inotify queue overflowed"
                events.append((os.fsdecode(name), event_mask))
                offset += 16 + length
    finally:
        os.close(descriptor)


@pytest.mark.parametrize("stage", ["creating the key", "installing the certificate"])
def test_the_file_is_replaced_by_rename_never_written_in_place(
    client: Client, signer: FakeCaramel, stage: str
) -> None:
    client.file.parent.mkdir(parents=True, exist_ok=True)
    if stage == "installing the certificate":
        assert client.run().returncode == 69
        signer.sign()
    with watched(client.file.parent) as events:
        status, _ = timed_run(client)
    assert status == (69 if stage == "creating the key" else 0)
    name = client.file.name
    renamed = [event for event in events if event[0] == name and event[1] & _IN_MOVED_TO]
    assert renamed, f"the new file was not renamed into place: {events}"
    in_place = [event for event in events if event[0] == name and event[1] & _IN_MODIFY]
    assert in_place == [], f"{name} was written in place, a kill could tear it: {events}"
    parse_combined(client.file.read_bytes())
