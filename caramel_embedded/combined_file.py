"""The combined file on disk: lock, read, and replace atomically, never through a symlink.

Why the lock survives replacement: an invocation holds ``flock`` on the inode it opened,
but an atomic replace puts a new inode at the path. So the writer locks the new inode
*before* renaming it into place, and a newcomer that locked an inode checks that it is
still the one at the path, else starts again. At no moment can two invocations both hold
a lock on the inode at the path.

Why the replace is safe: the new content goes to a temporary file in the same directory,
created with the final mode and owner, written, fsync-ed, renamed over the path, and the
directory fsync-ed. A crash at any point leaves the old file or the new one, complete; a
killed run's temporary file is removed by the next invocation, under the lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from caramel_embedded.errors import CombinedFileError, LockHeldError
from caramel_embedded.record import Record

_LOCK_ATTEMPTS = 20
_MAX_FILE_BYTES = 64 * 1024  # a 4096-bit key, a certificate and a request fit ten times


class Ownership(Record):
    """Owner, group (-1: leave as is) and permission bits of every file we write."""

    mode: int = 0o600
    uid: int = -1
    gid: int = -1


class LockedFile:
    """The combined file while this invocation holds its lock."""

    def __init__(self, path: Path, ownership: Ownership, descriptor: int) -> None:
        self.path = path
        self.ownership = ownership
        self._descriptor = descriptor

    @property
    def temporary_prefix(self) -> str:
        return f".{self.path.name}.tmp-"

    def read(self) -> tuple[bytes, int]:
        """The file's bytes and its modification time (whole seconds)."""
        info = os.fstat(self._descriptor)
        if info.st_size > _MAX_FILE_BYTES:
            raise CombinedFileError(f"{self.path}: {info.st_size} bytes is not a combined file")
        chunks = []
        offset = 0
        while chunk := os.pread(self._descriptor, _MAX_FILE_BYTES + 1 - offset, offset):
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks), int(info.st_mtime)

    def identity(self) -> tuple[int, int]:
        """The held file's inode and modification time in nanoseconds: with its bytes, what
        a kept hint must still find (``hint``)."""
        info = os.fstat(self._descriptor)
        return info.st_ino, info.st_mtime_ns

    def apply_ownership(self) -> bool:
        """Give the existing file our owner and mode without rewriting it; True if changed."""
        try:
            return self._apply_ownership()
        except OSError as error:
            raise CombinedFileError(
                f"{self.path}: cannot set owner or mode: {error.strerror}"
            ) from None

    def _apply_ownership(self) -> bool:
        info = os.fstat(self._descriptor)
        changed = False
        wanted_uid = info.st_uid if self.ownership.uid == -1 else self.ownership.uid
        wanted_gid = info.st_gid if self.ownership.gid == -1 else self.ownership.gid
        if (info.st_uid, info.st_gid) != (wanted_uid, wanted_gid):
            os.fchown(self._descriptor, self.ownership.uid, self.ownership.gid)
            changed = True
        if stat.S_IMODE(os.fstat(self._descriptor).st_mode) != self.ownership.mode:
            os.fchmod(self._descriptor, self.ownership.mode)
            changed = True
        return changed

    def set_mtime(self, mtime: int) -> None:
        """Change only the modification time (the kept validator); the bytes stay as they are."""
        try:
            os.utime(self._descriptor, (mtime, mtime))
            os.fsync(self._descriptor)
        except OSError as error:
            raise CombinedFileError(
                f"{self.path}: cannot set its time: {error.strerror}"
            ) from None

    def remove_stale_temporaries(self) -> list[str]:
        """Delete what a killed invocation left; safe because we hold the lock."""
        removed = []
        with contextlib.suppress(OSError), os.scandir(self.path.parent) as entries:
            for entry in entries:
                if entry.name.startswith(self.temporary_prefix) and entry.is_file(
                    follow_symlinks=False
                ):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed.append(entry.name)
        return removed

    def replace(
        self, content: bytes, mtime: int | None = None, set_aside_as: Path | None = None
    ) -> None:
        """Atomically put ``content`` at the path; optionally keep the old file aside first.

        ``set_aside_as`` keeps the current file (bytes and mode unchanged) under that name:
        it is linked there only once the new content is safely on disk, so the path always
        holds a complete file; and the link is made durable before the rename, which a power
        cut could otherwise keep without the link, losing the old file.
        """
        temporary = self.path.parent / f"{self.temporary_prefix}{os.urandom(6).hex()}"
        descriptor = _create_exclusive(temporary, self.ownership)
        try:
            _lock_or_raise(descriptor, temporary)
            _write_all(descriptor, content)
            if mtime is not None:
                os.utime(descriptor, (mtime, mtime))
            os.fsync(descriptor)
            if set_aside_as is not None:
                _keep_aside(self.path, set_aside_as)
                _fsync_directory(self.path.parent)
            os.rename(temporary, self.path)
        except BaseException as error:
            os.close(descriptor)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            if isinstance(error, OSError):
                raise CombinedFileError(f"{self.path}: cannot write: {error.strerror}") from None
            raise
        old, self._descriptor = self._descriptor, descriptor
        os.close(old)
        _fsync_directory(self.path.parent)

    def close(self) -> None:
        os.close(self._descriptor)


@contextlib.contextmanager
def locked(path: Path, ownership: Ownership) -> Iterator[LockedFile]:
    """Hold the exclusive, non-blocking lock on the combined file for the ``with`` body."""
    _make_directory(path)
    descriptor = _open_and_lock(path, ownership)
    handle = LockedFile(path, ownership, descriptor)
    try:
        yield handle
    finally:
        handle.close()


def corrupt_name(path: Path, now: datetime) -> Path:
    """``FILE.corrupt-YYYYMMDDTHHMMSSZ``, with a counter if that name is taken."""
    base = f"{path.name}.corrupt-{now.strftime('%Y%m%dT%H%M%SZ')}"
    candidate = path.with_name(base)
    counter = 1
    while os.path.lexists(candidate):
        candidate = path.with_name(f"{base}-{counter}")
        counter += 1
    return candidate


def _open_and_lock(path: Path, ownership: Ownership) -> int:
    for _ in range(_LOCK_ATTEMPTS):
        descriptor = _open_existing_or_new(path, ownership)
        try:
            _lock_or_raise(descriptor, path)
            if _is_at_path(descriptor, path):
                return descriptor
        except BaseException:
            os.close(descriptor)
            raise
        os.close(descriptor)  # replaced while we waited: lock the new one
    raise CombinedFileError(f"{path}: replaced {_LOCK_ATTEMPTS} times while locking it")


def _open_existing_or_new(path: Path, ownership: Ownership) -> int:
    """The file, opened to read and lock only: closing a descriptor opened for writing is an
    inotify IN_CLOSE_WRITE, which a systemd path unit (PathChanged=) takes for a change, so
    a run that changes nothing must never hold one. Owner, mode and time are set through it
    all the same (fchown, fchmod and futimens need no write access)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        try:
            descriptor = os.open(path, flags)
        except FileNotFoundError:
            try:
                return _create_exclusive(path, ownership)
            except FileExistsError:
                descriptor = os.open(path, flags)  # created by another invocation meanwhile
    except OSError as error:
        raise _describe_open_error(path, error) from None
    kind = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(kind):
        os.close(descriptor)  # read-only, a directory opens too: say what it is
        what = "is a directory" if stat.S_ISDIR(kind) else "not a regular file"
        raise CombinedFileError(f"{path}: {what}")
    return descriptor


def _create_exclusive(path: Path, ownership: Ownership) -> int:
    """A new file that never had wider permissions than ``ownership.mode``."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        descriptor = os.open(path, flags, ownership.mode & 0o700)
    except FileExistsError:
        raise
    except OSError as error:
        raise _describe_open_error(path, error) from None
    try:
        if ownership.uid != -1 or ownership.gid != -1:
            os.fchown(descriptor, ownership.uid, ownership.gid)
        os.fchmod(descriptor, ownership.mode)
    except OSError as error:
        os.close(descriptor)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise CombinedFileError(f"{path}: cannot set owner or mode: {error.strerror}") from None
    return descriptor


def _describe_open_error(path: Path, error: OSError) -> CombinedFileError:
    if error.errno == errno.ELOOP:
        return CombinedFileError(f"{path}: is a symbolic link; refusing to write through it")
    if error.errno == errno.EISDIR:
        return CombinedFileError(f"{path}: is a directory")
    return CombinedFileError(f"{path}: {error.strerror}")


def _lock_or_raise(descriptor: int, path: Path) -> None:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise LockHeldError(f"{path}: locked by another invocation") from None


def _is_at_path(descriptor: int, path: Path) -> bool:
    try:
        at_path = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)


def _write_all(descriptor: int, content: bytes) -> None:
    view = memoryview(content)
    while view:
        view = view[os.write(descriptor, view) :]


def _make_directory(path: Path) -> None:
    """The combined file's directory, made if missing, as ``mkdir -p`` would (mode 0755).

    A directory that cannot be made (no permission, a regular file on the way) is the
    caller's input, not a fault of ours: one line naming the path, and the directories this
    call made before the failure are removed again, so a failed run creates nothing. Each
    new directory is fsync-ed into its parent: a key written into a directory that a power
    cut forgets is lost with it."""
    missing: list[Path] = []
    directory = path.parent
    while not os.path.lexists(directory):  # False as well under a regular file (ENOTDIR)
        missing.append(directory)
        directory = directory.parent
    if not missing and not directory.is_dir():
        raise CombinedFileError(f"{path}: {directory} is not a directory")
    made: list[Path] = []
    for new in reversed(missing):
        try:
            os.mkdir(new, 0o755)
            made.append(new)
            _fsync_directory(new.parent)
        except OSError as error:
            for undone in reversed(made):
                with contextlib.suppress(OSError):
                    os.rmdir(undone)
            if error.errno == errno.ENOTDIR:
                raise CombinedFileError(f"{path}: {new.parent} is not a directory") from None
            raise CombinedFileError(f"{path}: cannot create {new}: {error.strerror}") from None


def _keep_aside(path: Path, aside: Path) -> None:
    """Link the old file under its new name; rename where links are not supported (vfat)."""
    try:
        os.link(path, aside, follow_symlinks=False)
    except FileNotFoundError:
        return
    except OSError:
        os.rename(path, aside)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
