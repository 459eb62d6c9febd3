"""tpm2 mode's key store: keys made inside the TPM, requests signed there.

The TPM is opened on the first key or request of the invocation and closed by
``close()``: a run that needs neither (the unchanged path, a 304) never opens it, and
imports neither ctypes (``tpm``) nor cryptography (``tpm_signer``): this module is all
that tpm2 mode adds to the unchanged path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from caramel_embedded import pem, tpm_blob
from caramel_embedded.errors import TPMError

if TYPE_CHECKING:
    from caramel_embedded.tpm import TPM, TPMKey


class TPMKeys:
    """The ``KeyStore`` of tpm2 mode, on the TPM at ``tcti``."""

    label = tpm_blob.LABEL

    def __init__(self, tcti: str) -> None:
        self._tcti = tcti
        self._tpm: TPM | None = None
        self._loaded: dict[bytes, TPMKey] = {}

    def new_key(self, bits: int) -> bytes:
        key = self._opened().generate_rsa(bits)
        blocks = pem.decode_all(key.blob_pem)
        if [block.label for block in blocks] != [self.label]:
            key.close()
            raise TPMError("the tpm2-openssl provider wrote its key in an unknown form")
        self._loaded[blocks[0].der] = key
        return blocks[0].der

    def new_request(self, key_der: bytes, ca_certificate_der: bytes, client_id: str) -> bytes:
        key = self._loaded.get(key_der)
        if key is None:
            key = self._opened().load(pem.encode(self.label, key_der))
            self._loaded[key_der] = key
        from caramel_embedded import pki, tpm_signer

        signer = tpm_signer.TPMSigningKey(key, pki.public_key(self.label, key_der))
        return pki.request_signed_by(signer, ca_certificate_der, client_id)

    def close(self) -> None:
        """Flush every key from the TPM and end the connection."""
        for key in self._loaded.values():
            key.close()
        self._loaded.clear()
        if self._tpm is not None:
            self._tpm.close()
            self._tpm = None

    def _opened(self) -> TPM:
        if self._tpm is None:
            try:
                from caramel_embedded import tpm
            except ImportError as error:  # a frozen build without ctypes (docs/tpm.md)
                raise TPMError(f"this build carries no TPM support ({error})") from None
            self._tpm = tpm.TPM(self._tcti)
        return self._tpm
