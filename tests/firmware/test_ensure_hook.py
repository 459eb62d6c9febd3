"""caramel-ensure.sh's CARAMEL_ON_INSTALL: run only when the status line says installed.

The real one-file binary against the fake Caramel server, under BusyBox's sh and dash
(the ``tool`` fixture of test_ensure): the hook appends to a log, so each run of it is
counted, and it sees the status line in CARAMEL_STATUS_LINE.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.firmware.test_ensure import EACH_SHELL, Tool, tool  # noqa: F401 (a fixture)


def hook(log: Path) -> str:
    return f'eval "$CARAMEL_STATUS_LINE"; echo "$status $exit $not_after" >>"{log}"'


def hook_runs(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@EACH_SHELL
def test_hook_runs_on_install_only(tool: Tool, tmp_path: Path) -> None:  # noqa: F811
    log = tmp_path / "hook-log"
    on_install = {"CARAMEL_ON_INSTALL": hook(log)}
    posted = tool.ensure(**on_install)
    assert posted.returncode == 69
    assert hook_runs(log) == []

    certificate = tool.server.sign()
    result = tool.ensure(**on_install)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")  # the status line is not passed on
    not_after = certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert hook_runs(log) == [f"installed 0 {not_after}"]

    current = tool.ensure(**on_install)
    assert current.returncode == 0
    assert hook_runs(log) == [f"installed 0 {not_after}"], "ran for an unchanged run"

    tool.server.sign()  # re-signed: a new certificate
    assert tool.ensure(**on_install).returncode == 0
    assert len(hook_runs(log)) == 2
    assert tool.runs() == 4


def test_hook_that_fails_is_said_and_the_certificate_stays(tool: Tool) -> None:  # noqa: F811
    assert tool.ensure().returncode == 69
    tool.server.sign()
    result = tool.ensure(CARAMEL_ON_INSTALL="exit 3")
    assert result.returncode == 0
    assert result.stderr == "caramel-ensure: CARAMEL_ON_INSTALL failed with status 3\n"
    assert b"-----BEGIN CERTIFICATE-----" in tool.file.read_bytes()


@pytest.mark.parametrize("status", [69, 127])
def test_hook_does_not_run_without_a_certificate(
    tool: Tool,  # noqa: F811
    tmp_path: Path,
    status: int,
) -> None:
    log = tmp_path / "hook-log"
    server = {} if status == 69 else {"CARAMEL_SERVER": "https://127.0.0.1:1"}
    result = tool.ensure(CARAMEL_ON_INSTALL=hook(log), **server)
    assert result.returncode == status
    assert hook_runs(log) == []


def test_without_a_hook_the_client_runs_as_before(tool: Tool) -> None:  # noqa: F811
    """No --status added: arguments such as --print-client-id still work through it."""
    result = tool.ensure("--print-client-id")
    assert (result.returncode, result.stdout) == (0, "device-0001\n")
