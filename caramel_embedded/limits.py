"""The bounds that the command and the library both accept, written once.

The command's options (``options``) and the library's arguments (``library``) check
their values against these and word their refusals from them.
"""

from __future__ import annotations

KEY_SIZES = (2048, 4096)  # RSA bits of a new key
DEFAULT_KEY_BITS = 2048
MAX_TIMEOUT = 3600.0  # seconds: the bound on one pass's network work
DEFAULT_HINT_LIMIT = 86400  # seconds: the longest a server's hint is followed (--hint-limit)
MAX_HINT_LIMIT = 366 * 86400


def key_sizes_text() -> str:
    """``2048 or 4096``, for the refusal of another size."""
    return " or ".join(str(bits) for bits in KEY_SIZES)
