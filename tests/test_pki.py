"""Keys and requests as the Caramel server demands them, and the checks before install."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from caramel_embedded import pem, pki
from caramel_embedded.errors import CertificateCheckError
from testbed.ca_factory import FLEET_SUBJECT, make_authority, name, new_key

pytestmark = pytest.mark.in_process

AUTHORITY = make_authority(key_slot=1)
CA_DER = AUTHORITY.certificate.public_bytes(serialization.Encoding.DER)
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def key_der() -> bytes:
    return pki.new_private_key(2048)


def test_new_key_is_pkcs8_rsa_2048(key_der: bytes) -> None:
    key = serialization.load_der_private_key(key_der, None)
    assert key.key_size == 2048  # type: ignore[union-attr]
    assert pem.encode("PRIVATE KEY", key_der) == key.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_request_pem_is_what_openssl_writes(key_der: bytes, tmp_path: Path) -> None:
    request_pem = pem.encode("CERTIFICATE REQUEST", pki.new_request(key_der, CA_DER, "dev-7"))
    (tmp_path / "req.pem").write_bytes(request_pem)
    rewritten = subprocess.run(
        ["openssl", "req", "-in", str(tmp_path / "req.pem")],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert rewritten == request_pem
    verified = subprocess.run(
        ["openssl", "req", "-in", str(tmp_path / "req.pem"), "-noout", "-verify"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr


def test_the_same_key_and_subject_give_the_same_request_bytes(key_der: bytes) -> None:
    """A run killed between posting a new request and writing it loses nothing: the next
    run makes the same bytes (an RSA PKCS#1 v1.5 signature is deterministic), so the same
    URL, and the server calls its post a duplicate."""
    first = pki.new_request(key_der, CA_DER, "dev-7")
    assert pki.new_request(key_der, CA_DER, "dev-7") == first
    assert pki.new_request(key_der, CA_DER, "dev-8") != first


def test_request_subject_is_cas_with_cn_replaced_in_order(key_der: bytes) -> None:
    request = x509.load_der_x509_csr(pki.new_request(key_der, CA_DER, "dev-7"))
    expected = [(oid, "dev-7" if oid == NameOID.COMMON_NAME else v) for oid, v in FLEET_SUBJECT]
    assert [(a.oid, a.value) for a in request.subject] == expected
    assert request.signature_hash_algorithm is not None
    assert request.signature_hash_algorithm.name == "sha256"
    assert request.is_signature_valid


def test_cn_is_appended_when_the_ca_has_none(key_der: bytes) -> None:
    ca = make_authority(FLEET_SUBJECT[:4], key_slot=1)
    ca_der = ca.certificate.public_bytes(serialization.Encoding.DER)
    request = x509.load_der_x509_csr(pki.new_request(key_der, ca_der, "dev-8"))
    assert [a.value for a in request.subject] == [v for _, v in FLEET_SUBJECT[:4]] + ["dev-8"]


def _issue(key_der: bytes, **overrides: object) -> bytes:
    key = serialization.load_der_private_key(key_der, None)
    authority = overrides.pop("authority", AUTHORITY)
    certificate = authority.issue(  # type: ignore[attr-defined]
        overrides.pop("public_key", key.public_key()),
        name(((NameOID.COMMON_NAME, overrides.pop("cn", "dev-7")),)),
        **overrides,
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def test_a_good_certificate_passes(key_der: bytes) -> None:
    pki.check_issued_certificate(_issue(key_der), [CA_DER], key_der, "dev-7", NOW)


def test_any_ca_of_a_bundle_may_have_signed_it(key_der: bytes) -> None:
    """A rollover: the device names the old CA first, the server signs with the new one."""
    new_ca = make_authority(key_slot=5)
    new_der = new_ca.certificate.public_bytes(serialization.Encoding.DER)
    issued = _issue(key_der, authority=new_ca)
    pki.check_issued_certificate(issued, [CA_DER, new_der], key_der, "dev-7", NOW)
    with pytest.raises(CertificateCheckError, match="not signed by the CA"):
        pki.check_issued_certificate(issued, [CA_DER], key_der, "dev-7", NOW)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"public_key": new_key(4).public_key()}, "another key", id="other-key"),
        pytest.param({"cn": "dev-8"}, "for CN 'dev-8'", id="other-cn"),
        pytest.param({"authority": make_authority(key_slot=5)}, "not signed by the CA", id="ca"),
        pytest.param(
            {
                "not_before": NOW - dt.timedelta(days=3),
                "not_after": NOW - dt.timedelta(days=1),
            },
            "expired",
            id="expired",
        ),
    ],
)
def test_certificates_we_must_not_install(
    key_der: bytes, overrides: dict[str, object], reason: str
) -> None:
    with pytest.raises(CertificateCheckError, match=reason):
        pki.check_issued_certificate(_issue(key_der, **overrides), [CA_DER], key_der, "dev-7", NOW)
