"""The combined file's lock and atomic replacement, in process and across processes."""

from __future__ import annotations

import datetime as dt
import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from caramel_embedded import combined_file
from caramel_embedded.combined_file import Ownership
from caramel_embedded.errors import CombinedFileError, LockHeldError

pytestmark = pytest.mark.in_process

PROBE = """
import sys
from pathlib import Path
from caramel_embedded import combined_file
from caramel_embedded.errors import CombinedFileError, LockHeldError

try:
    with combined_file.locked(Path(sys.argv[1]), combined_file.Ownership()):
        print("acquired")
except LockHeldError:
    print("held")
"""


def probe(path: Path) -> str:
    """Try the lock from another process, as a second invocation would."""
    return subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "client.pem"
    with combined_file.locked(path, Ownership()):
        assert probe(path) == "held"
    assert probe(path) == "acquired"


def test_lock_survives_atomic_replacement(tmp_path: Path) -> None:
    path = tmp_path / "client.pem"
    with combined_file.locked(path, Ownership()) as handle:
        old_inode = path.stat().st_ino
        handle.replace(b"new content\n")
        assert path.stat().st_ino != old_inode
        assert probe(path) == "held"
        handle.replace(b"newer content\n")
        assert probe(path) == "held"
    assert probe(path) == "acquired"
    assert path.read_bytes() == b"newer content\n"


def test_second_lock_in_same_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "client.pem"
    with (
        combined_file.locked(path, Ownership()),
        pytest.raises(LockHeldError),
        combined_file.locked(path, Ownership()),
    ):
        pass


def test_new_files_never_have_wider_permissions_than_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the umask, os.open creates with owner-only bits; fchmod widens after."""
    created_modes: list[int] = []
    real_open = os.open

    def recording_open(path: object, flags: int, mode: int = 0o777, **kw: object) -> int:
        if flags & os.O_CREAT:
            created_modes.append(mode)
        return real_open(path, flags, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", recording_open)
    old_umask = os.umask(0)
    try:
        path = tmp_path / "client.pem"
        with combined_file.locked(path, Ownership(mode=0o640)) as handle:
            handle.replace(b"x\n")
    finally:
        os.umask(old_umask)
    assert created_modes
    assert all(mode & 0o077 == 0 for mode in created_modes)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_replace_sets_mtime_and_keeps_old_file_aside(tmp_path: Path) -> None:
    path = tmp_path / "client.pem"
    path.write_bytes(b"damaged")
    os.chmod(path, 0o604)
    aside = combined_file.corrupt_name(path, dt.datetime(2026, 11, 25, 8, 9, 10, tzinfo=dt.UTC))
    assert aside.name == "client.pem.corrupt-20261125T080910Z"
    with combined_file.locked(path, Ownership()) as handle:
        handle.replace(b"fresh\n", mtime=1_700_000_000, set_aside_as=aside)
    assert path.read_bytes() == b"fresh\n"
    assert path.stat().st_mtime == 1_700_000_000
    assert aside.read_bytes() == b"damaged"
    assert stat.S_IMODE(aside.stat().st_mode) == 0o604
    taken = combined_file.corrupt_name(path, dt.datetime(2026, 11, 25, 8, 9, 10, tzinfo=dt.UTC))
    assert taken.name == "client.pem.corrupt-20261125T080910Z-1"


def test_stale_temporaries_are_removed_under_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "client.pem"
    left = tmp_path / ".client.pem.tmp-deadbeef"
    left.write_bytes(b"half a key")
    unrelated = tmp_path / ".other.pem.tmp-deadbeef"
    unrelated.write_bytes(b"not ours")
    with combined_file.locked(path, Ownership()) as handle:
        assert handle.remove_stale_temporaries() == [left.name]
    assert not left.exists()
    assert unrelated.exists()


def test_failed_write_leaves_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "client.pem"
    path.write_bytes(b"old\n")

    def full_disk(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    with combined_file.locked(path, Ownership()) as handle:
        monkeypatch.setattr(os, "fsync", full_disk)
        with pytest.raises(CombinedFileError, match="cannot write: No space"):
            handle.replace(b"new\n")
    assert path.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client.pem"]


def test_missing_parent_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "caramel" / "client.pem"
    with combined_file.locked(path, Ownership()):
        pass
    assert path.exists()
    assert path.read_bytes() == b""


def test_directories_made_before_a_failure_are_removed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed run creates nothing, even when the second of three directories fails."""
    made: list[str] = []
    real_mkdir = os.mkdir

    def mkdir_that_fills_the_disk(path: str, mode: int = 0o777) -> None:
        if made:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        real_mkdir(path, mode)
        made.append(str(path))

    monkeypatch.setattr(combined_file.os, "mkdir", mkdir_that_fills_the_disk)
    file = tmp_path / "a" / "b" / "c" / "client.pem"
    with (
        pytest.raises(CombinedFileError, match=r"cannot create .*/a/b: No space left"),
        combined_file.locked(file, Ownership()),
    ):
        pass
    assert made == [str(tmp_path / "a")]
    assert list(tmp_path.iterdir()) == []


def test_missing_directories_are_made_with_mode_0755(tmp_path: Path) -> None:
    file = tmp_path / "a" / "b" / "client.pem"
    with combined_file.locked(file, Ownership()):
        pass
    for directory in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755 & ~current_umask()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
