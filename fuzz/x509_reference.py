"""The second implementation for certificates: pyca/cryptography, read the way ``der`` is.

``facts`` is what cryptography makes of a certificate, in ``der``'s terms (times, names as
(OID content, text) pairs, the CA flag), or None when cryptography refuses any part that
``der`` reads or that a trust anchor needs (the structure, a name, the times, the
extensions): "refused" is the reading of the strictest of its lazy accessors.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509

from caramel_embedded import der
from caramel_embedded.record import Record


class Facts(Record):
    not_before: datetime
    not_after: datetime
    issuer: tuple[tuple[bytes, str], ...]
    subject: tuple[tuple[bytes, str], ...]
    is_ca: bool


def oid_content(dotted: str) -> bytes:
    """The DER content octets of an object identifier (X.690 8.19)."""
    arcs = [int(arc) for arc in dotted.split(".")]
    numbers = [arcs[0] * 40 + arcs[1], *arcs[2:]]
    out = bytearray()
    for arc in numbers:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def name(value: x509.Name) -> tuple[tuple[bytes, str], ...]:
    return tuple(
        (oid_content(attribute.oid.dotted_string), str(attribute.value)) for attribute in value
    )


def ours(value: der.Name) -> tuple[tuple[bytes, str], ...]:
    return tuple((attribute.oid, attribute.value) for attribute in value)


def facts(data: bytes) -> Facts | None:
    try:
        certificate = x509.load_der_x509_certificate(data)
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
            is_ca = constraints.value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        return Facts(
            certificate.not_valid_before_utc,
            certificate.not_valid_after_utc,
            name(certificate.issuer),
            name(certificate.subject),
            is_ca,
        )
    except Exception:  # any refusal of cryptography's is "refused"
        return None


def request_subject(data: bytes) -> tuple[tuple[bytes, str], ...] | None:
    try:
        return name(x509.load_der_x509_csr(data).subject)
    except Exception:
        return None
