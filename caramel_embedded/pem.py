"""PEM blocks, read and written the way OpenSSL writes them.

The Caramel server accepts a CSR only byte for byte as OpenSSL writes it (64-column
base64, a trailing newline, nothing after), and hashes those bytes for the request URL, so
the encoder here is the single source of every PEM we write.
"""

from __future__ import annotations

import base64
import binascii

from caramel_embedded.record import Record

PRIVATE_KEY = "PRIVATE KEY"
TPM_PRIVATE_KEY = "TSS2 PRIVATE KEY"  # tpm2 mode: the key wrapped by the TPM (tpm_blob)
CERTIFICATE = "CERTIFICATE"
CERTIFICATE_REQUEST = "CERTIFICATE REQUEST"

# Read with bytes.find, not a regular expression: compiling the two patterns that did this
# cost about 0.3 ms of every cold start. What a block is stays the same: BEGIN, a label
# of A-Z 0-9 and spaces, a line of base64 lines, the END of the same label.
_BEGIN = b"-----BEGIN "
_DASHES = b"-----"
_LABEL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


class PEMError(ValueError):
    """The text is not a sequence of well-formed PEM blocks."""


class PEMBlock(Record):
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
    while (start := text.find(_BEGIN, position)) != -1:
        if text[position:start].strip():
            raise PEMError("unexpected text between PEM blocks")
        label, body, position = _block_at(text, start)
        blocks.append(PEMBlock(label.decode("ascii"), _decode_body(body)))
    if text[position:].strip():
        raise PEMError("unexpected text after the last PEM block")
    return blocks


def _block_at(text: bytes, start: int) -> tuple[bytes, bytes, int]:
    """(label, body, where the block ends) of the block that begins at ``start``."""
    label_start = start + len(_BEGIN)
    label_end = text.find(_DASHES, label_start)
    label = text[label_start:label_end]
    if label_end == -1 or not label or label.translate(None, _LABEL):
        raise PEMError("malformed PEM block: bad BEGIN line")
    body_start = label_end + len(_DASHES)
    body_start += text.startswith(b"\r", body_start)
    if not text.startswith(b"\n", body_start):
        raise PEMError("malformed PEM block: bad BEGIN line")
    end_line = b"-----END " + label + _DASHES
    body_end = text.find(end_line, body_start + 1)
    if body_end == -1:
        raise PEMError(f"malformed PEM block: no END {label.decode('ascii')} line")
    position = body_end + len(end_line)
    position += text.startswith(b"\r", position)
    position += text.startswith(b"\n", position)
    return label, text[body_start + 1 : body_end], position


def _decode_body(body: bytes) -> bytes:
    """Lines of base64, each ended by LF or CR LF, none empty and no other white space: a
    blank line or a space inside is no PEM to cryptography (found by fuzzing)."""
    lines = [line.removesuffix(b"\r") for line in body.split(b"\n")]
    if len(lines) < 2 or lines.pop():
        raise PEMError("PEM block body is not base64")  # the END line must start a line
    if any(not line or line.translate(None, _BASE64) for line in lines):
        raise PEMError("PEM block body is not base64")
    text = b"".join(lines)
    try:
        der = base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise PEMError(f"PEM block body is not base64: {error}") from None
    # Unused bits of the last character set, or no padding: other bytes than the ones we
    # would write for this DER, which cryptography refuses (found by fuzzing).
    if base64.b64encode(der) != text:
        raise PEMError("PEM block body is not canonical base64")
    return der
