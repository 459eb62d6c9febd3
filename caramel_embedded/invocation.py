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
from caramel_embedded.enrollment import Device, FileKeys, KeyStore, Pass, Result, Server
from caramel_embedded.errors import KeyStoreMismatchError, UnusableKeyError
from caramel_embedded.record import Record
from caramel_embedded.server_address import ServerAddress
from caramel_embedded.state import (
    CorruptFileError,
    LocalState,
    ProvisionedKey,
    key_store_of,
    parse,
)

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
    key_store: str = "file"  # "tpm2": keys made and kept inside the TPM at ``tpm``
    tpm: str = "device:/dev/tpmrm0"


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
    keys = _key_store(job)
    try:
        return _run_locked(job, Device(job.client_id, anchor, job.key_bits, keys), now, progress)
    finally:
        keys.close()  # the TPM's keys flushed, its connection ended


def _key_store(job: Job) -> KeyStore:
    """Where keys are made: the TPM's module is imported in tpm2 mode only."""
    if job.key_store == "tpm2":
        from caramel_embedded import tpm_keys

        return tpm_keys.TPMKeys(job.tpm)
    return FileKeys()


def _run_locked(
    job: Job, device: Device, now: datetime, progress: Callable[[str], None]
) -> Result:
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
        _check_key_store(held, job)
        if held is not None and handle.apply_ownership():
            progress("owner or mode of the combined file corrected")
        try:
            return one_pass(held)
        except UnusableKeyError as error:  # a key the TLS layer or cryptography cannot use
            return one_pass(keeper.set_aside_reason(str(error)))


def _check_key_store(held: LocalState | ProvisionedKey | None, job: Job) -> None:
    """A key of the other kind than ``--key-store`` asks for is refused, the file untouched:
    never replaced, and never moved into (or out of) the TPM behind the operator's back."""
    if held is None:
        return
    needs = key_store_of(held.key_label)
    if needs != job.key_store:
        kind = "a TPM key (TSS2 PRIVATE KEY)" if needs == "tpm2" else "a file key (PRIVATE KEY)"
        raise KeyStoreMismatchError(
            f"{job.file} holds {kind}: it needs --key-store {needs} "
            f"(CARAMEL_KEY_STORE={needs}); nothing was changed"
        )


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
