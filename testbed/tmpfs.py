"""A tmpfs mounted for a block: where the one-file launcher unpacks, as on a device.

Shared by the frozen suite (which must have one: it fails without) and the bench (which
measures without it where it may not mount, and says so).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def tmpfs(mount_point: Path, size: str) -> Iterator[Path | None]:
    """A tmpfs of ``size`` at ``mount_point`` for the block (made if missing), or None
    where this process may not mount one (not root); unmounted (lazily) after."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=1777", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        yield mount_point if mounted.returncode == 0 else None
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)
