"""The Debian package under test: build it, read it, and install it into a bare Debian root.

Shared by tests/firmware/test_deb.py (the host's binary, an amd64 root) and
tests/arm/test_deb.py (the ARM binaries, in the ARM build roots under qemu-user). A root
is never changed: each install goes into an overlay of it (a throw-away upper layer), with
/proc and /dev mounted, and everything runs in it through chroot, as on a board.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbed.harness import CaramelStack
from tests.firmware.conftest import configure

REPO = Path(__file__).resolve().parents[2]
DEB_SH = REPO / "build" / "deb.sh"
DEB_ROOT_SH = REPO / "build" / "deb-root.sh"
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armhf": "armhf"}
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CLIENT_ID = "device-deb"
UNITS_ENABLED = {
    "timers.target.wants/caramel-embedded.timer",
    "paths.target.wants/caramel-embedded-reload.path",
}


def sources_version() -> str:
    """caramel_embedded/version.py's version, read as text (the package is not imported:
    the binary under test is what answers --version)."""
    text = (REPO / "caramel_embedded" / "version.py").read_text()
    match = re.search(r'__version__ = "([^"]+)"', text)
    assert match, "caramel_embedded/version.py has no __version__"
    return match[1]


def build_deb(binary: Path, arch: str, out: Path, build_python: Path) -> Path:
    """build/deb.sh on the binary (its .buildinfo and .cdx.json beside it) into out: the
    stored one-file form or, by its name, the compressed one."""
    if shutil.which("dpkg-deb") is None or shutil.which("lintian") is None:
        pytest.fail("dpkg-deb or lintian is not installed: run `make deb-deps`")
    result = subprocess.run(
        [
            str(DEB_SH),
            "--arch",
            arch,
            "--store",
            "0" if binary.name == "caramel-embedded-compressed" else "1",
            "--dist",
            str(binary.parent),
            "--out",
            str(out),
            "--python",
            str(build_python),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    deb = Path(result.stdout.strip().splitlines()[-1])
    assert deb.is_file(), result.stdout
    return deb


def dpkg_deb(*arguments: str) -> str:
    result = subprocess.run(
        ["dpkg-deb", *arguments], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def fields(deb: Path) -> dict[str, str]:
    """The control file's fields (continuation lines folded into their field)."""
    found: dict[str, str] = {}
    name = ""
    for line in dpkg_deb("--field", str(deb)).splitlines():
        if line[:1] in (" ", "\t"):
            found[name] += "\n" + line[1:]
        else:
            name, _, value = line.partition(":")
            found[name] = value.strip()
    return found


@dataclass(frozen=True)
class Entry:
    """One line of dpkg-deb --contents."""

    mode: str
    owner: str
    size: int
    target: str | None


def contents(deb: Path) -> dict[str, Entry]:
    """Every path in the package ('usr/bin/caramel-embedded', no ./), with its mode,
    owner and size."""
    found = {}
    for line in dpkg_deb("--contents", str(deb)).splitlines():
        mode, owner, size, _date, _time, rest = line.split(maxsplit=5)
        path, _, target = rest.partition(" -> ")
        path = path.removeprefix("./").rstrip("/")
        if path:
            found[path] = Entry(mode, owner, int(size), target or None)
    return found


def control_member(deb: Path, name: str) -> str:
    """One file of the control archive (conffiles, postinst, ...)."""
    return dpkg_deb("--info", str(deb), name)


def data_member(deb: Path, path: str) -> bytes:
    """One file of the data archive, by its path without ./."""
    tar = subprocess.run(
        f"dpkg-deb --fsys-tarfile '{deb}' | tar -xO './{path}'",
        shell=True,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert tar.returncode == 0, tar.stderr
    return tar.stdout


def lintian(deb: Path) -> subprocess.CompletedProcess[str]:
    """lintian as `make deb` runs it: exit status 1 on an error tag (and only then)."""
    return subprocess.run(
        ["lintian", "--fail-on", "error", str(deb)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def deb_root(arch: str) -> Path:
    """The bare Debian root of arch (build/deb-root.sh: made once, then reused)."""
    result = subprocess.run(
        [str(DEB_ROOT_SH), arch], capture_output=True, text=True, timeout=3600, check=False
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def _mount(*arguments: str) -> None:
    subprocess.run(["mount", *arguments], check=True, capture_output=True, timeout=60)


def _unmount(point: Path) -> None:
    if subprocess.run(["umount", str(point)], capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


@contextlib.contextmanager
def overlay(lower: Path, work: Path) -> Iterator[Path]:
    """lower seen through an overlay at work/root, writes going to work/upper; with /proc
    and /dev, as a booted system has them. Everything is unmounted afterwards."""
    upper, scratch, root = work / "upper", work / "scratch", work / "root"
    for directory in (upper, scratch, root):
        directory.mkdir(parents=True)
    mounted: list[Path] = []
    try:
        _mount(
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={lower},upperdir={upper},workdir={scratch}",
            str(root),
        )
        mounted.append(root)
        _mount("-t", "proc", "proc", str(root / "proc"))
        mounted.append(root / "proc")
        _mount("--bind", "/dev", str(root / "dev"))
        mounted.append(root / "dev")
        yield root
    finally:
        for point in reversed(mounted):
            _unmount(point)


def chroot(
    root: Path, *command: str, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run command inside root with a clean environment, as a shell on the board would."""
    variables = [f"{k}={v}" for k, v in (env or {}).items()]
    return subprocess.run(
        [
            "chroot",
            str(root),
            "/usr/bin/env",
            "-i",
            f"PATH={CHROOT_PATH}",
            "HOME=/root",
            "LANG=C.UTF-8",
            *variables,
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_as_the_service(root: Path) -> subprocess.CompletedProcess[str]:
    """The installed binary with the installed defaults file as its environment, as
    caramel-embedded.service runs it (EnvironmentFile=, ExecStart=/usr/bin/caramel-embedded)."""
    return chroot(
        root,
        "/bin/sh",
        "-c",
        "set -a; . /etc/default/caramel-embedded; set +a; exec /usr/bin/caramel-embedded",
    )


def enabled_links(root: Path) -> set[str]:
    """The units' enablement links under /etc/systemd/system (WANTS.wants/UNIT)."""
    system = root / "etc/systemd/system"
    return {
        str(path.relative_to(system))
        for path in system.glob("*.wants/caramel-embedded*")
        if path.is_symlink()
    }


def traces_in_systemd(root: Path) -> list[str]:
    """Anything of ours left in systemd's configuration or deb-systemd-helper's state."""
    places = [root / "etc/systemd", root / "var/lib/systemd/deb-systemd-helper-enabled"]
    places.append(root / "var/lib/systemd/deb-systemd-helper-masked")
    return sorted(
        str(path.relative_to(root))
        for place in places
        if place.exists()
        for path in place.rglob("caramel-embedded*")
    )


# Stand-ins for the commands that start units: they only note how they were called.
RECORDER = '#!/bin/sh\necho "${0##*/} $*" >>/var/log/unit-calls\n'


def record_unit_starts(root: Path) -> Path:
    """Put recorders of systemctl and deb-systemd-invoke first on the root's PATH; the
    log they write."""
    for name in ("systemctl", "deb-systemd-invoke"):
        recorder = root / "usr/local/sbin" / name
        recorder.write_text(RECORDER)
        recorder.chmod(0o755)
    log = root / "var/log/unit-calls"
    log.write_text("")
    return log


@dataclass(frozen=True)
class Server:
    """Where the installed client asks, the CA it trusts, and how its request is signed."""

    url: str
    ca_file: Path
    sign: Callable[[], object]


def real_caramel(stack: CaramelStack) -> Server:
    """The real Caramel stack of testbed/ (tests/e2e): the administrator signs the one
    request of the package's device with caramel_tool."""

    def sign() -> object:
        (request,) = [r for r in stack.list_requests() if r.cn == CLIENT_ID]
        return stack.sign(request.id)

    return Server(stack.front_url, stack.ca_cert, sign)


def install_round_and_remove(lower: Path, deb: Path, server: Server, work: Path) -> None:
    """The package's whole life in a bare root: dpkg -i; --version and --sbom from the
    installed path; a real round through the installed defaults file (69, signed, 0);
    dpkg -r keeps the key and the edited conffile, and a reinstall uses both; dpkg -P
    removes the conffile and the units' state and still keeps the key."""
    with overlay(lower, work) as root:
        assert not (root / "run/systemd/system").exists(), "the root looks booted"
        shutil.copy(deb, root / "tmp" / deb.name)
        calls = record_unit_starts(root)
        installed = chroot(root, "dpkg", "-i", f"/tmp/{deb.name}")
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert enabled_links(root) == UNITS_ENABLED
        assert calls.read_text() == "", "no unit is started or reloaded in a chroot"
        for name in ("systemctl", "deb-systemd-invoke"):
            (root / "usr/local/sbin" / name).unlink()

        version = chroot(root, "/usr/bin/caramel-embedded", "--version")
        assert version.returncode == 0, version.stderr
        assert version.stdout.splitlines()[0] == f"caramel-embedded {sources_version()}"
        sbom = chroot(root, "caramel-embedded", "--sbom")
        assert sbom.returncode == 0, sbom.stderr
        component = json.loads(sbom.stdout)["metadata"]["component"]
        assert (component["name"], component["version"]) == ("caramel-embedded", sources_version())

        (root / "etc/caramel").mkdir()
        shutil.copy(server.ca_file, root / "etc/caramel/ca.pem")
        defaults = root / "etc/default/caramel-embedded"
        configure(
            defaults,
            {
                "CARAMEL_SERVER": server.url,
                "CARAMEL_CLIENT_ID_FROM": "",
                "CARAMEL_CLIENT_ID": CLIENT_ID,
                "CARAMEL_CA_CERT": "/etc/caramel/ca.pem",
            },
        )
        waiting = run_as_the_service(root)
        assert waiting.returncode == 69, waiting.stderr
        server.sign()
        done = run_as_the_service(root)
        assert done.returncode == 0, done.stderr
        key_file = root / "var/lib/caramel/client.pem"
        held = key_file.read_bytes()
        assert b"PRIVATE KEY-----" in held
        assert b"-----BEGIN CERTIFICATE-----" in held
        edited = defaults.read_bytes()
        # What the reload unit records at run time (RuntimeDirectoryPreserve=yes).
        (root / "run/caramel-embedded-reload").mkdir(parents=True)
        (root / "run/caramel-embedded-reload/certificate.sha256").write_text("0" * 64 + "\n")

        removed = chroot(root, "dpkg", "-r", "caramel-embedded")
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert not (root / "usr/bin/caramel-embedded").exists()
        assert key_file.is_file(), "dpkg -r must keep the device's key"
        assert key_file.read_bytes() == held
        assert defaults.read_bytes() == edited, "dpkg -r must keep the edited conffile"

        # Installed again: the units enabled again, the edited settings and the key used
        # as they are (the certificate is current: 0, the file unchanged).
        again = chroot(root, "dpkg", "-i", f"/tmp/{deb.name}")
        assert again.returncode == 0, again.stdout + again.stderr
        assert enabled_links(root) == UNITS_ENABLED
        assert defaults.read_bytes() == edited
        current = run_as_the_service(root)
        assert current.returncode == 0, current.stderr
        assert key_file.read_bytes() == held
        removed = chroot(root, "dpkg", "-r", "caramel-embedded")
        assert removed.returncode == 0, removed.stdout + removed.stderr

        purged = chroot(root, "dpkg", "-P", "caramel-embedded")
        assert purged.returncode == 0, purged.stdout + purged.stderr
        assert key_file.is_file(), "dpkg -P must keep the device's key"
        assert key_file.read_bytes() == held
        assert not defaults.exists(), "dpkg -P removes the conffile"
        assert not (root / "run/caramel-embedded-reload").exists()
        assert traces_in_systemd(root) == []
        status = chroot(root, "dpkg-query", "-W", "-f", "${db:Status-Status}", "caramel-embedded")
        assert status.stdout in ("", "not-installed"), status.stdout
