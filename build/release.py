"""The release: what `make release` (build/release.mk) checks, reuses and assembles.

    python3 build/release.py check [--preview]
    python3 build/release.py stale DIST ARCH        (removes a freeze of another commit)
    python3 build/release.py assemble --out DIR --freezes ROOT --debs ROOT ARCH...
    python3 build/release.py compare FIRST SECOND

A release is the generic builds, without an embedded CA (a firmware team embeds its own
with `make binary CA_CERT=...`): the very freezes the tests ran (.cache/test-dist/ARCH,
made by the Makefile's rules), renamed with the version and the architecture, the
bundle as a tarball, the .deb of the stored form, each one's SBOM, and SHA256SUMS.

- check: a release is made from a committed tree whose version has its section in
  CHANGELOG.md; anything else is refused in one line (status 1), unless --preview
  (RELEASE_PREVIEW=1), which says what it let through.
- stale: make rebuilds a freeze when a file that goes into it changed, not when only the
  commit did; but SOURCE_DATE_EPOCH is the commit's time, so a freeze of an earlier commit
  is not what this commit builds. Such a freeze (or one of another version, or with a CA)
  is removed, and make freezes it again by the tests' rules.
- assemble: copies and renames; the bundle's tarball has its entries sorted, every time
  SOURCE_DATE_EPOCH, owner 0:0 without names, no pax headers, gzip without a name or a
  time, so two runs give the same bytes.
- compare: `make release-check`'s verdict, one line per file.

The decisions are the pure functions; the I/O is at the end of the file.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARCHES = ("x86_64", "aarch64", "armhf")
# Debian's names of build/freeze.sh's architectures (build/deb.py says the same).
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armhf": "armhf"}
# The freezes' own names, as build/freeze.sh writes them into a dist directory.
STORED = "caramel-embedded"
COMPRESSED = "caramel-embedded-compressed"
BUNDLE = "caramel-embedded-dir"
SUMS = "SHA256SUMS"
VERSION_LINE = re.compile(r'^__version__ = "([^"]+)"$', re.MULTILINE)
# Keep a Changelog's heading of a released version, with or without the brackets:
# '## [0.2.0] - 2026-12-07' (build/deb.py dates the package's changelog by the same).
RELEASED = re.compile(r"^## \[?(\d[^\]\s]*)\]? - (\d{4}-\d{2}-\d{2})\s*$", re.MULTILINE)


class ReleaseError(Exception):
    """A release that cannot be made as asked: one line for the user."""


# --- the decisions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """The release's file names of one architecture's builds."""

    stored: str
    compressed: str
    bundle: str  # the tarball's top directory, and its SBOM's stem
    deb_prefix: str
    deb_suffix: str

    @property
    def tarball(self) -> str:
        return f"{self.bundle}.tar.gz"


def names(version: str, arch: str) -> Names:
    if arch not in DEBIAN_ARCH:
        raise ReleaseError(f"ARCH={arch}: expected one of {', '.join(ARCHES)}")
    return Names(
        stored=f"{STORED}-{version}-{arch}",
        compressed=f"{COMPRESSED}-{version}-{arch}",
        bundle=f"{BUNDLE}-{version}-{arch}",
        deb_prefix=f"{STORED}_{version}-",
        deb_suffix=f"_{DEBIAN_ARCH[arch]}.deb",
    )


def sbom_name(name: str) -> str:
    return f"{name}.cdx.json"


def the_deb(candidates: Iterable[str], version: str, arch: str) -> str:
    """The one .deb of this version and architecture (any Debian revision) among a
    directory's files."""
    wanted = names(version, arch)
    found = sorted(
        n for n in candidates if n.startswith(wanted.deb_prefix) and n.endswith(wanted.deb_suffix)
    )
    if len(found) != 1:
        raise ReleaseError(
            f"expected one {wanted.deb_prefix}*{wanted.deb_suffix} for {arch}, found "
            f"{len(found)}: {', '.join(found) or 'none'}"
        )
    return found[0]


def version_of(version_py: str) -> str:
    match = VERSION_LINE.search(version_py)
    if not match:
        raise ReleaseError("caramel_embedded/version.py has no __version__ line")
    return match.group(1)


def released_versions(changelog: str) -> dict[str, str]:
    """The versions CHANGELOG.md has a section of, with their dates."""
    return dict(RELEASED.findall(changelog))


def refusals(version: str, changelog: str, dirty: Sequence[str]) -> list[str]:
    """Why this tree is not a release's: empty when it is."""
    reasons = []
    if dirty:
        shown = ", ".join(dirty[:3]) + (", ..." if len(dirty) > 3 else "")
        reasons.append(f"the tree has uncommitted changes ({shown})")
    if version not in released_versions(changelog):
        reasons.append(f"CHANGELOG.md has no '## [{version}] - YYYY-MM-DD' section")
    return reasons


def parse_buildinfo(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def stale_reason(buildinfo: Mapping[str, str], version: str, epoch: str) -> str | None:
    """Why a freeze is not this commit's generic build (None: it is)."""
    if buildinfo.get("version") != version:
        return f"version {buildinfo.get('version')}, not {version}"
    if buildinfo.get("source_date_epoch") != epoch:
        return f"SOURCE_DATE_EPOCH {buildinfo.get('source_date_epoch')}, not {epoch}"
    if buildinfo.get("embedded_ca_sha256", "none") != "none":
        return "a CA is embedded (a release is the generic build)"
    return None


def sha256sums(digests: Mapping[str, str]) -> str:
    """`sha256sum -c`'s format: the digest, two spaces (text mode), the name; sorted."""
    return "".join(f"{digests[name]}  {name}\n" for name in sorted(digests))


@dataclass(frozen=True)
class Entry:
    """One file of a tree as the tarball holds it: what it is, never who or when."""

    path: str  # relative, '/'-separated
    kind: str  # "dir", "file" or "symlink"
    executable: bool = False
    size: int = 0
    target: str = ""


def tar_info(entry: Entry, top: str, epoch: int) -> tarfile.TarInfo:
    """The member of an entry: the same for the same tree whoever built it and when."""
    info = tarfile.TarInfo(f"{top}/{entry.path}" if entry.path else top)
    info.mtime = epoch
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.kind == "dir":
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif entry.kind == "symlink":
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, entry.target
    else:
        info.type, info.size = tarfile.REGTYPE, entry.size
        info.mode = 0o755 if entry.executable else 0o644
    return info


def compare(first: Mapping[str, str], second: Mapping[str, str]) -> list[tuple[str, str]]:
    """Each file of either run with its verdict: 'same', 'DIFFERS' or 'only in ...'."""
    verdicts = []
    for name in sorted(set(first) | set(second)):
        if name not in second:
            verdicts.append((name, "only in the first run"))
        elif name not in first:
            verdicts.append((name, "only in the second run"))
        else:
            verdicts.append((name, "same" if first[name] == second[name] else "DIFFERS"))
    return verdicts


# --- the I/O ------------------------------------------------------------------------------


def dirty_files(repo: Path) -> list[str]:
    """What `git status` shows as changed or untracked (ignored files are not the tree's)."""
    result = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ReleaseError(f"{repo} is not a git checkout: a release is made from a commit")
    return [line[3:] for line in result.stdout.splitlines() if line.strip()]


def source_date_epoch(repo: Path) -> str:
    """The epoch build/freeze.sh stamps: SOURCE_DATE_EPOCH, else the commit's time."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return os.environ["SOURCE_DATE_EPOCH"]
    result = subprocess.run(
        ["git", "-C", str(repo), "log", "-1", "--format=%ct"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise ReleaseError("not a git checkout: set SOURCE_DATE_EPOCH to the sources' time")
    return result.stdout.strip()


def current_version(repo: Path) -> str:
    return version_of((repo / "caramel_embedded" / "version.py").read_text())


def check(repo: Path, preview: bool) -> int:
    version = current_version(repo)
    reasons = refusals(version, (repo / "CHANGELOG.md").read_text(), dirty_files(repo))
    if reasons and not preview:
        print(
            f"release: refused: {'; and '.join(reasons)} (RELEASE_PREVIEW=1 builds it anyway)",
            file=sys.stderr,
        )
        return 1
    for reason in reasons:
        print(f"release: preview, not a release: {reason}", file=sys.stderr)
    return 0


def outputs(dist: Path) -> list[Path]:
    return [dist / STORED, dist / COMPRESSED, dist / BUNDLE]


def remove_stale(repo: Path, dist: Path, arch: str) -> None:
    """Remove every freeze of DIST that is not this commit's generic build."""
    version, epoch = current_version(repo), source_date_epoch(repo)
    for output in outputs(dist):
        buildinfo = output.with_name(output.name + ".buildinfo")
        if not buildinfo.exists():
            continue
        reason = stale_reason(parse_buildinfo(buildinfo.read_text()), version, epoch)
        if reason is None:
            continue
        print(f"release: {arch}: {output.name} is not this commit's ({reason}): frozen again")
        if output.is_dir():
            shutil.rmtree(output)
        else:
            output.unlink(missing_ok=True)
        for beside in (buildinfo, output.with_name(output.name + ".cdx.json")):
            beside.unlink(missing_ok=True)


def tree_entries(root: Path) -> list[Entry]:
    """ROOT's files, directories and symlinks, sorted by path, the top itself first."""
    entries = [Entry("", "dir")]
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            entries.append(Entry(relative, "symlink", target=os.readlink(path)))
        elif path.is_dir():
            entries.append(Entry(relative, "dir"))
        else:
            executable = bool(path.stat().st_mode & 0o100)
            entries.append(Entry(relative, "file", executable, path.stat().st_size))
    return entries


def write_tarball(root: Path, top: str, epoch: int, target: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for entry in tree_entries(root):
            info = tar_info(entry, top, epoch)
            if entry.kind == "file":
                with (root / entry.path).open("rb") as data:
                    tar.addfile(info, data)
            else:
                tar.addfile(info)
    with (
        target.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(buffer.getvalue())


def copy(source: Path, target: Path, mode: int) -> None:
    if not source.is_file():
        raise ReleaseError(f"{source} is missing: the release needs every build")
    shutil.copyfile(source, target)
    target.chmod(mode)


def digest(path: Path) -> str:
    with path.open("rb") as data:
        return hashlib.file_digest(data, "sha256").hexdigest()


def assemble(
    out: Path, freezes: Path, debs: Path, arches: Sequence[str], *, version: str, epoch: str
) -> None:
    """Every build of ARCHES (FREEZES/ARCH, the .deb in DEBS/ARCH) into OUT, renamed, with
    SHA256SUMS; OUT must not exist. Each freeze must be this commit's generic build."""
    out.mkdir(parents=True)
    for arch in arches:
        wanted = names(version, arch)
        dist = freezes / arch
        for output in outputs(dist):
            info = output.with_name(output.name + ".buildinfo")
            if not info.exists():
                raise ReleaseError(f"{info} is missing: the release needs every build")
            reason = stale_reason(parse_buildinfo(info.read_text()), version, epoch)
            if reason:
                raise ReleaseError(f"{output}: {reason}")
        copy(dist / STORED, out / wanted.stored, 0o755)
        copy(dist / COMPRESSED, out / wanted.compressed, 0o755)
        write_tarball(dist / BUNDLE, wanted.bundle, int(epoch), out / wanted.tarball)
        for output, name in (
            (STORED, wanted.stored),
            (COMPRESSED, wanted.compressed),
            (BUNDLE, wanted.bundle),
        ):
            copy(dist / sbom_name(output), out / sbom_name(name), 0o644)
        deb_dir = debs / arch
        deb = the_deb(
            (p.name for p in deb_dir.iterdir()) if deb_dir.is_dir() else (), version, arch
        )
        copy(deb_dir / deb, out / deb, 0o644)
    files = {p.name: digest(p) for p in out.iterdir() if p.is_file()}
    (out / SUMS).write_text(sha256sums(files))
    print(f"release: {version} for {', '.join(arches)}: {len(files)} files and {SUMS} in {out}")


def digests_of(directory: Path) -> dict[str, str]:
    if not directory.is_dir():
        raise ReleaseError(f"{directory}: no such directory")
    return {p.name: digest(p) for p in directory.iterdir() if p.is_file()}


def compare_runs(first: Path, second: Path) -> int:
    verdicts = compare(digests_of(first), digests_of(second))
    for name, verdict in verdicts:
        print(f"release-check: {verdict:<22} {name}")
    differing = [name for name, verdict in verdicts if verdict != "same"]
    if differing or not verdicts:
        print(f"release-check: FAIL, {len(differing)} of {len(verdicts)} files differ")
        return 1
    print(f"release-check: PASS, {len(verdicts)} files identical in {first} and {second}")
    return 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO)
    commands = parser.add_subparsers(dest="command", required=True)
    check_command = commands.add_parser("check")
    check_command.add_argument("--preview", action="store_true")
    stale = commands.add_parser("stale")
    stale.add_argument("dist", type=Path)
    stale.add_argument("arch", choices=ARCHES)
    build = commands.add_parser("assemble")
    build.add_argument("--out", type=Path, required=True)
    build.add_argument("--freezes", type=Path, required=True)
    build.add_argument("--debs", type=Path, required=True)
    build.add_argument("arches", nargs="+", choices=ARCHES)
    runs = commands.add_parser("compare")
    runs.add_argument("first", type=Path)
    runs.add_argument("second", type=Path)
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "check":
            return check(arguments.repo, arguments.preview)
        if arguments.command == "stale":
            remove_stale(arguments.repo, arguments.dist, arguments.arch)
            return 0
        if arguments.command == "assemble":
            if arguments.out.exists():
                raise ReleaseError(f"{arguments.out} exists: a release is assembled afresh")
            repo = arguments.repo
            assemble(
                arguments.out,
                arguments.freezes,
                arguments.debs,
                arguments.arches,
                version=current_version(repo),
                epoch=source_date_epoch(repo),
            )
            return 0
        return compare_runs(arguments.first, arguments.second)
    except (ReleaseError, OSError) as error:
        print(f"release: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
