"""shellcheck on every shell file of firmware-integration/ (POSIX sh, all severities)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.firmware.conftest import FIRMWARE, require_tool

SHEBANGS = ("#!/bin/sh", "#!/usr/bin/env sh")


def is_shell(path: Path) -> bool:
    if path.suffix == ".sh":
        return True
    try:
        head = path.read_text().splitlines()[:1]
    except (UnicodeDecodeError, OSError):
        return False
    return bool(head) and head[0].startswith(SHEBANGS)


SHELL_FILES = sorted(p for p in FIRMWARE.rglob("*") if p.is_file() and is_shell(p))


def shellcheck(path: Path) -> None:
    result = subprocess.run(
        [require_tool("shellcheck"), "--shell=sh", "--severity=style", "--format=gcc", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_shell_files_are_the_expected_ones() -> None:
    names = {str(p.relative_to(FIRMWARE)) for p in SHELL_FILES}
    assert {"caramel-ensure.sh", "sysvinit/caramel-embedded"} <= names


@pytest.mark.parametrize(
    "path", SHELL_FILES, ids=[str(p.relative_to(FIRMWARE)) for p in SHELL_FILES]
)
def test_shellcheck(path: Path) -> None:
    shellcheck(path)
