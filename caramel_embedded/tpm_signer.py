"""A key inside the TPM, as cryptography's request builder takes a key.

The builder signs with any ``RSAPrivateKey``: ``TPMSigningKey`` is one whose ``sign()``
asks the TPM and whose ``public_key()`` is read from the blob, and it refuses everything
that would take the private key out (there is nothing to take). The signature is
RSASSA-PKCS1-v1_5 with SHA-256, deterministic, so the same key and subject give the same
request bytes, as in file mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

if TYPE_CHECKING:
    from caramel_embedded.tpm import TPMKey


class TPMSigningKey(rsa.RSAPrivateKey):
    """An RSA key that lives in the TPM: it signs (PKCS#1 v1.5, SHA-256) and has a public
    key; it has no private numbers or bytes to give."""

    def __init__(self, key: TPMKey, public: rsa.RSAPublicKey) -> None:
        self._key = key
        self._public = public

    def sign(
        self,
        data: bytes,
        padding: padding.AsymmetricPadding,
        algorithm: Any,
    ) -> bytes:
        if not isinstance(padding, _PKCS1v15) or not isinstance(algorithm, hashes.SHA256):
            raise TypeError("the TPM key signs with PKCS#1 v1.5 and SHA-256 only")
        return self._key.sign_sha256(bytes(data))

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        _stays_in_the_tpm()

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _stays_in_the_tpm()

    def private_bytes(self, *_: Any) -> bytes:
        _stays_in_the_tpm()

    def __copy__(self) -> TPMSigningKey:
        return self

    def __deepcopy__(self, _memo: dict[int, object]) -> TPMSigningKey:
        return self


_PKCS1v15 = padding.PKCS1v15


def _stays_in_the_tpm() -> NoReturn:
    raise TypeError("the TPM key's private part never leaves the TPM")
