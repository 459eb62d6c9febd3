"""``httpdate``: the HTTP date kept as the file's mtime, against ``email.utils``.

Contract:
- ``parse_http_date`` never raises, and returns a timestamp exactly when the text (white
  space around it aside) is the IMF-fixdate that ``email.utils.formatdate(t, usegmt=True)``
  writes for a time ``t`` from 1970 on, which ``email.utils`` reads back as ``t``;
- ``format_http_date(t)`` is ``email.utils``'s text for ``t`` and reads back as ``t``.
"""

from __future__ import annotations

import email.utils

from caramel_embedded import httpdate
from fuzz.contract import agree

_LAST = 253402300799  # 9999-12-31 23:59:59 UTC: the last time with a four-digit year


def check(data: bytes) -> None:
    text = data.decode("latin-1")  # as http.client reads a header
    agree(repr(text), httpdate.parse_http_date(text), _reference(text))
    moment = int.from_bytes(data[:5], "big") % (_LAST + 1)
    written = httpdate.format_http_date(moment)
    agree(f"format {moment}", written, email.utils.formatdate(moment, usegmt=True))
    agree(f"read back {written!r}", httpdate.parse_http_date(written), moment)


def _reference(text: str) -> int | None:
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        return None
    moment = int(parsed.timestamp())
    if not 0 <= moment <= _LAST or email.utils.formatdate(moment, usegmt=True) != text.strip():
        return None
    return moment
