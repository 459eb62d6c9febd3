"""Real certificate authorities for tests, made with pyca/cryptography."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

UTC = dt.UTC
FLEET_SUBJECT = (
    (NameOID.COUNTRY_NAME, "SE"),
    (NameOID.STATE_OR_PROVINCE_NAME, "Ostergotland"),
    (NameOID.LOCALITY_NAME, "Linkoping"),
    (NameOID.ORGANIZATION_NAME, "Example Devices AB"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "Fleet"),
    (NameOID.COMMON_NAME, "Example Fleet CA"),
)


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


@cache
def _pooled_key(slot: int) -> rsa.RSAPrivateKey:
    """Keys are slow to make; tests that only need *a* key share a few."""
    del slot
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_key(slot: int | None = None) -> rsa.RSAPrivateKey:
    if slot is None:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _pooled_key(slot)


def name(pairs: tuple[tuple[x509.ObjectIdentifier, str], ...]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


def pem_of(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Authority:
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    serials: list[int] = field(default_factory=list)

    @property
    def pem(self) -> bytes:
        return pem_of(self.certificate)

    def write(self, path: Path) -> Path:
        path.write_bytes(self.pem)
        return path

    def issue(
        self,
        public_key: rsa.RSAPublicKey,
        subject: x509.Name,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        server_hosts: tuple[str, ...] = (),
    ) -> x509.Certificate:
        not_before = not_before or now() - dt.timedelta(minutes=5)
        not_after = not_after or now() + dt.timedelta(hours=48)
        serial = x509.random_serial_number()
        self.serials.append(serial)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server_hosts:
            names: list[x509.GeneralName] = []
            for host in server_hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, hashes.SHA256())


def make_authority(
    subject: tuple[tuple[x509.ObjectIdentifier, str], ...] = FLEET_SUBJECT,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    key_slot: int | None = None,
) -> Authority:
    key = new_key(key_slot)
    ca_name = name(subject)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now() - dt.timedelta(days=1))
        .not_valid_after(not_after or now() + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, certificate)


# An internationalised name (bücher.test, in its ASCII form) that tests map to loopback in
# a private /etc/hosts: tests/frozen/test_idna.py.
IDN_HOST = "xn--bcher-kva.test"


def server_credentials(authority: Authority, directory: Path) -> tuple[Path, Path]:
    """A TLS server certificate for 127.0.0.1, ::1, localhost and IDN_HOST, and its key."""
    key = new_key(90)
    certificate = authority.issue(
        key.public_key(),
        name(((NameOID.COMMON_NAME, "127.0.0.1"),)),
        server_hosts=("127.0.0.1", "::1", "localhost", IDN_HOST),
    )
    cert_path = directory / "server.crt"
    key_path = directory / "server.key"
    cert_path.write_bytes(pem_of(certificate))
    key_path.write_bytes(key_pem(key))
    return cert_path, key_path
