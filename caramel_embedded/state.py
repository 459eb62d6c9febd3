"""The local state: what the combined file holds, parsed without cryptography.

The combined file is one PEM file: ``PRIVATE KEY`` (PKCS#8), then ``CERTIFICATE`` once one
is issued, then ``CERTIFICATE REQUEST``. Parsing is strict because we are its only writer:
anything else means the file was damaged, and a damaged file is set aside, never trusted.
The one other layout we accept is a ``PRIVATE KEY`` alone, written at manufacture: that key
is the device's, and gets its request instead of being replaced. In tpm2 mode the key's
block is a ``TSS2 PRIVATE KEY`` (the key wrapped by the TPM, ``tpm_blob``) in the same
place; which kind a file holds is read here, and the invocation refuses the other kind.
"""

from __future__ import annotations

import hashlib

from caramel_embedded import der, pem
from caramel_embedded.record import Record

KEY_LABELS = (pem.PRIVATE_KEY, pem.TPM_PRIVATE_KEY)


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
    key_label: str = pem.PRIVATE_KEY  # TPM_PRIVATE_KEY: a key inside the TPM (tpm2 mode)

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
        return pem.encode(self.key_label, self.key_der) + pem.encode(
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
    key_label: str = pem.PRIVATE_KEY


def compose(
    key_der: bytes,
    request_der: bytes,
    certificate_der: bytes | None = None,
    key_label: str = pem.PRIVATE_KEY,
) -> bytes:
    """The combined file's bytes, in the order the SPEC fixes."""
    parts = [pem.encode(key_label, key_der)]
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
    key_label = labels[0] if labels and labels[0] in KEY_LABELS else pem.PRIVATE_KEY
    if labels == [key_label]:
        _check_key(blocks[0])
        return ProvisionedKey(blocks[0].der, key_label)
    if labels == [key_label, pem.CERTIFICATE_REQUEST]:
        key, request, certificate = blocks[0], blocks[1], None
    elif labels == [key_label, pem.CERTIFICATE, pem.CERTIFICATE_REQUEST]:
        key, certificate, request = blocks
    else:
        found = ", ".join(labels) or "no PEM blocks"
        raise CorruptFileError(f"expected key, [certificate,] request; found {found}")
    _check_key(key)
    try:
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
        key_label=key_label,
    )


def key_store_of(label: str) -> str:
    """The ``--key-store`` that holds keys of this block's label."""
    return "tpm2" if label == pem.TPM_PRIVATE_KEY else "file"


def _check_key(block: pem.PEMBlock) -> None:
    """An RSA key of its kind: PKCS#8, or a loadable TPM key (read only in tpm2's case)."""
    try:
        if block.label == pem.TPM_PRIVATE_KEY:
            from caramel_embedded import tpm_blob

            tpm_blob.rsa_public(block.der)
        else:
            der.check_rsa_pkcs8(block.der)
    except ValueError as error:  # DERError, BlobError
        raise CorruptFileError(str(error)) from None
