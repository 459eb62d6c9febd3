"""The CA certificate: the only trust anchor, given with --ca-cert or embedded at build time.

It is read and checked without cryptography (see ``der``): a cold start that only confirms
the installed certificate should not pay for the X.509 layer. A build embeds the CA as the
package data file ``embedded_ca.pem``; a package without it needs ``--ca-cert``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from caramel_embedded import der, pem
from caramel_embedded.errors import CACertificateError, ClockNotSetError
from caramel_embedded.record import Record

EMBEDDED_CA = Path(__file__).with_name("embedded_ca.pem")
_MAX_CA_BYTES = 64 * 1024

_SHORT_NAMES = {
    bytes([0x55, 0x04, 0x06]): "C",
    bytes([0x55, 0x04, 0x08]): "ST",
    bytes([0x55, 0x04, 0x07]): "L",
    bytes([0x55, 0x04, 0x0A]): "O",
    bytes([0x55, 0x04, 0x0B]): "OU",
    der.OID_COMMON_NAME: "CN",
}


class CACertificate(Record):
    """One CA certificate: DER (for checks) and its parsed facts."""

    certificate_der: bytes
    facts: der.CertificateFacts

    @property
    def sha256_fingerprint(self) -> str:
        digest = hashlib.sha256(self.certificate_der).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))

    @property
    def subject_text(self) -> str:
        return format_name(self.facts.subject)


class TrustAnchor(Record):
    """The CA certificates, in the file's order: a bundle, so that a fleet can move to a
    new CA without stranding a device (ship old + new, switch the server, ship new alone).

    Every one is a trust anchor, for the server's TLS certificate and for the issued
    certificate; the first names the request's subject (``certificate_der``, ``facts``).
    ``pem`` holds them all, as OpenSSL writes them, for the TLS context.
    """

    source: str
    pem: bytes
    certificates: tuple[CACertificate, ...]

    @property
    def certificate_der(self) -> bytes:
        return self.certificates[0].certificate_der

    @property
    def facts(self) -> der.CertificateFacts:
        return self.certificates[0].facts

    @property
    def sha256_fingerprint(self) -> str:
        return ",".join(ca.sha256_fingerprint for ca in self.certificates)

    @property
    def subject_text(self) -> str:
        return "; ".join(ca.subject_text for ca in self.certificates)


def format_name(name: der.Name) -> str:
    """``C=SE, O=Example, CN=device`` for logs and --version."""
    return ", ".join(
        f"{_SHORT_NAMES.get(attribute.oid, attribute.oid.hex())}={attribute.value}"
        for attribute in name
    )


def load(path: Path | None) -> TrustAnchor:
    """The CA given by path, else the embedded one; a ``CACertificateError`` with a clear line
    otherwise."""
    if path is None:
        if not EMBEDDED_CA.exists():
            raise CACertificateError(
                "no CA certificate: this build embeds none; give --ca-cert PATH "
                "(or CARAMEL_CA_CERT)"
            )
        path = EMBEDDED_CA
        source = "embedded CA certificate"
    else:
        source = f"CA certificate {path}"
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_CA_BYTES + 1)
    except OSError as error:
        raise CACertificateError(f"{source}: {error.strerror}") from None
    return parse(data, source)


def parse(data: bytes, source: str) -> TrustAnchor:
    """One or more PEM certificates, nothing else, each readable and each a CA's."""
    if len(data) > _MAX_CA_BYTES:
        raise CACertificateError(f"{source}: too large to be a CA certificate")
    try:
        blocks = pem.decode_all(data)
    except pem.PEMError:
        blocks = []
    if not blocks or any(block.label != pem.CERTIFICATE for block in blocks):
        raise CACertificateError(f"{source}: not one PEM certificate or a bundle of them")
    certificates = tuple(_ca_certificate(block.der, source) for block in blocks)
    return TrustAnchor(source, b"".join(block.encode() for block in blocks), certificates)


def _ca_certificate(certificate_der: bytes, source: str) -> CACertificate:
    try:
        facts = der.certificate_facts(certificate_der)
        is_ca = der.is_ca_certificate(certificate_der)
    except der.DERError as error:
        raise CACertificateError(f"{source}: not a readable certificate ({error})") from None
    if not is_ca:
        raise CACertificateError(
            f"{source}: not a CA certificate (basicConstraints CA:TRUE is required; "
            f"{format_name(facts.subject)} is a leaf, such as a server's or a device's)"
        )
    return CACertificate(certificate_der, facts)


def check_clock(anchor: TrustAnchor, now: datetime) -> None:
    """A clock before every CA's birth is an unset clock, not a TLS puzzle.

    In a bundle, one CA that has expired (the old one of a rollover) or is not valid yet
    verifies nothing but harms nothing; the bundle is refused only when every one has
    expired, since a device can then never enroll.
    """
    if all(now < ca.facts.not_before for ca in anchor.certificates):
        first = min(ca.facts.not_before for ca in anchor.certificates)
        raise ClockNotSetError(
            f"the system clock ({now:%Y-%m-%d %H:%M:%S} UTC) is earlier than the CA "
            f"certificate's notBefore ({first:%Y-%m-%d %H:%M:%S} UTC): "
            "the clock is not set (no RTC or no NTP yet)"
        )
    if all(now >= ca.facts.not_after for ca in anchor.certificates):
        last = max(ca.facts.not_after for ca in anchor.certificates)
        raise CACertificateError(f"{anchor.source}: expired on {last:%Y-%m-%d %H:%M:%S} UTC")
