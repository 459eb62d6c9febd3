"""``hint``: the server's ``Cache-Control`` and the stamp kept in the runtime directory.

Contract:
- ``max_age`` never raises, and returns None or a whole number of seconds from 1 to 2**31
  (RFC 9111's cap), only for a text that names ``max-age`` at all;
- ``read`` never raises, and what it takes for a stamp is exactly what ``render`` writes
  for that stamp, byte for byte: nothing odd is ever followed as a hint.
"""

from __future__ import annotations

from caramel_embedded import hint
from fuzz.contract import Finding, agree

_MOST = 2**31


def check(data: bytes) -> None:
    text = data.decode("latin-1")  # as http.client reads a header
    seconds = hint.max_age(text)
    if seconds is not None and (
        type(seconds) is not int or not 1 <= seconds <= _MOST or "max-age" not in text.lower()
    ):
        raise Finding(f"max_age({text!r}) = {seconds!r}")
    stamp = hint.read(data)
    if stamp is not None:
        agree(f"render(read({data!r}))", hint.render(stamp), data)
