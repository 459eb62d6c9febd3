"""Waiting for a signature: one-shot passes, repeated until a certificate is held.

One loop (``until_held``) serves the command's ``--wait`` and the library's ``wait=``;
each hands in its own pass, clock and sleep. For the command, on servers with
administrators: a systemd service makes the key and request, then keeps asking until the
CA has signed, and only then succeeds, so the services ordered after it start with a
certificate. Each pass is the command's own one-shot (its lock, its ``--timeout``);
between passes the lock is not held and the process only sleeps. An error ends the wait
at once with a line that says what to do (``for_administrator``); a signal ends it at
once. The library's clock and sleep are plain ``time``: no signal, no interval timer, no
file, so it stays safe in threads.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from caramel_embedded import errors

_JITTER = 0.2  # up to a fifth either way: a fleet restarted at once spreads out

Ending = TypeVar("Ending")


def until_held(
    one_pass: Callable[[], Ending],
    *,
    still_waiting: Callable[[Ending], bool],
    interval: float,
    limit: float | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    note: Callable[[str], None],
    jitter: Callable[[], float] = lambda: random.uniform(-_JITTER, _JITTER),  # noqa: S311
) -> Ending | None:
    """Run passes while ``still_waiting`` says so of their ending (the request waits, the
    file is locked), ``interval`` seconds apart give or take a fifth; the last pass's
    ending, or None once ``limit`` seconds are over. What the endings mean to the caller
    is the face's business (``cli``, ``library``)."""
    give_up_at = None if limit is None else clock() + limit
    tries = 1
    ending = one_pass()
    while still_waiting(ending):
        pause = interval * (1 + jitter())
        if give_up_at is not None:
            left = give_up_at - clock()
            if left <= 0:
                note(f"still waiting for a signature after {limit:g} s ({tries} tries)")
                return None
            pause = min(pause, left)
        sleep(pause)
        tries += 1
        ending = one_pass()
    return ending


_ADVICE: tuple[tuple[type[errors.CaramelError], str], ...] = (
    (errors.UsageError, "correct the command line or the environment file, then restart"),
    (errors.ClientIdError, "give CLIENT_ID or another --client-id-from, then restart"),
    (errors.CACertificateError, "install the fleet's CA certificate (--ca-cert), then restart"),
    (errors.ClockNotSetError, "order the service after time-sync.target, then restart"),
    (errors.CombinedFileError, "check the combined file's path and its directory, then restart"),
    (
        errors.NetworkError,
        "check SERVER, the network, the firewall and that the Caramel server runs; the "
        "service may be restarted at any time",
    ),
    (
        errors.ServerAnswerError,
        "the Caramel server refused: see its log and its administrator, then restart",
    ),
    (
        errors.CertificateCheckError,
        "the server sent a certificate this device must not use: tell the CA's administrator",
    ),
)


def for_administrator(error: errors.CaramelError) -> str:
    """The error's line, followed by what an administrator can do about it."""
    for kind, advice in _ADVICE:
        if isinstance(error, kind):
            return f"{error}; the wait has ended: {advice}"
    return f"{error}; the wait has ended"
