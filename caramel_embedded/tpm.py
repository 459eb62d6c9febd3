"""The TPM of tpm2 mode: the tpm2-openssl provider, in the libcrypto that ``ssl`` uses.

Why this way: the provider is what a board's other services (an MQTT client, a VPN) and
TLS itself use to reach a TPM key, so the client needs no TPM stack of its own: libcrypto
is already in the process (``_ssl``'s), the provider module and libtss2 are the only
additions on the board, and a call is a few ``ctypes`` declarations. The provider is
loaded into an ``OSSL_LIB_CTX`` of our own, so nothing changes for ``ssl``'s default
context nor for cryptography (which carries its own OpenSSL and never sees the provider).
Only tpm2 mode imports this module; the TCTI reaches the provider through its documented
``TPM2OPENSSL_TCTI`` variable, and the TSS's own logging to stderr is off unless
``TSS2_LOG`` asks for it (the SPEC's one line on stderr).

Every object the TPM holds for us (the storage key made for a load, the key, a hash
sequence) is flushed when its OpenSSL object is freed: without a resource manager (a
socket TPM, ``/dev/tpm0``) a leaked one would stay until the TPM restarts, and a TPM has
three or so slots. So every object here is freed in a ``finally``.
"""

from __future__ import annotations

import _ssl  # noqa: F401  (the libcrypto to use is the one this loaded)
import ctypes
import os
from collections.abc import Callable
from typing import Any

from caramel_embedded import tpm_errors
from caramel_embedded.errors import TPMError

_PROPERTIES = b"provider=tpm2"
_KEYPAIR = 0x87  # OSSL_KEYMGMT_SELECT_KEYPAIR | the domain and other parameters
_void = ctypes.c_void_p
_bytes_out = ctypes.POINTER(ctypes.c_ubyte)


class TPM:
    """One connection to the TPM for the invocation: ``close()`` ends it."""

    def __init__(self, tcti: str) -> None:
        self.tcti = tcti
        path = tpm_errors.device_path(tcti)
        absent = tpm_errors.absent_device(tcti, path is None or os.path.exists(path))
        if absent is not None:
            raise TPMError(absent)
        os.environ["TPM2OPENSSL_TCTI"] = tcti
        os.environ.setdefault("TSS2_LOG", "all+NONE")
        self._crypto = _libcrypto()
        self._context = self._crypto.OSSL_LIB_CTX_new()
        self._provider = self._crypto.OSSL_PROVIDER_load(self._context, b"tpm2")
        if not self._provider:
            errors = self._errors()
            self._crypto.OSSL_LIB_CTX_free(self._context)
            if not any(code is not None for code, _ in errors):
                raise TPMError(
                    "the tpm2-openssl provider could not be loaded (is tpm2-openssl "
                    "installed? OPENSSL_MODULES names where it is)"
                )
            raise self._error("open the TPM", errors)

    def generate_rsa(self, bits: int) -> TPMKey:
        """A new RSA key made inside the TPM; its private part never leaves it."""
        crypto = self._crypto
        self._clear()
        generator = crypto.EVP_PKEY_CTX_new_from_name(self._context, b"RSA", _PROPERTIES)
        key = _void()
        try:
            if not (
                generator
                and crypto.EVP_PKEY_keygen_init(generator) == 1
                and crypto.EVP_PKEY_CTX_set_rsa_keygen_bits(generator, bits) == 1
                and crypto.EVP_PKEY_generate(generator, ctypes.byref(key)) == 1
                and key.value
            ):
                raise self._error("make a key", self._errors())
        finally:
            crypto.EVP_PKEY_CTX_free(generator)
        made = TPMKey(self, key.value, b"")
        try:
            made.blob_pem = self._encode(key.value)
        except BaseException:
            made.close()
            raise
        return made

    def load(self, blob_pem: bytes) -> TPMKey:
        """The key of a ``TSS2 PRIVATE KEY`` block, loaded into the TPM to sign."""
        crypto = self._crypto
        self._clear()
        key = _void()
        decoder = crypto.OSSL_DECODER_CTX_new_for_pkey(
            ctypes.byref(key), b"PEM", None, b"RSA", _KEYPAIR, self._context, _PROPERTIES
        )
        buffer = ctypes.create_string_buffer(blob_pem, len(blob_pem))
        data = ctypes.cast(buffer, _bytes_out)
        size = ctypes.c_size_t(len(blob_pem))
        try:
            if (
                not decoder
                or crypto.OSSL_DECODER_from_data(decoder, ctypes.byref(data), ctypes.byref(size))
                != 1
                or not key.value
            ):
                raise self._error("load the key", self._errors())
        finally:
            crypto.OSSL_DECODER_CTX_free(decoder)
        return TPMKey(self, key.value, blob_pem)

    def close(self) -> None:
        if self._provider:
            self._crypto.OSSL_PROVIDER_unload(self._provider)
            self._provider = None
            self._crypto.OSSL_LIB_CTX_free(self._context)

    def sign_sha256(self, key: int, data: bytes) -> bytes:
        """An RSASSA-PKCS1-v1_5 signature with SHA-256 of ``data``, made by the TPM."""
        crypto = self._crypto
        self._clear()
        digest = crypto.EVP_MD_CTX_new()
        try:
            length = ctypes.c_size_t(0)
            if not (
                digest
                and crypto.EVP_DigestSignInit_ex(
                    digest, None, b"SHA256", self._context, _PROPERTIES, key, None
                )
                == 1
                and crypto.EVP_DigestSign(digest, None, ctypes.byref(length), data, len(data)) == 1
            ):
                raise self._error("sign the request", self._errors())
            signature = ctypes.create_string_buffer(length.value)
            if (
                crypto.EVP_DigestSign(digest, signature, ctypes.byref(length), data, len(data))
                != 1
            ):
                raise self._error("sign the request", self._errors())
            return signature.raw[: length.value]
        finally:
            crypto.EVP_MD_CTX_free(digest)

    def _encode(self, key: int) -> bytes:
        """The key as the ``TSS2 PRIVATE KEY`` PEM block tpm2-openssl writes."""
        crypto = self._crypto
        encoder = crypto.OSSL_ENCODER_CTX_new_for_pkey(key, _KEYPAIR, b"PEM", None, _PROPERTIES)
        data = _bytes_out()
        size = ctypes.c_size_t(0)
        try:
            if (
                not encoder
                or crypto.OSSL_ENCODER_to_data(encoder, ctypes.byref(data), ctypes.byref(size))
                != 1
            ):
                raise self._error("write the key", self._errors())
            encoded = ctypes.string_at(data, size.value)
            crypto.CRYPTO_free(data, b"", 0)
            return encoded
        finally:
            crypto.OSSL_ENCODER_CTX_free(encoder)

    def free_key(self, key: int) -> None:
        self._crypto.EVP_PKEY_free(key)

    def _clear(self) -> None:
        self._crypto.ERR_clear_error()

    def _errors(self) -> list[tuple[int | None, str]]:
        """Every queued OpenSSL error as (TSS2 response code or None, its words)."""
        crypto = self._crypto
        found: list[tuple[int | None, str]] = []
        for _ in range(32):
            data = ctypes.c_char_p()
            flags = ctypes.c_int()
            if not crypto.ERR_get_error_all(
                None, None, None, ctypes.byref(data), ctypes.byref(flags)
            ):
                break
            text = (data.value or b"").decode("utf-8", "replace")
            found.append((tpm_errors.response_code(text), text))
        return found

    def _error(self, operation: str, errors: list[tuple[int | None, str]]) -> TPMError:
        for code, text in errors:
            if code is not None:
                detail = text.split(" ", 1)[1] if " " in text else text
                return TPMError(tpm_errors.describe(operation, self.tcti, code, detail))
        detail = "; ".join(text for _, text in errors if text)
        return TPMError(tpm_errors.describe(operation, self.tcti, None, detail))


class TPMKey:
    """A key loaded in the TPM: its block, and signing; ``close()`` flushes it."""

    def __init__(self, tpm: TPM, handle: int | None, blob_pem: bytes) -> None:
        self._tpm = tpm
        self._handle = handle
        self.blob_pem = blob_pem

    def sign_sha256(self, data: bytes) -> bytes:
        assert self._handle is not None
        return self._tpm.sign_sha256(self._handle, data)

    def close(self) -> None:
        if self._handle is not None:
            self._tpm.free_key(self._handle)
            self._handle = None


_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "OSSL_LIB_CTX_new": (_void, []),
    "OSSL_LIB_CTX_free": (None, [_void]),
    "OSSL_PROVIDER_load": (_void, [_void, ctypes.c_char_p]),
    "OSSL_PROVIDER_unload": (ctypes.c_int, [_void]),
    "EVP_PKEY_CTX_new_from_name": (_void, [_void, ctypes.c_char_p, ctypes.c_char_p]),
    "EVP_PKEY_CTX_free": (None, [_void]),
    "EVP_PKEY_keygen_init": (ctypes.c_int, [_void]),
    "EVP_PKEY_CTX_set_rsa_keygen_bits": (ctypes.c_int, [_void, ctypes.c_int]),
    "EVP_PKEY_generate": (ctypes.c_int, [_void, ctypes.POINTER(_void)]),
    "EVP_PKEY_free": (None, [_void]),
    "OSSL_ENCODER_CTX_new_for_pkey": (
        _void,
        [_void, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p],
    ),
    "OSSL_ENCODER_to_data": (
        ctypes.c_int,
        [_void, ctypes.POINTER(_bytes_out), ctypes.POINTER(ctypes.c_size_t)],
    ),
    "OSSL_ENCODER_CTX_free": (None, [_void]),
    "OSSL_DECODER_CTX_new_for_pkey": (
        _void,
        [
            ctypes.POINTER(_void),
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_int,
            _void,
            ctypes.c_char_p,
        ],
    ),
    "OSSL_DECODER_from_data": (
        ctypes.c_int,
        [_void, ctypes.POINTER(_bytes_out), ctypes.POINTER(ctypes.c_size_t)],
    ),
    "OSSL_DECODER_CTX_free": (None, [_void]),
    "EVP_MD_CTX_new": (_void, []),
    "EVP_MD_CTX_free": (None, [_void]),
    "EVP_DigestSignInit_ex": (
        ctypes.c_int,
        [_void, _void, ctypes.c_char_p, _void, ctypes.c_char_p, _void, _void],
    ),
    "EVP_DigestSign": (
        ctypes.c_int,
        [
            _void,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.c_char_p,
            ctypes.c_size_t,
        ],
    ),
    "CRYPTO_free": (None, [_void, ctypes.c_char_p, ctypes.c_int]),
    "ERR_clear_error": (None, []),
    "ERR_get_error_all": (
        ctypes.c_ulong,
        [_void, _void, _void, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_int)],
    ),
}


def _libcrypto() -> Any:
    """The libcrypto already in the process (``_ssl``'s): never a second one."""
    try:
        crypto = ctypes.CDLL("libcrypto.so.3", mode=os.RTLD_NOLOAD | os.RTLD_GLOBAL)
    except OSError as error:
        raise TPMError(f"tpm2 mode needs OpenSSL 3 (libcrypto.so.3): {error}") from None
    for name, (result, arguments) in _SIGNATURES.items():
        function: Callable[..., Any] = getattr(crypto, name)
        function.restype = result  # type: ignore[attr-defined]
        function.argtypes = arguments  # type: ignore[attr-defined]
    return crypto
