"""systemd units as the checks read them: parsed settings, and systemd-analyze in a root.

`systemd-analyze verify` needs no running systemd, but it resolves a unit's dependencies
(sysinit.target, timers.target, ...) and checks that every Exec*= command exists. It runs
with --root= on a directory made for it: systemd's own units copied from the host, the
units under test, and the executables they name. Unknown keys and bad values are only
warnings to systemd: the checks count any output as a failure.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from tests.firmware.conftest import require_tool

HOST_UNIT_DIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
UNIT_DIR = Path("usr/lib/systemd/system")


def settings(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for each assignment, in order (keys may repeat)."""
    found = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        found.append((section, key.strip(), value.strip()))
    return found


def values(text: str, section: str, key: str) -> list[str]:
    """Every value of [section] key=, in order."""
    return [v for s, k, v in settings(text) if s == section and k == key]


def value(text: str, section: str, key: str) -> str:
    """The one value of [section] key=; set twice or not at all is a failure."""
    found = values(text, section, key)
    assert len(found) == 1, f"[{section}] {key}= set {len(found)} times"
    return found[0]


def microseconds(span: str) -> int:
    """A systemd time span ("1h", "10min") in microseconds, as systemd reads it."""
    result = subprocess.run(
        [require_tool("systemd-analyze"), "timespan", span],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in result.stdout.splitlines():
        label, _, number = line.strip().partition(":")
        if label == "μs":
            return int(number)
    raise AssertionError(f"systemd-analyze timespan {span}: {result.stdout}")


def make_root(root: Path, units: dict[str, str], executables: Iterable[str] = ()) -> Path:
    """A directory for --root=: systemd's units, the given ones, stand-in executables."""
    host = next((d for d in HOST_UNIT_DIRS if (d / "sysinit.target").exists()), None)
    assert host is not None, "systemd's units are not installed: run `make firmware-deps`"
    unit_dir = root / UNIT_DIR
    if not unit_dir.exists():
        shutil.copytree(host, unit_dir, symlinks=True)
    for name, text in units.items():
        path = root / name if "/" in name else unit_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for executable in executables:
        path = root / executable.lstrip("/")
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("#!/bin/sh\n")
            path.chmod(0o755)
    return root


def verify(root: Path, *units: str) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify of units inside root; output is stdout and stderr together."""
    return subprocess.run(
        [
            require_tool("systemd-analyze"),
            "verify",
            "--man=no",
            "--recursive-errors=no",
            f"--root={root}",
            *units,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
        timeout=60,
    )


def assert_verifies(root: Path, *units: str) -> None:
    """verify() must pass and say nothing: systemd reports most mistakes as warnings."""
    result = verify(root, *units)
    report = (
        f"systemd-analyze verify {' '.join(units)}: status {result.returncode}\n{result.stdout}"
    )
    assert result.returncode == 0, report
    assert result.stdout == "", report


def security(root: Path, unit: str, threshold: int) -> subprocess.CompletedProcess[str]:
    """systemd-analyze security, offline; fails over threshold (the level shown times 10)."""
    return subprocess.run(
        [
            require_tool("systemd-analyze"),
            "security",
            "--offline=yes",
            f"--root={root}",
            f"--threshold={threshold}",
            "--no-pager",
            unit,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
