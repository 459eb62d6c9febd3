"""The strace reader turns a run's lines into the model's operations, and refuses what it
cannot model under the root rather than skip it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash_states import (
    Create,
    Disk,
    DiskFile,
    Fsync,
    FsyncDirectory,
    Link,
    Mkdir,
    Note,
    Rename,
    Rmdir,
    SetMode,
    SetTimes,
    Unlink,
    Write,
)
from tests.strace_ops import TraceReader, UnmodelledCall, split_arguments

pytestmark = pytest.mark.in_process

ROOT = Path("/scratch/root")
INITIAL = Disk(frozenset({"state"}), (DiskFile("state/f", b"old", 0o600, 1, "state/f"),))


def hx(text: str | bytes) -> str:
    """A string as strace -xx prints it."""
    data = text.encode() if isinstance(text, str) else text
    return "".join(f"\\x{byte:02x}" for byte in data)


def q(text: str | bytes) -> str:
    return f'"{hx(text)}"'


def fd(number: int, path: str) -> str:
    return f"{number}<{hx(path)}>"


def ops_of(*lines: str, umask: int = 0o022) -> list[object]:
    text = "\n".join(f"100 1700000000.{n:06d} {line}" for n, line in enumerate(lines))
    return [traced.op for traced in TraceReader(ROOT, INITIAL, umask).read(text)]


TEMP = f"{ROOT}/state/.f.tmp-1"
CWD = f"AT_FDCWD<{hx('/srv/cwd')}>"


def test_a_replace_reads_as_create_write_fsync_rename_and_directory_fsync() -> None:
    ops = ops_of(
        f"openat({CWD}, {q(TEMP)}, O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, 0666) = "
        f"{fd(4, TEMP)}",
        f"fchmod({fd(4, TEMP)}, 0600) = 0",
        f"write({fd(4, TEMP)}, {q('new')}, 3) = 3",
        f"utimensat({fd(4, TEMP)}, NULL, [{{tv_sec=7, tv_nsec=0}}, {{tv_sec=9, tv_nsec=0}}], 0)"
        " = 0",
        f"fsync({fd(4, TEMP)}) = 0",
        f"linkat({CWD}, {q(f'{ROOT}/state/f')}, {CWD}, {q(f'{ROOT}/state/f.aside')}, 0) = 0",
        f"rename({q(TEMP)}, {q(f'{ROOT}/state/f')}) = 0",
        f"openat({CWD}, {q(f'{ROOT}/state')}, O_RDONLY|O_CLOEXEC|O_DIRECTORY) = "
        f"{fd(3, f'{ROOT}/state')}",
        f"fsync({fd(3, f'{ROOT}/state')}) = 0",
    )
    assert ops == [
        Create("state/.f.tmp-1", "#1", 0o644),
        SetMode("#1", 0o600),
        Write("#1", 0, b"new"),
        SetTimes("#1", 9),
        Fsync("#1"),
        Link("state/f", "state/f.aside", "state/f"),
        Rename("state/.f.tmp-1", "state/f", "#1"),
        FsyncDirectory("state"),
    ]


def test_writes_follow_the_descriptor_s_offset_and_what_was_written() -> None:
    ops = ops_of(
        f"openat({CWD}, {q(TEMP)}, O_RDWR|O_CREAT|O_EXCL, 0600) = {fd(4, TEMP)}",
        f"write({fd(4, TEMP)}, {q('abcd')}, 4) = 2",
        f"write({fd(4, TEMP)}, {q('cd')}, 2) = 2",
    )
    assert ops[1:] == [Write("#1", 0, b"ab"), Write("#1", 2, b"cd")]


def test_network_steps_are_notes_and_failed_calls_are_skipped() -> None:
    socket = "5<TCP:[127.0.0.1:1->127.0.0.1:2]>"
    hello = q(bytes([0x16, 0x03]))
    ops = ops_of(
        "connect(5<TCP:[99]>, {sa_family=AF_INET, sin_port=htons(2)}, 16) = -1 EINPROGRESS"
        " (Operation now in progress)",
        f"write({socket}, {hello}, 2) = 2",
        f"unlink({q(f'{ROOT}/state/missing')}) = -1 ENOENT (No such file or directory)",
    )
    assert ops == [Note("connect", "connection 1"), Note("send", "connection 1")]


def test_a_call_split_by_another_process_is_joined() -> None:
    text = (
        f"100 1700000000.000001 rename({q(f'{ROOT}/state/f')}, <unfinished ...>\n"
        "200 1700000000.000002 wait4(100, <unfinished ...>\n"
        f"100 1700000000.000003 <... rename resumed>{q(f'{ROOT}/state/g')}) = 0\n"
    )
    ops = [t.op for t in TraceReader(ROOT, INITIAL, 0o022).read(text)]
    assert ops == [Rename("state/f", "state/g", "state/f")]


def test_what_happens_outside_the_root_is_not_the_client_s_state() -> None:
    elsewhere = "/tmp/_MEI123/lib.so"
    assert (
        ops_of(
            f"openat({CWD}, {q(elsewhere)}, O_WRONLY|O_CREAT|O_TRUNC, 0700) = {fd(3, elsewhere)}",
            f"write({fd(3, elsewhere)}, {q('ELF')}, 3) = 3",
            f"fsync({fd(3, elsewhere)}) = 0",
        )
        == []
    )


@pytest.mark.parametrize(
    "line",
    [
        f"fchown({fd(3, f'{ROOT}/state/f')}, 0, 0) = 0",
        f"dup({fd(3, f'{ROOT}/state/f')}) = 4",
        f"symlink({q('x')}, {q(f'{ROOT}/state/link')}) = 0",
    ],
    ids=["fchown", "dup", "symlink"],
)
def test_a_change_under_the_root_the_model_does_not_know_is_refused(line: str) -> None:
    with pytest.raises(UnmodelledCall):
        ops_of(
            f"openat({CWD}, {q(f'{ROOT}/state/f')}, O_RDONLY) = {fd(3, f'{ROOT}/state/f')}", line
        )


def test_arguments_split_at_top_level_commas_only() -> None:
    assert split_arguments('3<x>, [{a=1, b=2}], "\\x2c", f(1, 2)') == [
        "3<x>",
        "[{a=1, b=2}]",
        '"\\x2c"',
        "f(1, 2)",
    ]


def test_directories_and_unlinks_under_the_root_are_followed() -> None:
    ops = ops_of(
        f"mkdir({q(f'{ROOT}/other')}, 0755) = 0",
        f"unlinkat({CWD}, {q(f'{ROOT}/state/f')}, 0) = 0",
        f"unlinkat({CWD}, {q(f'{ROOT}/other')}, AT_REMOVEDIR) = 0",
    )
    assert ops == [Mkdir("other"), Unlink("state/f"), Rmdir("other")]
