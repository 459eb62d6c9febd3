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


def call(
    app: Callable[[dict[str, Any], Any], Iterable[bytes]],
    method: str = "GET",
    path: str = f"/{SHA}",
    since: str | None = None,
) -> tuple[str, dict[str, str], bytes]:
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path}
    if since is not None:
        environ["HTTP_IF_MODIFIED_SINCE"] = since
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, dict(headers)
        return lambda data: None

    body = b"".join(conditional.ConditionalCertificates(app)(environ, start_response))
    return seen["status"], seen["headers"], body


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
