"""An independent, strict reader of the combined file for the process-level tests.

It does not use the package's own parser: a test that checks the file with the code under
test could not see that code's mistakes.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

_PEM_BLOCK = re.compile(
    rb"-----BEGIN (?P<label>[A-Z0-9 ]+)-----\n[A-Za-z0-9+/=\n]+?-----END (?P=label)-----\n"
)


def pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """The PEM blocks of a file, in order, each with its exact bytes (newline included)."""
    return [(m["label"].decode(), m.group(0)) for m in _PEM_BLOCK.finditer(data)]


@dataclasses.dataclass(frozen=True)
class Combined:
    """A combined file that parsed completely: key, [certificate,] request, nothing else."""

    data: bytes
    key_modulus: int
    request: x509.CertificateSigningRequest
    certificate: x509.Certificate | None

    @property
    def request_der(self) -> bytes:
        """The request in one canonical form, to tell whether a run kept or replaced it."""
        return self.request.public_bytes(serialization.Encoding.DER)


def temporaries(path: Path) -> list[Path]:
    """The client's staging files next to ``path``: an interrupted write may leave one."""
    return sorted(path.parent.glob(f".{path.name}.tmp-*"))


def parse_combined(data: bytes) -> Combined:
    """Parse the file strictly; fail the test on anything partial or out of order."""
    blocks = pem_blocks(data)
    assert b"".join(block for _, block in blocks) == data, f"not whole PEM blocks: {data[-80:]!r}"
    labels = [label for label, _ in blocks]
    assert labels in (
        ["PRIVATE KEY", "CERTIFICATE REQUEST"],
        ["PRIVATE KEY", "CERTIFICATE", "CERTIFICATE REQUEST"],
    ), labels
    key = serialization.load_pem_private_key(blocks[0][1], password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    request = x509.load_pem_x509_csr(blocks[-1][1])
    assert request.is_signature_valid
    assert request.public_key() == key.public_key()
    certificate = None
    if len(blocks) == 3:
        certificate = x509.load_pem_x509_certificate(blocks[1][1])
        assert certificate.public_key() == key.public_key()
    return Combined(data, key.public_key().public_numbers().n, request, certificate)
