"""The CA given at build time is inside the binary and is its default trust anchor.

``--ca-cert`` still wins over it; ``--version`` names it; a binary without one says how to
give one. The binary with a CA is built here from the same sources, with the session's
test CA, so a real invocation against the fake signer can rely on it alone.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from caramel_embedded import trust
from testbed.ca_factory import make_authority
from testbed.command import clean_environment
from tests.conftest import CLIENT_ID
from tests.fake_signer import FakeCaramel
from tests.frozen.conftest import Binary


def run(binary: Binary, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary.path), *arguments],
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_version_names_every_embedded_ca_and_its_fingerprint(
    ca_binary: Binary, embedded_bundle: Path
) -> None:
    anchor = trust.parse(embedded_bundle.read_bytes(), "test CAs")
    first, second = anchor.certificates
    result = run(ca_binary, "--version")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        f"caramel-embedded {ca_binary.info['version']}",
        f"embedded CA: {first.subject_text}",
        f"embedded CA SHA-256: {first.sha256_fingerprint}",
        f"embedded CA: {second.subject_text}",
        f"embedded CA SHA-256: {second.sha256_fingerprint}",
    ]
    assert ca_binary.info["embedded_ca_sha256"] == (
        f"{first.sha256_fingerprint},{second.sha256_fingerprint}"
    )


def test_version_without_an_embedded_ca_says_so(binary: Binary) -> None:
    result = run(binary, "--version")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines()[1:] == ["no embedded CA"]


def test_the_embedded_ca_is_the_default_trust_anchor(
    ca_binary: Binary, signer: FakeCaramel, tmp_path: Path
) -> None:
    combined = tmp_path / "client.pem"
    arguments = (signer.url, CLIENT_ID, "--file", str(combined))  # type: ignore[attr-defined]
    enrolled = run(ca_binary, *arguments)
    assert (enrolled.returncode, enrolled.stderr) == (69, "")
    signer.sign()
    installed = run(ca_binary, *arguments)
    assert (installed.returncode, installed.stderr) == (0, "")
    assert b"-----BEGIN CERTIFICATE-----" in combined.read_bytes()


def test_ca_cert_overrides_the_embedded_ca(
    ca_binary: Binary, signer: FakeCaramel, tmp_path: Path
) -> None:
    stranger = make_authority().write(tmp_path / "other-ca.pem")
    result = run(
        ca_binary,
        signer.url,  # type: ignore[attr-defined]
        CLIENT_ID,
        "--file",
        str(tmp_path / "client.pem"),
        "--ca-cert",
        str(stranger),
    )
    assert result.returncode == 127
    assert "not trusted" in result.stderr, result.stderr
    assert signer.requests() == []


def test_without_any_ca_the_line_says_how_to_give_one(binary: Binary, tmp_path: Path) -> None:
    result = run(binary, "127.0.0.1:9", CLIENT_ID, "--file", str(tmp_path / "client.pem"))
    assert result.returncode == 127
    assert result.stderr.count("\n") == 1
    assert "--ca-cert" in result.stderr
    assert not (tmp_path / "client.pem").exists()
