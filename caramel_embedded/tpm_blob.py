"""The ``TSS2 PRIVATE KEY`` block of tpm2 mode, read without a TPM and without cryptography.

The block is the format tpm2-openssl (and the tpm2-tss engine before it) reads and writes:
an ASN.1 SEQUENCE holding the key's TPM public area in the clear and its private area
wrapped by the TPM's storage key. Only the chip that made it can load the private part;
the public part (the RSA modulus and exponent) is here for anyone, which is all the client
needs to check a request's or a certificate's key without asking the TPM. The numbers are
read from the public area's bytes (TPM 2.0 Part 2, TPMT_PUBLIC), the same bytes the TPM
itself loads, so a blob whose public part was altered no longer loads there.
"""

from __future__ import annotations

from caramel_embedded import der, pem
from caramel_embedded.record import Record

LABEL = pem.TPM_PRIVATE_KEY
# 2.23.133.10.1.3: id-loadablekey, a key to be loaded with TPM2_Load under its parent.
OID_LOADABLE_KEY = bytes([0x67, 0x81, 0x05, 0x0A, 0x01, 0x03])
_TAG_OID, _TAG_INTEGER, _TAG_OCTETS = 0x06, 0x02, 0x04
_TAGS_OPTIONAL = (0xA0, 0xA1, 0xA2)  # [0] emptyAuth, [1] policy, [2] secret
_TPM_ALG_RSA, _TPM_ALG_NULL = 0x0001, 0x0010
_DEFAULT_EXPONENT = 65537  # an exponent of 0 in the public area means this one


class BlobError(ValueError):
    """The block is not a loadable TPM RSA key as tpm2-openssl writes it."""


class RSAPublic(Record):
    """The public numbers of the TPM key, and its size in bits."""

    modulus: int
    exponent: int
    bits: int


def rsa_public(blob_der: bytes) -> RSAPublic:
    """The public numbers of a ``TSS2 PRIVATE KEY`` DER; ``BlobError`` for anything else."""
    try:
        fields = der.sequence_fields(blob_der)
    except der.DERError as error:
        raise BlobError(f"TPM key: {error}") from None
    if not fields or fields[0] != (_TAG_OID, OID_LOADABLE_KEY):
        raise BlobError("TPM key: not a loadable TPM key (TSS2 PRIVATE KEY)")
    rest = [field for field in fields[1:] if field[0] not in _TAGS_OPTIONAL]
    if [tag for tag, _ in rest] != [_TAG_INTEGER, _TAG_OCTETS, _TAG_OCTETS]:
        raise BlobError("TPM key: expected parent, public and private parts")
    return _public_area(rest[1][1])


def _public_area(sized: bytes) -> RSAPublic:
    """TPM2B_PUBLIC: a 16-bit size, then TPMT_PUBLIC of an RSA key."""
    reader = _Reader(sized)
    area = _Reader(reader.sized())
    reader.end()
    if area.u16() != _TPM_ALG_RSA:
        raise BlobError("TPM key: not an RSA key")
    area.u16()  # nameAlg
    area.take(4)  # objectAttributes
    area.sized()  # authPolicy
    if area.u16() != _TPM_ALG_NULL:  # symmetric: a storage key's, not a signing key's
        area.take(4)
    if area.u16() != _TPM_ALG_NULL:  # scheme, with its hash
        area.u16()
    bits = area.u16()
    exponent = int.from_bytes(area.take(4), "big") or _DEFAULT_EXPONENT
    modulus = area.sized()
    area.end()
    if len(modulus) * 8 != bits or not modulus[0] & 0x80:
        raise BlobError(f"TPM key: a modulus of {len(modulus)} bytes for {bits} bits")
    if exponent < 3 or not exponent % 2:  # cryptography would refuse the numbers
        raise BlobError(f"TPM key: exponent {exponent} is not an RSA key's")
    return RSAPublic(int.from_bytes(modulus, "big"), exponent, bits)


class _Reader:
    """Big-endian fields taken in order from bytes; running short is a ``BlobError``."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def take(self, count: int) -> bytes:
        if self._offset + count > len(self._data):
            raise BlobError("TPM key: public part truncated")
        chunk = self._data[self._offset : self._offset + count]
        self._offset += count
        return chunk

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def sized(self) -> bytes:
        return self.take(self.u16())

    def end(self) -> None:
        if self._offset != len(self._data):
            raise BlobError("TPM key: unexpected bytes after the public part")
