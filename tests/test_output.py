"""Output that cannot be written changes nothing: the status earned, or 127, never 120.

Python exits 120 when flushing stdout or stderr fails at the interpreter's exit (the frozen
binary does too), and a closed stderr is ``None`` to Python: neither may leak into the
status a caller reads. stdout carries the product of ``--version``, ``--help`` and
``--print-client-id``, so losing it is an error (127); stderr carries only diagnostics, so
losing them leaves the status the run earned (0, 1, 69 or 127).

Each stream is tried closed, on ``/dev/full`` and as a pipe whose reader is already gone.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO

import pytest

from testbed.command import clean_environment, client_command
from tests.conftest import Client
from tests.fake_signer import FakeCaramel
from tests.test_protocol import installed

PROCESS_LIMIT = 60
BROKEN = ["closed", "full", "broken-pipe"]


@contextmanager
def broken_stream(how: str) -> Iterator[int | IO[bytes] | None]:
    """What to give subprocess for a stream that cannot be written; ``None`` means closed."""
    if how == "closed":
        yield None
    elif how == "full":
        with open("/dev/full", "wb") as full:
            yield full
    else:
        reader, writer = os.pipe()
        os.close(reader)  # the reader is gone before the first byte: EPIPE
        try:
            yield writer
        finally:
            os.close(writer)


def run_with(
    args: Sequence[str], stdout: str | None = None, stderr: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run the command with stdout or stderr broken; the other stream is captured."""
    command = [*client_command(), *args]
    closing = [fd for fd, how in ((1, stdout), (2, stderr)) if how == "closed"]
    if closing:  # subprocess cannot close a standard stream: the shell does, then execs
        redirections = " ".join(f"{fd}>&-" for fd in closing)
        command = ["sh", "-c", f'exec "$@" {redirections}', "sh", *command]
    with broken_stream(stdout or "") as out, broken_stream(stderr or "") as err:
        return subprocess.run(
            command,
            env=clean_environment(),
            stdin=subprocess.DEVNULL,
            stdout=out if stdout and stdout != "closed" else subprocess.PIPE,
            stderr=err if stderr and stderr != "closed" else subprocess.PIPE,
            timeout=PROCESS_LIMIT,
            check=False,
        )


def one_error_line(stderr: bytes) -> str:
    lines = stderr.decode(errors="replace").splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    assert "Traceback" not in lines[0], lines[0]
    assert "Exception ignored" not in lines[0], lines[0]
    return lines[0]


# --- stdout: the product of --version, --help and --print-client-id -------------------------


@pytest.mark.parametrize("how", BROKEN)
@pytest.mark.parametrize("option", ["--version", "--help"])
def test_stdout_that_cannot_be_written_ends_with_127_and_one_line(option: str, how: str) -> None:
    result = run_with([option], stdout=how)
    assert result.returncode == 127, result.stderr
    assert "stdout" in one_error_line(result.stderr)


@pytest.mark.parametrize("how", BROKEN)
def test_client_id_that_cannot_be_printed_ends_with_127(how: str) -> None:
    result = run_with(["--print-client-id", "device-0001"], stdout=how)
    assert result.returncode == 127, result.stderr
    assert "stdout" in one_error_line(result.stderr)


def test_stdout_that_works_still_prints_the_version() -> None:
    result = run_with(["--version"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith("caramel-embedded ")


# --- stderr: diagnostics only; the status is the one the run earned --------------------------


@pytest.mark.parametrize("how", BROKEN)
def test_run_waiting_for_a_signature_ends_with_69_whatever_stderr_does(
    client: Client, signer: FakeCaramel, how: str
) -> None:
    result = run_with(client.args("-v"), stderr=how)
    assert result.returncode == 69, result
    assert len(signer.requests("POST")) == 1


@pytest.mark.parametrize("how", BROKEN)
def test_installed_certificate_ends_with_0_whatever_stderr_does(
    client: Client, signer: FakeCaramel, how: str
) -> None:
    installed(client, signer)
    result = run_with(client.args("-v"), stderr=how)
    assert result.returncode == 0, result


@pytest.mark.parametrize("how", BROKEN)
def test_error_ends_with_127_whatever_stderr_does(client: Client, how: str) -> None:
    unreachable = dataclasses.replace(client, server="https://127.0.0.1:1")
    result = run_with(unreachable.args(), stderr=how)
    assert result.returncode == 127, result


@pytest.mark.parametrize("how", BROKEN)
def test_version_with_stderr_broken_ends_with_0_and_prints(how: str) -> None:
    result = run_with(["--version"], stderr=how)
    assert result.returncode == 0, result
    assert result.stdout.decode().startswith("caramel-embedded ")
