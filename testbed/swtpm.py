"""A software TPM for one test: swtpm on loopback, its state in the test's directory.

swtpm's socket TPM takes commands on one port and its control channel on the next (the
TSS's ``swtpm`` TCTI reaches both from one ``port=``), so two consecutive free ports are
found. ``--flags not-need-init,startup-clear`` makes it a powered-on, started TPM at once,
as a board's is after boot. It is stopped by its PID, never by name: the other sessions on
the machine run their own.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


@dataclass
class SoftwareTPM:
    """A running swtpm: the TCTI that reaches it, and its process."""

    port: int
    state: Path
    process: subprocess.Popen[bytes]

    @property
    def tcti(self) -> str:
        return f"swtpm:host={LOOPBACK},port={self.port}"

    def tools_env(self) -> dict[str, str]:
        """The environment for tpm2-tools against this TPM, quiet."""
        return {**os.environ, "TPM2TOOLS_TCTI": self.tcti, "TSS2_LOG": "all+NONE"}

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def free_port_pair() -> int:
    """A port P such that P and P + 1 are free on loopback now."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind((LOOPBACK, 0))
            port = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind((LOOPBACK, port + 1))
                except OSError:
                    continue
            return int(port)
    raise RuntimeError("no two consecutive free ports on loopback")


def start(state: Path) -> SoftwareTPM:
    """A swtpm with its state in ``state``, accepting commands."""
    binary = shutil.which("swtpm")
    assert binary is not None, "swtpm is not installed: make system-deps"
    state.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        port = free_port_pair()
        process = subprocess.Popen(
            [
                binary, "socket", "--tpm2",
                "--server", f"type=tcp,port={port},bindaddr={LOOPBACK}",
                "--ctrl", f"type=tcp,port={port + 1},bindaddr={LOOPBACK}",
                "--flags", "not-need-init,startup-clear",
                "--tpmstate", f"dir={state}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if _accepting(port, process):
            return SoftwareTPM(port, state, process)
        SoftwareTPM(port, state, process).stop()  # lost the port to someone else: again
    raise RuntimeError("swtpm did not start")


def _accepting(port: int, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            socket.create_connection((LOOPBACK, port + 1), timeout=1).close()
        except OSError:
            time.sleep(0.02)
            continue
        return True
    return False


@contextmanager
def running(state: Path) -> Iterator[SoftwareTPM]:
    tpm = start(state)
    try:
        yield tpm
    finally:
        tpm.stop()


def transient_handles(tpm: SoftwareTPM) -> list[str]:
    """The objects loaded in the TPM now: what a client left behind."""
    listed = subprocess.run(
        ["tpm2_getcap", "handles-transient"],
        env=tpm.tools_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.strip("- ").strip() for line in listed.stdout.splitlines() if line.strip()]


def lock_out(tpm: SoftwareTPM) -> None:
    """Put the TPM in dictionary-attack lockout, as repeated wrong passwords would."""
    env = tpm.tools_env()
    subprocess.run(
        ["tpm2_dictionarylockout", "--setup-parameters", "--max-tries=1",
         "--recovery-time=600", "--lockout-recovery-time=600"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    directory = tpm.state / "lockout"
    directory.mkdir(exist_ok=True)
    steps = (
        ["tpm2_createprimary", "-C", "o", "-c", "primary.ctx"],
        ["tpm2_create", "-C", "primary.ctx", "-p", "secret", "-u", "k.pub", "-r", "k.priv"],
        ["tpm2_load", "-C", "primary.ctx", "-u", "k.pub", "-r", "k.priv", "-c", "k.ctx"],
    )
    for step in steps:  # without a resource manager each tool leaves its objects loaded
        subprocess.run(step, env=env, cwd=directory, check=True, capture_output=True)
        subprocess.run(["tpm2_flushcontext", "-t"], env=env, check=True, capture_output=True)
    (directory / "message").write_bytes(b"x")
    for _ in range(2):  # wrong passwords: the second one finds the TPM locked out
        subprocess.run(
            ["tpm2_sign", "-c", "k.ctx", "-p", "wrong", "-o", "signature", "message"],
            env=env, cwd=directory, capture_output=True, check=False,
        )  # fmt: skip
    subprocess.run(["tpm2_flushcontext", "-t"], env=env, check=True, capture_output=True)
    variable = subprocess.run(
        ["tpm2_getcap", "properties-variable"], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert "inLockout:                 1" in variable, variable
