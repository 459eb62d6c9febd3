"""PEM blocks, read and written the way OpenSSL writes them.

The Caramel server accepts a CSR only byte for byte as OpenSSL writes it (64-column
base64, a trailing newline, nothing after), and hashes those bytes for the request URL, so
the encoder here is the single source of every PEM we write.
"""

import base64
import binascii
import re
from typing import NamedTuple

PRIVATE_KEY = "PRIVATE KEY"
CERTIFICATE = "CERTIFICATE"
CERTIFICATE_REQUEST = "CERTIFICATE REQUEST"

_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----\r?\n?",
    re.DOTALL,
)
_BASE64_LINE = re.compile(rb"[A-Za-z0-9+/=]*")


class PEMError(ValueError):
    """The text is not a sequence of well-formed PEM blocks."""


class PEMBlock(NamedTuple):
    """One PEM block: its label and its DER bytes."""

    label: str
    der: bytes

    def encode(self) -> bytes:
        """The block as OpenSSL writes it."""
        return encode(self.label, self.der)


def encode(label: str, der: bytes) -> bytes:
    """PEM with 64-column base64 lines and a trailing newline, as OpenSSL writes it."""
    b64 = base64.b64encode(der)
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    head = f"-----BEGIN {label}-----\n".encode()
    tail = f"-----END {label}-----\n".encode()
    return head + b"".join(line + b"\n" for line in lines) + tail


def decode_all(text: bytes) -> list[PEMBlock]:
    """Every block of ``text``, in order; anything but white space between blocks is an error.

    Strict on purpose: the combined file is ours, so anything unexpected in it means it was
    damaged, and a damaged file is set aside rather than half-trusted.
    """
    blocks: list[PEMBlock] = []
    position = 0
    for match in _BLOCK.finditer(text):
        if text[position : match.start()].strip():
            raise PEMError("unexpected text between PEM blocks")
        blocks.append(PEMBlock(match.group(1).decode("ascii"), _decode_body(match.group(2))))
        position = match.end()
    if text[position:].strip():
        raise PEMError("unexpected text after the last PEM block")
    return blocks


def _decode_body(body: bytes) -> bytes:
    lines = body.split()
    if not lines or not all(_BASE64_LINE.fullmatch(line) for line in lines):
        raise PEMError("PEM block body is not base64")
    try:
        return base64.b64decode(b"".join(lines), validate=True)
    except binascii.Error as error:
        raise PEMError(f"PEM block body is not base64: {error}") from None
