"""`make install` into a temporary DESTDIR: the tree, its modes, and that what it installs runs."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests import fake_signer
from tests.firmware import units
from tests.firmware.conftest import FIRMWARE, configure, make_install, require_tool
from tests.firmware.test_shell import shellcheck

ONEFILE_TREE = {
    "etc": 0o755,
    "etc/caramel": 0o755,
    "etc/caramel/ca.pem": 0o644,
    "etc/default": 0o755,
    "etc/default/caramel-embedded": 0o644,
    "etc/init.d": 0o755,
    "etc/init.d/caramel-embedded": 0o755,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/bin/caramel-embedded": 0o755,
    "usr/lib": 0o755,
    "usr/lib/systemd": 0o755,
    "usr/lib/systemd/system": 0o755,
    "usr/lib/systemd/system/caramel-embedded.service": 0o644,
    "usr/lib/systemd/system/caramel-embedded.timer": 0o644,
    "usr/lib/systemd/system/caramel-embedded-wait.service": 0o644,
    "usr/lib/systemd/system/caramel-embedded-reload.path": 0o644,
    "usr/lib/systemd/system/caramel-embedded-reload.service": 0o644,
    "usr/share": 0o755,
    "usr/share/caramel-embedded": 0o755,
    "usr/share/caramel-embedded/caramel-ensure.sh": 0o644,
    "usr/share/caramel-embedded/caramel-reload.sh": 0o644,
    "usr/share/caramel-embedded/crontab": 0o644,
    "usr/share/caramel-embedded/wait-for-certificate.conf": 0o644,
    "usr/share/caramel-embedded/needs-certificate.conf": 0o644,
    "usr/share/caramel-embedded/tpm2.conf": 0o644,
    "usr/share/man": 0o755,
    "usr/share/man/man1": 0o755,
    "usr/share/man/man1/caramel-embedded.1": 0o644,
}


def tree(root: Path) -> dict[str, int]:
    """Every path under root with its permission bits (a symlink: 0o777 and not followed)."""
    found = {}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        found[str(path.relative_to(root))] = stat.S_IMODE(mode)
    return found


def runs(binary: Path) -> None:
    """The installed binary starts (its launcher unpacks, the client answers --version)."""
    result = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("caramel-embedded ")


def verify_installed_units(destdir: Path, tmp_path: Path) -> None:
    """systemd-analyze verify on the installed units, with the installed binary in place."""
    root = tmp_path / "verify-root"
    shutil.copytree(destdir, root, symlinks=True)
    units.make_root(root, {}, executables=["/bin/mkdir", "/bin/rm"])  # the board's own
    units.assert_verifies(
        root, "caramel-embedded.service", "caramel-embedded.timer", "caramel-embedded-wait.service"
    )


def test_onefile_tree(frozen_binary: Path, ca_file: Path, tmp_path: Path) -> None:
    destdir = tmp_path / "destdir"
    result = make_install(
        destdir, frozen_binary.parent, "PREFIX=/usr", "INIT=both", f"CA_CERT={ca_file}"
    )
    assert result.returncode == 0, result.stderr

    assert tree(destdir) == ONEFILE_TREE
    for path in destdir.rglob("*"):
        assert path.lstat().st_uid == os.getuid()
    assert (destdir / "usr/bin/caramel-embedded").read_bytes() == frozen_binary.read_bytes()
    assert (destdir / "etc/caramel/ca.pem").read_bytes() == ca_file.read_bytes()
    man_page = destdir / "usr/share/man/man1/caramel-embedded.1"
    assert man_page.read_bytes() == (FIRMWARE / "caramel-embedded.1").read_bytes()
    defaults = (destdir / "etc/default/caramel-embedded").read_text()
    assert "\nCARAMEL_CA_CERT=/etc/caramel/ca.pem\n" in defaults
    runs(destdir / "usr/bin/caramel-embedded")
    verify_installed_units(destdir, tmp_path)
    shellcheck(destdir / "etc/init.d/caramel-embedded")
    shellcheck(destdir / "usr/share/caramel-embedded/caramel-ensure.sh")
    ensure = (destdir / "usr/share/caramel-embedded/caramel-ensure.sh").read_text()
    assert '"${CARAMEL_EMBEDDED:-/usr/bin/caramel-embedded}"' in ensure


def test_onedir_tree_and_switching_forms(
    frozen_binary: Path, frozen_bundle: Path, tmp_path: Path
) -> None:
    destdir = tmp_path / "destdir"
    result = make_install(destdir, frozen_bundle.parent, "FORM=onedir", "INIT=systemd")
    assert result.returncode == 0, result.stderr

    link = destdir / "usr/bin/caramel-embedded"
    assert link.is_symlink()
    assert os.readlink(link) == "../lib/caramel-embedded/caramel-embedded"
    bundle = destdir / "usr/lib/caramel-embedded"
    assert stat.S_IMODE((bundle / "caramel-embedded").stat().st_mode) == 0o755
    assert (bundle / "_internal").is_dir()
    for path in bundle.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if not path.is_symlink():
            assert mode & 0o022 == 0, f"{path} is writable by others: {oct(mode)}"
            assert mode in (0o644, 0o755), f"{path}: {oct(mode)}"
    source_files = sorted(p.relative_to(frozen_bundle) for p in frozen_bundle.rglob("*"))
    assert sorted(p.relative_to(bundle) for p in bundle.rglob("*")) == source_files
    assert not (destdir / "etc/init.d").exists()
    runs(link)
    verify_installed_units(destdir, tmp_path)

    # Back to one file in the same tree: no bundle is left behind. (The one-file binary of
    # this run: the bundle's directory need not hold one.)
    result = make_install(destdir, frozen_binary.parent, "FORM=onefile", "INIT=systemd")
    assert result.returncode == 0, result.stderr
    assert not bundle.exists()
    assert not link.is_symlink()
    runs(link)


def test_store_0_installs_the_compressed_form_under_the_same_name(
    frozen_binary: Path, tmp_path: Path
) -> None:
    """For raw flash: `make binary STORE=0` leaves dist/ARCH/caramel-embedded-compressed,
    and `make install STORE=0` puts it where the stored form goes by default."""
    compressed = frozen_binary.parent / "caramel-embedded-compressed"
    stored = frozen_binary.parent / "caramel-embedded"
    if not compressed.is_file() or not stored.is_file():
        pytest.fail(f"no two one-file forms in {frozen_binary.parent}: make builds both")
    destdir = tmp_path / "destdir"
    for store, source in (("STORE=0", compressed), ("STORE=1", stored)):
        result = make_install(destdir, frozen_binary.parent, "FORM=onefile", store, "INIT=none")
        assert result.returncode == 0, result.stderr
        installed = destdir / "usr/bin/caramel-embedded"
        assert installed.read_bytes() == source.read_bytes(), store
        runs(installed)


def test_paths_follow_the_install_variables(frozen_binary: Path, tmp_path: Path) -> None:
    destdir = tmp_path / "destdir"
    result = make_install(
        destdir,
        frozen_binary.parent,
        "PREFIX=/opt/caramel",
        "SYSCONFDIR=/etc/opt/caramel",
        "SYSTEMD_UNITDIR=/etc/systemd/system",
        "INIT=both",
        "INIT_SCRIPT_NAME=S95caramel-embedded",
    )
    assert result.returncode == 0, result.stderr
    service = (destdir / "etc/systemd/system/caramel-embedded.service").read_text()
    assert units.value(service, "Service", "ExecStart") == "/opt/caramel/bin/caramel-embedded"
    assert (
        units.value(service, "Service", "EnvironmentFile")
        == "/etc/opt/caramel/default/caramel-embedded"
    )
    script = (destdir / "etc/opt/caramel/init.d/S95caramel-embedded").read_text()
    assert "CARAMEL_DEFAULTS:-/etc/opt/caramel/default/caramel-embedded}" in script
    assert "CARAMEL_EMBEDDED:-/opt/caramel/bin/caramel-embedded}" in script
    crontab = (destdir / "opt/caramel/share/caramel-embedded/crontab").read_text()
    assert "/etc/opt/caramel/init.d/S95caramel-embedded cron" in crontab
    drop_in = (
        destdir / "opt/caramel/share/caramel-embedded/wait-for-certificate.conf"
    ).read_text()
    assert ". /opt/caramel/share/caramel-embedded/caramel-ensure.sh" in drop_in
    assert ". /etc/opt/caramel/default/caramel-embedded" in drop_in
    assert (destdir / "opt/caramel/share/man/man1/caramel-embedded.1").is_file()
    runs(destdir / "opt/caramel/bin/caramel-embedded")


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ((), "run make binary"),
        (("FORM=onedir",), "run make bundle"),
        (("STORE=0",), "caramel-embedded-compressed: run make binary ARCH="),
        (("FORM=static",), "expected onefile or onedir"),
        (("INIT=upstart",), "expected systemd, sysv, both or none"),
        (("CA_CERT=/etc/hostname",), "is not a PEM certificate"),
    ],
)
def test_install_refuses_clearly(tmp_path: Path, variables: tuple[str, ...], message: str) -> None:
    empty = tmp_path / "empty-dist"
    empty.mkdir()
    result = make_install(tmp_path / "destdir", empty, *variables)
    assert result.returncode != 0
    assert message in result.stderr


def test_drop_in_lets_the_service_start_once_signed(
    frozen_binary: Path,
    signer: fake_signer.FakeCaramel,
    ca_file: Path,
    tmp_path: Path,
) -> None:
    """The drop-in's ExecStartPre, run as systemd would, from a tree installed in place."""
    prefix = tmp_path / "image"
    result = make_install(
        None,
        frozen_binary.parent,
        f"PREFIX={prefix}/usr",
        f"SYSCONFDIR={prefix}/etc",
        "INIT=none",
    )
    assert result.returncode == 0, result.stderr
    configure(
        prefix / "etc/default/caramel-embedded",
        {
            "CARAMEL_SERVER": signer.url,  # type: ignore[attr-defined]
            "CARAMEL_CLIENT_ID": "device-0001",
            "CARAMEL_FILE": str(tmp_path / "state/client.pem"),
            "CARAMEL_CA_CERT": str(ca_file),
        },
    )
    drop_in = (prefix / "usr/share/caramel-embedded/wait-for-certificate.conf").read_text()
    command = shlex.split(units.value(drop_in, "Service", "ExecStartPre").lstrip("+"))

    def exec_start_pre() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=False
        )

    waiting = exec_start_pre()
    assert waiting.returncode == 69
    assert "waiting for signature" in waiting.stderr
    signer.sign()
    assert exec_start_pre().returncode == 0


def test_strip_leaves_the_binary_as_it_is(frozen_binary: Path, tmp_path: Path) -> None:
    """Buildroot strips every target binary: PyInstaller's archive survives (an ELF section)."""
    stripped = tmp_path / "stripped"
    subprocess.run([require_tool("strip"), "-o", str(stripped), str(frozen_binary)], check=True)
    assert stripped.read_bytes() == frozen_binary.read_bytes()
    runs(stripped)


def test_installed_service_unpacks_into_a_tmpfs(
    frozen_binary: Path, ca_file: Path, tmp_path: Path
) -> None:
    """PrivateTmp= puts the service's /tmp on the file system of the host's /tmp, often
    flash on a board; the one-file binary unpacks into $TMPDIR at every start. The
    installed unit points TMPDIR into its RuntimeDirectory= under %t (/run for a system
    unit), which systemd mounts as a tmpfs before any service, at a directory it
    removes when each run stops; the installed defaults file, read after Environment=,
    must not override it."""
    destdir = tmp_path / "destdir"
    result = make_install(
        destdir, frozen_binary.parent, "PREFIX=/usr", "INIT=both", f"CA_CERT={ca_file}"
    )
    assert result.returncode == 0, result.stderr
    text = (destdir / "usr/lib/systemd/system/caramel-embedded.service").read_text()
    environment = dict(
        item.split("=", 1)
        for line in units.values(text, "Service", "Environment")
        for item in shlex.split(line)
    )
    tmpdir = Path(environment["TMPDIR"].replace("%t", "/run"))
    runtime = units.value(text, "Service", "RuntimeDirectory").split()
    # In a runtime directory (kept between runs for the server's hint), in a directory of
    # its own that the unit makes before and removes after every run.
    assert tmpdir.parent in {Path("/run", directory) for directory in runtime}
    assert shlex.split(units.value(text, "Service", "ExecStopPost").replace("%t", "/run")) == [
        "-/bin/rm", "-rf", str(tmpdir)
    ]  # fmt: skip
    assert units.value(text, "Service", "RuntimeDirectoryMode") == "0700"
    defaults = (destdir / "etc/default/caramel-embedded").read_text()
    assert not [line for line in defaults.splitlines() if line.startswith("TMPDIR=")]
    # The init script's default is under /run as well, and it mounts a tmpfs there when
    # /run is not one (tests/firmware/test_sysvinit.py runs that).
    assert "\nCARAMEL_RUNTIME_TMPDIR=/run/caramel-embedded\n" in defaults
    verify_installed_units(destdir, tmp_path)
