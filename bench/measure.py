"""How one invocation is measured: wall time, peak RSS, and bytes to and from files.

- Wall time: from spawning the command to reaping it, ``time.perf_counter``.
- Peak RSS: GNU time's ``%M``, i.e. ``ru_maxrss`` of the command as reaped by ``time``:
  Linux reports the largest resident set of the process and of every descendant it
  reaped -- for the one-file binary the client child (the launcher itself holds about
  2 MiB), for the baseline script ``openssl`` or ``curl``. That is the figure that must
  fit the device, not a sum. It is taken in runs of its own through ``/usr/bin/time``,
  a small C program: spawning from this Python process directly would not do, since a
  child's ``ru_maxrss`` starts from the RSS of the process that forked it (the kernel
  carries the parent's high-water mark across ``exec``).
- File bytes: one extra run under ``strace -ff -y`` counting what every process of the
  tree passed to ``read``/``write`` and their variants on regular files, classified by the
  filesystem the file lives on (``/proc/self/mountinfo``): persistent storage, or a RAM
  filesystem (tmpfs, ramfs). A ``memfd_create`` file (the client hands its key and
  certificate to TLS through one; strace names it ``/memfd:NAME (deleted)``) is memory,
  not a path on any mount. Sockets, pipes and terminals are left out. The launcher's
  unpacking is counted: the compressed form writes with ``write``, the stored form has
  the kernel copy with ``sendfile`` (counted as read from the binary and written to the
  unpacked file; ``copy_file_range`` likewise); shared libraries that the dynamic loader
  maps with ``mmap`` are not, and on a warm page cache those cost no disk reads anyway.
  It is a count of requests to the kernel, an upper bound on what reaches the medium.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

RAM_FILESYSTEMS = {"tmpfs", "ramfs"}
NOT_FILES = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "mqueue", "debugfs"}
_SYSCALL = re.compile(
    r"^(?P<call>p?read(?:64|v)?|preadv2?|p?write(?:64|v)?|pwritev2?)"
    r"\((?P<fd>\d+)<(?P<path>[^>]*)>.*\)\s+=\s+(?P<result>-?\d+)"
)
# The kernel's copies between two files: (source, destination) by the calls' argument order.
_SENDFILE = re.compile(
    r"^sendfile\((?P<out_fd>\d+)<(?P<destination>[^>]*)>, (?P<in_fd>\d+)<(?P<source>[^>]*)>"
    r".*\)\s+=\s+(?P<result>-?\d+)"
)
_COPY_FILE_RANGE = re.compile(
    r"^copy_file_range\((?P<in_fd>\d+)<(?P<source>[^>]*)>, [^,]+, "
    r"(?P<out_fd>\d+)<(?P<destination>[^>]*)>.*\)\s+=\s+(?P<result>-?\d+)"
)
_TRACED_CALLS = (
    "read,pread64,readv,preadv,preadv2,write,pwrite64,writev,pwritev,pwritev2,"
    "sendfile,copy_file_range"
)


def transfers(line: str) -> list[tuple[str, str, int]]:
    """(direction, path, bytes) of one strace line: ``read`` or ``written``, for each file a
    call moved bytes from or to; a kernel copy counts for both of its files."""
    match = _SYSCALL.match(line)
    if match is not None:
        direction = "read" if "read" in match["call"] else "written"
        return [(direction, match["path"], int(match["result"]))]
    match = _SENDFILE.match(line) or _COPY_FILE_RANGE.match(line)
    if match is not None:
        count = int(match["result"])
        return [("read", match["source"], count), ("written", match["destination"], count)]
    return []


@dataclass(frozen=True)
class Run:
    """One invocation's exit status and wall time."""

    status: int
    wall_seconds: float


@dataclass(frozen=True)
class FileBytes:
    """Bytes the process tree read from and wrote to files, by kind of filesystem."""

    read_persistent: int = 0
    written_persistent: int = 0
    read_ram: int = 0
    written_ram: int = 0


def run_once(argv: Sequence[str], env: Mapping[str, str]) -> Run:
    """Spawn, reap, and return the exit status and the wall time."""
    started = time.perf_counter()
    pid = os.posix_spawn(argv[0], list(argv), dict(env), file_actions=_quiet())
    _, wait_status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - started
    return Run(os.waitstatus_to_exitcode(wait_status), elapsed)


def peak_rss_kib(argv: Sequence[str], env: Mapping[str, str], gnu_time: str) -> int:
    """The largest resident set of the command's process tree, in KiB (GNU time %M)."""
    with tempfile.NamedTemporaryFile("r", prefix="bench-rss-") as output:
        subprocess.run(
            [gnu_time, "-f", "%M", "-o", output.name, *argv],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return int(output.read().split()[-1])


def _quiet() -> list[tuple[int, int, str, int, int]]:
    """stdin, stdout and stderr from and to /dev/null: no pipe for us to drain."""
    return [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]


def _mounts() -> list[tuple[str, str]]:
    """(mount point, filesystem type), longest mount point first."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        point = fields[4].replace("\\040", " ")
        mounts.append((point, fields[separator + 1]))
    return sorted(mounts, key=lambda mount: len(mount[0]), reverse=True)


def _filesystem(path: str, mounts: list[tuple[str, str]]) -> str:
    if path.startswith("/memfd:"):
        return "ramfs"  # anonymous memory: counted with the RAM filesystems
    for point, kind in mounts:
        if path == point or path.startswith(point.rstrip("/") + "/"):
            return kind
    return "unknown"


def file_bytes(argv: Sequence[str], env: Mapping[str, str], strace: str) -> FileBytes:
    """Run once under strace and add up file I/O by kind of filesystem."""
    mounts = _mounts()
    totals = {"read_persistent": 0, "written_persistent": 0, "read_ram": 0, "written_ram": 0}
    with tempfile.TemporaryDirectory(prefix="bench-strace-") as directory:
        prefix = Path(directory) / "trace"
        subprocess.run(
            [strace, "-ff", "-qq", "-y", "-e", f"trace={_TRACED_CALLS}", "-o", str(prefix), *argv],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        for trace in Path(directory).iterdir():
            for line in trace.read_text(errors="replace").splitlines():
                for direction, traced_path, count in transfers(line):
                    path = traced_path.removesuffix(" (deleted)")
                    if count <= 0 or not path.startswith("/"):
                        continue  # failed calls; socket:[..], pipe:[..], anon_inode:...
                    kind = _filesystem(path, mounts)
                    if kind in NOT_FILES:
                        continue
                    where = "ram" if kind in RAM_FILESYSTEMS else "persistent"
                    totals[f"{direction}_{where}"] += count
    return FileBytes(**totals)
