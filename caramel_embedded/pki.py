"""Keys, requests and certificate checks, with pyca/cryptography.

Imported only on the paths that need it (a new key or request, a new certificate to
check): the X.509 layer costs a cold start about 50 ms that the unchanged path skips.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from caramel_embedded import pem, subject
from caramel_embedded.errors import CertificateCheckError, UnusableKeyError

_PUBLIC_EXPONENT = 65537


def new_private_key(bits: int) -> bytes:
    """A new RSA key as PKCS#8 DER (the server takes RSA 1024, 2048 or 4096 only)."""
    key = rsa.generate_private_key(public_exponent=_PUBLIC_EXPONENT, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def request_subject(ca_certificate_der: bytes, client_id: str) -> x509.Name:
    """The CA's subject, in the CA's order and string types, with CN set to the client id."""
    ca_subject = x509.load_der_x509_certificate(ca_certificate_der).subject
    rdns = subject.request_subject(
        [list(rdn) for rdn in ca_subject.rdns],
        client_id,
        is_common_name=lambda attribute: attribute.oid == NameOID.COMMON_NAME,
        common_name=lambda value: x509.NameAttribute(NameOID.COMMON_NAME, value),
    )
    return x509.Name([x509.RelativeDistinguishedName(rdn) for rdn in rdns])


def new_request(key_der: bytes, ca_certificate_der: bytes, client_id: str) -> bytes:
    """A PKCS#10 request signed with SHA-256, as DER (PEM encoding is ``pem.encode``'s)."""
    return request_signed_by(_load_rsa_key(key_der), ca_certificate_der, client_id)


def request_signed_by(key: rsa.RSAPrivateKey, ca_certificate_der: bytes, client_id: str) -> bytes:
    """The request of ``new_request``, signed by any RSA key: cryptography asks the key
    object to sign (PKCS#1 v1.5, SHA-256), so a key inside a TPM signs it there."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        request_subject(ca_certificate_der, client_id)
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def check_issued_certificate(
    certificate_der: bytes,
    ca_certificates_der: Sequence[bytes],
    key_der: bytes,
    client_id: str,
    now: datetime,
    *,
    key_label: str = pem.PRIVATE_KEY,
) -> None:
    """Refuse a certificate that is not ours to install; say why in one line.

    Any CA of the bundle may have signed it: during a rollover the server switches to the
    new CA while devices still name the old one first.
    """
    try:
        certificate = x509.load_der_x509_certificate(certificate_der)
    except ValueError as error:
        raise CertificateCheckError(f"server sent an unreadable certificate: {error}") from None
    if not any(_issued_by(certificate, ca_der) for ca_der in ca_certificates_der):
        raise CertificateCheckError(
            "server sent a certificate not signed by the CA "
            f"(issuer {certificate.issuer.rfc4514_string()})"
        )
    if certificate.public_key() != public_key(key_label, key_der):
        raise CertificateCheckError("server sent a certificate for another key")
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = names[-1].value if names else None
    if common_name != client_id:
        raise CertificateCheckError(
            f"server sent a certificate for CN {common_name!r}, not {client_id!r}"
        )
    if now >= certificate.not_valid_after_utc:
        expired = certificate.not_valid_after_utc
        raise CertificateCheckError(
            f"server sent a certificate that expired on {expired:%Y-%m-%d %H:%M:%S} UTC"
        )


def _issued_by(certificate: x509.Certificate, ca_certificate_der: bytes) -> bool:
    try:
        certificate.verify_directly_issued_by(x509.load_der_x509_certificate(ca_certificate_der))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def public_key(key_label: str, key_der: bytes) -> rsa.RSAPublicKey:
    """The public key of a held key block: a PKCS#8 key's, or a TPM key's from its blob
    (no TPM needed: the public part is in the clear)."""
    if key_label == pem.PRIVATE_KEY:
        return _load_rsa_key(key_der).public_key()
    from caramel_embedded import tpm_blob

    try:
        numbers = tpm_blob.rsa_public(key_der)
    except tpm_blob.BlobError as error:
        raise UnusableKeyError(str(error)) from None
    return rsa.RSAPublicNumbers(numbers.exponent, numbers.modulus).public_key()


def _load_rsa_key(key_der: bytes) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_der_private_key(key_der, password=None)
    except (ValueError, TypeError) as error:
        raise UnusableKeyError(f"the private key cannot be read: {error}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UnusableKeyError("the private key is not an RSA key")
    return key
