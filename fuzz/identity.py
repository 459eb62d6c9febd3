"""One device and its CA for the targets that need real certificates (``transport``), and
for the seeds: made once with the test suite's CA factory, kept under .cache/fuzz, so that
the corpus's certificates stay signed by the CA the target trusts from one run to the next.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from caramel_embedded import pem, pki
from caramel_embedded.record import Record

CLIENT_ID = "fuzz-device-01"
CACHE = Path(os.environ.get("FUZZ_CACHE", Path(__file__).resolve().parents[1] / ".cache/fuzz"))


class Identity(Record):
    ca_der: bytes
    key_der: bytes
    request_der: bytes
    certificate_der: bytes


def identity(cache: Path = CACHE) -> Identity:
    path = cache / "identity.pem"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        blocks = _make()
        temporary = path.with_suffix(f".{os.getpid()}")
        temporary.write_bytes(b"".join(pem.encode(label, der) for label, der in blocks))
        temporary.replace(path)
    found = [block.der for block in pem.decode_all(path.read_bytes())]
    return Identity(*found)


def _make() -> list[tuple[str, bytes]]:
    from testbed.ca_factory import make_authority

    authority = make_authority()
    key_der = pki.new_private_key(2048)
    request_der = pki.new_request(key_der, _der(authority.certificate), CLIENT_ID)
    request = x509.load_der_x509_csr(request_der)
    now = dt.datetime.now(dt.UTC)
    certificate = authority.issue(
        request.public_key(),  # type: ignore[arg-type]
        request.subject,
        now - dt.timedelta(days=1),
        now + dt.timedelta(days=3650),
    )
    return [
        (pem.CERTIFICATE, _der(authority.certificate)),
        (pem.PRIVATE_KEY, key_der),
        (pem.CERTIFICATE_REQUEST, request_der),
        (pem.CERTIFICATE, _der(certificate)),
    ]


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)
