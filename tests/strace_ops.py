"""A run's file-system and network steps, read from strace, as ``crash_states`` operations.

The trace is strace's with ``-f -ttt -yy -xx`` (see ``STRACE_OPTIONS``): every string and
path in hexadecimal, every descriptor with what it refers to, every line with its time. Only
what happens under ``root`` becomes an operation (the interpreter's or the launcher's own
files are not the client's state), plus the network steps (connect, send) as ``Note``s.

The reader is strict on purpose: a call that changes something under ``root`` and that the
model does not know (a ``writev``, a ``dup`` of a tracked descriptor, a ``chown``) raises, so
a change to the client's way of writing cannot slip past the power-cut tests unmodelled.

``read`` is not traced (its strings are the interpreter's modules, megabytes of them), so a
``write`` lands at the descriptor's offset as the writes and ``lseek``s before it left it.
The caller checks the whole: every operation applied to the disk before the run must give
the disk after it, byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tests.crash_states import (
    Create,
    Disk,
    Fsync,
    FsyncDirectory,
    Link,
    Mkdir,
    Note,
    Op,
    Rename,
    Rmdir,
    SetMode,
    SetTimes,
    Sync,
    Truncate,
    Unlink,
    Write,
)

TRACED_CALLS = (
    "%file,write,pwrite64,writev,pwritev,pwritev2,lseek,fsync,fdatasync,"
    "syncfs,sync,sync_file_range,ftruncate,fallocate,fchmod,fchown,close,connect,sendto,"
    "sendmsg,sendmmsg,dup,dup2,dup3,fcntl,copy_file_range,sendfile,splice"
)
STRACE_OPTIONS = (
    "-f",
    "-qq",
    "-ttt",
    "-yy",
    "-xx",
    "-s",
    "200000",
    "-e",
    "signal=none",
    "-e",
    f"trace={TRACED_CALLS}",
)

# Calls that read or look, never change: nothing to model.
_LOOKING = {
    "access",
    "faccessat",
    "faccessat2",
    "newfstatat",
    "stat",
    "lstat",
    "statx",
    "readlink",
    "readlinkat",
    "getcwd",
    "chdir",
    "execve",
    "statfs",
    "getxattr",
    "lgetxattr",
    "listxattr",
    "llistxattr",
    "inotify_add_watch",
}

_LINE = re.compile(r"^(\d+) +(\d+\.\d+) +(\w+)\((.*)\) += (-?\d+|\?)(.*)$")
_UNFINISHED = re.compile(r"^(\d+) +(\d+\.\d+) +(.*) <unfinished \.\.\.>$")
_RESUMED = re.compile(r"^(\d+) +\d+\.\d+ +<\.\.\. \w+ resumed>(.*)$")
_DESCRIPTOR = re.compile(r"^(-?\d+|AT_FDCWD)(?:<(.*)>)?(?:\(deleted\))?$")
_HEX = re.compile(r"(?:\\x[0-9a-f]{2})*")
_SOCKET = re.compile(r"^(?:TCP|TCPv6|UDP|UDPv6):")
_MTIME = re.compile(r"tv_sec=(\d+)")
_PUNCTUATION = re.compile(r'"[^"]*"|[\[\]{}(),]')  # a -xx string holds no quote


class UnmodelledCall(ValueError):
    """A call that changes something under the root in a way the model does not know."""


@dataclass(frozen=True)
class Traced:
    """One operation and the time strace saw the call start (seconds since the epoch)."""

    op: Op
    time: float


def decode(text: str) -> bytes:
    """A string of strace -xx (every byte as \\xNN), with or without its quotes."""
    text = text.removeprefix('"').removesuffix('"')
    if _HEX.fullmatch(text) is None:
        raise UnmodelledCall(f"not a -xx string (truncated?): {text[:60]}")
    return bytes.fromhex(text.replace("\\x", ""))


def split_arguments(arguments: str) -> list[str]:
    """The top-level arguments of a call (commas inside [], {}, () and strings stay). Only
    strings and punctuation are visited: the launcher's writes are megabytes of string."""
    parts, depth, start = [], 0, 0
    for token in _PUNCTUATION.finditer(arguments):
        character = token[0]
        if character in "[{(":
            depth += 1
        elif character in "]})":
            depth -= 1
        elif character == "," and depth == 0:
            parts.append(arguments[start : token.start()].strip())
            start = token.end()
    parts.append(arguments[start:].strip())
    return parts


def joined_lines(text: str) -> list[str]:
    """The trace's lines with each call split by another process's (-f) joined again."""
    pending: dict[str, str] = {}
    lines = []
    for line in text.splitlines():
        if line.endswith(" <unfinished ...>") and (unfinished := _UNFINISHED.match(line)):
            pending[unfinished[1]] = f"{unfinished[1]} {unfinished[2]} {unfinished[3]}"
        elif " <... " in line[:60] and (resumed := _RESUMED.match(line)):
            lines.append(pending.pop(resumed[1]) + resumed[2])
        else:
            lines.append(line)
    return lines


@dataclass
class _Descriptor:
    inode: str | None = None  # a file
    directory: str | None = None  # a directory
    connection: str | None = None  # a socket we saw connect
    position: int = 0


@dataclass
class TraceReader:
    """Turns the trace into operations, keeping the names under ``root`` as they change.

    ``initial``: the disk under ``root`` before the run (inodes named as in ``Disk``);
    ``umask``: the run's, which the mode of a created file passes through.
    """

    root: Path
    initial: Disk
    umask: int
    ops: list[Traced] = field(default_factory=list)
    _entries: dict[str, str] = field(default_factory=dict)
    _directories: set[str] = field(default_factory=set)
    _descriptors: dict[int, _Descriptor] = field(default_factory=dict)
    _created: int = 0
    _connections: int = 0

    def __post_init__(self) -> None:
        self._entries = {found.name: found.inode for found in self.initial.files}
        self._directories = set(self.initial.directories)

    def read(self, text: str) -> list[Traced]:
        for line in joined_lines(text):
            match = _LINE.match(line)
            if match is None:
                if str(self.root) in _readable(line):
                    raise UnmodelledCall(f"cannot read this line of the trace: {line[:200]}")
                continue
            _, time, name, arguments, result, _ = match.groups()
            failed = result == "?" or int(result) < 0
            if failed and name != "connect":  # connect: -1 EINPROGRESS, then connected
                continue  # a failed call changed nothing
            self._call(name, split_arguments(arguments), line, float(time), int(result))
        return self.ops

    # --- one call ---------------------------------------------------------------------

    def _call(self, name: str, arguments: list[str], line: str, time: float, result: int) -> None:
        handler = getattr(self, f"_on_{name}", None)
        if handler is not None:
            handler(arguments, line, time, result)
        elif name not in _LOOKING and str(self.root) in _readable(line):
            raise UnmodelledCall(f"{name} under the root: {_readable(line)[:200]}")

    def _add(self, op: Op, time: float) -> None:
        self.ops.append(Traced(op, time))

    def _on_openat(self, arguments: list[str], line: str, time: float, result: int) -> None:
        path = self._path(arguments[0], arguments[1])
        if path is None:
            return
        flags = arguments[2]
        descriptor = _Descriptor()
        if "O_DIRECTORY" in flags or path in self._directories or path == "":
            descriptor.directory = path
        elif "O_CREAT" in flags and path not in self._entries:
            self._created += 1
            inode = f"#{self._created}"
            mode = int(arguments[3], 8) & ~self.umask
            self._add(Create(path, inode, mode), time)
            self._entries[path] = inode
            descriptor.inode = inode
        else:
            if path not in self._entries:
                raise UnmodelledCall(f"opened a file never seen: {_readable(line)[:200]}")
            if "O_APPEND" in flags:
                raise UnmodelledCall(f"O_APPEND under the root: {_readable(line)[:200]}")
            descriptor.inode = self._entries[path]
            if "O_TRUNC" in flags and "O_RDONLY" not in flags:
                self._add(Truncate(descriptor.inode, 0), time)
        self._descriptors[result] = descriptor

    def _on_open(self, arguments: list[str], line: str, time: float, result: int) -> None:
        self._on_openat(["AT_FDCWD", *arguments], line, time, result)

    def _on_close(self, arguments: list[str], line: str, time: float, result: int) -> None:
        self._descriptors.pop(_number(arguments[0]), None)

    def _on_write(self, arguments: list[str], line: str, time: float, result: int) -> None:
        descriptor = self._descriptors.get(_number(arguments[0]))
        if descriptor is None:
            self._untracked(arguments[0], line)
        elif descriptor.connection is not None:
            self._add(Note("send", descriptor.connection), time)
        elif descriptor.inode is not None:
            data = decode(arguments[1])[:result]
            self._add(Write(descriptor.inode, descriptor.position, data), time)
            descriptor.position += result
        else:
            raise UnmodelledCall(f"a write to a directory: {_readable(line)[:200]}")

    def _on_pwrite64(self, arguments: list[str], line: str, time: float, result: int) -> None:
        descriptor = self._descriptors.get(_number(arguments[0]))
        if descriptor is None:
            self._untracked(arguments[0], line)
        elif descriptor.inode is not None:
            data = decode(arguments[1])[:result]
            self._add(Write(descriptor.inode, int(arguments[3]), data), time)
        else:
            raise UnmodelledCall(f"pwrite64 not to a file: {_readable(line)[:200]}")

    def _on_fcntl(self, arguments: list[str], line: str, time: float, result: int) -> None:
        if "F_DUPFD" in arguments[1] and _number(arguments[0]) in self._descriptors:
            raise UnmodelledCall(f"a tracked descriptor duplicated: {_readable(line)[:200]}")

    def _on_lseek(self, arguments: list[str], line: str, time: float, result: int) -> None:
        descriptor = self._descriptors.get(_number(arguments[0]))
        if descriptor is not None:
            descriptor.position = result

    def _on_connect(self, arguments: list[str], line: str, time: float, result: int) -> None:
        if _SOCKET.match(_annotation(arguments[0])) is None:
            return
        self._connections += 1
        connection = f"connection {self._connections}"
        self._descriptors[_number(arguments[0])] = _Descriptor(connection=connection)
        self._add(Note("connect", connection), time)

    def _on_sendto(self, arguments: list[str], line: str, time: float, result: int) -> None:
        descriptor = self._descriptors.get(_number(arguments[0]))
        if descriptor is not None and descriptor.connection is not None:
            self._add(Note("send", descriptor.connection), time)

    _on_sendmsg = _on_sendto
    _on_sendmmsg = _on_sendto

    def _on_writev(self, arguments: list[str], line: str, time: float, result: int) -> None:
        descriptor = self._descriptors.get(_number(arguments[0]))
        if descriptor is not None and descriptor.connection is not None:
            self._add(Note("send", descriptor.connection), time)
        elif descriptor is not None or str(self.root) in _annotation(arguments[0]):
            raise UnmodelledCall(f"writev under the root: {_readable(line)[:200]}")

    def _on_fsync(self, arguments: list[str], line: str, time: float, result: int) -> None:
        descriptor = self._descriptors.get(_number(arguments[0]))
        if descriptor is None:
            self._untracked(arguments[0], line)
        elif descriptor.inode is not None:
            self._add(Fsync(descriptor.inode), time)
        elif descriptor.directory is not None:
            self._add(FsyncDirectory(descriptor.directory), time)

    def _on_sync(self, arguments: list[str], line: str, time: float, result: int) -> None:
        self._add(Sync(), time)

    _on_syncfs = _on_sync

    def _on_ftruncate(self, arguments: list[str], line: str, time: float, result: int) -> None:
        descriptor = self._descriptors.get(_number(arguments[0]))
        if descriptor is None:
            self._untracked(arguments[0], line)
        elif descriptor.inode is not None:
            self._add(Truncate(descriptor.inode, int(arguments[1])), time)

    def _on_fchmod(self, arguments: list[str], line: str, time: float, result: int) -> None:
        descriptor = self._descriptors.get(_number(arguments[0]))
        if descriptor is None:
            self._untracked(arguments[0], line)
        elif descriptor.inode is not None:
            self._add(SetMode(descriptor.inode, int(arguments[1], 8)), time)
        else:
            raise UnmodelledCall(f"fchmod of a directory: {_readable(line)[:200]}")

    def _on_utimensat(self, arguments: list[str], line: str, time: float, result: int) -> None:
        if arguments[1] == "NULL":
            descriptor = self._descriptors.get(_number(arguments[0]))
            inode = None if descriptor is None else descriptor.inode
            if descriptor is None:
                self._untracked(arguments[0], line)
        else:
            path = self._path(arguments[0], arguments[1])
            inode = None if path is None else self._entries.get(path)
            if path is not None and inode is None:
                raise UnmodelledCall(f"utimensat of a directory: {_readable(line)[:200]}")
        if inode is not None:
            seconds = _MTIME.findall(arguments[2])
            self._add(SetTimes(inode, int(seconds[-1]) if seconds else None), time)

    def _on_mkdir(self, arguments: list[str], line: str, time: float, result: int) -> None:
        self._on_mkdirat(["AT_FDCWD", *arguments], line, time, result)

    def _on_mkdirat(self, arguments: list[str], line: str, time: float, result: int) -> None:
        path = self._path(arguments[0], arguments[1])
        if path is not None:
            self._directories.add(path)
            self._add(Mkdir(path), time)

    def _on_rmdir(self, arguments: list[str], line: str, time: float, result: int) -> None:
        path = self._path("AT_FDCWD", arguments[0])
        if path is not None:
            self._directories.discard(path)
            self._add(Rmdir(path), time)

    def _on_unlink(self, arguments: list[str], line: str, time: float, result: int) -> None:
        self._on_unlinkat(["AT_FDCWD", *arguments, "0"], line, time, result)

    def _on_unlinkat(self, arguments: list[str], line: str, time: float, result: int) -> None:
        path = self._path(arguments[0], arguments[1])
        if path is None:
            return
        if "AT_REMOVEDIR" in arguments[2]:
            self._directories.discard(path)
            self._add(Rmdir(path), time)
        else:
            del self._entries[path]
            self._add(Unlink(path), time)

    def _on_rename(self, arguments: list[str], line: str, time: float, result: int) -> None:
        self._on_renameat2(
            ["AT_FDCWD", arguments[0], "AT_FDCWD", arguments[1], "0"], line, time, result
        )

    def _on_renameat(self, arguments: list[str], line: str, time: float, result: int) -> None:
        self._on_renameat2([*arguments, "0"], line, time, result)

    def _on_renameat2(self, arguments: list[str], line: str, time: float, result: int) -> None:
        source = self._path(arguments[0], arguments[1])
        target = self._path(arguments[2], arguments[3])
        if source is None and target is None:
            return
        if source is None or target is None or source not in self._entries:
            raise UnmodelledCall(f"a rename the model cannot follow: {_readable(line)[:200]}")
        if "RENAME_EXCHANGE" in arguments[4]:
            raise UnmodelledCall(f"RENAME_EXCHANGE under the root: {_readable(line)[:200]}")
        inode = self._entries.pop(source)
        self._entries[target] = inode
        self._add(Rename(source, target, inode), time)

    def _on_link(self, arguments: list[str], line: str, time: float, result: int) -> None:
        self._on_linkat(
            ["AT_FDCWD", arguments[0], "AT_FDCWD", arguments[1], "0"], line, time, result
        )

    def _on_linkat(self, arguments: list[str], line: str, time: float, result: int) -> None:
        source = self._path(arguments[0], arguments[1])
        target = self._path(arguments[2], arguments[3])
        if source is None and target is None:
            return
        if source is None or target is None or source not in self._entries:
            raise UnmodelledCall(f"a link the model cannot follow: {_readable(line)[:200]}")
        self._entries[target] = self._entries[source]
        self._add(Link(source, target, self._entries[source]), time)

    # --- descriptors and paths ------------------------------------------------------------

    def _untracked(self, argument: str, line: str) -> None:
        """A descriptor we did not see opened: fine unless it refers to something of ours."""
        if str(self.root) in _readable(_annotation(argument)):
            raise UnmodelledCall(f"a descriptor opened unseen: {_readable(line)[:200]}")

    def _path(self, directory: str, name: str) -> str | None:
        """The path relative to the root, or None outside it."""
        relative = Path(decode(name).decode())
        if not relative.is_absolute():
            relative = Path(decode(_annotation(directory)).decode()) / relative
        try:
            inside = relative.relative_to(self.root)
        except ValueError:
            return None
        return "" if str(inside) == "." else str(inside)


def _number(argument: str) -> int:
    match = _DESCRIPTOR.match(argument)
    if match is None or match[1] == "AT_FDCWD":
        raise UnmodelledCall(f"not a descriptor: {argument[:80]}")
    return int(match[1])


def _annotation(argument: str) -> str:
    match = _DESCRIPTOR.match(argument)
    return "" if match is None or match[2] is None else match[2]


def _readable(text: str) -> str:
    """The line with its hexadecimal strings decoded, to search for the root and to show."""
    return re.sub(
        r"(?:\\x[0-9a-f]{2})+",
        lambda found: bytes.fromhex(found[0].replace("\\x", "")).decode("latin-1"),
        text,
    )
