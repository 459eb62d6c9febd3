"""The release's tarball of the real one-dir bundle (build/release.py, as `make release`
writes it): what a firmware team unpacks with tar is the bundle, file for file, and it
runs. The rest of the assembly is tested on fake builds (tests/test_release.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.frozen.conftest import Binary, read_buildinfo
from tests.script_module import REPO, load

release = load(REPO / "build" / "release.py", "release_build")


def _tree(root: Path) -> dict[str, tuple[str, bytes, bool]]:
    """Each entry: its kind, its bytes (or a symlink's target) and whether it is executable."""
    tree = {}
    for path in root.rglob("*"):
        name = str(path.relative_to(root))
        if path.is_symlink():
            tree[name] = ("symlink", str(path.readlink()).encode(), False)
        elif path.is_file():
            tree[name] = ("file", path.read_bytes(), bool(path.stat().st_mode & 0o100))
        else:
            tree[name] = ("dir", b"", True)
    return tree


def test_the_bundle_tarball_unpacks_to_the_bundle_and_runs(binary: Binary, tmp_path: Path) -> None:
    bundle = binary.path.with_name("caramel-embedded-dir")
    info_path = bundle.with_name(bundle.name + ".buildinfo")
    if not (bundle / "caramel-embedded").is_file() or not info_path.is_file():
        pytest.fail(f"{bundle}: no one-dir bundle beside the binary: build it with make")
    info = read_buildinfo(info_path)
    top = f"caramel-embedded-dir-{info['version']}-{info['arch']}"
    tarball = tmp_path / f"{top}.tar.gz"
    release.write_tarball(bundle, top, int(info["source_date_epoch"]), tarball)

    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(unpacked)], check=True)
    assert [p.name for p in unpacked.iterdir()] == [top]
    assert _tree(unpacked / top) == _tree(bundle)

    version = subprocess.run(
        [str(unpacked / top / "caramel-embedded"), "--version"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert version.returncode == 0, version.stderr
    assert info["version"] in version.stdout
