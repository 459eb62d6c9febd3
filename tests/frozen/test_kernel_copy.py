"""The launcher's copy of the stored files: the kernel does it (build/launcher_patch.py).

At every start the one-file launcher unpacks ~14 MB into ``$TMPDIR/_MEI*``. PyInstaller
copies a stored entry through 8 KiB freads and fwrites (some 3,300 write calls a start);
our change to its launcher has the kernel copy it with sendfile(2), one call a file. These
tests run the real binary under strace and read what it did: in the stored form every file
it unpacks is filled by sendfile and none by write; the compressed form (its entries must
be inflated) still writes them, and still runs. strace's fault injection then shows the two
other paths on the real binary: a kernel that cannot copy (EINVAL, as an old kernel or an
odd file system answers) falls back to the chunk loop and the run succeeds; a copy that
fails (EIO) ends in the launcher's own report and its 255, as a full ``$TMPDIR`` does
(tests/frozen/test_launcher.py, where the copy comes up short on a full tmpfs).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbed.command import clean_environment
from tests.frozen.conftest import Binary, onefile_form

# strace -y prints each descriptor with its path: "123 sendfile(3</tmp/x/_MEI.../f>, 4<...".
CALL_INTO_UNPACKED = re.compile(
    r"^\d+\s+(write|sendfile64|sendfile|copy_file_range)\(\d+<([^>]*/_MEI[^/>]*/[^>]*)>", re.M
)
OPENED_TO_WRITE = re.compile(r"^\d+\s+openat\(.*?\"([^\"]*/_MEI[^/\"]*/[^\"]*)\", O_WRONLY", re.M)
KERNEL_COPIES = {"sendfile", "sendfile64", "copy_file_range"}
TRACED = "trace=openat,write,copy_file_range,/^sendfile"


@dataclass(frozen=True)
class Unpacking:
    """One run of the binary under strace: its result, and what went into ``_MEI*``."""

    result: subprocess.CompletedProcess[str]
    opened: set[str]  # the files the launcher created to unpack into
    calls: Counter[tuple[str, str]]  # (system call, file) -> how many calls

    def files_by(self, calls: set[str]) -> set[str]:
        return {path for (call, path) in self.calls if call in calls}

    def count(self, call: str) -> int:
        return sum(n for (name, _), n in self.calls.items() if name == call)


def unpack_traced(binary: Path, tmp_path: Path, *strace_options: str) -> Unpacking:
    """``binary --version`` (the launcher unpacks everything first) under strace, with
    ``$TMPDIR`` a directory of the test's."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is needed (make system-deps installs it)")
    unpack = tmp_path / "unpack"
    unpack.mkdir()
    trace = tmp_path / "trace"
    argv = [str(binary), "--version"]
    result = subprocess.run(
        [strace, "-f", "-qq", "-y", "-o", str(trace), "-e", TRACED, *strace_options, *argv],
        env=clean_environment({"TMPDIR": str(unpack)}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    text = trace.read_text()
    calls = Counter((call, path) for call, path in CALL_INTO_UNPACKED.findall(text))
    return Unpacking(result, set(OPENED_TO_WRITE.findall(text)), calls)


@pytest.mark.compressed_too
def test_the_stored_files_are_copied_by_the_kernel_the_compressed_ones_written(
    binary: Binary, tmp_path: Path
) -> None:
    run = unpack_traced(binary.path, tmp_path)
    assert run.result.returncode == 0, run.result.stderr
    assert run.result.stdout.startswith("caramel-embedded ")
    assert len(run.opened) > 10, "the trace missed the unpacking"
    if binary.store == "yes":
        assert run.files_by(KERNEL_COPIES) == run.opened
        assert run.count("write") == 0, "stored files copied through write()"
    else:
        assert run.files_by(KERNEL_COPIES) == set()
        assert run.files_by({"write"}) == run.opened


def test_a_kernel_that_cannot_copy_leaves_the_copy_to_the_chunk_loop(
    binary: Binary, tmp_path: Path
) -> None:
    stored = onefile_form(binary, "yes")
    run = unpack_traced(stored.path, tmp_path, "-e", "inject=/^sendfile:error=EINVAL")
    assert run.result.returncode == 0, run.result.stderr
    assert run.result.stdout.startswith("caramel-embedded ")
    # Each file was tried once by the kernel, then written by the launcher.
    assert run.files_by(KERNEL_COPIES) == run.opened
    assert run.files_by({"write"}) == run.opened
    assert len(run.opened) > 10, "the trace missed the unpacking"


def test_a_copy_that_fails_ends_in_the_launchers_report_and_255(
    binary: Binary, tmp_path: Path
) -> None:
    stored = onefile_form(binary, "yes")
    run = unpack_traced(stored.path, tmp_path, "-e", "inject=/^sendfile:error=EIO:when=3")
    assert run.result.returncode == 255
    assert run.result.stdout == ""
    # The launcher's lines (docs/firmware-integration.md): which file, which call, why.
    assert re.match(
        r"\[PYI-\d+:ERROR\] Failed to extract \S+: failed to copy data!\n"
        r"sendfile: Input/output error\n",
        run.result.stderr,
    ), run.result.stderr
    # No file after the failed one was started: the launcher stopped there.
    assert len(run.opened) == 3
