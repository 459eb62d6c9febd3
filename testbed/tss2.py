"""``TSS2 PRIVATE KEY`` blocks made without a TPM: for the tests of its reader and the fuzzing
seeds. The layout is tpm2-openssl's (caramel_embedded/tpm_blob.py says which parts it reads);
the private part is a placeholder, which only a TPM would ever try to load.
"""

from __future__ import annotations

from caramel_embedded import tpm_blob

MODULUS = (0xC5 << 2040) | 0x1234567  # 2048 bits, top bit set


def der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + content


def public_area(*, kind: int = 0x0001, bits: int = 2048, exponent: int = 0,
                modulus: bytes | None = None, symmetric: bytes = b"\x00\x10",
                scheme: bytes = b"\x00\x10") -> bytes:  # fmt: skip
    body = (
        kind.to_bytes(2, "big") + b"\x00\x0b" + b"\x00\x06\x00\x72" + b"\x00\x00"
        + symmetric + scheme + bits.to_bytes(2, "big") + exponent.to_bytes(4, "big")
    )  # fmt: skip
    unique = MODULUS.to_bytes(256, "big") if modulus is None else modulus
    body += len(unique).to_bytes(2, "big") + unique
    return len(body).to_bytes(2, "big") + body


def blob(public: bytes | None = None, oid: bytes = tpm_blob.OID_LOADABLE_KEY) -> bytes:
    fields = (
        der(0x06, oid) + der(0xA0, der(0x01, b"\xff")) + der(0x02, b"\x40\x00\x00\x01")
        + der(0x04, public_area() if public is None else public) + der(0x04, b"\x00\x02ab")
    )  # fmt: skip
    return der(0x30, fields)
