"""The TSS2 PRIVATE KEY block read without a TPM, and a TPM failure told in one line.

Blocks are built here field by field (TPM 2.0 Part 2's TPMT_PUBLIC), so each way a block
can be wrong is one case; tests/test_tpm_mode.py reads blocks that a TPM made.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from caramel_embedded import pem, state, tpm_blob, tpm_errors
from testbed.tss2 import MODULUS, blob, public_area

pytestmark = pytest.mark.in_process


def test_the_public_numbers_are_read() -> None:
    assert tpm_blob.rsa_public(blob()) == tpm_blob.RSAPublic(MODULUS, 65537, 2048)


def test_an_exponent_given_and_a_signing_scheme_are_read() -> None:
    area = public_area(exponent=3, scheme=b"\x00\x14\x00\x0b")  # RSASSA with SHA-256
    assert tpm_blob.rsa_public(blob(area)).exponent == 3


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        pytest.param(b"\x30\x00", "not a loadable", id="empty"),
        pytest.param(b"junk", "TPM key", id="not-der"),
        pytest.param(
            blob(oid=bytes([0x67, 0x81, 0x05, 0x0A, 0x01, 0x04])),
            "not a loadable",
            id="importable-key-oid",
        ),
        pytest.param(blob(public_area(kind=0x0023)), "not an RSA key", id="ecc"),
        pytest.param(blob(public_area(bits=4096)), "modulus of 256 bytes", id="bits"),
        pytest.param(blob(public_area()[:-1]), "truncated", id="truncated"),
        pytest.param(blob(public_area() + b"\x00"), "after the public part", id="trailing"),
        pytest.param(blob(public_area(modulus=b"\x01" * 256)), "modulus", id="short-modulus"),
        pytest.param(blob(public_area(exponent=65540)), "exponent 65540", id="even-exponent"),
        pytest.param(blob(public_area(exponent=1)), "exponent 1", id="exponent-1"),
    ],
)
def test_anything_else_is_refused(wrong: bytes, message: str) -> None:
    with pytest.raises(tpm_blob.BlobError, match=message):
        tpm_blob.rsa_public(wrong)


def test_the_combined_file_holds_either_kind_of_key() -> None:
    request = pem.decode_all(REQUEST_PEM)[0].der
    held = state.parse(pem.encode(tpm_blob.LABEL, blob()) + REQUEST_PEM)
    assert isinstance(held, state.LocalState)
    assert held.key_label == tpm_blob.LABEL
    assert state.compose(held.key_der, request, key_label=held.key_label) == (
        pem.encode(tpm_blob.LABEL, blob()) + REQUEST_PEM
    )
    alone = state.parse(pem.encode(tpm_blob.LABEL, blob()))
    assert alone == state.ProvisionedKey(blob(), tpm_blob.LABEL)
    assert state.key_store_of(tpm_blob.LABEL) == "tpm2"
    assert state.key_store_of(pem.PRIVATE_KEY) == "file"


def test_a_damaged_tpm_key_makes_the_file_corrupt() -> None:
    with pytest.raises(state.CorruptFileError, match="TPM key"):
        state.parse(pem.encode(tpm_blob.LABEL, blob(public_area(kind=0x0023))) + REQUEST_PEM)


# --- one line per failure --------------------------------------------------------------

TCTI = "swtpm:host=127.0.0.1,port=2321"


@pytest.mark.parametrize(
    ("code", "words"),
    [
        pytest.param(0x000A000A, "TPM unreachable at", id="tcti-io"),
        pytest.param(0x00000921, "dictionary-attack lockout", id="lockout"),
        pytest.param(0x00000902, "no free object slot", id="object-memory"),
        pytest.param(0x0000098E, "refused to sign the request: why", id="auth-fail"),
        pytest.param(None, "refused to sign the request: why", id="no-code"),
    ],
)
def test_each_cause_has_its_line(code: int | None, words: str) -> None:
    line = tpm_errors.describe("sign the request", TCTI, code, "why")
    assert words in line
    assert TCTI in line


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("2337 tpm:warn(2.0): lockout", 0x921),
        ("-1 x", 0xFFFFFFFF),
        ("name=tpm2", None),
        ("", None),
    ],
)
def test_the_response_code_is_read_from_the_error_data(data: str, code: int | None) -> None:
    assert tpm_errors.response_code(data) == code


def test_an_absent_device_is_named_and_others_are_not() -> None:
    assert tpm_errors.absent_device("device:/dev/tpmrm0", exists=False) is not None
    assert tpm_errors.absent_device("device:", exists=False) is not None  # the default node
    assert tpm_errors.absent_device("device:/dev/tpmrm0", exists=True) is None
    assert tpm_errors.absent_device(TCTI, exists=False) is None
    assert tpm_errors.device_path("device:") == "/dev/tpmrm0"


def _request_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-01")])
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, SHA256())
    return request.public_bytes(Encoding.PEM)


REQUEST_PEM = _request_pem()
