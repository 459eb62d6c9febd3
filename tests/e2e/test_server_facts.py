"""What the real Caramel 1.9.6 server and our nginx fronts answer, without our client.

SPEC's protocol table is our reading of the server; these tests hold it against the
server itself (through the same nginx front the client uses), so a difference shows up
here as a server fact rather than as a puzzling client failure. They also prove the
harness: the admin helpers, the access log, the 304 front and nginx's client
certificate checks.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testbed import pki
from testbed.harness import CaramelStack, HarnessError
from tests.e2e.lifecycle import SIGNATURE_GAP

pytestmark = pytest.mark.e2e

PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
def http(stack: CaramelStack) -> Iterator[urllib3.PoolManager]:
    """HTTPS that trusts only the Caramel CA, like the client."""
    with urllib3.PoolManager(ca_certs=str(stack.ca_cert), retries=False, timeout=10) as pool:
        yield pool


class Device:
    """A key and a CSR made the way the client makes them."""

    def __init__(self, stack: CaramelStack, client_id: str) -> None:
        self.client_id = client_id
        self.key = pki.rsa_key()
        self.csr = pki.make_csr_pem(
            self.key, pki.csr_subject(pki.load_ca(stack.ca_cert), client_id)
        )
        self.sha256 = pki.sha256_hex(self.csr)


def post(http: urllib3.PoolManager, base: str, path: str, body: bytes) -> urllib3.BaseHTTPResponse:
    """POST a body to a path of a front."""
    return http.request("POST", f"{base}/{path}", body=body)


def problem(response: urllib3.BaseHTTPResponse) -> dict[str, object]:
    """The problem+json body of an error answer (checking that it is one)."""
    assert response.headers["Content-Type"] == PROBLEM_JSON
    body = json.loads(response.data)
    assert isinstance(body, dict)
    return body


def curl_with_certificate(stack: CaramelStack, cert_file: Path, path: str) -> int:
    """GET through front mtls presenting a client certificate; the HTTP status."""
    done = subprocess.run(
        [
            "curl",
            "--silent",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code}",
            "--cacert",
            str(stack.ca_cert),
            "--cert",
            str(cert_file),
            f"{stack.front_url}/{path}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def posted_and_signed(
    stack: CaramelStack, http: urllib3.PoolManager, client_id: str
) -> tuple[Device, int]:
    """A device whose CSR is posted and signed; with its server id."""
    device = Device(stack, client_id)
    assert post(http, stack.front_url, device.sha256, device.csr).status == 202
    record = stack.request(device.sha256)
    assert record is not None
    stack.sign(record.id)
    return device, record.id


def test_root_crt_is_the_ca_certificate(stack: CaramelStack, http: urllib3.PoolManager) -> None:
    """GET /root.crt serves the CA file (as text/plain, cacheable for an hour)."""
    response = http.request("GET", f"{stack.front_url}/root.crt")
    assert response.status == 200
    assert response.data == stack.ca_cert.read_bytes()
    assert response.headers["Cache-Control"] == "max-age=3600"


def test_ca_subject_is_what_caramel_ca_was_told(stack: CaramelStack) -> None:
    """caramel_ca read C, ST, L, O, OU from stdin and fixed the CN."""
    subject = pki.load_ca(stack.ca_cert).subject
    assert subject.rfc4514_string() == (
        "CN=Caramel Signing Certificate,OU=Devices,O=Caramel Embedded E2E,"
        "L=Linkoping,ST=Ostergotland,C=SE"
    )


def test_unknown_request_is_404(stack: CaramelStack, http: urllib3.PoolManager) -> None:
    """Never posted: 404, as problem+json."""
    response = http.request("GET", f"{stack.front_url}/{'0' * 64}")
    assert response.status == 404
    assert problem(response) == {"status": 404, "title": "Not Found", "detail": None}


def test_post_pending_and_duplicate(stack: CaramelStack, http: urllib3.PoolManager) -> None:
    """202 with {sha256, url}; GET is then 202; a second POST is a 400 'duplicate'."""
    device = Device(stack, "facts-post")
    accepted = post(http, stack.front_url, device.sha256, device.csr)
    assert accepted.status == 202
    assert accepted.headers["Content-Type"] == "application/json"
    assert json.loads(accepted.data) == {
        "sha256": device.sha256,
        "url": f"{stack.front_url}/{device.sha256}",
    }
    pending = http.request("GET", f"{stack.front_url}/{device.sha256}")
    assert pending.status == 202
    assert json.loads(pending.data)["sha256"] == device.sha256
    again = post(http, stack.front_url, device.sha256, device.csr)
    assert again.status == 400
    assert problem(again) == {"status": 400, "title": "Bad Request", "detail": "duplicate request"}
    record = stack.request(device.sha256)
    assert record is not None
    assert (record.cn, record.signed) == ("facts-post", False)


def _subject(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


def test_post_refusals(stack: CaramelStack, http: urllib3.PoolManager) -> None:
    """Every refusal of a POST, with the server's own words."""
    device = Device(stack, "facts-refused")
    base = stack.front_url

    mismatch = post(http, base, "f" * 64, device.csr)
    assert mismatch.status == 400
    assert problem(mismatch)["detail"] == f"hash mismatch ({device.sha256})"

    # Not byte-for-byte OpenSSL's PEM: one extra newline.
    sloppy = device.csr + b"\n"
    refused = post(http, base, pki.sha256_hex(sloppy), sloppy)
    assert refused.status == 400
    assert problem(refused)["detail"] == "crypto error: invalid PEM reqtext"

    # The subject's C, ST, L, O must be the CA's, in that order.
    wrong_state = pki.make_csr_pem(
        device.key,
        _subject(
            (NameOID.COUNTRY_NAME, "SE"),
            (NameOID.STATE_OR_PROVINCE_NAME, "Elsewhere"),
            (NameOID.LOCALITY_NAME, "Linkoping"),
            (NameOID.ORGANIZATION_NAME, "Caramel Embedded E2E"),
            (NameOID.COMMON_NAME, "facts-refused"),
        ),
    )
    bad = post(http, base, pki.sha256_hex(wrong_state), wrong_state)
    assert bad.status == 400
    assert str(problem(bad)["detail"]).startswith("Bad subject: ")
    reordered = pki.make_csr_pem(
        device.key,
        _subject(
            (NameOID.STATE_OR_PROVINCE_NAME, "Ostergotland"),
            (NameOID.COUNTRY_NAME, "SE"),
            (NameOID.LOCALITY_NAME, "Linkoping"),
            (NameOID.ORGANIZATION_NAME, "Caramel Embedded E2E"),
            (NameOID.COMMON_NAME, "facts-refused"),
        ),
    )
    assert post(http, base, pki.sha256_hex(reordered), reordered).status == 400

    # Without OU the subject still matches: only C, ST, L, O are compared.
    no_ou = pki.make_csr_pem(
        device.key,
        _subject(
            (NameOID.COUNTRY_NAME, "SE"),
            (NameOID.STATE_OR_PROVINCE_NAME, "Ostergotland"),
            (NameOID.LOCALITY_NAME, "Linkoping"),
            (NameOID.ORGANIZATION_NAME, "Caramel Embedded E2E"),
            (NameOID.COMMON_NAME, "facts-no-ou"),
        ),
    )
    assert post(http, base, pki.sha256_hex(no_ou), no_ou).status == 202

    big = b"x" * 2049
    too_large = post(http, base, pki.sha256_hex(big), big)
    assert too_large.status == 413
    assert problem(too_large)["detail"] == "Max size: 2.0 kB"

    # No body and no Content-Length (urllib3 would send "Content-Length: 0"): nginx
    # passes the request on as it is, and Caramel wants a length.
    no_length = subprocess.run(
        [
            *("curl", "--silent", "--include", "--request", "POST"),
            *("--cacert", str(stack.ca_cert), f"{base}/{device.sha256}"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert no_length.stdout.startswith("HTTP/1.1 411 "), no_length.stdout
    assert '"title":"Length Required"' in no_length.stdout

    assert stack.request(device.sha256) is None, "a refused request was stored"


def test_signed_certificate(stack: CaramelStack, http: urllib3.PoolManager) -> None:
    """200 application/octet-stream: the PEM, for the CSR's key, CN, 48 h, verifiable."""
    device, _ = posted_and_signed(stack, http, "facts-signed")
    response = http.request("GET", f"{stack.front_url}/{device.sha256}")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert "Last-Modified" not in response.headers, "Caramel itself sends no Last-Modified"
    cert = x509.load_pem_x509_certificate(response.data)
    assert response.data == cert.public_bytes(serialization.Encoding.PEM)
    assert cert.public_key().public_numbers() == device.key.public_key().public_numbers()
    assert cert.subject == pki.csr_subject(pki.load_ca(stack.ca_cert), "facts-signed")
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(hours=48)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical
    assert set(eku.value) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    verified = pki.openssl_verify(stack.ca_cert, response.data)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # The server ignores If-Modified-Since.
    again = http.request(
        "GET",
        f"{stack.front_url}/{device.sha256}",
        headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    )
    assert again.status == 200
    assert again.data == response.data


def test_rejected_request(stack: CaramelStack, http: urllib3.PoolManager) -> None:
    """Rejected: 403 problem+json even when signed; hidden from --list; still a duplicate."""
    device, csr_id = posted_and_signed(stack, http, "facts-rejected")
    stack.reject(csr_id)
    forbidden = http.request("GET", f"{stack.front_url}/{device.sha256}")
    assert forbidden.status == 403
    assert problem(forbidden) == {"status": 403, "title": "Forbidden", "detail": None}
    assert stack.request(device.sha256) is None
    again = post(http, stack.front_url, device.sha256, device.csr)
    assert again.status == 400
    assert problem(again)["detail"] == "duplicate request"


def test_refresh_needs_check_same_thread_false(
    stack: CaramelStack, http: urllib3.PoolManager
) -> None:
    """With the default SQLite URL --refresh fails in its threads and still exits 0; the
    harness sees it in the output. With our URL it issues a later certificate."""
    device, _ = posted_and_signed(stack, http, "facts-refresh")
    plain_url = f"sqlite:///{stack.directory}/caramel.sqlite"
    with pytest.raises(HarnessError, match="SQLite objects created in a thread"):
        stack.refresh("--dburl", plain_url)
    assert stack.admin_history[-1].returncode == 0, "caramel_tool now fails loudly"
    before = stack.request(device.sha256)
    time.sleep(SIGNATURE_GAP)
    stack.refresh()
    after = stack.request(device.sha256)
    assert before is not None
    assert after is not None
    assert before.not_after is not None
    assert after.not_after is not None
    assert after.not_after > before.not_after


def test_last_modified_front(stack: CaramelStack, http: urllib3.PoolManager) -> None:
    """Front lm: Last-Modified on certificates, 304 with no body to an exact match."""
    pending = Device(stack, "facts-lm-pending")
    assert post(http, stack.lm_front_url, pending.sha256, pending.csr).status == 202
    waiting = http.request("GET", f"{stack.lm_front_url}/{pending.sha256}")
    assert waiting.status == 202, "a pending answer must not be cached"

    device, _ = posted_and_signed(stack, http, "facts-lm")
    url = f"{stack.lm_front_url}/{device.sha256}"
    first = http.request("GET", url)
    assert first.status == 200
    stamp = first.headers["Last-Modified"]
    mark = stack.log_mark()
    not_modified = http.request("GET", url, headers={"If-Modified-Since": stamp})
    assert not_modified.status == 304
    assert not_modified.data == b""
    other = http.request(
        "GET", url, headers={"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}
    )
    assert other.status == 200
    assert other.data == first.data
    logged = [
        (r.front, r.status, r.body_bytes_sent > 0)
        for r in stack.records_since(mark, lambda rs: len(rs) >= 2)
    ]
    assert logged == [("lm", 304, False), ("lm", 200, True)]


def test_nginx_client_certificate_checks(
    stack: CaramelStack, http: urllib3.PoolManager, tmp_path: Path
) -> None:
    """Optional verification: a valid certificate is SUCCESS; an expired one, or one from
    another CA, gets 400 from nginx before Caramel sees the request."""
    device, _ = posted_and_signed(stack, http, "facts-mtls")
    cert_pem = http.request("GET", f"{stack.front_url}/{device.sha256}").data
    good = tmp_path / "good.pem"
    good.write_bytes(pki.key_pem(device.key) + cert_pem)
    now = dt.datetime.now(dt.UTC)
    expired = tmp_path / "expired.pem"
    expired.write_bytes(
        pki.key_pem(device.key)
        + pki.forge_certificate(
            stack.ca_cert,
            stack.ca_key,
            device.key,
            "facts-mtls",
            now - dt.timedelta(days=3),
            now - dt.timedelta(days=1),
        )
    )
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(pki.key_pem(device.key) + _from_another_ca(device.key, "facts-mtls"))

    mark = stack.log_mark()
    assert curl_with_certificate(stack, good, device.sha256) == 200
    assert curl_with_certificate(stack, expired, device.sha256) == 400
    assert curl_with_certificate(stack, stranger, device.sha256) == 400
    records = stack.records_since(mark, lambda rs: len(rs) >= 3)
    assert [(r.status, r.client_verify, r.upstream_status) for r in records] == [
        (200, "SUCCESS", "200"),
        (400, "FAILED:certificate has expired", ""),
        (400, "FAILED:unable to verify the first certificate", ""),
    ]
    assert all("CN=facts-mtls" in r.client_subject.split(",") for r in records)


def _from_another_ca(key: rsa.RSAPrivateKey, client_id: str) -> bytes:
    """A current certificate for the key, issued by a CA that is not Caramel's."""
    ca_key = pki.rsa_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Another CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, client_id)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)
