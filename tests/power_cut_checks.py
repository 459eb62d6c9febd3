"""What must hold on a disk a power cut left, and after the next invocation ran on it.

The rules are the SPEC's for the combined file, read for a power cut: the file is absent,
empty (a first run cut before it wrote), as it was before the run, or complete, never
partial; a key whose request the server may hold (and has not rejected) is never lost; a
damaged file's bytes are never lost; at most one stray file (a staging file) is left, and no
file is ever readable by others. The next invocation then ends 0 or 69, with the file
complete, the strays gone and every key kept that was not rejected.

The file is judged by ``testbed.combined_check`` (not by the package's own parser). These
functions only judge; ``snapshot`` and ``build`` move a ``Disk`` from and to real files.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from testbed.combined_check import Combined, parse_combined
from tests.crash_states import Disk, DiskFile, parent

ASIDE_MARK = ".corrupt-"


@dataclass(frozen=True)
class Rules:
    """What a scenario's states are held to.

    ``file``: the combined file's path under the root; ``original``: its bytes before the
    run (a state may hold them still); ``damaged``: bytes that must never be lost (the
    damaged file a run sets aside); ``keys_at_risk``: the keys (RSA moduli) whose requests
    the server may hold, not rejected; ``rejected``: keys the server rejected (a run may drop
    them).
    """

    file: str
    original: bytes | None = None
    damaged: bytes | None = None
    keys_at_risk: frozenset[int] = frozenset()
    rejected: frozenset[int] = frozenset()


def combined_or_none(data: bytes) -> Combined | None:
    """The file parsed strictly, or None if it is not a whole combined file."""
    try:
        return parse_combined(data)
    except (AssertionError, ValueError):
        return None


def is_aside(rules: Rules, name: str) -> bool:
    return name.startswith(rules.file + ASIDE_MARK)


def problems_of_crash_state(disk: Disk, rules: Rules) -> list[str]:
    """What is wrong with a disk a power cut left, before any invocation touched it."""
    problems = []
    held = disk.file(rules.file)
    parsed = None if held is None else combined_or_none(held.data)
    if held is not None and held.data not in (b"", rules.original) and parsed is None:
        problems.append(f"partial or foreign content in {rules.file}: {held.data[-60:]!r}")
    for key in sorted(rules.keys_at_risk):
        if parsed is None or parsed.key_modulus != key:
            problems.append(f"lost the key {key % 10**8}… whose request the server may hold")
    strays = [
        name
        for name in disk.names_in(parent(rules.file))
        if name != rules.file and not is_aside(rules, name)
    ]
    if len(strays) > 1:
        problems.append(f"{len(strays)} stray files: {strays}")
    problems += _mode_problems(disk)
    if rules.damaged is not None:
        if all(found.data != rules.damaged for found in disk.files):
            problems.append("the damaged file's bytes are lost")
        for found in disk.files:
            if is_aside(rules, found.name) and found.data != rules.damaged:
                problems.append(f"{found.name} does not hold the damaged bytes whole")
    return problems


def problems_after_recovery(crashed: Disk, status: int, after: Disk, rules: Rules) -> list[str]:
    """What is wrong once the next invocation (ended ``status``) ran on ``crashed``."""
    if status not in (0, 69):
        return [f"the next invocation ended {status}"]
    problems = []
    held = after.file(rules.file)
    parsed = None if held is None else combined_or_none(held.data)
    if held is None or parsed is None:
        return [*problems, f"{rules.file} is not a whole combined file after the next run"]
    if held.mode != 0o600:
        problems.append(f"{rules.file} has mode {held.mode:o}")
    before = crashed.file(rules.file)
    kept = None if before is None else combined_or_none(before.data)
    must_keep = set(rules.keys_at_risk)
    if kept is not None and kept.key_modulus not in rules.rejected:
        must_keep.add(kept.key_modulus)
    if any(key != parsed.key_modulus for key in must_keep):
        problems.append("the next run replaced a key that was not rejected")
    left = [
        name
        for name in after.names_in(parent(rules.file))
        if name != rules.file and not is_aside(rules, name)
    ]
    if left:
        problems.append(f"the next run left {left}")
    damaged_before = rules.damaged is not None and any(
        found.data == rules.damaged for found in crashed.files
    )
    if damaged_before and all(found.data != rules.damaged for found in after.files):
        problems.append("the next run lost the damaged file's bytes")
    return problems


def _mode_problems(disk: Disk) -> list[str]:
    return [
        f"{found.name} is readable by others (mode {found.mode:o})"
        for found in disk.files
        if found.mode & 0o077
    ]


# --- real files ----------------------------------------------------------------------------


def snapshot(root: Path) -> Disk:
    """The directories and regular files under ``root`` as a ``Disk`` (hard links kept)."""
    directories = set()
    found: list[tuple[str, Path]] = []
    for directory, subdirectories, names in os.walk(root):
        relative = Path(directory).relative_to(root)
        directories.update(str(relative / name) for name in subdirectories)
        found += [(str(relative / name), Path(directory) / name) for name in names]
    files = []
    first_name: dict[tuple[int, int], str] = {}
    for name, path in sorted(found):
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            raise AssertionError(f"{path}: not a regular file")
        inode = first_name.setdefault((info.st_dev, info.st_ino), name)
        mode = stat.S_IMODE(info.st_mode)
        files.append(DiskFile(name, path.read_bytes(), mode, int(info.st_mtime), inode))
    return Disk(frozenset(directories), tuple(files))


def build(disk: Disk, root: Path) -> None:
    """Make ``disk`` under the new directory ``root``: real files, modes, times, links."""
    root.mkdir(parents=True)
    for directory in sorted(disk.directories, key=lambda path: path.count("/")):
        (root / directory).mkdir(mode=0o755)
    written: dict[str, Path] = {}
    for found in disk.files:
        path = root / found.name
        if found.inode in written:
            os.link(written[found.inode], path)
            continue
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, found.data)
            os.fchmod(descriptor, found.mode)
            if found.mtime is not None:
                os.utime(descriptor, (found.mtime, found.mtime))
        finally:
            os.close(descriptor)
        written[found.inode] = path


def same_disk(model: Disk, real: Disk) -> list[str]:
    """Where a disk the model computed differs from a real one (an mtime the model leaves
    open, None, matches any)."""
    differences = []
    if model.directories != real.directories:
        differences.append(
            f"directories {sorted(model.directories)} != {sorted(real.directories)}"
        )
    names = [found.name for found in model.files]
    if names != [found.name for found in real.files]:
        return [*differences, f"files {names} != {[found.name for found in real.files]}"]
    for modelled, found in zip(model.files, real.files, strict=True):
        if (modelled.data, modelled.mode, modelled.inode) != (found.data, found.mode, found.inode):
            differences.append(f"{found.name}: bytes, mode or links differ")
        if modelled.mtime is not None and modelled.mtime != found.mtime:
            differences.append(f"{found.name}: mtime {modelled.mtime} != {found.mtime}")
    return differences
