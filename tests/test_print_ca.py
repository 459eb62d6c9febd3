"""``--print-ca``: the trust anchor in use as PEM on stdout, so that an image's scripts can
put it where a service expects a CA file; a CA a run would refuse is refused (127)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from testbed.ca_factory import Authority, make_authority
from testbed.command import run_client
from tests.conftest import Client
from tests.test_output import BROKEN, one_error_line, run_with


def test_prints_the_given_ca(authority: Authority, ca_file: Path) -> None:
    result = run_client(["--print-ca", "--ca-cert", str(ca_file)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == authority.pem
    assert result.stderr == ""


def test_prints_every_ca_of_a_bundle(authority: Authority, tmp_path: Path) -> None:
    other = make_authority(key_slot=3)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(authority.pem + other.pem)
    result = run_client(["--print-ca"], env={"CARAMEL_CA_CERT": str(bundle)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == authority.pem + other.pem


def test_server_is_not_needed_but_ignored_when_given(ca_file: Path) -> None:
    result = run_client(["https://127.0.0.1:1", "--print-ca", "--ca-cert", str(ca_file)])
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("problem", ["not-pem", "expired", "missing"])
def test_refuses_a_ca_a_run_would_refuse(tmp_path: Path, problem: str) -> None:
    path = tmp_path / "ca.pem"
    if problem == "not-pem":
        path.write_text("hello\n")
    elif problem == "expired":
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
        expired = make_authority(not_before=past - dt.timedelta(days=1), not_after=past)
        expired.write(path)
    result = run_client(["--print-ca", "--ca-cert", str(path)])
    assert result.returncode == 127
    assert result.stdout == ""
    assert str(path) in one_error_line(result.stderr.encode())


@pytest.mark.parametrize("how", BROKEN)
def test_ca_that_cannot_be_printed_ends_with_127(ca_file: Path, how: str) -> None:
    result = run_with(["--print-ca", "--ca-cert", str(ca_file)], stdout=how)
    assert result.returncode == 127, result.stderr
    assert "stdout" in one_error_line(result.stderr)


@pytest.mark.parametrize("how", BROKEN)
def test_status_line_that_cannot_be_written_ends_with_127(client: Client, how: str) -> None:
    """The line is the run's product for its caller, like --print-client-id's id: a run
    that earned 69 but could not say so on stdout ends with 127 and one line."""
    result = run_with(client.args("--status"), stdout=how)
    assert result.returncode == 127, result.stderr
    assert "stdout" in one_error_line(result.stderr)
    assert client.file.exists()  # the run itself went through: it posted
