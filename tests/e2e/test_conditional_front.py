"""The operators' conditional filter (``for-caramel-operators/``) in front of Caramel 1.9.6.

Caramel itself sends no ``Last-Modified`` and ignores ``If-Modified-Since``, so every
hourly check downloads the whole certificate. With the filter wired into Caramel's INI as
the operator's README says (PasteDeploy's ``filter-with``, no change to Caramel), a certificate
answer carries the certificate's notBefore as ``Last-Modified`` and an unchanged
certificate costs a 304 with no body. These tests run the real client through nginx for
what a device sees, curl for what any HTTP client sees, and compare the filtered app with
an unfiltered Caramel on the same database for the answers the filter must not touch.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import pki
from testbed.command import run_client
from testbed.configs import Ports, caramel_ini
from testbed.harness import AccessRecord, CaramelStack
from testbed.processes import (
    Service,
    free_port,
    serves_ca_over_http,
    start_service,
    wait_until_ready,
)
from tests.e2e.lifecycle import SIGNATURE_GAP

pytestmark = pytest.mark.e2e

# A date no certificate can be newer than: an If-Modified-Since that always matches.
FAR_FUTURE = email.utils.format_datetime(dt.datetime(2099, 12, 31, tzinfo=dt.UTC), usegmt=True)


@pytest.fixture(scope="module")
def stack() -> Iterator[CaramelStack]:
    """Caramel behind the conditional filter, behind nginx."""
    with CaramelStack(conditional=True) as running:
        yield running


@pytest.fixture(scope="module")
def plain_caramel(stack: CaramelStack) -> Iterator[int]:
    """A second pserve on the same database and CA, without the filter: its port.

    What the filter must leave alone is compared with what Caramel says without it.
    """
    port = free_port()
    ini = stack.directory / "plain.ini"
    ini.write_text(caramel_ini(stack.directory, Ports(port, 0, 0, 0), conditional=False))
    service: Service = start_service(
        "plain caramel (pserve)",
        [str(stack.tool("pserve")), str(ini)],
        stack.directory / "plain-pserve.log",
        stack.directory,
        stack.server_env(),
    )
    try:
        ca_pem = stack.ca_cert.read_bytes()
        wait_until_ready(service, lambda: serves_ca_over_http(port, ca_pem), f"on {port}")
        yield port
    finally:
        service.stop()


class Device:
    """One device's combined file, checked with the real client through nginx."""

    def __init__(self, stack: CaramelStack, workdir: Path, client_id: str) -> None:
        self.stack = stack
        self.client_id = client_id
        self.file = workdir / client_id / "client.pem"

    def run(self, watch: str | None = None) -> tuple[int, str, list[AccessRecord]]:
        """One invocation: its status, its stderr, and the GETs nginx saw of ``watch`` (the
        request's hash; by default the one the file holds after the run)."""
        mark = self.stack.log_mark()
        done = run_client(
            [
                "--file",
                str(self.file),
                "--ca-cert",
                str(self.stack.ca_cert),
                self.stack.front_url,
                self.client_id,
            ]
        )
        sha = watch or self.state().csr_sha256

        def gets(records: list[AccessRecord]) -> list[AccessRecord]:
            return [r for r in records if r.method == "GET" and r.path == sha]

        return (
            done.returncode,
            done.stderr,
            gets(self.stack.records_since(mark, lambda rs: bool(gets(rs)))),
        )

    def state(self) -> pki.CombinedFile:
        return pki.CombinedFile.read(self.file)

    def signed(self) -> float:
        """Post the request, sign it, install the certificate: when it was signed."""
        status, stderr, _ = self.run()
        assert status == 69, stderr
        listed = self.stack.request(self.state().csr_sha256 or "")
        assert listed is not None
        self.stack.sign(listed.id)
        signed_at = time.monotonic()
        status, stderr, gets = self.run()
        assert status == 0, stderr
        assert [g.status for g in gets] == [200], [g.summary() for g in gets]
        return signed_at


def not_before_http(state: pki.CombinedFile) -> str:
    cert = state.certificate
    assert cert is not None
    return email.utils.format_datetime(cert.not_valid_before_utc, usegmt=True)


def curl(stack: CaramelStack, sha: str, *headers: str) -> tuple[int, dict[str, str], bytes]:
    """GET a certificate URL through nginx with curl: status, headers, body."""
    argv = ["curl", "--silent", "--show-error", "--include", "--cacert", str(stack.ca_cert)]
    for header in headers:
        argv += ["--header", header]
    done = subprocess.run(
        [*argv, f"{stack.front_url}/{sha}"], capture_output=True, check=True, timeout=30
    )
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return status, {k.lower(): v for k, v in fields.items()}, body


def test_unchanged_certificate_gets_304_then_refresh_installs(
    stack: CaramelStack, tmp_path: Path
) -> None:
    """200 with Last-Modified = notBefore; then 304, 0 bytes; after --refresh 200 again."""
    device = Device(stack, tmp_path, "cond-device-01")
    signed_at = device.signed()
    first = device.state()
    assert first.certificate is not None
    first_lm = not_before_http(first)

    # The install's answer carried the notBefore; the next check sends it back: 304.
    status, stderr, gets = device.run()
    assert (status, stderr) == (0, "")
    assert len(gets) == 1, [g.summary() for g in gets]
    get = gets[0]
    assert get.if_modified_since == first_lm, get.summary()
    assert (get.status, get.body_bytes_sent) == (304, 0), get.summary()
    assert get.last_modified == first_lm, get.summary()
    assert device.state().same_bytes_and_mtime(first)

    # Re-signing moves the notBefore: the next check gets the new certificate.
    time.sleep(max(0.0, signed_at + SIGNATURE_GAP - time.monotonic()))
    stack.refresh()
    status, stderr, gets = device.run()
    assert (status, stderr) == (0, "")
    after = device.state()
    assert after.certificate is not None
    assert after.certificate.serial_number != first.certificate.serial_number
    assert after.certificate.not_valid_before_utc > first.certificate.not_valid_before_utc
    assert after.key_pem == first.key_pem
    assert after.csr_pem == first.csr_pem
    assert [(g.status, g.if_modified_since) for g in gets] == [(200, first_lm)], [
        g.summary() for g in gets
    ]
    assert gets[0].body_bytes_sent == len(after.cert_pem or b""), gets[0].summary()
    assert gets[0].last_modified == not_before_http(after)
    verified = pki.openssl_verify(stack.ca_cert, after.cert_pem or b"")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # And the new one is answered with 304 from then on.
    status, _, gets = device.run()
    assert status == 0
    assert [(g.status, g.body_bytes_sent) for g in gets] == [(304, 0)]
    assert device.state().same_bytes_and_mtime(after)


def test_without_or_with_older_if_modified_since_gets_the_certificate(
    stack: CaramelStack, tmp_path: Path
) -> None:
    """No header, an older date, or a date that is not one: the whole certificate."""
    device = Device(stack, tmp_path, "cond-device-02")
    device.signed()
    state = device.state()
    assert state.cert_pem is not None
    assert state.certificate is not None
    sha = state.csr_sha256 or ""
    lm = not_before_http(state)
    older = email.utils.format_datetime(
        state.certificate.not_valid_before_utc - dt.timedelta(seconds=1), usegmt=True
    )
    for headers in ((), (f"If-Modified-Since: {older}",), ("If-Modified-Since: yesterday",)):
        status, fields, body = curl(stack, sha, *headers)
        assert (status, body) == (200, state.cert_pem), headers
        assert fields.get("last-modified") == lm, (headers, fields)
    # Equal and later dates are "not older": 304, no body, the validator kept.
    for since in (lm, FAR_FUTURE):
        status, fields, body = curl(stack, sha, f"If-Modified-Since: {since}")
        assert (status, body) == (304, b""), since
        assert fields.get("last-modified") == lm
        assert "content-type" not in fields


def raw_get(port: int, sha: str, since: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
    """GET /sha from one pserve, over plain HTTP on loopback: what the app answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Host": "127.0.0.1"}
        if since is not None:
            headers["If-Modified-Since"] = since
        connection.request("GET", f"/{sha}", headers=headers)
        answer = connection.getresponse()
        fields = [(k.lower(), v) for k, v in answer.getheaders() if k.lower() != "date"]
        return answer.status, sorted(fields), answer.read()
    finally:
        connection.close()


def test_pending_unknown_and_rejected_answers_are_untouched(
    stack: CaramelStack, plain_caramel: int, tmp_path: Path
) -> None:
    """202, 404 and 403 come out of the filter exactly as Caramel made them, even with an
    If-Modified-Since that would turn a certificate into a 304; the client acts on them
    as before (69 each time; a rejection makes it post a new request)."""
    assert stack.caramel is not None
    filtered_port = stack.ports.waitress

    def same_both_ways(sha: str, expected: int) -> None:
        for since in (None, FAR_FUTURE):
            filtered = raw_get(filtered_port, sha, since)
            plain = raw_get(plain_caramel, sha, since)
            assert filtered[0] == expected, filtered
            assert filtered == plain, (since, filtered, plain)
            assert "last-modified" not in dict(filtered[1])

    same_both_ways("0" * 64, 404)

    pending = Device(stack, tmp_path, "cond-pending-01")
    status, _, gets = pending.run()  # a new key: posted at once, no GET
    assert status == 69
    assert gets == []
    status, _, gets = pending.run()
    assert status == 69
    assert [g.status for g in gets] == [202]
    pending_sha = pending.state().csr_sha256 or ""
    same_both_ways(pending_sha, 202)

    rejected = Device(stack, tmp_path, "cond-rejected-01")
    rejected.signed()
    old = rejected.state()
    listed = stack.request(old.csr_sha256 or "")
    assert listed is not None
    stack.reject(listed.id)
    same_both_ways(old.csr_sha256 or "", 403)
    status, _, gets = rejected.run(watch=old.csr_sha256)
    assert status == 69
    assert [g.status for g in gets] == [403]
    new = rejected.state()
    assert new.key_pem != old.key_pem
    assert new.cert_pem is None
    assert stack.request(new.csr_sha256 or "") is not None, "the new request was posted"


def test_certificate_installed_before_the_filter_gets_304_after(
    stack: CaramelStack, tmp_path: Path
) -> None:
    """A device that got its certificate from Caramel alone (no Last-Modified) sends the
    notBefore as If-Modified-Since: once the filter is deployed, that is already a 304."""
    stack.set_conditional(False)
    try:
        device = Device(stack, tmp_path, "cond-before-01")
        device.signed()
        state = device.state()
        status, _, gets = device.run()
        assert status == 0
        assert [(g.status, g.last_modified) for g in gets] == [(200, "")], "no filter yet"
    finally:
        stack.set_conditional(True)
    status, stderr, gets = device.run()
    assert (status, stderr) == (0, "")
    lm = not_before_http(state)
    assert [(g.status, g.if_modified_since, g.body_bytes_sent) for g in gets] == [(304, lm, 0)]
    assert device.state().same_bytes_and_mtime(state)


def test_certificate_answers_carry_the_hint_and_nothing_else_does(
    stack: CaramelStack, plain_caramel: int, tmp_path: Path
) -> None:
    """With a re-signing schedule in the filter's section, a certificate's 200 and 304 say
    ``Cache-Control: max-age`` = the seconds until the round ends; the device installs and
    keeps its certificate as before; 202, 403 and 404 stay exactly Caramel's."""
    device = Device(stack, tmp_path, "cond-hint-01")
    device.signed()
    state = device.state()
    sha = state.csr_sha256 or ""
    lm = not_before_http(state)
    round_end = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=2)
    settings = {
        "resign_at": (round_end - dt.timedelta(minutes=10)).isoformat(),
        "resign_every": "24h",
        "resign_takes": "10min",
    }
    stack.set_conditional(True, settings)
    try:
        for headers, expected in (((), 200), ((f"If-Modified-Since: {lm}",), 304)):
            status, fields, _ = curl(stack, sha, *headers)
            left = (round_end - dt.datetime.now(dt.UTC)).total_seconds()
            assert status == expected
            max_age = int(fields["cache-control"].removeprefix("max-age="))
            assert left <= max_age <= left + 5, (fields, left)

        status, stderr, gets = device.run()
        assert (status, stderr) == (0, "")
        assert [(g.status, g.cache_control[:8]) for g in gets] == [(304, "max-age=")]
        assert device.state().same_bytes_and_mtime(state)

        assert stack.caramel is not None
        for sha_of, expected in (("0" * 64, 404),):
            for since in (None, FAR_FUTURE):
                filtered = raw_get(stack.ports.waitress, sha_of, since)
                assert filtered[0] == expected
                assert filtered == raw_get(plain_caramel, sha_of, since)
                assert "cache-control" not in dict(filtered[1])

        pending = Device(stack, tmp_path, "cond-hint-pending")
        assert pending.run()[0] == 69
        status, _, gets = pending.run()
        assert (status, [(g.status, g.cache_control) for g in gets]) == (69, [(202, "")])

        stack.reject(device_id(stack, sha))
        status, _, gets = device.run(watch=sha)
        assert (status, [(g.status, g.cache_control) for g in gets]) == (69, [(403, "")])
    finally:
        stack.set_conditional(True)


def device_id(stack: CaramelStack, sha: str) -> int:
    listed = stack.request(sha)
    assert listed is not None
    return listed.id


def test_a_hint_setting_that_cannot_work_stops_the_server(stack: CaramelStack) -> None:
    """resign_every without resign_at: pserve refuses to start, its log says why in one line."""
    port = free_port()
    ini = stack.directory / "wrong-hint.ini"
    ini.write_text(
        caramel_ini(
            stack.directory,
            Ports(port, 0, 0, 0),
            conditional=True,
            filter_settings={"resign_every": "24h"},
        )
    )
    service = start_service(
        "caramel with a wrong hint",
        [str(stack.tool("pserve")), str(ini)],
        stack.directory / "wrong-hint.log",
        stack.directory,
        stack.server_env(),
    )
    try:
        assert service.process.wait(timeout=60) != 0
    finally:
        service.stop()
    lines = service.log_tail(5).splitlines()
    assert lines[-1] == (
        "ValueError: caramel_conditional: resign_every and resign_takes need resign_at "
        "(the start of one planned re-signing)"
    ), lines
