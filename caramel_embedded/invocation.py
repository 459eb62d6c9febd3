"""One invocation of the command: the combined file, locked, around one pass of the core.

The order is the SPEC's: resolve the CA, lock the file, read it, let the core
(``enrollment``) ask and post, keep what it decided through the locked file. A file that
cannot be parsed, or whose key turns out unusable, is set aside whole and the pass runs
again as if there were none. Nothing here knows the command line or exit numbers: the
command (``cli``) builds a ``Job`` and turns the ``Result`` or error into a status.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from caramel_embedded import combined_file, decision, trust
from caramel_embedded.enrollment import Device, Pass, Result, Server
from caramel_embedded.errors import UnusableKeyError
from caramel_embedded.record import Record
from caramel_embedded.server_address import ServerAddress
from caramel_embedded.state import CorruptFileError, parse

if TYPE_CHECKING:
    from caramel_embedded.deadline import Deadline
    from caramel_embedded.proxy import Proxy


class Job(Record):
    """What one invocation was asked to do, resolved."""

    server: ServerAddress
    client_id: str
    file: Path
    ca_cert: Path | None  # None: the embedded CA
    ownership: combined_file.Ownership
    key_bits: int
    timeout: float
    proxy: Proxy | None = None  # an HTTPS proxy to tunnel through


def utc_now() -> datetime:
    return datetime.now(UTC)


def run(
    job: Job, progress: Callable[[str], None], clock: Callable[[], datetime] = utc_now
) -> Result:
    """Do what one invocation does; raise an ``errors`` class for anything not an outcome."""
    anchor = trust.load(job.ca_cert)
    now = clock()
    trust.check_clock(anchor, now)
    progress(f"client id {job.client_id}, CA {anchor.subject_text}, server {job.server}")
    device = Device(job.client_id, anchor, job.key_bits)
    connect = _Connector(job, device, progress)
    with combined_file.locked(job.file, job.ownership) as handle:
        for name in handle.remove_stale_temporaries():
            progress(f"removed {name}, left by an interrupted invocation")
        data, mtime = handle.read()
        keeper = _FileKeeper(handle, now)

        def one_pass(held: decision.LocalHeld) -> Result:
            return Pass(device, keeper, connect, now, progress).run(held)

        try:
            held = parse(data, mtime)
        except CorruptFileError as error:
            return one_pass(keeper.set_aside_reason(str(error)))
        if held is not None and handle.apply_ownership():
            progress("owner or mode of the combined file corrected")
        try:
            return one_pass(held)
        except UnusableKeyError as error:  # a key the TLS layer or cryptography cannot use
            return one_pass(keeper.set_aside_reason(str(error)))


class _FileKeeper:
    """The core's ``Keeper`` for the command: the locked combined file."""

    def __init__(self, handle: combined_file.LockedFile, now: datetime) -> None:
        self._handle = handle
        self._aside: Path | None = None
        self._now = now

    def set_aside_reason(self, error: str) -> decision.Corrupt:
        """Name the file's set-aside copy; the core keeps it aside when it writes a new key."""
        self._aside = combined_file.corrupt_name(self._handle.path, self._now)
        return decision.Corrupt(
            f"{self._handle.path} could not be parsed ({error}); kept it as {self._aside}"
        )

    def keep(self, content: bytes, *, mtime: int | None = None, set_aside: bool = False) -> None:
        self._handle.replace(content, mtime=mtime, set_aside_as=self._aside if set_aside else None)

    def keep_validator(self, mtime: int) -> None:
        self._handle.set_mtime(mtime)


class _Connector:
    """How the core reaches the server, when it needs to: urllib3 is imported only then.

    Every connection of the invocation shares one deadline: ``--timeout`` bounds them all.
    """

    def __init__(self, job: Job, device: Device, progress: Callable[[str], None]) -> None:
        self._job = job
        self._device = device
        self._progress = progress
        self._deadline: Deadline | None = None

    def __call__(self) -> Server:
        from caramel_embedded import deadline, transport

        if self._deadline is None:
            self._deadline = deadline.Deadline(self._job.timeout)
        return transport.CaramelServer(
            self._job.server,
            self._device.anchor,
            self._device.client_id,
            self._deadline,
            self._progress,
            proxy=self._job.proxy,
            held_in=self._job.file,
        )
