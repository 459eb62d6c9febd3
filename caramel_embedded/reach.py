"""Reaching the server inside the deadline: its name looked up, its addresses raced.

A name is looked up by the C library, which waits by its own timeouts (``resolv.conf``:
5 s, twice, per name server) and meanwhile never lets Python run a signal handler: neither
the deadline's alarm nor a TERM could end the run. So the lookup runs in a daemon thread
that takes no signals, while the main thread waits for it with the time that is left and
stays the one that every signal interrupts; a lookup still blocked when the run ends is
abandoned with its thread. An address written as such (``192.0.2.7``, ``[2001:db8::7]``)
needs no lookup and no thread.

The addresses are then tried as RFC 8305 ("happy eyeballs") says: the first at once, the
next as soon as the previous one failed or has not connected within ``ATTEMPT_DELAY``,
families alternating, every attempt kept until one connects, all inside the one deadline.
A first address that never answers (an IPv6 route that drops everything) costs a quarter
of a second, not the whole ``--timeout``.
"""

from __future__ import annotations

import errno
import itertools
import os
import selectors
import signal
import socket
import threading
import time
from collections.abc import Iterable, Sequence

from caramel_embedded.record import Record

ATTEMPT_DELAY = 0.25  # RFC 8305's recommended "Connection Attempt Delay"

SocketOption = tuple[int, int, int | bytes]
_Answer = tuple[
    socket.AddressFamily,
    socket.SocketKind,
    int,
    str,
    tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes],
]


class Address(Record):
    """One way to reach the server: what ``socket()`` and ``connect()`` take."""

    family: int
    sockaddr: tuple[str, int] | tuple[str, int, int, int]


class LookupTimeout(Exception):
    """The name server did not answer within the time that was left."""


def resolve(host: str, port: int, within: float) -> list[Address]:
    """The addresses of ``host``; raises ``OSError`` or ``LookupTimeout`` after ``within`` s."""
    try:
        return _addresses(
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        )
    except socket.gaierror:
        pass  # a name, not an address: ask the resolver
    return _addresses(_lookup_in_thread(host, port, within))


def _addresses(answers: Sequence[_Answer]) -> list[Address]:
    found: list[Address] = []
    for family, kind, _, _, sockaddr in answers:
        if kind != socket.SOCK_STREAM or family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = Address(family, sockaddr)  # type: ignore[arg-type]  # an IP's, not AF_UNIX
        if address not in found:
            found.append(address)
    if not found:
        raise OSError("no IPv4 or IPv6 address")
    return found


def _lookup_in_thread(host: str, port: int, within: float) -> list[_Answer]:
    outcome: list[object] = []

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as error:
            outcome.append(error)

    thread = threading.Thread(target=lookup, name="getaddrinfo", daemon=True)
    _start_deaf_to_signals(thread)
    thread.join(within)
    if not outcome:
        raise LookupTimeout(host)
    if isinstance(outcome[0], OSError):
        raise outcome[0]
    return outcome[0]  # type: ignore[return-value]


def _start_deaf_to_signals(thread: threading.Thread) -> None:
    """Start ``thread`` with every signal blocked, so the kernel delivers each to us.

    A signal delivered to the lookup's thread would not wake the main thread's wait, and
    its handler would run only when the lookup ends. The thread takes the signal mask it
    is started with; the main thread's own mask is put back at once.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def connect_first(
    addresses: Sequence[Address], timeout: float, options: Iterable[SocketOption] = ()
) -> socket.socket:
    """The first of ``addresses`` to connect, with ``timeout`` set on it for what follows.

    Raises ``TimeoutError`` when none connected within ``timeout``, or the last attempt's
    ``OSError`` when every one of them failed.
    """
    waiting = list(_interleaved(addresses))
    options = list(options)
    deadline = time.monotonic() + timeout
    last_error: OSError = OSError("no address to connect to")
    with selectors.DefaultSelector() as attempts:
        try:
            while waiting or attempts.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no address connected within {timeout:g} s")
                if waiting:
                    try:
                        attempts.register(
                            _start_attempt(waiting.pop(0), options), selectors.EVENT_WRITE
                        )
                    except OSError as refused:
                        last_error = refused
                        continue  # failed at once (no route, no IPv6): the next one now
                pause = min(left, ATTEMPT_DELAY) if waiting else left
                for key, _ in attempts.select(pause):
                    attempt: socket.socket = key.fileobj  # type: ignore[assignment]
                    attempts.unregister(attempt)
                    failure = attempt.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if failure == 0:
                        attempt.settimeout(timeout)
                        return attempt
                    attempt.close()
                    last_error = OSError(failure, os.strerror(failure))
        finally:
            for key in list(attempts.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
    raise last_error


def _start_attempt(address: Address, options: Sequence[SocketOption]) -> socket.socket:
    attempt = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        for level, name, value in options:
            attempt.setsockopt(level, name, value)
        attempt.setblocking(False)
        started = attempt.connect_ex(address.sockaddr)
        if started not in (0, errno.EINPROGRESS):
            raise OSError(started, os.strerror(started))
    except BaseException:
        attempt.close()
        raise
    return attempt


def _interleaved(addresses: Sequence[Address]) -> list[Address]:
    """The resolver's order, families alternating from the first one's (RFC 8305 4.)."""
    if not addresses:
        return []
    first = [a for a in addresses if a.family == addresses[0].family]
    other = [a for a in addresses if a.family != addresses[0].family]
    pairs = itertools.zip_longest(first, other)
    return [address for pair in pairs for address in pair if address is not None]
