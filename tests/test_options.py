"""Arguments and environment: every option, every usage error is 127 with one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from caramel_embedded import options, server_address
from caramel_embedded.errors import UsageError
from caramel_embedded.server_address import ServerAddress
from testbed.command import run_client

pytestmark = pytest.mark.arm32


def parse(*argv: str, **environ: str) -> options.Settings:
    return options.parse(list(argv), environ)


def test_defaults() -> None:
    settings = parse("ca.example")
    assert settings.server == ServerAddress("ca.example", 443, "")
    assert settings.client_id is None
    assert settings.client_id_from == "auto"
    assert settings.file == Path("/var/lib/caramel/client.pem")
    assert settings.ca_cert is None
    assert settings.ownership == options.Ownership(0o600, -1, -1)
    assert settings.key_bits == 2048
    assert settings.timeout == 30.0
    assert (settings.key_store, settings.tpm) == ("file", "device:/dev/tpmrm0")


def test_key_store_and_tpm_from_the_command_line_and_the_environment() -> None:
    tcti = "swtpm:host=127.0.0.1,port=2321"
    given = parse("ca.example", "--key-store", "tpm2", "--tpm", tcti)
    assert (given.key_store, given.tpm) == ("tpm2", tcti)
    environment = parse("ca.example", CARAMEL_KEY_STORE="tpm2", CARAMEL_TPM="device:/dev/tpm0")
    assert (environment.key_store, environment.tpm) == ("tpm2", "device:/dev/tpm0")
    wins = parse("ca.example", "--key-store", "file", CARAMEL_KEY_STORE="tpm2")
    assert wins.key_store == "file"


def test_every_option_on_the_command_line() -> None:
    settings = parse(
        "https://ca.example:8443/caramel/", "dev-1",
        "--client-id-from", "mac:eth0", "--file", "/data/c.pem", "--ca-cert", "/etc/ca.pem",
        "--owner", "0:0", "--mode", "0640", "--key-bits", "4096", "--timeout", "7.5",
        "-v", "--syslog",
    )  # fmt: skip
    assert settings.server == ServerAddress("ca.example", 8443, "/caramel")
    assert settings.client_id == "dev-1"
    assert settings.client_id_from == "mac:eth0"
    assert settings.file == Path("/data/c.pem")
    assert settings.ca_cert == Path("/etc/ca.pem")
    assert settings.ownership == options.Ownership(0o640, 0, 0)
    assert (settings.key_bits, settings.timeout, settings.verbose, settings.syslog) == (
        4096, 7.5, True, True,
    )  # fmt: skip


def test_environment_stands_in_and_command_line_wins() -> None:
    environ = {
        "CARAMEL_SERVER": "env.example:444",
        "CARAMEL_CLIENT_ID": "env-id",
        "CARAMEL_CLIENT_ID_FROM": "serial",
        "CARAMEL_FILE": "/env/c.pem",
        "CARAMEL_CA_CERT": "/env/ca.pem",
        "CARAMEL_OWNER": "root",
        "CARAMEL_MODE": "0660",
        "CARAMEL_TIMEOUT": "5",
    }
    settings = parse(**environ)
    assert settings.server == ServerAddress("env.example", 444)
    assert settings.client_id == "env-id"
    assert settings.client_id_from == "serial"
    assert settings.file == Path("/env/c.pem")
    assert settings.ca_cert == Path("/env/ca.pem")
    assert settings.ownership == options.Ownership(0o660, 0, -1)
    assert settings.timeout == 5
    overridden = parse("cli.example", "cli-id", "--mode", "0600", **environ)
    assert overridden.server == ServerAddress("cli.example")
    assert overridden.client_id == "cli-id"
    assert overridden.ownership.mode == 0o600


def test_empty_environment_values_count_as_unset_but_empty_id_is_an_error() -> None:
    settings = parse("ca.example", CARAMEL_MODE="", CARAMEL_OWNER="", CARAMEL_TIMEOUT="")
    assert settings.ownership == options.Ownership()
    with pytest.raises(UsageError, match="CLIENT_ID is empty"):
        parse("ca.example", CARAMEL_CLIENT_ID="")
    with pytest.raises(UsageError, match="CLIENT_ID is empty"):
        parse("ca.example", "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param([], "SERVER is required", id="no-server"),
        pytest.param(["h", "--mode", "0800"], "--mode", id="mode-not-octal"),
        pytest.param(["h", "--mode", "4755"], "--mode", id="mode-setuid"),
        pytest.param(["h", "--mode", "0044"], "--mode", id="mode-owner-cannot-read"),
        pytest.param(["h", "--key-bits", "1024"], "--key-bits", id="key-bits"),
        pytest.param(["h", "--timeout", "0"], "--timeout", id="timeout-zero"),
        pytest.param(["h", "--timeout", "soon"], "--timeout", id="timeout-word"),
        pytest.param(["h", "--owner", "no-such-user-xyz"], "no such user", id="owner"),
        pytest.param(["h", "--owner", ":no-such-group-xyz"], "no such group", id="group"),
        pytest.param(["h", "--client-id-from", "bios"], "unknown client id source", id="src"),
        pytest.param(["h", "--key-store", "pkcs11"], "--key-store", id="key-store"),
        pytest.param(["h", "--tpm", ":port=1"], "--tpm", id="tcti-no-name"),
        pytest.param(["h", "--tpm", "device:/dev/tpm0\n"], "--tpm", id="tcti-newline"),
        pytest.param(["h", "--unknown"], "unrecognized", id="unknown-option"),
        pytest.param(["h", "a", "b"], "unrecognized", id="extra-argument"),
        pytest.param(["http://h"], "only https", id="plain-http"),
        pytest.param(["h:0"], "bad port", id="port-zero"),
        pytest.param(["h:99999"], "bad port", id="port-big"),
        pytest.param(["h/x?y"], "expected host", id="query"),
        pytest.param(["bad host"], "expected host", id="space"),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("?", r"\?")):
        options.parse(argv, {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ca.example", ServerAddress("ca.example", 443, "")),
        ("ca.example:8443", ServerAddress("ca.example", 8443, "")),
        ("https://ca.example", ServerAddress("ca.example", 443, "")),
        ("https://ca.example:8443/", ServerAddress("ca.example", 8443, "")),
        ("HTTPS://ca.example/a/b/", ServerAddress("ca.example", 443, "/a/b")),
        ("127.0.0.1:8443", ServerAddress("127.0.0.1", 8443, "")),
        ("[::1]:8443", ServerAddress("::1", 8443, "")),
        ("https://[::1]/p", ServerAddress("::1", 443, "/p")),
    ],
)
def test_server_address_forms(text: str, expected: ServerAddress) -> None:
    assert server_address.parse(text) == expected
    assert expected.path("abc") == f"{expected.prefix}/abc"


# --- the same through the real command ------------------------------------------------


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["--version"]])
def test_help_and_version_exit_0(argv: list[str]) -> None:
    result = run_client(argv)
    assert result.returncode == 0
    assert "caramel-embedded" in result.stdout
    assert result.stderr == ""


def test_version_says_whether_a_ca_is_embedded() -> None:
    result = run_client(["--version"])
    assert result.stdout.splitlines()[0].startswith("caramel-embedded ")
    assert "embedded CA" in result.stdout


@pytest.mark.parametrize(
    "argv",
    [[], ["--bogus"], ["h", "--mode", "999"], ["h", "--timeout"], ["h", "a", "b", "c"]],
)
def test_usage_error_is_127_with_one_line(argv: list[str]) -> None:
    result = run_client(argv)
    assert result.returncode == 127
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("caramel-embedded: ")
    assert "Traceback" not in result.stderr


def test_print_client_id_from_a_fake_tree(tmp_path: Path) -> None:
    (tmp_path / "sys/class/net/eth0/device").mkdir(parents=True)
    (tmp_path / "sys/class/net/eth0/address").write_text("00:11:22:AA:BB:CC\n")
    environ = {"CARAMEL_IDENTITY_ROOT": str(tmp_path)}
    result = run_client(["--print-client-id"], env=environ)
    assert (result.returncode, result.stdout, result.stderr) == (0, "001122aabbcc\n", "")
    explicit = run_client(["--print-client-id", "ca.example", "given-id"], env=environ)
    assert explicit.stdout == "given-id\n"
    bad = run_client(["--print-client-id", "ca.example", "not valid"], env=environ)
    assert bad.returncode == 127
    assert "not 1 to 64 characters" in bad.stderr


def test_print_client_id_with_no_hardware_id_is_127(tmp_path: Path) -> None:
    result = run_client(["--print-client-id"], env={"CARAMEL_IDENTITY_ROOT": str(tmp_path)})
    assert result.returncode == 127
    assert len(result.stderr.splitlines()) == 1


def test_no_ca_at_all_says_how_to_give_one(tmp_path: Path) -> None:
    result = run_client(
        ["127.0.0.1:9", "dev", "--file", str(tmp_path / "c.pem")],
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert result.returncode == 127
    assert "--ca-cert" in result.stderr
    assert not (tmp_path / "c.pem").exists()
