"""What a power cut may leave on disk after each step of a traced run: a conservative model.

A kill keeps the page cache; a power cut keeps only what reached the disk. Which operations
reached it is not knowable from outside, so this module computes every disk a model of
persistence allows, and the caller runs the next invocation on each. The model is meant to
be weaker than any file system the client may meet (ext4 in every journal mode, btrfs, f2fs,
UBIFS, vfat), so that a run that survives it survives them; ALICE (Pillai et al., "All File
Systems Are Not Created Equal", OSDI 2014) is the reference for such a model, and SQLite's
crash tests drop unsynced writes the same way.

The rules:

- What was on disk before the run is durable.
- An operation on a file's contents or attributes (``Write``, ``Truncate``, ``SetMode``,
  ``SetTimes``) is durable once an ``Fsync`` of that file follows it.
- An operation on a directory's entries (``Create``, ``Link``, ``Rename``, ``Unlink``,
  ``Mkdir``, ``Rmdir``) is durable once an ``FsyncDirectory`` of each directory it changes
  follows it. An ``Fsync`` of a file does not make its name durable (ext4's journal does in
  practice; the model does not count on it). ``Sync`` makes everything durable.
- Every operation not yet durable at the crash point may be lost or kept, each
  independently of the others, in every combination: no order between them is assumed.
  The kept ones take effect in the order the run made them.
- A write not yet durable may be lost, or reach the disk torn: any prefix of it that ends
  on a 512-byte sector boundary of the file (a disk writes a sector whole or not at all),
  or whole. Bytes a kept write skipped over read as zeros.
- A new file's inode exists with the mode it was created with whether or not its name
  survives; a name whose directory did not survive is unreachable (fsck's lost+found) and
  is dropped.

Nothing is sampled, and two reductions keep the count to what the next invocation can
tell apart. The same disk reached by several combinations or crash points is one state.
And a torn write is explored as its prefixes, not as every subset of its sectors (a later
sector kept while an earlier one was lost): such a subset leaves the file neither as it
was nor as written, exactly as a prefix does, and the checks judge a file whole or not, so
the prefixes (every length the file may be left at) stand for that class. More than
``MAX_COMBINATIONS`` at one crash point raises rather than explode; the client's runs
have at most a few dozen.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

SECTOR = 512
MAX_COMBINATIONS = 1 << 16


# --- the disk ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiskFile:
    """One name of a regular file. ``inode`` names the inode: names that share it are hard
    links (on a disk, the smallest of its names). ``mtime`` None: not set by the run (the
    time of its last write, whenever that was)."""

    name: str
    data: bytes
    mode: int
    mtime: int | None
    inode: str


@dataclass(frozen=True)
class Disk:
    """Directories and files under a root, by relative path ("a/b"); the root is ""."""

    directories: frozenset[str] = frozenset()
    files: tuple[DiskFile, ...] = ()  # sorted by name

    def file(self, name: str) -> DiskFile | None:
        return next((found for found in self.files if found.name == name), None)

    def names_in(self, directory: str) -> list[str]:
        """The files directly in ``directory``."""
        return [found.name for found in self.files if parent(found.name) == directory]


def parent(path: str) -> str:
    return path.rpartition("/")[0]


# --- what a traced run did ---------------------------------------------------------------


@dataclass(frozen=True)
class Create:
    """A new, empty file ``inode`` at ``path`` (``open`` with ``O_CREAT`` that created it)."""

    path: str
    inode: str
    mode: int


@dataclass(frozen=True)
class Mkdir:
    path: str


@dataclass(frozen=True)
class Rmdir:
    path: str


@dataclass(frozen=True)
class Link:
    source: str
    target: str
    inode: str


@dataclass(frozen=True)
class Rename:
    source: str
    target: str
    inode: str


@dataclass(frozen=True)
class Unlink:
    path: str


@dataclass(frozen=True)
class Write:
    inode: str
    offset: int
    data: bytes


@dataclass(frozen=True)
class Truncate:
    inode: str
    size: int


@dataclass(frozen=True)
class SetMode:
    inode: str
    mode: int


@dataclass(frozen=True)
class SetTimes:
    inode: str
    mtime: int | None  # None: "now"


@dataclass(frozen=True)
class Fsync:
    inode: str


@dataclass(frozen=True)
class FsyncDirectory:
    path: str


@dataclass(frozen=True)
class Sync:
    """``sync`` or ``syncfs``: everything so far is durable."""


@dataclass(frozen=True)
class Note:
    """A step with no effect on disk that the caller wants to crash at (a network send)."""

    what: str
    connection: str = ""


EntryOp = Create | Mkdir | Rmdir | Link | Rename | Unlink
InodeOp = Write | Truncate | SetMode | SetTimes
Op = EntryOp | InodeOp | Fsync | FsyncDirectory | Sync | Note


def directories_changed(op: EntryOp) -> set[str]:
    if isinstance(op, Link | Rename):
        return {parent(op.source), parent(op.target)}
    return {parent(op.path)}


# --- the crash states --------------------------------------------------------------------


class TooManyStates(ValueError):
    """More operations at risk at once than the enumeration is meant for."""


def crash_states(initial: Disk, ops: Sequence[Op], crash_point: int) -> set[Disk]:
    """Every disk a power cut after the first ``crash_point`` operations may leave."""
    done = ops[:crash_point]
    durable = _durable(done)
    choices: list[list[tuple[int, Op | None]]] = []
    for index, op in enumerate(done):
        if not isinstance(op, EntryOp | InodeOp) or index in durable:
            choices.append([(index, op)])
        elif isinstance(op, Write):
            choices.append([(index, None), *((index, torn) for torn in torn_writes(op))])
        else:
            choices.append([(index, None), (index, op)])
    combinations = math.prod(len(choice) for choice in choices)
    if combinations > MAX_COMBINATIONS:
        raise TooManyStates(f"{combinations} combinations at step {crash_point}")
    births = {op.inode: op.mode for op in done if isinstance(op, Create)}
    return {
        apply(initial, births, [op for _, op in chosen if op is not None])
        for chosen in itertools.product(*choices)
    }


def torn_writes(write: Write) -> list[Write]:
    """What may reach the disk of a write a power cut interrupts: each prefix of it that
    ends on a sector boundary of the file, and the whole."""
    ends = [end for end in range(1, len(write.data)) if (write.offset + end) % SECTOR == 0]
    return [Write(write.inode, write.offset, write.data[:end]) for end in [*ends, len(write.data)]]


def all_crash_states(initial: Disk, ops: Sequence[Op]) -> dict[Disk, list[int]]:
    """Every distinct disk of every crash point (0 to len(ops)), with the crash points that
    may leave it."""
    found: dict[Disk, list[int]] = {}
    for crash_point in range(len(ops) + 1):
        for state in crash_states(initial, ops, crash_point):
            found.setdefault(state, []).append(crash_point)
    return found


def without(ops: Sequence[Op], dropped: Op) -> list[Op]:
    """The trace with every occurrence of one operation removed (a run that forgot it)."""
    return [op for op in ops if op != dropped]


def _durable(done: Sequence[Op]) -> set[int]:
    """Indices of the operations that a later fsync (or sync) made durable."""
    last_sync = max((i for i, op in enumerate(done) if isinstance(op, Sync)), default=-1)
    last_file: dict[str, int] = {}
    last_directory: dict[str, int] = {}
    for index, op in enumerate(done):
        if isinstance(op, Fsync):
            last_file[op.inode] = index
        elif isinstance(op, FsyncDirectory):
            last_directory[op.path] = index
    durable = set()
    for index, op in enumerate(done):
        if index < last_sync:
            durable.add(index)
        elif isinstance(op, InodeOp):
            if last_file.get(op.inode, -1) > index:
                durable.add(index)
        elif isinstance(op, EntryOp) and all(
            last_directory.get(directory, -1) > index for directory in directories_changed(op)
        ):
            durable.add(index)
    return durable


@dataclass
class _Inode:
    data: bytearray
    mode: int
    mtime: int | None


def apply(initial: Disk, births: Mapping[str, int], ops: Iterable[Op]) -> Disk:
    """The disk after ``ops`` (those kept) on ``initial``; ``births``: the mode of each inode
    the run created."""
    inodes = {
        found.inode: _Inode(bytearray(found.data), found.mode, found.mtime)
        for found in initial.files
    }
    inodes.update({inode: _Inode(bytearray(), mode, None) for inode, mode in births.items()})
    entries = {found.name: found.inode for found in initial.files}
    directories = set(initial.directories)
    for op in ops:
        _apply_one(op, inodes, entries, directories)
    return _disk(inodes, entries, directories)


def _apply_one(
    op: Op, inodes: dict[str, _Inode], entries: dict[str, str], directories: set[str]
) -> None:
    if isinstance(op, Mkdir):
        directories.add(op.path)
    elif isinstance(op, Rmdir):
        directories.discard(op.path)
    elif isinstance(op, Create):
        entries[op.path] = op.inode
    elif isinstance(op, Link):
        entries[op.target] = op.inode
    elif isinstance(op, Rename):
        entries[op.target] = op.inode
        if entries.get(op.source) == op.inode:
            del entries[op.source]
    elif isinstance(op, Unlink):
        entries.pop(op.path, None)
    elif isinstance(op, Write):
        data = inodes[op.inode].data
        end = op.offset + len(op.data)
        if len(data) < end:
            data.extend(bytes(end - len(data)))
        data[op.offset : end] = op.data
        inodes[op.inode].mtime = None
    elif isinstance(op, Truncate):
        data = inodes[op.inode].data
        del data[op.size :]
        data.extend(bytes(op.size - len(data)))
        inodes[op.inode].mtime = None
    elif isinstance(op, SetMode):
        inodes[op.inode].mode = op.mode
    elif isinstance(op, SetTimes):
        inodes[op.inode].mtime = op.mtime


def _disk(inodes: Mapping[str, _Inode], entries: Mapping[str, str], directories: set[str]) -> Disk:
    def reachable(path: str) -> bool:
        above = parent(path)
        return above == "" or (above in directories and reachable(above))

    kept_directories = frozenset(path for path in directories if reachable(path))
    kept = {name: inode for name, inode in entries.items() if reachable(name)}
    first_name: dict[str, str] = {}
    for name, inode in sorted(kept.items()):
        first_name.setdefault(inode, name)
    files = tuple(
        DiskFile(
            name,
            bytes(inodes[inode].data),
            inodes[inode].mode,
            inodes[inode].mtime,
            first_name[inode],
        )
        for name, inode in sorted(kept.items())
    )
    return Disk(kept_directories, files)
