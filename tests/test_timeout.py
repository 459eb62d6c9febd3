"""``--timeout`` bounds the whole invocation's network work, not each read.

Servers that never answer, that trickle, or that answer each request in time but not both:
every one ends with 127 and one line saying no answer came within the timeout, soon after
the deadline, the combined file untouched. Wall-time bounds are generous (deadline + 10 s)
so a loaded machine cannot make them flake; the lower bounds only say the client did not
give up before its deadline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from werkzeug import Request, Response

from tests.conftest import Client
from tests.fake_signer import FakeCaramel

SLACK = 10.0  # seconds beyond the deadline that a loaded machine may need to end the process
PROCESS_LIMIT = 30.0  # the test's own bound on one invocation
KEY_ATTEMPTS = 8  # runs until one 4096-bit key outlasts the time left (about half do)


def assert_deadline_line(stderr: str, seconds: int) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    line = lines[0]
    assert re.search(r"within|time[d ]?out", line, re.IGNORECASE), line
    assert re.search(rf"\b{seconds}(\.0+)?\s*s", line), f"the line should name {seconds} s: {line}"


def timed(client: Client, *extra: str) -> tuple[int, str, float]:
    started = time.monotonic()
    result = client.run(*extra, timeout=PROCESS_LIMIT)
    return result.returncode, result.stderr, time.monotonic() - started


@pytest.fixture
def pending(client: Client) -> bytes:
    """A combined file whose request the signer holds, not signed yet."""
    assert client.run().returncode == 69
    return client.file.read_bytes()


# --- servers that never answer --------------------------------------------------------------


@contextlib.contextmanager
def silent_server(accepting: bool) -> Iterator[str]:
    """A TCP listener that never sends a byte; ``accepting`` also reads what comes in."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)
            connection.settimeout(0.5)
            with contextlib.suppress(OSError):
                connection.recv(65536)  # take the ClientHello, answer nothing

    thread = threading.Thread(target=serve, daemon=True)
    if accepting:
        thread.start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        if accepting:
            thread.join(5)
        for connection in held:
            connection.close()
        listener.close()


@pytest.mark.parametrize("accepting", [False, True], ids=["listen-only", "accepts-and-reads"])
def test_server_that_never_answers_ends_with_127_at_the_deadline(
    client: Client, pending: bytes, accepting: bool
) -> None:
    with silent_server(accepting) as url:
        silent = dataclasses.replace(client, server=url)
        status, stderr, took = timed(silent, "--timeout", "2")
    assert status == 127, stderr
    assert_deadline_line(stderr, 2)
    assert took >= 1.9, f"gave up after {took:.2f} s, before its 2 s deadline"
    assert took < 2 + SLACK, f"took {took:.1f} s with --timeout 2"
    assert client.file.read_bytes() == pending


# --- a server that trickles -----------------------------------------------------------------


def test_body_trickled_one_byte_a_second_is_cut_at_the_deadline(
    client: Client, signer: FakeCaramel, pending: bytes
) -> None:
    stop = threading.Event()
    sent: list[float] = []

    def trickle() -> Iterator[bytes]:
        for _ in range(600):
            if stop.is_set():
                return
            sent.append(time.monotonic())
            yield b"-"
            time.sleep(1.0)

    def forced(request: Request) -> Response | None:
        if request.method != "GET":
            return None
        return Response(trickle(), 200, content_type="application/octet-stream")

    signer.forced = forced
    try:
        status, stderr, took = timed(client, "--timeout", "3")
    finally:
        stop.set()
        signer.forced = None
    assert status == 127, stderr
    assert_deadline_line(stderr, 3)
    assert len(sent) >= 2, "the server never got to trickle"  # each read made progress
    assert took >= 2.9, f"gave up after {took:.2f} s, before its 3 s deadline"
    assert took < 3 + SLACK, f"took {took:.1f} s with --timeout 3: the bound is per read"
    assert client.file.read_bytes() == pending


# --- two answers, each in time, together too late -------------------------------------------


@pytest.mark.slow
def test_deadline_covers_the_get_and_the_post_together(
    client: Client, signer: FakeCaramel, pending: bytes
) -> None:
    # Control: one answer after 2.5 s is well within --timeout 4.
    signer.delay = 2.5
    status, stderr, _ = timed(client, "--timeout", "4")
    assert status == 69, stderr

    # The signer forgets the request: GET answers 404 after 2.5 s, the POST 2.5 s later.
    signer.entries.clear()
    seen_before = len(signer.seen)
    status, stderr, took = timed(client, "--timeout", "4")
    assert status == 127, stderr
    assert_deadline_line(stderr, 4)
    methods = [s.method for s in signer.seen[seen_before:]]
    assert methods == ["GET", "POST"], methods  # each request on its own was in time
    assert took < 4 + SLACK, f"took {took:.1f} s with --timeout 4"
    assert client.file.read_bytes() == pending


def test_making_a_new_key_is_not_charged_to_the_network_timeout(
    client: Client, signer: FakeCaramel
) -> None:
    """After a rejection the 4096-bit key takes longer than the whole --timeout; that is fine.

    The GET is slowed to 0.3 s of a 0.6 s budget and the POST answers at once: only talking
    to the server is charged. A 4096-bit key takes anywhere from 0.05 s to over a second, and
    a run whose key came in under the time left proves nothing (it passes if the key is
    charged too), so the run is repeated, after a new rejection, until the POST arrived more
    than the whole budget after the GET did.
    """
    assert client.run().returncode == 69
    arrived: dict[str, float] = {}

    def slow_get(request: Request) -> Response | None:
        arrived[request.method] = time.monotonic()
        if request.method == "GET":
            time.sleep(0.3)
        return None

    signer.forced = slow_get
    for _ in range(KEY_ATTEMPTS):
        signer.reject(next(reversed(signer.entries)))  # the newest: the one in the file
        posts_before = len(signer.requests("POST"))
        returncode, stderr, _ = timed(client, "--key-bits", "4096", "--timeout", "0.6")
        assert returncode == 69, stderr
        assert "posted its request, waiting for a signature" in stderr
        assert len(signer.requests("POST")) == posts_before + 1
        if arrived["POST"] - arrived["GET"] > 0.6:
            return
    pytest.fail(f"in {KEY_ATTEMPTS} runs no 4096-bit key outlasted the 0.3 s left")
