"""reach and the deadline in-process: the address race, and whose ALRM it is.

The process-level cases are in test_name_resolution.py and test_signals.py; these pin the
pieces down on loopback with real sockets: the order of the race, an attempt that never
answers, all refused, and an ALRM sent by someone else while the deadline's timer runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from caramel_embedded import reach
from caramel_embedded.deadline import Deadline, DeadlineExpired
from caramel_embedded.errors import InterruptedBySignal
from tests.test_name_resolution import black_hole

pytestmark = pytest.mark.in_process

V6 = socket.AF_INET6
V4 = socket.AF_INET


def address(family: int, host: str, port: int) -> reach.Address:
    return reach.Address(family, (host, port, 0, 0) if family == V6 else (host, port))


@contextlib.contextmanager
def listening_v4() -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_families_alternate_from_the_first_ones() -> None:
    given = [
        address(V6, "::1", 1),
        address(V6, "::2", 1),
        address(V4, "127.0.0.1", 1),
        address(V4, "127.0.0.2", 1),
        address(V4, "127.0.0.3", 1),
    ]
    hosts = [a.sockaddr[0] for a in reach._interleaved(given)]
    assert hosts == ["::1", "127.0.0.1", "::2", "127.0.0.2", "127.0.0.3"]


def test_an_address_literal_is_used_as_it_is_without_a_lookup_thread() -> None:
    before = threading.active_count()
    assert reach.resolve("::1", 443, 1.0) == [address(V6, "::1", 443)]
    assert reach.resolve("127.0.0.1", 443, 1.0) == [address(V4, "127.0.0.1", 443)]
    assert threading.active_count() == before


def test_a_first_address_that_never_answers_costs_only_the_attempt_delay() -> None:
    with listening_v4() as port, black_hole(port):
        started = time.monotonic()
        connected = reach.connect_first(
            [address(V6, "::1", port), address(V4, "127.0.0.1", port)], timeout=10.0
        )
        took = time.monotonic() - started
        with connected:
            assert connected.getpeername() == ("127.0.0.1", port)
            assert connected.gettimeout() == 10.0
    assert took < 5.0, f"took {took:.2f} s: the first address used up the budget"


def test_every_address_refused_raises_the_last_refusal() -> None:
    with listening_v4() as port:
        pass  # closed again: nothing listens on it now
    with pytest.raises(ConnectionRefusedError):
        reach.connect_first([address(V6, "::1", port), address(V4, "127.0.0.1", port)], 5.0)


def test_no_address_answering_ends_at_the_timeout() -> None:
    with listening_v4() as port, black_hole(port):
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            reach.connect_first([address(V6, "::1", port)], timeout=0.5)
        took = time.monotonic() - started
    assert 0.45 <= took < 5.0, took


# --- the deadline's ALRM and someone else's ------------------------------------------------


def test_the_deadlines_own_alarm_is_a_timeout() -> None:
    with pytest.raises(DeadlineExpired), Deadline(0.2).enforced():
        time.sleep(5)


def test_a_stray_alarm_while_the_timer_runs_is_an_interruption_not_a_timeout() -> None:
    def stray_alarm_during_the_deadline() -> None:
        with Deadline(30).enforced():
            os.kill(os.getpid(), signal.SIGALRM)
            time.sleep(5)

    previous = signal.signal(signal.SIGALRM, signal.SIG_DFL)
    try:
        with pytest.raises(InterruptedBySignal, match="ALRM"):
            stray_alarm_during_the_deadline()
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_stray_alarm_goes_to_the_handler_that_was_there_before() -> None:
    seen: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        with Deadline(30).enforced():
            os.kill(os.getpid(), signal.SIGALRM)
            time.sleep(0.1)  # the handler runs in the main thread, between bytecodes
        assert signal.getsignal(signal.SIGALRM) is handler  # put back after the body
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert seen == [signal.SIGALRM]
