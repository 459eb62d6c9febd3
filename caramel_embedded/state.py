"""The local state: what the combined file holds, parsed without cryptography.

The combined file is one PEM file: ``PRIVATE KEY`` (PKCS#8), then ``CERTIFICATE`` once one
is issued, then ``CERTIFICATE REQUEST``. Parsing is strict because we are its only writer:
anything else means the file was damaged, and a damaged file is set aside, never trusted.
The one other layout we accept is a ``PRIVATE KEY`` alone, written at manufacture: that key
is the device's, and gets its request instead of being replaced.
"""

from __future__ import annotations

import hashlib

from caramel_embedded import der, pem
from caramel_embedded.record import Record


class CorruptFileError(ValueError):
    """The combined file exists, is not empty, and is not what we write."""


class LocalState(Record):
    """Key, request and (once issued) certificate, with the file's modification time.

    ``file_mtime`` carries the installed certificate's validator between invocations: the
    server's ``Last-Modified`` when it sent one, else the certificate's notBefore.
    """

    key_der: bytes
    request_der: bytes
    request_subject: der.Name
    certificate_der: bytes | None = None
    certificate: der.CertificateFacts | None = None
    file_mtime: int | None = None

    @property
    def certificate_answers_request(self) -> bool:
        """Whether the installed certificate was issued for the held request.

        Not so while an older certificate (for another client id or CA) waits for the new
        request's certificate to replace it: it is still shown while valid, but it is no
        validator for the new request's URL.
        """
        return self.certificate is not None and self.certificate.subject == self.request_subject

    @property
    def client_pem(self) -> bytes | None:
        """The key and the installed certificate, as TLS loads a client certificate; None
        until one is installed."""
        if self.certificate_der is None:
            return None
        return pem.encode(pem.PRIVATE_KEY, self.key_der) + pem.encode(
            pem.CERTIFICATE, self.certificate_der
        )

    @property
    def request_pem(self) -> bytes:
        return pem.encode(pem.CERTIFICATE_REQUEST, self.request_der)

    @property
    def request_sha256(self) -> str:
        """The request's URL on the server: the SHA-256 of the exact PEM bytes we post."""
        return hashlib.sha256(self.request_pem).hexdigest()


class ProvisionedKey(Record):
    """A file holding only an RSA key, written at manufacture: it needs its request."""

    key_der: bytes


def compose(key_der: bytes, request_der: bytes, certificate_der: bytes | None = None) -> bytes:
    """The combined file's bytes, in the order the SPEC fixes."""
    parts = [pem.encode(pem.PRIVATE_KEY, key_der)]
    if certificate_der is not None:
        parts.append(pem.encode(pem.CERTIFICATE, certificate_der))
    parts.append(pem.encode(pem.CERTIFICATE_REQUEST, request_der))
    return b"".join(parts)


def parse(data: bytes, file_mtime: int | None = None) -> LocalState | ProvisionedKey | None:
    """The state held in ``data``; None for an empty file (a first run killed early)."""
    if not data:
        return None
    try:
        blocks = pem.decode_all(data)
    except pem.PEMError as error:
        raise CorruptFileError(str(error)) from None
    labels = [block.label for block in blocks]
    if labels == [pem.PRIVATE_KEY]:
        try:
            der.check_rsa_pkcs8(blocks[0].der)
        except der.DERError as error:
            raise CorruptFileError(str(error)) from None
        return ProvisionedKey(blocks[0].der)
    if labels == [pem.PRIVATE_KEY, pem.CERTIFICATE_REQUEST]:
        key, request, certificate = blocks[0], blocks[1], None
    elif labels == [pem.PRIVATE_KEY, pem.CERTIFICATE, pem.CERTIFICATE_REQUEST]:
        key, certificate, request = blocks
    else:
        found = ", ".join(labels) or "no PEM blocks"
        raise CorruptFileError(f"expected key, [certificate,] request; found {found}")
    try:
        der.check_rsa_pkcs8(key.der)
        subject = der.request_subject(request.der)
        facts = der.certificate_facts(certificate.der) if certificate else None
    except der.DERError as error:
        raise CorruptFileError(str(error)) from None
    return LocalState(
        key_der=key.der,
        request_der=request.der,
        request_subject=subject,
        certificate_der=certificate.der if certificate else None,
        certificate=facts,
        file_mtime=file_mtime,
    )
