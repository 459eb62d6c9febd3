"""One invocation of the command: the combined file, locked, around one pass of the core.

The order is the SPEC's: resolve the CA, lock the file, read it, let the core
(``enrollment``) ask and post, keep what it decided through the locked file. A file that
cannot be parsed, or whose key turns out unusable, is set aside whole and the pass runs
again as if there were none. Nothing here knows the command line or exit numbers: the
command (``cli``) builds a ``Job`` and turns the ``Result`` or error into a status.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from caramel_embedded import combined_file, decision, hint, hint_stamp, trust
from caramel_embedded.enrollment import Device, FileKeys, KeyStore, Pass, Result, Server
from caramel_embedded.errors import KeyStoreMismatchError, UnusableKeyError
from caramel_embedded.limits import DEFAULT_HINT_LIMIT
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
    runtime_dir: Path | None = None  # where the server's hint is kept; None: never kept
    follow_hint: bool = False  # a kept hint may spare this run its check (one-shot runs)
    hint_limit: int = DEFAULT_HINT_LIMIT  # seconds: the longest a hint is followed
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
        hints = _Hints(job, handle, device.anchor.pem, now, progress)
        if hints.allow_skip(data, held):
            assert isinstance(held, LocalState)
            return Result(decision.Outcome.CURRENT, held, checked=False)
        try:
            result = one_pass(held)
        except UnusableKeyError as error:  # a key the TLS layer or cryptography cannot use
            return one_pass(keeper.set_aside_reason(str(error)))
        hints.after(result)
        return result


class _Hints:
    """The server's hint around one pass, under the lock: whether a kept one spares this
    run its check, and keeping (or dropping) it after a check.

    Decided under the lock, not before it: the bytes, inode and mtime compared are those of
    the file no other invocation can be changing at that moment, a run that finds the file
    locked ends "locked" as every run does, and two runs never write stamps out of order.
    """

    def __init__(
        self,
        job: Job,
        handle: combined_file.LockedFile,
        ca_pem: bytes,
        now: datetime,
        progress: Callable[[str], None],
    ) -> None:
        self._job = job
        self._handle = handle
        self._ca_sha256 = hashlib.sha256(ca_pem).hexdigest()
        self._now = now
        self._progress = progress

    def allow_skip(self, data: bytes, held: decision.LocalHeld) -> bool:
        job = self._job
        if not job.follow_hint or job.runtime_dir is None or not isinstance(held, LocalState):
            return False
        certificate = held.certificate
        valid = None if certificate is None else (certificate.not_before, certificate.not_after)
        stamp = hint_stamp.load(job.runtime_dir, job.file)
        verdict = hint.judge(stamp, self._facts(data), self._now, job.hint_limit, valid)
        self._progress(verdict.why + ("" if verdict.skip else ": asking the server"))
        return verdict.skip

    def after(self, result: Result) -> None:
        """Keep the hint of an answer that left a certificate held; drop a kept one
        otherwise (the newest answer carried none)."""
        job = self._job
        if job.runtime_dir is None:
            return
        until = result.fresh_until(self._now, job.hint_limit)
        if until is None:
            if hint_stamp.discard(job.runtime_dir, job.file):
                self._progress("dropped the kept hint: this answer carried none")
            return
        data, _ = self._handle.read()
        made_at = int(self._now.timestamp())
        stamp = hint.Stamp(self._facts(data), made_at, int(until.timestamp()))
        self._progress(hint_stamp.keep(job.runtime_dir, job.file, stamp))

    def _facts(self, data: bytes) -> hint.Facts:
        inode, mtime_ns = self._handle.identity()
        job = self._job
        return hint.Facts(
            hashlib.sha256(data).hexdigest(),
            inode,
            mtime_ns,
            str(job.server),
            job.client_id,
            self._ca_sha256,
        )


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
