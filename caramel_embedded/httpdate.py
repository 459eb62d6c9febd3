"""HTTP dates (IMF-fixdate), written and read without locale or the email package.

The combined file's modification time carries the certificate's ``Last-Modified`` between
invocations, so a date must survive the round trip header -> mtime -> header unchanged:
proxies such as nginx answer 304 only to the exact string they sent. IMF-fixdate is the one
form that round-trips, so it is the one form we keep; any other is treated as absent.
"""

from __future__ import annotations

import calendar
import re
import time

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Compiled on first use (re keeps it): a 304 has no date to read.
_IMF_FIXDATE = (
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"(\d{4}) (\d\d):(\d\d):(\d\d) GMT"
)


def format_http_date(timestamp: int) -> str:
    """``Sun, 06 Nov 1994 08:49:37 GMT`` for a POSIX timestamp."""
    t = time.gmtime(timestamp)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def parse_http_date(text: str | None) -> int | None:
    """The POSIX timestamp of an IMF-fixdate that formats back to the same text, else None."""
    if text is None:
        return None
    match = re.fullmatch(_IMF_FIXDATE, text.strip())
    if match is None:
        return None
    day, month, year, hour, minute, second = (
        int(match.group(2)),
        _MONTHS.index(match.group(3)) + 1,
        int(match.group(4)),
        int(match.group(5)),
        int(match.group(6)),
        int(match.group(7)),
    )
    try:
        timestamp = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if timestamp < 0 or format_http_date(timestamp) != text.strip():
        return None  # a wrong weekday or an impossible date would not round-trip
    return timestamp
