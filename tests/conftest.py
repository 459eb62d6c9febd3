"""Fixtures that build real things: a CA, a TLS server, the command in a real process."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed.ca_factory import Authority, make_authority
from testbed.command import run_client, start_client
from testbed.harness import CaramelStack
from tests import fake_signer

CLIENT_ID = "device-0001"


@pytest.fixture(scope="session")
def authority() -> Authority:
    return make_authority()


@pytest.fixture(scope="session")
def ca_file(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return authority.write(tmp_path_factory.mktemp("ca") / "ca.pem")


@pytest.fixture
def signer(
    authority: Authority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[fake_signer.FakeCaramel]:
    with fake_signer.serving(authority, tmp_path_factory.mktemp("tls")) as fake:
        yield fake


@dataclass
class Client:
    """One device: its combined file, its CA, and the server it asks."""

    server: str
    file: Path
    ca_file: Path
    client_id: str = CLIENT_ID

    def args(self, *extra: str) -> list[str]:
        return [
            self.server,
            self.client_id,
            "--file",
            str(self.file),
            "--ca-cert",
            str(self.ca_file),
            *extra,
        ]

    def run(
        self, *extra: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return run_client(self.args(*extra), env=env, timeout=timeout)

    def start(self, *extra: str, **options: Any) -> subprocess.Popen[str]:
        """Start one invocation and leave it running (``command.start_client``'s options)."""
        return start_client(self.args(*extra), **options)


@pytest.fixture
def client(signer: fake_signer.FakeCaramel, ca_file: Path, tmp_path: Path) -> Client:
    return Client(signer.url, tmp_path / "state" / "client.pem", ca_file)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def stack() -> Iterator[CaramelStack]:
    """A running Caramel 1.9.6 behind nginx (testbed/), private to the module: the
    real-server suite's, and the .deb's install tests'."""
    with CaramelStack() as running:
        yield running


def file_system_type(directory: Path) -> str:
    return subprocess.run(
        ["stat", "-f", "-c", "%T", str(directory)], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def ram_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty directory on a tmpfs: one mounted for the test, else one in /dev/shm."""
    mount_point = tmp_path / "ram"
    mount_point.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "hint-test", str(mount_point)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if mounted:
        directory = mount_point
    else:
        directory = Path("/dev/shm") / f"caramel-hint-{os.getpid()}-{tmp_path.name}"
        directory.mkdir(mode=0o700)
    try:
        if file_system_type(directory) != "tmpfs":
            pytest.skip("no tmpfs to be had here (not root, and /dev/shm is not one)")
        yield directory
    finally:
        if mounted:
            subprocess.run(["umount", str(mount_point)], check=True)
        else:
            shutil.rmtree(directory)


@pytest.fixture
def disk_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty directory that is not on a tmpfs or ramfs: in tmp_path, else in /var/tmp."""
    directory = tmp_path / "disk"
    directory.mkdir()
    elsewhere = file_system_type(directory) in ("tmpfs", "ramfs")
    if elsewhere:
        directory = Path("/var/tmp") / f"caramel-hint-{os.getpid()}-{tmp_path.name}"
        directory.mkdir()
    assert file_system_type(directory) not in ("tmpfs", "ramfs")
    yield directory
    if elsewhere:
        shutil.rmtree(directory)
