"""build/release.py on small fake builds: the release's names, SHA256SUMS, the bundle's
tarball (the same bytes twice, its members' metadata), which freezes are reused, and the
refusals of a dirty tree and of a version without its CHANGELOG section. The release of
real freezes is `make release` / `make release-check` (build/release.mk)."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.script_module import REPO, load

# build/release.py in this process: the package pass only.
pytestmark = pytest.mark.in_process

release = load(REPO / "build" / "release.py", "release_build")
SCRIPT = REPO / "build" / "release.py"
VERSION = "0.2.0"
EPOCH = "1796000000"
CHANGELOG = (
    f"# Changelog\n\n## Unreleased\n\n## [{VERSION}] - 2026-12-07\n\n## 0.1.0 - 2026-11-30\n"
)


def buildinfo(form: str, **fields: str) -> str:
    values = {
        "arch": "x86_64",
        "form": form,
        "version": VERSION,
        "embedded_ca_sha256": "none",
        "source_date_epoch": EPOCH,
    } | fields
    return "".join(f"{key}={value}\n" for key, value in values.items())


def fake_freezes(root: Path, arch: str, *, mtime: int, umask_mode: int = 0o644) -> None:
    """What build/freeze.sh leaves in ROOT/ARCH, in miniature: both one-file forms, the
    bundle (a subdirectory, an executable, a symlink), each with .buildinfo and SBOM."""
    dist = root / arch
    bundle = dist / "caramel-embedded-dir"
    (bundle / "_internal" / "lib").mkdir(parents=True)
    (bundle / "caramel-embedded").write_bytes(b"\x7fELF launcher " + arch.encode())
    (bundle / "caramel-embedded").chmod(0o775)
    (bundle / "_internal" / "lib" / "libz.so.1.3").write_bytes(b"zlib" * 100)
    (bundle / "_internal" / "lib" / "libz.so.1.3").chmod(umask_mode)
    (bundle / "_internal" / "base_library.zip").write_bytes(b"PK" * 50)
    (bundle / "_internal" / "base_library.zip").chmod(umask_mode)
    (bundle / "_internal" / "libz.so.1").symlink_to("lib/libz.so.1.3")
    for name, form, content in (
        ("caramel-embedded", "onefile", b"stored " + arch.encode()),
        ("caramel-embedded-compressed", "onefile", b"compressed " + arch.encode()),
        ("caramel-embedded-dir", "onedir", None),
    ):
        if content is not None:
            (dist / name).write_bytes(content)
            (dist / name).chmod(0o700)
        (dist / f"{name}.buildinfo").write_text(buildinfo(form, arch=arch))
        (dist / f"{name}.cdx.json").write_text(f'{{"name": "{name}-{arch}"}}\n')
    for path in [*dist.rglob("*"), dist]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)


def fake_debs(root: Path, arch: str) -> None:
    (root / arch).mkdir(parents=True)
    debian = release.DEBIAN_ARCH[arch]
    (root / arch / f"caramel-embedded_{VERSION}-1_{debian}.deb").write_bytes(
        b"!<arch>\n" + arch.encode()
    )


def assembled(tmp_path: Path, out: str, arches: tuple[str, ...], *, mtime: int) -> Path:
    freezes, debs = tmp_path / f"{out}-freezes", tmp_path / f"{out}-debs"
    for arch in arches:
        fake_freezes(freezes, arch, mtime=mtime, umask_mode=0o600 if mtime % 2 else 0o644)
        fake_debs(debs, arch)
    release.assemble(tmp_path / out, freezes, debs, arches, version=VERSION, epoch=EPOCH)
    return tmp_path / out


def test_names_carry_the_version_and_the_architecture(tmp_path: Path) -> None:
    out = assembled(tmp_path, "release", ("x86_64", "aarch64"), mtime=1_000_000_000)
    assert sorted(p.name for p in out.iterdir()) == [
        "SHA256SUMS",
        "caramel-embedded-0.2.0-aarch64",
        "caramel-embedded-0.2.0-aarch64.cdx.json",
        "caramel-embedded-0.2.0-x86_64",
        "caramel-embedded-0.2.0-x86_64.cdx.json",
        "caramel-embedded-compressed-0.2.0-aarch64",
        "caramel-embedded-compressed-0.2.0-aarch64.cdx.json",
        "caramel-embedded-compressed-0.2.0-x86_64",
        "caramel-embedded-compressed-0.2.0-x86_64.cdx.json",
        "caramel-embedded-dir-0.2.0-aarch64.cdx.json",
        "caramel-embedded-dir-0.2.0-aarch64.tar.gz",
        "caramel-embedded-dir-0.2.0-x86_64.cdx.json",
        "caramel-embedded-dir-0.2.0-x86_64.tar.gz",
        "caramel-embedded_0.2.0-1_amd64.deb",
        "caramel-embedded_0.2.0-1_arm64.deb",
    ]
    # Each file is its own build's: the stored form is not the compressed one, the SBOMs
    # follow their builds.
    assert (out / "caramel-embedded-0.2.0-aarch64").read_bytes() == b"stored aarch64"
    assert (out / "caramel-embedded-compressed-0.2.0-x86_64").read_bytes() == b"compressed x86_64"
    assert (
        "caramel-embedded-dir-aarch64"
        in (out / "caramel-embedded-dir-0.2.0-aarch64.cdx.json").read_text()
    )
    assert os.access(out / "caramel-embedded-0.2.0-x86_64", os.X_OK)


def test_sha256sums_is_what_sha256sum_checks(tmp_path: Path) -> None:
    out = assembled(tmp_path, "release", ("armhf",), mtime=1_000_000_000)
    lines = (out / "SHA256SUMS").read_text().splitlines()
    listed = [line.split("  ", 1)[1] for line in lines]
    assert listed == sorted(p.name for p in out.iterdir() if p.name != "SHA256SUMS")
    checked = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK\n") == len(lines) == 7
    # A changed byte is caught: the sums are of these files.
    (out / "caramel-embedded_0.2.0-1_armhf.deb").write_bytes(b"changed")
    changed = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, check=False
    )
    assert changed.returncode != 0


def test_the_sums_text_is_sorted_and_in_text_mode() -> None:
    assert release.sha256sums({"b": "22", "a": "11"}) == "11  a\n22  b\n"


def test_the_bundle_tarball_is_the_same_bytes_from_another_tree(tmp_path: Path) -> None:
    """Two trees of the same files, made at other times with other modes, give the same
    tarball: nothing of who built it or when gets in."""
    first = assembled(tmp_path, "first", ("x86_64",), mtime=1_000_000_000)
    second = assembled(tmp_path, "second", ("x86_64",), mtime=1_500_000_001)
    name = "caramel-embedded-dir-0.2.0-x86_64.tar.gz"
    assert (first / name).read_bytes() == (second / name).read_bytes()
    assert (first / "SHA256SUMS").read_bytes() == (second / "SHA256SUMS").read_bytes()


def test_the_bundle_tarball_members(tmp_path: Path) -> None:
    out = assembled(tmp_path, "release", ("aarch64",), mtime=1_500_000_001)
    raw = (out / "caramel-embedded-dir-0.2.0-aarch64.tar.gz").read_bytes()
    # gzip's header: no file name (FLG 0) and no time (MTIME 0).
    assert raw[3] == 0
    assert raw[4:8] == b"\0\0\0\0"
    with tarfile.open(out / "caramel-embedded-dir-0.2.0-aarch64.tar.gz") as tar:
        members = tar.getmembers()
        top = "caramel-embedded-dir-0.2.0-aarch64"
        assert [m.name for m in members] == [
            top,
            f"{top}/_internal",
            f"{top}/_internal/base_library.zip",
            f"{top}/_internal/lib",
            f"{top}/_internal/lib/libz.so.1.3",
            f"{top}/_internal/libz.so.1",
            f"{top}/caramel-embedded",
        ]
        for member in members:
            assert (member.mtime, member.uid, member.gid) == (int(EPOCH), 0, 0), member.name
            assert (member.uname, member.gname) == ("", ""), member.name
            assert member.pax_headers == {}, member.name
        modes = {m.name.removeprefix(f"{top}/"): (m.type, m.mode) for m in members}
        assert modes["caramel-embedded"] == (tarfile.REGTYPE, 0o755)
        assert modes["_internal/lib/libz.so.1.3"] == (tarfile.REGTYPE, 0o644)
        assert modes["_internal/lib"] == (tarfile.DIRTYPE, 0o755)
        link = tar.getmember(f"{top}/_internal/libz.so.1")
        assert (link.type, link.linkname) == (tarfile.SYMTYPE, "lib/libz.so.1.3")
        launcher = tar.extractfile(f"{top}/caramel-embedded")
        assert launcher is not None
        assert launcher.read() == b"\x7fELF launcher aarch64"
    # No pax header in the stream either (tarfile would read it back into pax_headers of
    # a member, but a global one would not show there).
    assert b"PaxHeader" not in gzip.decompress(raw)


def test_a_freeze_of_another_commit_version_or_with_a_ca_is_not_reused() -> None:
    info = release.parse_buildinfo(buildinfo("onefile"))
    assert release.stale_reason(info, VERSION, EPOCH) is None
    assert "SOURCE_DATE_EPOCH" in release.stale_reason(info, VERSION, "1796000001")
    assert "version 0.2.0, not 0.3.0" in release.stale_reason(info, "0.3.0", EPOCH)
    with_ca = release.parse_buildinfo(buildinfo("onefile", embedded_ca_sha256="ab" * 32))
    assert "CA is embedded" in release.stale_reason(with_ca, VERSION, EPOCH)


def test_assembling_refuses_a_freeze_that_is_not_this_commits(tmp_path: Path) -> None:
    freezes, debs = tmp_path / "freezes", tmp_path / "debs"
    fake_freezes(freezes, "x86_64", mtime=1_000_000_000)
    fake_debs(debs, "x86_64")
    with pytest.raises(release.ReleaseError, match="SOURCE_DATE_EPOCH"):
        release.assemble(
            tmp_path / "out", freezes, debs, ("x86_64",), version=VERSION, epoch="1796000001"
        )


def test_stale_freezes_are_removed_and_current_ones_kept(tmp_path: Path) -> None:
    repo = git_tree(tmp_path / "repo", VERSION, CHANGELOG)
    epoch = release.source_date_epoch(repo)
    dist = tmp_path / "freezes"
    fake_freezes(dist, "x86_64", mtime=1_000_000_000)
    (dist / "x86_64" / "caramel-embedded.buildinfo").write_text(
        buildinfo("onefile", source_date_epoch=epoch)
    )
    result = run(repo, "stale", str(dist / "x86_64"), "x86_64")
    assert result.returncode == 0, result.stderr
    left = sorted(p.name for p in (dist / "x86_64").iterdir())
    assert left == ["caramel-embedded", "caramel-embedded.buildinfo", "caramel-embedded.cdx.json"]
    assert result.stdout.count("frozen again") == 2


def test_the_deb_of_this_version_and_architecture() -> None:
    files = ["caramel-embedded_0.2.0-2_arm64.deb", "caramel-embedded_0.1.0-1_arm64.deb", "x"]
    assert release.the_deb(files, VERSION, "aarch64") == "caramel-embedded_0.2.0-2_arm64.deb"
    with pytest.raises(release.ReleaseError, match="found 0"):
        release.the_deb(files, VERSION, "armhf")
    with pytest.raises(release.ReleaseError, match="found 2"):
        release.the_deb([*files, "caramel-embedded_0.2.0-1_arm64.deb"], VERSION, "aarch64")


def test_compare_names_each_file_and_its_verdict() -> None:
    first = {"a": "1", "b": "2", "c": "3"}
    second = {"a": "1", "b": "9", "d": "4"}
    assert release.compare(first, second) == [
        ("a", "same"),
        ("b", "DIFFERS"),
        ("c", "only in the first run"),
        ("d", "only in the second run"),
    ]


def test_compare_of_two_runs_fails_on_one_byte(tmp_path: Path) -> None:
    first = assembled(tmp_path, "first", ("x86_64",), mtime=1_000_000_000)
    second = tmp_path / "second"
    shutil.copytree(first, second)
    same = subprocess.run(
        [sys.executable, str(SCRIPT), "compare", str(first), str(second)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert same.returncode == 0, same.stdout
    assert same.stdout.count("release-check: same ") == 8
    (second / "caramel-embedded-0.2.0-x86_64").write_bytes(b"stored x86_64!")
    differs = subprocess.run(
        [sys.executable, str(SCRIPT), "compare", str(first), str(second)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert differs.returncode == 1
    assert "DIFFERS" in differs.stdout
    assert "caramel-embedded-0.2.0-x86_64\n" in differs.stdout


# --- the refusals, on a git tree of their own -------------------------------------------


def git(repo: Path, *arguments: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org",
         *arguments],
        check=True, capture_output=True,
    )  # fmt: skip


def git_tree(repo: Path, version: str, changelog: str) -> Path:
    (repo / "caramel_embedded").mkdir(parents=True)
    (repo / "caramel_embedded" / "version.py").write_text(f'__version__ = "{version}"\n')
    (repo / "CHANGELOG.md").write_text(changelog)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "release")
    return repo


def run(repo: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--repo", str(repo), *arguments],
        capture_output=True, text=True, check=False, env=environment,
    )  # fmt: skip


def test_a_committed_tree_with_its_changelog_section_is_a_release(tmp_path: Path) -> None:
    repo = git_tree(tmp_path / "repo", VERSION, CHANGELOG)
    result = run(repo, "check")
    assert (result.returncode, result.stderr) == (0, "")


def test_a_dirty_tree_is_refused_in_one_line(tmp_path: Path) -> None:
    repo = git_tree(tmp_path / "repo", VERSION, CHANGELOG)
    (repo / "CHANGELOG.md").write_text(CHANGELOG + "\nmore\n")
    (repo / "stray.txt").write_text("untracked\n")
    result = run(repo, "check")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("release: refused: the tree has uncommitted changes")
    assert "CHANGELOG.md" in result.stderr
    assert "stray.txt" in result.stderr
    assert "RELEASE_PREVIEW=1" in result.stderr


def test_a_version_without_its_changelog_section_is_refused(tmp_path: Path) -> None:
    unreleased = "# Changelog\n\n## Unreleased\n\n- 0.2.0 things\n\n## [0.1.0] - 2026-11-30\n"
    repo = git_tree(tmp_path / "repo", VERSION, unreleased)
    result = run(repo, "check")
    assert result.returncode == 1
    assert result.stderr == (
        "release: refused: CHANGELOG.md has no '## [0.2.0] - YYYY-MM-DD' section "
        "(RELEASE_PREVIEW=1 builds it anyway)\n"
    )


def test_a_preview_builds_anyway_and_says_why_it_is_not_a_release(tmp_path: Path) -> None:
    repo = git_tree(tmp_path / "repo", "0.3.0", CHANGELOG)
    (repo / "stray.txt").write_text("untracked\n")
    result = run(repo, "check", "--preview")
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "release: preview, not a release: the tree has uncommitted changes (stray.txt)",
        "release: preview, not a release: CHANGELOG.md has no '## [0.3.0] - YYYY-MM-DD' section",
    ]


def test_the_changelog_headings_with_and_without_brackets() -> None:
    assert release.released_versions(CHANGELOG) == {"0.2.0": "2026-12-07", "0.1.0": "2026-11-30"}
    assert release.released_versions("## Unreleased\n## [0.2.0]\n") == {}


def test_this_repositorys_version_has_its_changelog_section() -> None:
    """The tree as committed: `make release` would not refuse it for the CHANGELOG."""
    version = release.current_version(REPO)
    assert version in release.released_versions((REPO / "CHANGELOG.md").read_text())
