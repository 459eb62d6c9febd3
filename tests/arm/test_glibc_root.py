"""Each ARM build runs in a root that holds nothing but glibc.

The root (build/glibc-root.sh) is copied per test, the one-file binary or the one-dir bundle
is put in it, and the client runs there under ``chroot`` through qemu-user: no library, no
/etc, no Python of the build root can be reached. It does a whole round against the fake
signer on the host's loopback (new key and request, then the certificate, then unchanged),
which loads everything the client loads: its Python, OpenSSL through ``ssl``, and
cryptography's Rust extension.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from testbed.ca_factory import Authority
from tests.arm.conftest import LOADER, ArmBuild
from tests.fake_signer import FakeCaramel

# The shared objects of glibc, by name: the loader and the libraries of Debian's libc6.
GLIBC_FILE = re.compile(
    r"ld-linux[-\w.]*\.so\.\d+"
    r"|lib(c|m|dl|pthread|rt|util|resolv|anl|nsl|BrokenLocale|nss_\w+)\.so\.\d+"
)
CLIENT_ID = "arm-device-0001"


def chroot_command() -> str:
    found = shutil.which("chroot", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if found is None:
        pytest.fail("no chroot command (coreutils) on this machine")
    return found


def jail_run(jail: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run argv with ``jail`` as the root; no QEMU_LD_PREFIX: the jail is the only root."""
    return subprocess.run(
        [chroot_command(), str(jail), *argv],
        env={"PATH": "/", "LANG": "C.UTF-8", "TMPDIR": "/tmp"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def pem_labels(path: Path) -> list[str]:
    return re.findall(r"^-----BEGIN ([A-Z ]+)-----$", path.read_text(), re.MULTILINE)


@pytest.fixture
def jail(arm_build: ArmBuild, tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.fail("running a binary in the glibc-only root needs chroot: run as root")
    root = tmp_path / "root"
    shutil.copytree(arm_build.glibc_root, root, symlinks=True)
    return root


def test_the_root_holds_nothing_but_glibc(arm_build: ArmBuild) -> None:
    files = [p for p in arm_build.glibc_root.rglob("*") if p.is_symlink() or p.is_file()]
    names = {p.name for p in files}
    assert {"libc.so.6", "libm.so.6", LOADER[arm_build.arch]} <= names
    others = sorted(
        str(p.relative_to(arm_build.glibc_root))
        for p in files
        if not GLIBC_FILE.fullmatch(p.name) and p.parent != arm_build.glibc_root
    )
    assert others == []
    # Only the /lib -> usr/lib style links stand at the top, beside the directories.
    top = [p.name for p in arm_build.glibc_root.iterdir() if not p.is_dir()]
    assert top == []
    assert not any(name.startswith(("libz.", "libffi.", "libssl.", "libpython")) for name in names)


@pytest.mark.parametrize("form", ["onefile", "onedir"])
def test_the_client_does_a_whole_round_with_only_glibc(
    form: str,
    arm_build: ArmBuild,
    jail: Path,
    authority: Authority,
    signer: FakeCaramel,
) -> None:
    if form == "onefile":
        shutil.copy2(arm_build.onefile, jail / "caramel-embedded")
        command = "/caramel-embedded"
    else:
        shutil.copytree(arm_build.onedir, jail / "opt" / "caramel-embedded-dir", symlinks=True)
        command = "/opt/caramel-embedded-dir/caramel-embedded"
    authority.write(jail / "ca.pem")
    state = jail / "state" / "client.pem"
    args = [command, signer.url, CLIENT_ID, "--file", "/state/client.pem", "--ca-cert", "/ca.pem"]  # type: ignore[attr-defined]

    version = jail_run(jail, command, "--version")
    assert version.returncode == 0, version.stderr
    assert "caramel-embedded" in version.stdout

    first = jail_run(jail, *args)
    assert (first.returncode, first.stderr) == (69, ""), first.stderr
    assert pem_labels(state) == ["PRIVATE KEY", "CERTIFICATE REQUEST"]

    signer.sign()
    installed = jail_run(jail, *args)
    assert (installed.returncode, installed.stderr) == (0, ""), installed.stderr
    assert pem_labels(state) == ["PRIVATE KEY", "CERTIFICATE", "CERTIFICATE REQUEST"]
    written = state.stat()

    unchanged = jail_run(jail, *args)
    assert (unchanged.returncode, unchanged.stderr) == (0, ""), unchanged.stderr
    assert (state.stat().st_ino, state.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    # The one-file launcher unpacks into the jail's /tmp and cleans up after itself.
    assert list((jail / "tmp").iterdir()) == []
