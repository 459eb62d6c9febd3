"""The library face: ``refresh()`` on bytes, for apps that keep their key in a key-chain.

The same core as the command (``enrollment``: the same decisions, checks and errors), with
what the command does around it left out: no file, no lock, no signal handler, no interval
timer, no exit number, no logging handler. What is held comes in as ``Credentials`` and
goes out as ``Credentials``; the caller stores the bytes where it keeps secrets. Nothing is
ever written to disk: the client certificate reaches ``ssl`` through a memory file.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from datetime import UTC, datetime

from caramel_embedded import client_id as client_ids
from caramel_embedded import pem, server_address, trust, waiting
from caramel_embedded.enrollment import Device, Pass, Server
from caramel_embedded.errors import CaramelError, UsageError
from caramel_embedded.limits import (
    DEFAULT_HINT_LIMIT,
    DEFAULT_KEY_BITS,
    KEY_SIZES,
    MAX_TIMEOUT,
    key_sizes_text,
)
from caramel_embedded.record import Record
from caramel_embedded.state import CorruptFileError, LocalState, ProvisionedKey, parse

_MIN_POLL, _MAX_POLL = 0.5, 15.0  # seconds between two asks while waiting


class Status(enum.Enum):
    """How ``refresh`` ended: a certificate is held (new or still current), or not yet."""

    INSTALLED = "installed"  # a new certificate arrived in this call
    CURRENT = "current"  # the held certificate is still the server's
    WAITING = "waiting"  # the request waits for a signature (posted, pending or reposted)


class Credentials:
    """A key, its request and, once issued, its certificate: the combined file's layout.

    Immutable. ``to_bytes()`` gives the layout back (PEM: key, [certificate,] request) for
    the caller's key-chain; ``from_bytes()`` takes it again, or a PEM key alone (a key
    provisioned at manufacture, which keeps its key).
    """

    __slots__ = ("_held",)

    def __init__(self, held: LocalState | ProvisionedKey) -> None:
        self._held = held

    @classmethod
    def from_bytes(cls, blob: bytes) -> Credentials:
        """Parse bytes written by ``to_bytes()`` (or the command); ``CaramelError`` if they are
        anything else."""
        try:
            held = parse(bytes(blob))
        except CorruptFileError as error:
            raise CaramelError(f"credentials: {error}") from None
        if held is None:
            raise CaramelError("credentials: empty; pass None to make a key")
        if held.key_label != pem.PRIVATE_KEY:
            raise CaramelError(
                "credentials: the key is a TPM's (TSS2 PRIVATE KEY); the library holds keys "
                "in memory only: use the command's --key-store tpm2"
            )
        if isinstance(held, LocalState) and held.certificate is not None:
            # The validator sent back as If-Modified-Since: the layout keeps no Last-Modified,
            # and the SPEC's fallback is the certificate's notBefore.
            held = held.replace(file_mtime=int(held.certificate.not_before.timestamp()))
        return cls(held)

    def to_bytes(self) -> bytes:
        return self.key_pem + (self.certificate_pem or b"") + (self.request_pem or b"")

    @property
    def key_pem(self) -> bytes:
        return pem.encode(pem.PRIVATE_KEY, self._held.key_der)

    @property
    def request_pem(self) -> bytes | None:
        """The request, as posted; None only for a provisioned key not yet refreshed."""
        return self._held.request_pem if isinstance(self._held, LocalState) else None

    @property
    def certificate_pem(self) -> bytes | None:
        """The installed certificate, or None until one is installed."""
        if isinstance(self._held, ProvisionedKey) or self._held.certificate_der is None:
            return None
        return pem.encode(pem.CERTIFICATE, self._held.certificate_der)

    @property
    def not_after(self) -> datetime | None:
        """When the installed certificate expires (UTC), or None."""
        if isinstance(self._held, ProvisionedKey) or self._held.certificate is None:
            return None
        return self._held.certificate.not_after

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and other.to_bytes() == self.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:  # never the key
        return f"<Credentials request={self.request_pem is not None} until={self.not_after}>"


class Result(Record):
    """What ``refresh`` returns: the status, and the credentials to keep from now on.

    ``fresh_until`` (UTC), for apps that schedule themselves: the server's hint that nothing
    new is expected before then (``Cache-Control: max-age`` on the answer that left a
    certificate held), capped as the command caps it (24 h, a quarter of the certificate's
    remaining validity); None without a hint. ``refresh`` itself never skips a check."""

    status: Status
    credentials: Credentials
    fresh_until: datetime | None = None


def refresh(
    held: Credentials | None,
    *,
    server: str,
    client_id: str,
    ca_pem: bytes,
    timeout: float = 30.0,
    wait: float = 0.0,
    key_bits: int = DEFAULT_KEY_BITS,
) -> Result:
    """One pass of the protocol (``wait=0``), or passes until a certificate is held or
    ``wait`` seconds are over, polling with jitter while the request waits.

    A ``CaramelError`` carries in ``credentials`` what the caller must keep instead of
    ``held`` when the call made something new before it failed (a new key and its
    request); None when ``held`` is still right."""
    settings = _check(
        server=server,
        client_id=client_id,
        ca_pem=ca_pem,
        timeout=timeout,
        wait=wait,
        key_bits=key_bits,
    )
    latest: list[Result] = []  # the last pass's result: what to keep if a later one fails

    def one_pass() -> Result:
        previous = latest[0].credentials if latest else held
        try:
            result = _one_pass(previous, settings)
        except CaramelError as error:
            if latest and error.credentials is None:  # what an earlier pass made is kept
                error.credentials = previous
            raise
        latest[:] = [result]
        return result

    ended = waiting.until_held(
        one_pass,
        still_waiting=lambda result: result.status is Status.WAITING,
        interval=_poll_interval(wait),
        limit=wait,
        clock=time.monotonic,  # the library's own: no signal, no interval timer
        sleep=time.sleep,
        note=_quiet,
    )
    return latest[0] if ended is None else ended  # None: still waiting when ``wait`` ran out


class _Settings(Record):
    server: server_address.ServerAddress
    device: Device
    timeout: float


def _check(
    *, server: str, client_id: str, ca_pem: bytes, timeout: float, wait: float, key_bits: int
) -> _Settings:
    """Every argument checked before anything is done, with the command's words."""
    address = server_address.parse(server)
    client_ids.validate(client_id)
    anchor = trust.parse(bytes(ca_pem), "ca_pem")
    if not 0 < timeout <= MAX_TIMEOUT:
        raise UsageError(
            f"timeout {timeout!r}: expected seconds, more than 0, at most {MAX_TIMEOUT:g}"
        )
    if not wait >= 0:  # NaN too
        raise UsageError(f"wait {wait!r}: expected seconds, 0 or more")
    if key_bits not in KEY_SIZES:
        raise UsageError(f"key_bits {key_bits!r}: expected {key_sizes_text()}")
    return _Settings(address, Device(client_id, anchor, key_bits), timeout)


def _one_pass(held: Credentials | None, settings: _Settings) -> Result:
    now = datetime.now(UTC)
    trust.check_clock(settings.device.anchor, now)
    keeper = _MemoryKeeper()
    connect = _connector(settings)
    try:
        result = Pass(settings.device, keeper, connect, now, _quiet).run(
            None if held is None else held._held  # our own class
        )
    except CaramelError as error:
        if keeper.kept is not None:  # a new key whose request may have reached the server
            error.credentials = Credentials(keeper.kept)
        raise
    status = Status.WAITING if result.outcome.waiting else Status(result.outcome.value)
    return Result(status, Credentials(result.state), result.fresh_until(now, DEFAULT_HINT_LIMIT))


def _connector(settings: _Settings) -> Callable[[], Server]:
    """Connections made on demand, all within one deadline per pass, kept without signals."""
    from caramel_embedded import transport
    from caramel_embedded.deadline import WatchedDeadline

    deadline = WatchedDeadline(settings.timeout)

    def connect() -> Server:
        return transport.CaramelServer(
            settings.server, settings.device.anchor, settings.device.client_id, deadline, _quiet
        )

    return connect


class _MemoryKeeper:
    """The core's ``Keeper`` for the library: what the pass keeps, kept in memory."""

    def __init__(self) -> None:
        self.kept: LocalState | None = None

    def keep(self, content: bytes, *, mtime: int | None = None, set_aside: bool = False) -> None:
        del set_aside  # nothing to set aside: a caller's bytes that do not parse are refused
        state = parse(content, mtime)
        assert isinstance(state, LocalState)
        self.kept = state

    def keep_validator(self, mtime: int) -> None:
        if self.kept is not None:
            self.kept = self.kept.replace(file_mtime=mtime)


def _poll_interval(wait: float) -> float:
    """A fifth of the wait, between half a second and 15 s (``waiting`` adds the jitter)."""
    return min(_MAX_POLL, max(_MIN_POLL, wait / 5))


def _quiet(_message: str) -> None:
    """Progress goes nowhere: a library installs no logging handler."""
