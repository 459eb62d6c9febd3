"""Conditional certificate answers for a Caramel server: a WSGI filter (PasteDeploy).

Caramel answers ``GET /<sha256>`` with the whole certificate every time: it sends no
``Last-Modified`` and ignores ``If-Modified-Since``. A fleet of devices that checks every
hour downloads its certificate 24 times a day although it changes about once a day.

This filter wraps Caramel's WSGI application, without changing any of Caramel's code:

* a ``200`` certificate answer gets ``Last-Modified`` = the certificate's own notBefore
  (IMF-fixdate). The notBefore changes exactly when Caramel signs the request again
  (``caramel_tool --refresh`` signs short-lived certificates from "now"), so it is a
  validator that needs no state of its own and is the same in every Caramel process;
* a ``GET`` or ``HEAD`` whose ``If-Modified-Since`` is not older than that notBefore gets
  ``304 Not Modified`` with no body (RFC 9110, 13.1.3 and 15.4.5);
* with a hint setting (below), a certificate answer (that ``200`` or ``304``) also gets
  ``Cache-Control: max-age=N``: N seconds in which nothing new is planned, so a device
  that honours it skips its checks until then;
* every other answer (202 pending, 403 rejected, 404 unknown, the POST of a request,
  ``/root.crt``, errors) passes through untouched, byte for byte.

Caramel still runs the request (it looks the certificate up and writes its access log),
so a 304 saves the bytes on the wire, not the server's work.

Wire it in Caramel's ``.ini`` (see README.md next to this file)::

    [app:main]
    use = egg:caramel
    ...
    filter-with = conditional

    [filter:conditional]
    paste.filter_factory = caramel_conditional:filter_factory
    # optional, the hint: the schedule of `caramel_tool --refresh` (UTC) ...
    resign_at = 03:00
    resign_every = 24h
    resign_takes = 10min
    # ... or a fixed number of seconds instead:  max_age = 3600

It needs nothing beyond what Caramel's own virtualenv holds (``cryptography``, a
dependency of pyOpenSSL, parses the certificate).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

__all__ = [
    "ConditionalCertificates",
    "FixedHint",
    "ResigningSchedule",
    "filter_factory",
    "read_hint_settings",
]

# Caramel's certificate route: GET /<64 lowercase hex digits> (caramel/__init__.py).
_CERT_PATH = re.compile(r"/[0-9a-f]{64}")
# What a 304 keeps of the 200 it replaces: the validator and the caching headers. The
# body's own headers (Content-Type, Content-Length) go, since there is no body.
_KEPT_ON_304 = frozenset({"cache-control", "content-location", "date", "etag", "expires", "vary"})

Environ = dict[str, Any]
Headers = list[tuple[str, str]]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def http_date(when: dt.datetime) -> str:
    """IMF-fixdate, the one form HTTP senders must use: ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return email.utils.format_datetime(when.astimezone(dt.UTC), usegmt=True)


def parse_http_date(value: str) -> dt.datetime | None:
    """An HTTP date in any of its three historic forms, or None if it is not one.

    A date that cannot be read makes the header count as absent (RFC 9110, 13.1.3), so
    the client gets the full answer rather than an error.
    """
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # "-0000" and asctime form: the date is in UTC
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def certificate_not_before(body: bytes) -> dt.datetime | None:
    """The notBefore of the (first) PEM certificate in a Caramel answer, or None."""
    try:
        cert = x509.load_pem_x509_certificate(body)
    except ValueError:
        return None
    return cert.not_valid_before_utc


# --------------------------------------------------------------------------------------
# The hint: how long nothing new is planned for a certificate

_DURATION_PART = re.compile(r"\s*(\d+)\s*(d|h|min|m|s|)\s*")
_DURATION_UNITS = {"d": 86400, "h": 3600, "min": 60, "m": 60, "s": 1, "": 1}
# Where a time of day alone is given, the rounds are counted from that time on this day.
_EPOCH = dt.date(1970, 1, 1)
_HINT_KEYS = ("max_age", "resign_at", "resign_every", "resign_takes")


def parse_duration(text: str) -> dt.timedelta:
    """``3600``, ``90s``, ``10min``, ``24h``, ``1d``, ``1h 30min``: seconds, as systemd and
    cron users write them; anything else is a ValueError naming the text."""
    seconds = 0
    position = 0
    while position < len(text):
        part = _DURATION_PART.match(text, position)
        if part is None or part.end() == position:
            break
        seconds += int(part.group(1)) * _DURATION_UNITS[part.group(2)]
        position = part.end()
    if not text.strip() or position != len(text):
        raise ValueError(f"{text!r} is not a duration (3600, 90s, 10min, 24h, 1d)")
    return dt.timedelta(seconds=seconds)


def _instant(text: str) -> dt.datetime:
    """``03:00`` (UTC), ``04:00+01:00``, or a whole ISO 8601 instant: one planned start."""
    value = text.strip().replace("Z", "+00:00")
    try:
        if "T" in value or value[4:5] == "-":
            when = dt.datetime.fromisoformat(value)
        else:
            when = dt.datetime.combine(_EPOCH, dt.time.fromisoformat(value))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a time of day (03:00, 04:00+01:00) nor an ISO 8601 instant"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def _seconds_until(instant: dt.datetime, now: dt.datetime) -> int:
    """Whole seconds, rounded up: a device that waits them never checks before ``instant``."""
    return max(0, math.ceil((instant - now).total_seconds()))


@dataclass(frozen=True)
class FixedHint:
    """``max_age = N``: every certificate answer says "nothing new for N seconds"."""

    seconds: int

    def max_age(self, now: dt.datetime, not_before: dt.datetime | None) -> int:
        return self.seconds


@dataclass(frozen=True)
class ResigningSchedule:
    """The operator's planned ``caramel_tool --refresh``: rounds that start at ``anchor``
    plus a whole number of ``period`` and are done ``takes`` later.

    Until a round is done a device may still find its old certificate, so the hint runs
    to the end of the next round, not its start.
    """

    anchor: dt.datetime
    period: dt.timedelta
    takes: dt.timedelta

    def next_resigning(self, now: dt.datetime, not_before: dt.datetime | None) -> dt.datetime:
        """The end of the next round after ``now``: the first moment a check may find a
        certificate newer than the one it got now.

        A certificate whose notBefore is at or after the start of the round under way was
        signed by that round already: its next news is the round after.
        """
        rounds = (now - self.anchor) // self.period  # the last round started at or before now
        start = self.anchor + rounds * self.period
        end = start + self.takes
        if end <= now or (not_before is not None and not_before >= start):
            end += self.period
        return end

    def max_age(self, now: dt.datetime, not_before: dt.datetime | None) -> int:
        return _seconds_until(self.next_resigning(now, not_before), now)


Hint = FixedHint | ResigningSchedule


def _setting(name: str, read: Callable[[str], Any], value: str) -> Any:
    try:
        return read(value)
    except ValueError as error:
        raise ValueError(f"caramel_conditional: {name}: {error}") from None


def read_hint_settings(settings: Mapping[str, str]) -> Hint | None:
    """The hint the ``[filter:conditional]`` section asks for, or None (no hint).

    Settings that cannot work raise ValueError with one line naming the setting, so
    ``pserve`` refuses to start rather than send a wrong hint.
    """
    given = {k: v for k, v in settings.items() if k in _HINT_KEYS}
    if "max_age" in given:
        if len(given) > 1:
            raise ValueError(
                "caramel_conditional: either max_age or resign_at (with resign_every and "
                "resign_takes), not both"
            )
        seconds = _setting("max_age", parse_duration, given["max_age"])
        return FixedHint(int(seconds.total_seconds()))
    if not given:
        return None
    if "resign_at" not in given:
        raise ValueError(
            "caramel_conditional: resign_every and resign_takes need resign_at (the start of "
            "one planned re-signing)"
        )
    anchor = _setting("resign_at", _instant, given["resign_at"])
    period = _setting("resign_every", parse_duration, given.get("resign_every", "24h"))
    takes = _setting("resign_takes", parse_duration, given.get("resign_takes", "10min"))
    if period <= dt.timedelta(0):
        raise ValueError("caramel_conditional: resign_every: must be more than 0")
    if takes >= period:
        raise ValueError("caramel_conditional: resign_takes: must be shorter than resign_every")
    return ResigningSchedule(anchor, period, takes)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ConditionalCertificates:
    """The filter itself: wraps a WSGI application, changes certificate answers only.

    ``hint``: what ``Cache-Control: max-age`` certificate answers carry (None: none);
    ``clock``: the time it is counted from (tests give a fixed one).
    """

    def __init__(
        self,
        app: WSGIApp,
        hint: Hint | None = None,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self.app = app
        self.hint = hint
        self.clock = clock

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD") or not _CERT_PATH.fullmatch(environ.get("PATH_INFO", "")):
            return self.app(environ, start_response)

        captured: list[tuple[str, Headers]] = []
        written: list[bytes] = []

        def capture(
            status: str, headers: Headers, exc_info: object = None
        ) -> Callable[[bytes], object]:
            # Nothing is sent before the app returns, so a later call (with exc_info,
            # PEP 3333) simply replaces what an earlier one said.
            captured.append((status, headers))
            return written.append

        # A certificate answer is a few kilobytes: hold it, then decide.
        result = self.app(environ, capture)
        try:
            body = b"".join([*written, *result])
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = captured[-1]

        not_before = certificate_not_before(body) if status.startswith("200") else None
        if not_before is None:  # not a certificate: pass it on as it came
            start_response(status, headers)
            return [body]

        last_modified = http_date(not_before)
        replaced = {"last-modified"} if self.hint is None else {"last-modified", "cache-control"}
        headers = [(k, v) for k, v in headers if k.lower() not in replaced]
        headers.append(("Last-Modified", last_modified))
        if self.hint is not None:
            max_age = self.hint.max_age(self.clock(), not_before)
            headers.append(("Cache-Control", f"max-age={max_age}"))
        since = parse_http_date(environ.get("HTTP_IF_MODIFIED_SINCE", ""))
        if since is not None and not_before <= since:
            kept = [(k, v) for k, v in headers if k.lower() in _KEPT_ON_304]
            kept.append(("Last-Modified", last_modified))
            start_response("304 Not Modified", kept)
            return []
        start_response(status, headers)
        return [body]


def filter_factory(
    global_config: dict[str, str], **local_config: str
) -> Callable[[WSGIApp], WSGIApp]:
    """PasteDeploy's entry: ``paste.filter_factory = caramel_conditional:filter_factory``.

    The section's settings are read here, once, so a wrong one stops ``pserve`` at start.
    """
    hint = read_hint_settings(local_config)

    def wrap(app: WSGIApp) -> ConditionalCertificates:
        return ConditionalCertificates(app, hint)

    return wrap
