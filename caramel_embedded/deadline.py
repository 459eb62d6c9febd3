"""One budget for an invocation's network work: every lookup, connection, handshake and read.

``--timeout`` bounds all of it together, not each read, so a server that trickles one byte
a second cannot stretch a run. Two ways to keep it: ``Deadline`` with a real-time interval
timer (the command: it owns the process and its main thread, and an ALRM interrupts any
blocking call), and ``WatchedDeadline`` with a timer thread that shuts the connection's
socket down (the library: any thread, no process-wide state). Only network time is
charged: making a key is not network work.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

from caramel_embedded.errors import InterruptedBySignal, NetworkError


class DeadlineExpired(NetworkError):
    """The invocation's network time is used up."""


class Deadline:
    """One budget for every connection, handshake, read and the POST of an invocation.

    Only time spent talking to the server is charged: making a 4096-bit key after a
    rejection can take seconds on a small board and is not network work.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._spent = 0.0

    def remaining(self) -> float:
        left = self.seconds - self._spent
        if left <= 0:
            raise self.expired()
        return left

    def expired(self) -> DeadlineExpired:
        return DeadlineExpired(f"no complete answer from the server within {self.seconds:g} s")

    def watch(self, connection: socket.socket) -> None:
        """A new connection to the server; the alarm needs no handle on it."""

    @contextlib.contextmanager
    def enforced(self) -> Iterator[float]:
        """Run the body with SIGALRM armed for the time that is left, and charge it.

        An ALRM is ours only once our one-shot timer has run out (the kernel disarms it as
        it fires); one that arrives while the timer still runs was sent by someone else and
        is answered like any other interrupting signal, never as a timeout.
        """
        left = self.remaining()
        armed = False
        previous = signal.getsignal(signal.SIGALRM)  # bound before expire can ever run

        def expire(signum: int, frame: FrameType | None) -> None:
            if armed and signal.getitimer(signal.ITIMER_REAL)[0] == 0:
                raise self.expired()
            _stray_alarm(previous, signum, frame)

        started = self._clock()
        signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, left)
        armed = True
        try:
            yield left
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if signal.getsignal(signal.SIGALRM) is expire:  # not since ignored by a handler
                signal.signal(signal.SIGALRM, previous)
            self._spent += self._clock() - started


class WatchedDeadline(Deadline):
    """The same budget, kept without signals, for the library's callers (any thread).

    No handler and no interval timer (they belong to the process, and signals reach only
    the main thread): a timer thread shuts down the connection's socket when the time is
    up, which ends any read or handshake blocked on it, even against a server that
    trickles one byte at a time.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(seconds, clock)
        self._descriptors: list[int] = []

    def watch(self, connection: socket.socket) -> None:
        """Remember the descriptor: TLS wraps the socket in a new object (the one given here
        is detached from it), but the descriptor stays the connection's."""
        self._descriptors.append(connection.fileno())

    @contextlib.contextmanager
    def enforced(self) -> Iterator[float]:
        left = self.remaining()
        fired = threading.Event()

        def expire() -> None:
            fired.set()
            for descriptor in list(self._descriptors):
                # A descriptor closed since has nothing left to stop: OSError, suppressed.
                with (
                    contextlib.suppress(OSError),
                    socket.socket(fileno=os.dup(descriptor)) as connection,
                ):
                    connection.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(left, expire)
        timer.daemon = True
        started = self._clock()
        timer.start()
        try:
            yield left
        except Exception:
            if fired.is_set():
                raise self.expired() from None
            raise
        else:
            if fired.is_set():  # an answer cut short by the shutdown is no answer
                raise self.expired()
        finally:
            timer.cancel()
            self._spent += self._clock() - started


def _stray_alarm(previous: object, signum: int, frame: FrameType | None) -> None:
    """Someone else's ALRM: what was in place before decides (the CLI's handler ends the run)."""
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        raise InterruptedBySignal("SIGALRM")
