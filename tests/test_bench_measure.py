"""The bench's count of file bytes (bench/measure.py) sees the kernel's copies too: the
stored one-file launcher unpacks with ``sendfile``, which ``read``/``write`` alone miss."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from bench import measure

pytestmark = pytest.mark.in_process

COPY = """\
import os, sys
source, by_sendfile, by_range = sys.argv[1:]
size = os.path.getsize(source)
with open(source, "rb") as fin, open(by_sendfile, "wb") as out:
    assert os.sendfile(out.fileno(), fin.fileno(), 0, size) == size
with open(source, "rb") as fin, open(by_range, "wb") as out:
    assert os.copy_file_range(fin.fileno(), out.fileno(), size) == size
"""


def test_kernel_copies_count_as_read_from_the_source_and_written_to_the_copy(
    tmp_path: Path,
) -> None:
    strace = shutil.which("strace")
    assert strace is not None, "strace is installed by make system-deps"
    size = 300_000
    source = tmp_path / "source"
    source.write_bytes(os.urandom(size))
    script = tmp_path / "copy.py"
    script.write_text(COPY)
    argv = [sys.executable, "-S", str(script), str(source), *(str(tmp_path / n) for n in "ab")]

    counted = measure.file_bytes(argv, os.environ, strace)

    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes() == source.read_bytes()
    written = counted.written_persistent + counted.written_ram
    read = counted.read_persistent + counted.read_ram
    assert written == 2 * size  # the two copies, and nothing else written to a file
    assert read >= 2 * size  # the source twice, besides what Python reads to start


def test_each_kernel_copy_line_names_its_source_and_destination() -> None:
    sendfile = (
        "sendfile(3</tmp/_MEI1/libpython3.11.so.1.0>, 4</usr/bin/caramel-embedded>, "
        "[4860065] => [10588449], 5728384) = 5728384"
    )
    copy_range = "copy_file_range(3</data/in>, NULL, 4</data/out>, NULL, 100, 0) = 100"
    assert measure.transfers(sendfile) == [
        ("read", "/usr/bin/caramel-embedded", 5728384),
        ("written", "/tmp/_MEI1/libpython3.11.so.1.0", 5728384),
    ]
    assert measure.transfers(copy_range) == [
        ("read", "/data/in", 100),
        ("written", "/data/out", 100),
    ]
    assert measure.transfers('write(1</dev/pts/0>, "x", 1) = 1') == [("written", "/dev/pts/0", 1)]
    assert measure.transfers("close(3</data/in>) = 0") == []
