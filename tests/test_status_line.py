"""``--status``: one key=value line on stdout for every outcome, read back by ``sh`` itself.

Each outcome is reached for real (fake signer over TLS, real files, a real lock, a real
signal), and the line is handed to ``sh`` three ways a firmware script would read it:
``eval "$line"`` (one variable per key), ``eval "set -- $line"`` (one word per key) and
``read -r``. The exit status is the one the run had without ``--status``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from werkzeug import Response

from caramel_embedded import status_line
from caramel_embedded.errors import NetworkError, TLSError
from caramel_embedded.status_line import reason_of
from testbed.ca_factory import make_authority
from testbed.command import clean_environment, client_command
from tests.conftest import CLIENT_ID, Client
from tests.fake_signer import FakeCaramel
from tests.test_protocol import enrolled, installed

KEYS = ("status", "exit", "reason", "client_id", "not_after", "request", "checked")


def words_by_sh(line: str) -> list[str]:
    """The line's words as ``sh`` reads them: ``eval "set -- $line"``."""
    script = 'eval "set -- $1"; for word in "$@"; do printf "%s\\n" "$word"; done'
    done = subprocess.run(
        ["sh", "-c", script, "sh", line], capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


def variables_by_sh(line: str) -> dict[str, str]:
    """``read -r`` the line from a pipe, then ``eval`` it: the variables it sets."""
    script = (
        'printf "%s\\n" "$1" | { read -r line; eval "$line"; '
        + "; ".join(f'printf "{key}=%s\\n" "${{{key}-<unset>}}"' for key in KEYS)
        + "; }"
    )
    done = subprocess.run(
        ["sh", "-c", script, "sh", line], capture_output=True, text=True, check=True
    )
    pairs = (row.split("=", 1) for row in done.stdout.splitlines())
    return {key: value for key, value in pairs if value != "<unset>"}


def status_of(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The one line, checked to read the same every way sh reads it, as a dict."""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    assert result.stdout.endswith("\n")
    line = lines[0]
    words = words_by_sh(line)
    fields = dict(word.split("=", 1) for word in words)
    assert len(fields) == len(words), "a key twice"
    assert [w.split("=", 1)[0] for w in words][:2] == ["status", "exit"]
    assert variables_by_sh(line) == fields
    assert set(fields) <= set(KEYS), fields
    assert fields["exit"] == str(result.returncode), (fields, result.stderr)
    assert ("reason" in fields) == (fields["status"] == "error")
    return fields


def assert_no_secret(result: subprocess.CompletedProcess[str], file: Path) -> None:
    assert "PRIVATE" not in result.stdout
    if file.exists():
        for line in file.read_text().splitlines():
            if line and not line.startswith("-----"):
                assert line not in result.stdout  # no line of the key, request or certificate


def test_posted_pending_installed_current_reposted(client: Client, signer: FakeCaramel) -> None:
    posted = client.run("--status")
    fields = status_of(posted)
    request = signer.only_entry()[0]
    assert fields == {
        "status": "posted",
        "exit": "69",
        "client_id": CLIENT_ID,
        "request": request,
        "checked": "yes",
    }
    assert_no_secret(posted, client.file)

    assert status_of(client.run("--status"))["status"] == "pending"

    certificate = signer.sign()
    fields = status_of(client.run("--status"))
    not_after = certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert fields == {
        "status": "installed",
        "exit": "0",
        "client_id": CLIENT_ID,
        "not_after": not_after,
        "request": request,
        "checked": "yes",
    }
    current = client.run("--status")
    assert status_of(current) == {**fields, "status": "current"}
    assert_no_secret(current, client.file)

    signer.reject(request)
    reposted = status_of(client.run("--status"))
    assert reposted["status"] == "reposted"
    assert reposted["exit"] == "69"
    assert reposted["request"] != request
    assert "not_after" not in reposted  # the rejected key's certificate was wiped


def test_without_status_stdout_stays_empty(client: Client, signer: FakeCaramel) -> None:
    installed(client, signer)
    result = client.run()
    assert (result.returncode, result.stdout) == (0, "")


def test_locked(client: Client, signer: FakeCaramel) -> None:
    enrolled(client)
    descriptor = os.open(client.file, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fields = status_of(client.run("--status"))
    finally:
        os.close(descriptor)
    assert fields == {"status": "locked", "exit": "1", "client_id": CLIENT_ID}


def error_fields(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    fields = status_of(result)
    assert (fields["status"], result.returncode) == ("error", 127), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return fields


def test_error_network(client: Client) -> None:
    client.server = "https://127.0.0.1:1"
    assert error_fields(client.run("--status"))["reason"] == "network"


def test_error_tls(client: Client, tmp_path: Path) -> None:
    """A CA that did not sign the server's certificate: the handshake fails."""
    client.ca_file = make_authority(key_slot=2).write(tmp_path / "other-ca.pem")
    result = client.run("--status")
    assert error_fields(result)["reason"] == "tls"
    assert "TLS" in result.stderr


def test_error_server(client: Client, signer: FakeCaramel) -> None:
    enrolled(client)
    signer.forced = lambda request: Response("broken", 500)
    fields = error_fields(client.run("--status"))
    assert (fields["reason"], fields["client_id"]) == ("server", CLIENT_ID)


def test_error_ca(client: Client, tmp_path: Path) -> None:
    client.ca_file = tmp_path / "not-a-ca.pem"
    client.ca_file.write_text("nothing here\n")
    assert error_fields(client.run("--status"))["reason"] == "ca"


def test_error_clock(client: Client, tmp_path: Path) -> None:
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    client.ca_file = make_authority(not_before=future, key_slot=1).write(tmp_path / "ca.pem")
    assert error_fields(client.run("--status"))["reason"] == "clock"


@pytest.mark.parametrize(
    "arguments",
    [["--mode", "0999"], ["--key-bits", "1"], ["--no-such-option"], ["--print-client-id"]],
    ids=["bad-mode", "bad-key-bits", "unknown-option", "with-a-printing-option"],
)
def test_error_input(client: Client, arguments: list[str]) -> None:
    """Usage errors too: even arguments that could not be read give the line."""
    fields = error_fields(client.run("--status", *arguments))
    assert fields["reason"] == "input"


def test_error_input_from_the_file(client: Client) -> None:
    client.file.parent.mkdir(parents=True)
    client.file.mkdir()  # a directory where the combined file should be
    assert error_fields(client.run("--status"))["reason"] == "input"


def test_error_signal(client: Client, signer: FakeCaramel) -> None:
    enrolled(client)
    signer.delay = 20
    process = subprocess.Popen(
        [*client_command(), *client.args("--status")],
        env=clean_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(signer.requests("GET")) < 1:
            assert time.monotonic() < deadline
            assert process.poll() is None
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        signer.delay = 0
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert error_fields(result)["reason"] == "signal"


def test_wait_gives_one_line_for_the_whole_wait(client: Client, signer: FakeCaramel) -> None:
    enrolled(client)
    result = client.run("--status", "--wait", "--wait-limit", "1", "--wait-interval", "0.3")
    assert result.returncode == 69
    fields = status_of(result)
    assert fields["status"] == "pending"
    signer.sign()
    assert status_of(client.run("--status", "--wait"))["status"] == "installed"


def test_help_prints_help_only(client: Client) -> None:
    result = client.run("--status", "--help")
    assert result.returncode == 0
    assert "status=" not in result.stdout


def test_reasons_follow_the_class_tree() -> None:
    assert reason_of(TLSError("x")) == "tls"
    assert reason_of(NetworkError("x")) == "network"
    assert reason_of(ValueError("x")) == "internal"


@pytest.mark.parametrize(
    "value",
    ["plain", "two words", "it's", "a'b'c", '"$HOME" `id` $(id) ;|&<>*?[]', "", "tab\there"],
)
def test_any_value_reads_back_in_sh(value: str) -> None:
    line = status_line.render([("status", "error"), ("client_id", value)])
    assert "\n" not in line
    expected = value.replace("\t", "?")
    assert words_by_sh(line) == ["status=error", f"client_id={expected}"]
    assert variables_by_sh(line)["client_id"] == expected
