"""The small parsers of the lean path, checked against cryptography and the standard library."""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import email.utils
import ipaddress
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from hypothesis import example, given
from hypothesis import strategies as st

from caramel_embedded import client_id, der, httpdate, pem, server_address, state
from fuzz.x509_reference import oid_content
from testbed.ca_factory import make_authority, name, new_key

pytestmark = pytest.mark.in_process

AUTHORITY = make_authority(key_slot=1)


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("not_before", "not_after"),
    [
        pytest.param(
            dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            dt.datetime(2026, 1, 3, tzinfo=dt.UTC),
            id="utctime",
        ),
        pytest.param(
            dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
            dt.datetime(2051, 6, 1, tzinfo=dt.UTC),
            id="generalizedtime-after-2049",
        ),
    ],
)
def test_certificate_facts_agree_with_cryptography(
    not_before: dt.datetime, not_after: dt.datetime
) -> None:
    subject = name(
        (
            (NameOID.COUNTRY_NAME, "SE"),
            (NameOID.ORGANIZATION_NAME, "Ex"),
            (NameOID.COMMON_NAME, "dev:01@a.b-c_d"),
        )
    )
    certificate = AUTHORITY.issue(new_key(3).public_key(), subject, not_before, not_after)
    facts = der.certificate_facts(_der(certificate))
    assert facts.not_before == certificate.not_valid_before_utc
    assert facts.not_after == certificate.not_valid_after_utc
    assert facts.common_name == "dev:01@a.b-c_d"
    assert [a.value for a in facts.subject] == [a.value for a in certificate.subject]
    assert [a.value for a in facts.issuer] == [a.value for a in certificate.issuer]
    assert [a.oid for a in facts.subject] == [
        oid_content(a.oid.dotted_string) for a in certificate.subject
    ]


def test_request_subject_agrees_with_cryptography() -> None:
    from cryptography.hazmat.primitives import hashes

    key = new_key(3)
    subject = name(((NameOID.COUNTRY_NAME, "SE"), (NameOID.COMMON_NAME, "Ünïcode-ok")))
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    parsed = der.request_subject(csr.public_bytes(serialization.Encoding.DER))
    assert [a.value for a in parsed] == ["SE", "Ünïcode-ok"]


def _self_signed(*extensions: tuple[x509.ExtensionType, bool]) -> x509.Certificate:
    """A certificate of AUTHORITY's key with exactly these extensions (none: X.509 v1-like)."""
    from cryptography.hazmat.primitives import hashes

    builder = (
        x509.CertificateBuilder()
        .subject_name(AUTHORITY.certificate.subject)
        .issuer_name(AUTHORITY.certificate.subject)
        .public_key(AUTHORITY.key.public_key())
        .serial_number(7)
        .not_valid_before(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2036, 1, 1, tzinfo=dt.UTC))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(AUTHORITY.key, hashes.SHA256())


_KEY_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


@pytest.mark.parametrize(
    ("certificate", "is_ca"),
    [
        pytest.param(AUTHORITY.certificate, True, id="ca-true-critical"),
        pytest.param(
            _self_signed(
                (_KEY_USAGE, True), (x509.BasicConstraints(ca=True, path_length=0), False)
            ),
            True,
            id="ca-true-with-path-length-after-another-extension",
        ),
        pytest.param(
            AUTHORITY.issue(new_key(3).public_key(), name(((NameOID.COMMON_NAME, "leaf"),))),
            False,
            id="leaf-ca-false",
        ),
        pytest.param(_self_signed(), False, id="no-extensions"),
        pytest.param(_self_signed((_KEY_USAGE, True)), False, id="no-basic-constraints"),
    ],
)
def test_ca_flag_agrees_with_cryptography(certificate: x509.Certificate, is_ca: bool) -> None:
    try:
        expected = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        expected = False
    assert expected is is_ca
    assert der.is_ca_certificate(_der(certificate)) is is_ca


@given(st.binary(max_size=400))
def test_der_reader_rejects_garbage_cleanly(data: bytes) -> None:
    readers = (der.certificate_facts, der.request_subject, der.check_rsa_pkcs8)
    for reader in (*readers, der.is_ca_certificate):
        with contextlib.suppress(der.DERError):
            reader(data)


@given(st.integers(min_value=0, max_value=len(_der(AUTHORITY.certificate)) - 1))
def test_truncated_certificate_is_a_der_error(cut: int) -> None:
    with pytest.raises(der.DERError):
        der.certificate_facts(_der(AUTHORITY.certificate)[:cut])


def test_pem_encoding_is_byte_for_byte_cryptographys() -> None:
    certificate_pem = AUTHORITY.certificate.public_bytes(serialization.Encoding.PEM)
    assert pem.encode("CERTIFICATE", _der(AUTHORITY.certificate)) == certificate_pem
    blocks = pem.decode_all(certificate_pem)
    assert blocks == [pem.PEMBlock("CERTIFICATE", _der(AUTHORITY.certificate))]


@pytest.mark.parametrize(
    "text",
    [
        b"garbage",
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\ntrailing",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        b"lead\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ],
)
def test_pem_decoder_is_strict(text: bytes) -> None:
    with pytest.raises(pem.PEMError):
        pem.decode_all(text)


@given(st.binary(max_size=300))
def test_combined_file_parser_never_crashes(data: bytes) -> None:
    with contextlib.suppress(state.CorruptFileError):
        state.parse(data)


@given(st.integers(min_value=0, max_value=253402300799))
def test_http_date_round_trips_like_email_utils(timestamp: int) -> None:
    text = httpdate.format_http_date(timestamp)
    assert text == email.utils.formatdate(timestamp, usegmt=True)
    assert httpdate.parse_http_date(text) == timestamp


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "Sunday, 06-Nov-94 08:49:37 GMT",  # RFC 850: valid HTTP, but does not round-trip
        "Sun Nov  6 08:49:37 1994",  # asctime
        "Mon, 06 Nov 1994 08:49:37 GMT",  # wrong weekday
        "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 UTC",
    ],
)
def test_http_date_parser_keeps_only_round_tripping_dates(text: str | None) -> None:
    assert httpdate.parse_http_date(text) is None


# --- the lean path's readers against the regular expressions they replaced -----------
# (compiling those was about 0.4 ms of every cold start; what they accept must not change)

_REFERENCE_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----\r?\n?", re.DOTALL
)
_REFERENCE_BASE64_LINE = re.compile(rb"[A-Za-z0-9+/=]*")
_REFERENCE_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
_REFERENCE_CLIENT_ID = re.compile(r"[A-Za-z0-9._:@-]{1,64}")


def _reference_pem(text: bytes) -> list[tuple[str, bytes]] | None:
    """The blocks as the regular expression read them, or None where it refused; and since
    make fuzz held the reader to cryptography's PEM loading: the body in lines of base64,
    none empty, each ended by LF or CR LF, and canonical base64 (no unused bits set)."""
    blocks, position = [], 0
    for match in _REFERENCE_PEM_BLOCK.finditer(text):
        if text[position : match.start()].strip():
            return None
        lines = match.group(2).split()
        if not lines or not all(_REFERENCE_BASE64_LINE.fullmatch(line) for line in lines):
            return None
        if not re.fullmatch(rb"([A-Za-z0-9+/=]+\r?\n)+", match.group(2)):
            return None
        try:
            body = base64.b64decode(b"".join(lines), validate=True)
        except binascii.Error:
            return None
        if base64.b64encode(body) != b"".join(lines):
            return None
        blocks.append((match.group(1).decode(), body))
        position = match.end()
    return None if text[position:].strip() else blocks


_PEM_PIECES = [
    b"-----BEGIN ", b"-----END ", b"CERTIFICATE", b"PRIVATE KEY", b"cert", b"-----", b"----",
    b"\n", b"\r", b"\r\n", b" ", b"AAAA", b"QUJD", b"=", b"!", b"x",
    pem.encode("CERTIFICATE", b"abc"), pem.encode("CERTIFICATE REQUEST", b"\x00" * 70),
]  # fmt: skip


@given(st.lists(st.sampled_from(_PEM_PIECES), max_size=14).map(b"".join))
@example(b"-----BEGIN cert-----\nQUJD\n-----END cert-----\n")  # the label's letters
@example(b"-----BEGIN CERTIFICATE-----\nQUJD\n-----END PRIVATE KEY-----\n")
@example(b"-----BEGIN CERTIFICATE-----\r\nQUJD\r\n-----END CERTIFICATE-----\r\n")
@example(b"-----BEGIN CERTIFICATE-----QUJD\n-----END CERTIFICATE-----\n")
@example(b"-----BEGIN -----\nQUJD\n----- END -----\n")
@example(b" \n-----BEGIN A-----\nQUJD\n-----END A----------BEGIN B-----\nQUJD\n-----END B-----")
def test_pem_reader_accepts_what_the_regular_expression_accepted(text: bytes) -> None:
    try:
        read = [(block.label, block.der) for block in pem.decode_all(text)]
    except pem.PEMError:
        read = None
    assert read == _reference_pem(text)


@given(st.text(alphabet="aZ09.-[]:fF_ é", max_size=12))
@example("[]")
@example("[::1]")
@example("a")
@example("a-")
@example("[0]")
def test_host_check_is_the_regular_expression_it_replaced(text: str) -> None:
    """The pattern, and a bracketed host is an IPv6 address (make fuzz found "[:0]")."""
    expected = bool(_REFERENCE_HOST.fullmatch(text))
    if expected and text.startswith("["):
        try:
            ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            expected = False
    assert server_address.is_host(text) == expected


@given(st.text(alphabet="aZ09._:@- /é", max_size=70))
@example("a" * 64)
@example("a" * 65)
@example("")
def test_client_id_check_is_the_regular_expression_it_replaced(text: str) -> None:
    valid = bool(_REFERENCE_CLIENT_ID.fullmatch(text))
    if valid:
        assert client_id.validate(text) == text
    else:
        with pytest.raises(client_id.ClientIdError):
            client_id.validate(text)
