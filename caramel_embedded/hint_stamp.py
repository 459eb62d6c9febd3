"""The server's hint kept between runs: one small file in the runtime directory, RAM only.

The decisions are ``hint``'s; this module only reads, writes and removes the stamp, and
never lets a problem with it become the run's: a stamp that cannot be read, is not ours,
or is odd in any way is no stamp (a normal check), and a stamp that cannot be written is
simply not kept.

Only a tmpfs or ramfs ever takes a stamp: a timer that writes every hour would wear out
flash, and a stamp that survived a reboot would outlive the clock it was made with. The
type is the kernel's own word for the file system that holds the directory: the line of
``/proc/self/mountinfo`` whose device (major:minor) is the directory's ``st_dev``, the
superblock ``statfs(2)`` would describe (Python has no ``statfs``, and ctypes is left out
of the frozen build). A directory whose line cannot be found counts as flash.

One stamp per combined file (its absolute path's SHA-256 names it), written to a new file
and renamed over the old one, so a reader sees the old stamp or the new one. The stamp is
read through ``O_NOFOLLOW`` and only when it is a regular file of this user that nobody
else may write: another user's file must not be able to make a device skip its checks.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from pathlib import Path

from caramel_embedded import hint

_MOUNTINFO = "/proc/self/mountinfo"
_MAX_MOUNTINFO_BYTES = 1024 * 1024


def stamp_path(runtime_dir: Path, combined_file: Path) -> Path:
    name = hashlib.sha256(os.fsencode(os.path.abspath(combined_file))).hexdigest()[:32]
    return runtime_dir / f"hint-{name}"


def load(runtime_dir: Path, combined_file: Path) -> hint.Stamp | None:
    """The stamp kept for ``combined_file``, or None (none, unreadable, not ours, odd)."""
    path = stamp_path(runtime_dir, combined_file)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(descriptor)
        if not _is_ours(info) or not hint.is_runtime_file_system(_file_system_type(info)):
            return None
        data = os.read(descriptor, hint.MAX_STAMP_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(descriptor)
    return hint.read(data)


def keep(runtime_dir: Path, combined_file: Path, stamp: hint.Stamp) -> str:
    """Write the stamp if the runtime directory is RAM; say what was done, for ``-v``."""
    try:
        if not _ready(runtime_dir):
            return f"kept no hint: {runtime_dir} is not a tmpfs or ramfs"
        _write(stamp_path(runtime_dir, combined_file), hint.render(stamp))
    except OSError as error:
        return f"kept no hint: {runtime_dir}: {error.strerror}"
    return f"kept the server's hint in {runtime_dir}"


def discard(runtime_dir: Path, combined_file: Path) -> bool:
    """Remove the stamp (a check that came without a hint outdates it); True if one was."""
    try:
        os.unlink(stamp_path(runtime_dir, combined_file))
    except OSError:
        return False
    return True


def _is_ours(info: os.stat_result) -> bool:
    return (
        stat.S_ISREG(info.st_mode)
        and info.st_uid == os.geteuid()
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        and info.st_size <= hint.MAX_STAMP_BYTES
    )


def _ready(runtime_dir: Path) -> bool:
    """Whether the directory is on RAM, made (mode 0700, the last part only) when missing
    and its parent is RAM: an init script's /run may not have it yet."""
    try:
        info = os.stat(runtime_dir)
    except FileNotFoundError:
        parent = os.stat(runtime_dir.parent)
        if not hint.is_runtime_file_system(_file_system_type(parent)):
            return False
        with contextlib.suppress(FileExistsError):
            os.mkdir(runtime_dir, 0o700)
        info = os.stat(runtime_dir)
    if not stat.S_ISDIR(info.st_mode):
        raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
    return hint.is_runtime_file_system(_file_system_type(info))


def _write(path: Path, content: bytes) -> None:
    """A new file, then a rename over the old stamp: a reader sees one or the other."""
    temporary = path.with_name(f".{path.name}.tmp-{os.urandom(6).hex()}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(temporary, flags, 0o600)
    try:
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(descriptor, view) :]
        finally:
            os.close(descriptor)
        os.rename(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _file_system_type(info: os.stat_result) -> str | None:
    """The type of the file system of a file, by its device in the mount table."""
    device = f"{os.major(info.st_dev)}:{os.minor(info.st_dev)}"
    try:
        with open(_MOUNTINFO, "rb") as mounts:
            table = mounts.read(_MAX_MOUNTINFO_BYTES).decode("utf-8", "replace")
    except OSError:
        return None
    return mount_type(table, device)


def mount_type(table: str, device: str) -> str | None:
    """The file system type that ``/proc/self/mountinfo`` gives ``device`` (major:minor):
    the word after `` - ``; None when no line, or two that disagree, name it."""
    types = set()
    for line in table.splitlines():
        fields = line.split(" ")
        if len(fields) > 2 and fields[2] == device:
            _, separator, rest = line.partition(" - ")
            if separator and rest.split(" ")[0]:
                types.add(rest.split(" ")[0])
    return types.pop() if len(types) == 1 else None
