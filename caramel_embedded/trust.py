"""The CA certificate: the only trust anchor, given with --ca-cert or embedded at build time.

It is read and checked without cryptography (see ``der``): a cold start that only confirms
the installed certificate should not pay for the X.509 layer. A build embeds the CA as the
package data file ``embedded_ca.pem``; a package without it needs ``--ca-cert``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from caramel_embedded import der, pem
from caramel_embedded.errors import CACertificateError, ClockNotSetError

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


class TrustAnchor(NamedTuple):
    """The CA certificate as PEM (for TLS), DER (for checks) and its parsed facts."""

    source: str
    pem: bytes
    certificate_der: bytes
    facts: der.CertificateFacts

    @property
    def sha256_fingerprint(self) -> str:
        digest = hashlib.sha256(self.certificate_der).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))

    @property
    def subject_text(self) -> str:
        return format_name(self.facts.subject)


def format_name(name: der.Name) -> str:
    """``C=SE, O=Example, CN=device`` for logs and --version."""
    return ", ".join(
        f"{_SHORT_NAMES.get(attribute.oid, attribute.oid.hex())}={attribute.value}"
        for attribute in name
    )


def load(path: Path | None) -> TrustAnchor:
    """The CA given by path, else the embedded one; 127 with a clear line otherwise."""
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
    """Exactly one PEM certificate whose structure we can read, and a CA's."""
    if len(data) > _MAX_CA_BYTES:
        raise CACertificateError(f"{source}: too large to be a CA certificate")
    try:
        blocks = pem.decode_all(data)
    except pem.PEMError:
        blocks = []
    if len(blocks) != 1 or blocks[0].label != pem.CERTIFICATE:
        raise CACertificateError(f"{source}: not one PEM certificate")
    try:
        facts = der.certificate_facts(blocks[0].der)
        is_ca = der.is_ca_certificate(blocks[0].der)
    except der.DERError as error:
        raise CACertificateError(f"{source}: not a readable certificate ({error})") from None
    if not is_ca:
        raise CACertificateError(
            f"{source}: not a CA certificate (basicConstraints CA:TRUE is required; "
            f"{format_name(facts.subject)} is a leaf, such as a server's or a device's)"
        )
    return TrustAnchor(source, blocks[0].encode(), blocks[0].der, facts)


def check_clock(anchor: TrustAnchor, now: datetime) -> None:
    """A clock before the CA's birth is an unset clock, not a TLS puzzle."""
    if now < anchor.facts.not_before:
        raise ClockNotSetError(
            f"the system clock ({now:%Y-%m-%d %H:%M:%S} UTC) is earlier than the CA "
            f"certificate's notBefore ({anchor.facts.not_before:%Y-%m-%d %H:%M:%S} UTC): "
            "the clock is not set (no RTC or no NTP yet)"
        )
    if now >= anchor.facts.not_after:
        raise CACertificateError(
            f"{anchor.source}: expired on {anchor.facts.not_after:%Y-%m-%d %H:%M:%S} UTC"
        )
