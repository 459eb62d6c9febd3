"""``pem`` and the CA bundle read through it (``trust``), against cryptography's PEM loading.

Contract, for any bytes:
- ``pem.decode_all`` returns blocks or raises ``PEMError``; the blocks, written again by
  ``pem.encode``, read back as the same blocks;
- where ``pem`` reads only certificates that cryptography reads, cryptography's PEM loading
  of the same text finds the same certificates, in the same order;
- ``trust.parse`` (a CA bundle) returns an anchor or raises ``CACertificateError``, and
  every certificate of an anchor it returns is one that cryptography reads as a CA.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from caramel_embedded import pem, trust
from caramel_embedded.errors import CACertificateError
from fuzz import x509_reference
from fuzz.contract import Finding, agree, outcome


def check(data: bytes) -> None:
    blocks = outcome(lambda: pem.decode_all(data), (pem.PEMError,))
    if isinstance(blocks, list):
        again = pem.decode_all(b"".join(block.encode() for block in blocks))
        agree("blocks written and read again", again, blocks)
        if blocks and all(_loads(block) for block in blocks):
            try:
                loaded = x509.load_pem_x509_certificates(data)
            except ValueError as error:
                raise Finding(f"cryptography refuses the PEM that pem read: {error}") from None
            agree(
                "certificates",
                [block.der for block in blocks],
                [certificate.public_bytes(Encoding.DER) for certificate in loaded],
            )
    anchor = outcome(lambda: trust.parse(data, "fuzz"), (CACertificateError,))
    if isinstance(anchor, trust.TrustAnchor):
        for ca in anchor.certificates:
            reference = x509_reference.facts(ca.certificate_der)
            if reference is None or not reference.is_ca:
                raise Finding("trust took as a CA a certificate that cryptography does not")


def _loads(block: pem.PEMBlock) -> bool:
    if block.label != pem.CERTIFICATE:
        return False
    try:
        x509.load_der_x509_certificate(block.der)
    except Exception:  # ValueError, InvalidVersion...: refused
        return False
    return True
