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

It needs nothing beyond what Caramel's own virtualenv holds (``cryptography``, a
dependency of pyOpenSSL, parses the certificate).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Callable, Iterable
from typing import Any

from cryptography import x509

__all__ = ["ConditionalCertificates", "filter_factory"]

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


class ConditionalCertificates:
    """The filter itself: wraps a WSGI application, changes certificate answers only."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

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
        headers = [(k, v) for k, v in headers if k.lower() != "last-modified"]
        headers.append(("Last-Modified", last_modified))
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
    """PasteDeploy's entry: ``paste.filter_factory = caramel_conditional:filter_factory``."""
    return ConditionalCertificates
