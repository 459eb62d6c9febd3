"""Certificates, requests and combined files as the e2e checks need them.

The tests read the client's combined file independently of the client's own parser (a
shared bug would otherwise pass), make requests the way a device would, and forge
certificates with the CA key for the cases the server never produces (an expired one).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testbed.ca_factory import key_pem
from testbed.combined_check import pem_blocks

TPM_KEY = "TSS2 PRIVATE KEY"

__all__ = ["key_pem", "pem_blocks"]  # kept here for the e2e modules that use them as pki.*


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """An RSA key: the only kind Caramel signs."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def csr_subject(ca_cert: x509.Certificate, client_id: str) -> x509.Name:
    """The CA's subject with CN replaced by the client id: what Caramel accepts."""
    attributes = [a for a in ca_cert.subject if a.oid != NameOID.COMMON_NAME]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, client_id)])


def make_csr_pem(key: rsa.RSAPrivateKey, subject: x509.Name) -> bytes:
    """A CSR PEM as OpenSSL writes it (the byte-exact form the server insists on)."""
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def sha256_hex(data: bytes) -> str:
    """The request's name on the server: the sha256 of the CSR PEM bytes."""
    return hashlib.sha256(data).hexdigest()


def load_ca(path: Path) -> x509.Certificate:
    """The CA certificate from its PEM file."""
    return x509.load_pem_x509_certificate(path.read_bytes())


def forge_certificate(
    ca_cert_path: Path,
    ca_key_path: Path,
    key: rsa.RSAPrivateKey,
    client_id: str,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> bytes:
    """A client certificate shaped like Caramel's, with a validity of our choosing."""
    ca_cert = load_ca(ca_cert_path)
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    cert = (
        x509.CertificateBuilder()
        .subject_name(csr_subject(ca_cert, client_id))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(uuid.uuid1().int)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=True,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(client_id)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def openssl_verify(ca_cert: Path, cert_pem: bytes) -> subprocess.CompletedProcess[str]:
    """``openssl verify -CAfile CA -purpose sslclient`` on one certificate."""
    with tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False) as handle:
        handle.write(cert_pem)
        path = handle.name
    try:
        return subprocess.run(
            ["openssl", "verify", "-CAfile", str(ca_cert), "-purpose", "sslclient", path],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.unlink(path)


def describe_certificate(cert: x509.Certificate) -> str:
    """Subject, serial and notAfter: what a person wants to see change."""
    return (
        f"subject {cert.subject.rfc4514_string()}, serial {cert.serial_number:#x}, "
        f"notAfter {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S}Z"
    )


@dataclass(frozen=True)
class CombinedFile:
    """One look at the combined file: its bytes, metadata and parsed blocks."""

    path: Path
    exists: bool
    raw: bytes = b""
    mtime_ns: int = 0
    mode: int = 0

    @classmethod
    def read(cls, path: Path) -> CombinedFile:
        """Snapshot the file now (a missing file is a valid state: no key yet)."""
        try:
            with path.open("rb") as handle:
                info = os.fstat(handle.fileno())
                raw = handle.read()
        except FileNotFoundError:
            return cls(path, exists=False)
        return cls(path, True, raw, info.st_mtime_ns, info.st_mode & 0o7777)

    @property
    def labels(self) -> list[str]:
        """The block labels in file order."""
        return [label for label, _ in pem_blocks(self.raw)]

    def block(self, label: str) -> bytes | None:
        """The exact bytes of the one block with this label (None if absent)."""
        found = [data for lab, data in pem_blocks(self.raw) if lab == label]
        if len(found) > 1:
            raise ValueError(f"{self.path}: {len(found)} {label} blocks")
        return found[0] if found else None

    @property
    def key_pem(self) -> bytes | None:
        """The key's block: a PRIVATE KEY, or in tpm2 mode the TSS2 PRIVATE KEY that the
        TPM wrapped."""
        return self.block("PRIVATE KEY") or self.block(TPM_KEY)

    @property
    def public_numbers(self) -> rsa.RSAPublicNumbers | None:
        """The key's public numbers, of either kind of key block (a TPM key's are read from
        its blob: no TPM needed)."""
        tpm_key = self.block(TPM_KEY)
        if tpm_key is not None:
            from caramel_embedded import pem, tpm_blob

            public = tpm_blob.rsa_public(pem.decode_all(tpm_key)[0].der)
            return rsa.RSAPublicNumbers(public.exponent, public.modulus)
        key = self.private_key
        return None if key is None else key.public_key().public_numbers()

    @property
    def cert_pem(self) -> bytes | None:
        """The certificate block, once one is installed."""
        return self.block("CERTIFICATE")

    @property
    def csr_pem(self) -> bytes | None:
        """The request block: its sha256 names it on the server."""
        return self.block("CERTIFICATE REQUEST")

    @property
    def csr_sha256(self) -> str | None:
        """The request's URL path on the server."""
        csr = self.csr_pem
        return sha256_hex(csr) if csr else None

    @property
    def certificate(self) -> x509.Certificate | None:
        """The installed certificate, parsed."""
        pem = self.cert_pem
        return x509.load_pem_x509_certificate(pem) if pem else None

    @property
    def csr(self) -> x509.CertificateSigningRequest | None:
        """The request, parsed."""
        pem = self.csr_pem
        return x509.load_pem_x509_csr(pem) if pem else None

    @property
    def private_key(self) -> rsa.RSAPrivateKey | None:
        """The key, parsed (it must be RSA: Caramel signs nothing else)."""
        pem = self.key_pem
        if pem is None:
            return None
        if self.block("PRIVATE KEY") is None:
            return None  # a TPM's key: public_numbers
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{self.path}: the key is not RSA")
        return key

    def same_bytes_and_mtime(self, other: CombinedFile) -> bool:
        """Untouched: nothing written, not even the modification time."""
        return (self.exists, self.raw, self.mtime_ns) == (other.exists, other.raw, other.mtime_ns)

    def describe(self) -> str:
        """What the file holds, in one line."""
        if not self.exists:
            return "no file"
        parts = []
        numbers = self.public_numbers
        where = " in the TPM" if self.block(TPM_KEY) is not None else ""
        parts.append(f"RSA-{numbers.n.bit_length()} key{where}" if numbers else "no key")
        cert = self.certificate
        parts.append(
            f"certificate: {describe_certificate(cert)}" if cert else "no certificate yet"
        )
        sha = self.csr_sha256
        parts.append(f"CSR {sha[:16]}…" if sha else "no CSR")
        return "; ".join(parts)


def describe_change(before: CombinedFile, after: CombinedFile) -> list[str]:
    """What changed in the combined file, in the terms the demo promises."""
    if before.same_bytes_and_mtime(after):
        return ["file untouched (same bytes and mtime)"]
    if not after.exists:
        return ["file removed"]
    if not before.exists:
        return [f"file created (mode {after.mode:04o}): {after.describe()}"]
    lines = []
    if before.raw == after.raw:
        lines.append("same bytes, modification time changed")
    key_state = "unchanged" if before.key_pem == after.key_pem else "NEW KEY"
    lines.append(f"key: {key_state}")
    old, new = before.certificate, after.certificate
    if old is None and new is None:
        lines.append("certificate: none yet")
    elif new is None:
        lines.append("certificate: removed")
    elif old is not None and old.serial_number == new.serial_number:
        lines.append(f"certificate: unchanged ({describe_certificate(new)})")
    else:
        lines.append(f"certificate: {describe_certificate(new)}")
    if before.csr_pem != after.csr_pem:
        lines.append(f"CSR: new, sha256 {after.csr_sha256}")
    else:
        lines.append("CSR: unchanged")
    return lines
