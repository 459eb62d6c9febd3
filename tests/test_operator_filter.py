"""The operators' conditional filter (for-caramel-operators/), in-process, around a stub app.

The e2e suite runs it in front of the real Caramel; these cases are the corners a real
Caramel rarely shows: the three historic date forms, HEAD, an app that uses ``write()``,
answers that are not certificates, and which headers a 304 keeps.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from testbed.ca_factory import make_authority, name, new_key, pem_of
from tests.script_module import load

pytestmark = pytest.mark.in_process

FILTER_PATH = (
    Path(__file__).resolve().parents[1] / "for-caramel-operators" / "caramel_conditional.py"
)
SHA = "ab" * 32


conditional = load(FILTER_PATH, "caramel_conditional")


@pytest.fixture(scope="module")
def cert_pem() -> bytes:
    from cryptography.x509.oid import NameOID

    authority = make_authority()
    not_before = dt.datetime(2026, 11, 30, 4, 2, 50, tzinfo=dt.UTC)
    cert = authority.issue(
        new_key(0).public_key(), name(((NameOID.COMMON_NAME, "dev"),)), not_before=not_before
    )
    return pem_of(cert)


NOT_BEFORE = "Mon, 30 Nov 2026 04:02:50 GMT"


def stub_app(
    status: str, body: bytes, use_write: bool = False
) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        write = start_response(
            status,
            [
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        if use_write:
            write(body)
            return []
        return [body]

    return app


def serve(
    filtered: Callable[[dict[str, Any], Any], Iterable[bytes]],
    method: str = "GET",
    path: str = f"/{SHA}",
    since: str | None = None,
) -> tuple[str, list[tuple[str, str]], bytes]:
    """One request through a filtered app: its status, header lines and body."""
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path}
    if since is not None:
        environ["HTTP_IF_MODIFIED_SINCE"] = since
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, headers
        return lambda data: None

    body = b"".join(filtered(environ, start_response))
    return seen["status"], seen["headers"], body


def call(
    app: Callable[[dict[str, Any], Any], Iterable[bytes]],
    method: str = "GET",
    path: str = f"/{SHA}",
    since: str | None = None,
) -> tuple[str, dict[str, str], bytes]:
    status, headers, body = serve(conditional.ConditionalCertificates(app), method, path, since)
    return status, dict(headers), body


def test_certificate_gets_its_not_before_as_last_modified(cert_pem: bytes) -> None:
    status, headers, body = call(stub_app("200 OK", cert_pem))
    assert (status, body) == ("200 OK", cert_pem)
    assert headers["Last-Modified"] == NOT_BEFORE


@pytest.mark.parametrize(
    "since",
    [
        NOT_BEFORE,
        "Monday, 30-Nov-26 04:02:50 GMT",  # RFC 850
        "Mon Nov 30 04:02:50 2026",  # asctime
        "Tue, 01 Dec 2026 00:00:00 GMT",
    ],
)
def test_not_older_gets_304_without_body(cert_pem: bytes, since: str) -> None:
    for use_write in (False, True):
        status, headers, body = call(stub_app("200 OK", cert_pem, use_write), since=since)
        assert (status, body) == ("304 Not Modified", b"")
        assert headers == {"Cache-Control": "no-store", "Last-Modified": NOT_BEFORE}


@pytest.mark.parametrize(
    "since", ["Mon, 30 Nov 2026 04:02:49 GMT", "", "not a date", "Mon, 99 Nov 2026 04:02:50 GMT"]
)
def test_older_or_unreadable_gets_the_certificate(cert_pem: bytes, since: str) -> None:
    status, headers, body = call(stub_app("200 OK", cert_pem), since=since)
    assert (status, body) == ("200 OK", cert_pem)
    assert headers["Last-Modified"] == NOT_BEFORE


def test_head_is_conditional_too(cert_pem: bytes) -> None:
    status, _, body = call(stub_app("200 OK", cert_pem), method="HEAD", since=NOT_BEFORE)
    assert (status, body) == ("304 Not Modified", b"")


@pytest.mark.parametrize(
    ("status", "body", "method", "path"),
    [
        ("202 Accepted", b'{"sha256": "ab"}', "GET", f"/{SHA}"),
        ("403 Forbidden", b'{"status": 403}', "GET", f"/{SHA}"),
        ("404 Not Found", b'{"status": 404}', "GET", f"/{SHA}"),
        ("200 OK", b"not a certificate", "GET", f"/{SHA}"),
        ("202 Accepted", b"{}", "POST", f"/{SHA}"),
        ("200 OK", b"CA", "GET", "/root.crt"),
    ],
)
def test_other_answers_pass_untouched(status: str, body: bytes, method: str, path: str) -> None:
    got = call(stub_app(status, body), method=method, path=path, since=NOT_BEFORE)
    assert got == (
        status,
        {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(body)),
            "Cache-Control": "no-store",
        },
        body,
    )


def test_http_date_is_imf_fixdate() -> None:
    when = dt.datetime(2026, 11, 30, 4, 2, 50, tzinfo=dt.UTC)
    assert conditional.http_date(when) == NOT_BEFORE
    assert email.utils.parsedate_to_datetime(NOT_BEFORE) == when


def test_paste_filter_factory_wraps_the_app(cert_pem: bytes) -> None:
    make = conditional.filter_factory({})
    wrapped = make(stub_app("200 OK", cert_pem))
    assert isinstance(wrapped, conditional.ConditionalCertificates)


# --------------------------------------------------------------------------------------
# The hint: Cache-Control: max-age = the seconds until the next planned re-signing

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3600", 3600),
        ("90s", 90),
        ("10min", 600),
        ("24h", 86400),
        ("1d", 86400),
        ("1h 30min", 5400),
        ("0", 0),
    ],
)
def test_durations_are_read_as_systemd_and_cron_users_write_them(text: str, seconds: int) -> None:
    assert conditional.parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "-5", "5 parsecs", "1.5.2h", "h"])
def test_a_duration_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        conditional.parse_duration(text)


DAILY_3AM = {"resign_at": "03:00", "resign_every": "24h", "resign_takes": "10min"}


@pytest.mark.parametrize(
    ("settings", "now", "not_before", "expected"),
    [
        # before today's re-signing: until it is done
        (DAILY_3AM, "2026-12-08T02:00:00", "2026-12-07T03:01:00", "2026-12-08T03:10:00"),
        # during it, the certificate not yet re-signed: until it is done
        (DAILY_3AM, "2026-12-08T03:05:00", "2026-12-07T03:01:00", "2026-12-08T03:10:00"),
        # during it, the certificate already re-signed by this round: the next round
        (DAILY_3AM, "2026-12-08T03:05:00", "2026-12-08T03:02:00", "2026-12-09T03:10:00"),
        # at the end of a round, or after it: the next one
        (DAILY_3AM, "2026-12-08T03:10:00", "2026-12-08T03:02:00", "2026-12-09T03:10:00"),
        (DAILY_3AM, "2026-12-08T23:00:00", "2026-12-08T03:02:00", "2026-12-09T03:10:00"),
        # a time of day with an offset is that instant in UTC
        (
            {"resign_at": "04:00+01:00", "resign_takes": "0"},
            "2026-12-08T02:59:59",
            "2026-12-07T03:00:00",
            "2026-12-08T03:00:00",
        ),
        # every 6 hours from 00:30; the default time it takes (10 min)
        (
            {"resign_at": "00:30", "resign_every": "6h"},
            "2026-12-08T07:00:00",
            "2026-12-08T06:31:00",
            "2026-12-08T12:40:00",
        ),
        # a weekly round from a full instant (a Tuesday), seen the Saturday before it
        (
            {"resign_at": "2026-12-01T02:00:00Z", "resign_every": "7d", "resign_takes": "1h"},
            "2026-12-05T12:00:00",
            "2026-12-01T02:20:00",
            "2026-12-08T03:00:00",
        ),
    ],
)
def test_next_resigning_from_the_schedule(
    settings: dict[str, str], now: str, not_before: str, expected: str
) -> None:
    hint = conditional.read_hint_settings(settings)
    assert isinstance(hint, conditional.ResigningSchedule)
    assert hint.next_resigning(at(now), at(not_before)) == at(expected)


def test_max_age_counts_whole_seconds_up_to_the_next_resigning() -> None:
    hint = conditional.read_hint_settings(DAILY_3AM)
    now = at("2026-12-08T02:00:00") + dt.timedelta(microseconds=250_000)
    assert hint.max_age(now, at("2026-12-07T03:01:00")) == 4200
    assert conditional.read_hint_settings({"max_age": "1h"}).max_age(now, None) == 3600
    assert conditional.read_hint_settings({}) is None


@pytest.mark.parametrize(
    ("settings", "word"),
    [
        ({"max_age": "1h", "resign_at": "03:00"}, "either"),
        ({"resign_every": "24h"}, "resign_at"),
        ({"resign_takes": "1h"}, "resign_at"),
        ({"resign_at": "25:00"}, "resign_at"),
        ({"resign_at": "03:00", "resign_every": "0"}, "resign_every"),
        ({"resign_at": "03:00", "resign_takes": "24h"}, "resign_takes"),
        ({"max_age": "a while"}, "max_age"),
        ({"max_age": "1h", "resign_every": "24h"}, "either"),
    ],
)
def test_settings_that_cannot_work_stop_the_server_with_one_line(
    settings: dict[str, str], word: str
) -> None:
    with pytest.raises(ValueError, match=word) as raised:
        conditional.filter_factory({}, **settings)
    assert "\n" not in str(raised.value)
    assert str(raised.value).startswith("caramel_conditional: ")


def hinted(settings: dict[str, str], now: dt.datetime) -> Any:
    hint = conditional.read_hint_settings(settings)
    return lambda app: conditional.ConditionalCertificates(app, hint, clock=lambda: now)


def call_with(
    settings: dict[str, str],
    app: Callable[[dict[str, Any], Any], Iterable[bytes]],
    now: dt.datetime = dt.datetime(2026, 12, 8, 2, 0, tzinfo=UTC),
    method: str = "GET",
    path: str = f"/{SHA}",
    since: str | None = None,
) -> tuple[str, dict[str, str], bytes]:
    status, headers, body = serve(hinted(settings, now)(app), method, path, since)
    names = [k.lower() for k, _ in headers]
    assert len(names) == len(set(names)), headers
    return status, dict(headers), body


@pytest.mark.parametrize("since", [None, NOT_BEFORE])
def test_certificate_answers_carry_the_seconds_to_the_next_resigning(
    cert_pem: bytes, since: str | None
) -> None:
    # The certificate was signed 2026-11-30 04:02:50; at 02:00 the next round ends at 03:10.
    status, headers, _ = call_with(DAILY_3AM, stub_app("200 OK", cert_pem), since=since)
    assert status == ("200 OK" if since is None else "304 Not Modified")
    assert headers["Cache-Control"] == "max-age=4200"
    status, headers, _ = call_with(
        {"max_age": "3600"}, stub_app("200 OK", cert_pem), method="HEAD", since=since
    )
    assert headers["Cache-Control"] == "max-age=3600"


@pytest.mark.parametrize(
    ("status", "body", "method", "path"),
    [
        ("202 Accepted", b'{"sha256": "ab"}', "GET", f"/{SHA}"),
        ("403 Forbidden", b'{"status": 403}', "GET", f"/{SHA}"),
        ("404 Not Found", b'{"status": 404}', "GET", f"/{SHA}"),
        ("500 Internal Server Error", b"oops", "GET", f"/{SHA}"),
        ("200 OK", b"not a certificate", "GET", f"/{SHA}"),
        ("202 Accepted", b"{}", "POST", f"/{SHA}"),
        ("200 OK", b"CA", "GET", "/root.crt"),
    ],
)
@pytest.mark.parametrize("settings", [DAILY_3AM, {"max_age": "3600"}])
def test_no_hint_on_anything_but_a_certificate(
    settings: dict[str, str], status: str, body: bytes, method: str, path: str
) -> None:
    got = call_with(settings, stub_app(status, body), method=method, path=path, since=NOT_BEFORE)
    assert got == (
        status,
        {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(body)),
            "Cache-Control": "no-store",
        },
        body,
    )


def test_paste_filter_factory_passes_its_settings(cert_pem: bytes) -> None:
    wrapped = conditional.filter_factory({}, max_age="600")(stub_app("200 OK", cert_pem))
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["headers"] = dict(headers)
        return lambda data: None

    b"".join(wrapped({"REQUEST_METHOD": "GET", "PATH_INFO": f"/{SHA}"}, start_response))
    assert seen["headers"]["Cache-Control"] == "max-age=600"
