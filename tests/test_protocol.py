"""Every answer of the protocol, through the real command against a real TLS server."""

from __future__ import annotations

import datetime as dt
import re
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from werkzeug import Request, Response

from caramel_embedded import __version__, pem
from caramel_embedded.httpdate import format_http_date
from testbed.ca_factory import make_authority
from testbed.command import clean_environment, client_command
from tests.conftest import CLIENT_ID, Client
from tests.fake_signer import FakeCaramel, problem

pytestmark = pytest.mark.arm32

LAST_MODIFIED = "Tue, 24 Nov 2026 10:00:00 GMT"


def blocks(path: Path) -> list[str]:
    return [block.label for block in pem.decode_all(path.read_bytes())]


def key_of(path: Path) -> bytes:
    return pem.decode_all(path.read_bytes())[0].der


def certificate_in(path: Path) -> x509.Certificate:
    (block,) = [b for b in pem.decode_all(path.read_bytes()) if b.label == "CERTIFICATE"]
    return x509.load_der_x509_certificate(block.der)


def snapshot(path: Path) -> tuple[bytes, int, int]:
    info = path.stat()
    return path.read_bytes(), info.st_mtime_ns, info.st_ino


def enrolled(client: Client) -> None:
    result = client.run()
    assert result.returncode == 69, result.stderr


def installed(client: Client, signer: FakeCaramel, **sign: object) -> x509.Certificate:
    enrolled(client)
    certificate = signer.sign(**sign)  # type: ignore[arg-type]
    result = client.run()
    assert result.returncode == 0, result.stderr
    return certificate


def assert_error(result: object, *words: str) -> None:
    assert result.returncode == 127, result.stderr  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, result.stderr  # type: ignore[attr-defined]
    assert lines[0].startswith("caramel-embedded: ")
    for word in words:
        assert word in lines[0]


# --- the happy path, step by step ------------------------------------------------------


def test_first_run_makes_key_and_request_posts_it_and_waits(
    client: Client, signer: FakeCaramel
) -> None:
    result = client.run()
    assert (result.returncode, result.stdout, result.stderr) == (69, "", "")
    assert blocks(client.file) == ["PRIVATE KEY", "CERTIFICATE REQUEST"]
    assert stat.S_IMODE(client.file.stat().st_mode) == 0o600
    (post,) = signer.requests("POST")
    sha256, entry = signer.only_entry()
    assert post.path == f"/{sha256}"
    assert post.body == pem.decode_all(client.file.read_bytes())[1].encode()
    assert post.headers["User-Agent"] == f"caramel-embedded/{__version__} (client-id={CLIENT_ID})"
    assert entry.csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == CLIENT_ID


def test_pending_request_waits_without_writing(client: Client, signer: FakeCaramel) -> None:
    enrolled(client)
    before = snapshot(client.file)
    result = client.run()
    assert (result.returncode, result.stderr) == (69, "")
    assert snapshot(client.file) == before
    get = signer.requests("GET")[-1]
    assert get.client_certificate is None
    assert "If-Modified-Since" not in get.headers


def test_signed_certificate_is_installed_with_the_same_key(
    client: Client, signer: FakeCaramel
) -> None:
    enrolled(client)
    key = key_of(client.file)
    certificate = signer.sign()
    result = client.run()
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert blocks(client.file) == ["PRIVATE KEY", "CERTIFICATE", "CERTIFICATE REQUEST"]
    assert key_of(client.file) == key
    assert certificate_in(client.file) == certificate
    assert stat.S_IMODE(client.file.stat().st_mode) == 0o600
    # No Last-Modified came with it: the file's mtime keeps the certificate's notBefore.
    assert int(client.file.stat().st_mtime) == int(certificate.not_valid_before_utc.timestamp())


def test_unchanged_200_writes_nothing_and_shows_our_certificate(
    client: Client, signer: FakeCaramel
) -> None:
    certificate = installed(client, signer)
    before = snapshot(client.file)
    result = client.run()
    assert (result.returncode, result.stderr) == (0, "")
    assert snapshot(client.file) == before
    get = signer.requests("GET")[-1]
    assert get.client_certificate == certificate
    assert get.headers["User-Agent"].endswith(f"(client-id={CLIENT_ID})")
    assert get.headers["If-Modified-Since"] == format_http_date(
        int(certificate.not_valid_before_utc.timestamp())
    )


def test_last_modified_is_sent_back_exactly_and_304_writes_nothing(
    client: Client, signer: FakeCaramel
) -> None:
    installed(client, signer, last_modified=LAST_MODIFIED)
    assert format_http_date(int(client.file.stat().st_mtime)) == LAST_MODIFIED
    signer.honour_if_modified_since = True
    before = snapshot(client.file)
    result = client.run()
    assert (result.returncode, result.stderr) == (0, "")
    assert snapshot(client.file) == before
    assert signer.requests("GET")[-1].headers["If-Modified-Since"] == LAST_MODIFIED


def test_last_modified_arriving_with_the_installed_certificate_is_kept_as_mtime(
    client: Client, signer: FakeCaramel
) -> None:
    """A caching proxy put in front later: the same bytes, a new validator, then 304s."""
    installed(client, signer)
    content, _, inode = snapshot(client.file)
    signer.only_entry()[1].last_modified = LAST_MODIFIED
    result = client.run()
    assert (result.returncode, result.stderr) == (0, "")
    assert client.file.read_bytes() == content
    assert client.file.stat().st_ino == inode
    assert format_http_date(int(client.file.stat().st_mtime)) == LAST_MODIFIED
    signer.honour_if_modified_since = True
    assert client.run().returncode == 0
    assert signer.requests("GET")[-1].headers["If-Modified-Since"] == LAST_MODIFIED


def test_renewed_certificate_replaces_the_old_one(client: Client, signer: FakeCaramel) -> None:
    first = installed(client, signer)
    key = key_of(client.file)
    inode = client.file.stat().st_ino
    second = signer.sign()
    assert second != first
    result = client.run()
    assert result.returncode == 0, result.stderr
    assert certificate_in(client.file) == second
    assert key_of(client.file) == key
    assert client.file.stat().st_ino != inode  # replaced, not rewritten in place


def test_unknown_request_is_posted_again(client: Client, signer: FakeCaramel) -> None:
    enrolled(client)
    signer.entries.clear()  # the server lost its database
    before = snapshot(client.file)
    result = client.run()
    assert result.returncode == 69, result.stderr
    assert len(signer.requests("POST")) == 2
    assert signer.requests("POST")[0].body == signer.requests("POST")[1].body
    assert snapshot(client.file) == before


def test_duplicate_post_means_waiting(client: Client, signer: FakeCaramel) -> None:
    enrolled(client)

    def get_is_404(request: Request) -> Response | None:
        return Response("", 404) if request.method == "GET" else None

    signer.forced = get_is_404
    result = client.run()
    assert (result.returncode, result.stderr) == (69, "")
    assert len(signer.requests("POST")) == 2  # the second was answered "duplicate request"


def test_rejection_wipes_key_and_certificate_and_posts_anew(
    client: Client, signer: FakeCaramel
) -> None:
    installed(client, signer)
    old_key = key_of(client.file)
    old_sha = signer.only_entry()[0]
    signer.reject()
    result = client.run()
    assert result.returncode == 69
    assert "rejected" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert blocks(client.file) == ["PRIVATE KEY", "CERTIFICATE REQUEST"]
    assert key_of(client.file) != old_key
    new_shas = set(signer.entries) - {old_sha}
    assert len(new_shas) == 1
    assert signer.entries[new_shas.pop()].state == "pending"


# --- certificates that must not be installed -------------------------------------------


@pytest.mark.parametrize(
    ("sign", "reason"),
    [
        pytest.param({"public_key": "other"}, "another key", id="other-key"),
        pytest.param({"common_name": "someone-else"}, "someone-else", id="other-cn"),
        pytest.param({"authority": "other"}, "not signed by the CA", id="other-ca"),
    ],
)
def test_wrong_certificate_is_refused_and_state_kept(
    client: Client, signer: FakeCaramel, sign: dict[str, object], reason: str
) -> None:
    enrolled(client)
    before = snapshot(client.file)
    if sign.get("public_key") == "other":
        from testbed.ca_factory import new_key

        sign["public_key"] = new_key(6).public_key()
    if sign.get("authority") == "other":
        sign["authority"] = make_authority(key_slot=7)
    signer.sign(**sign)  # type: ignore[arg-type]
    assert_error(client.run(), reason)
    assert snapshot(client.file) == before


def test_expired_certificate_is_refused_and_state_kept(
    client: Client, signer: FakeCaramel
) -> None:
    enrolled(client)
    before = snapshot(client.file)
    now = dt.datetime.now(dt.UTC)
    signer.sign(not_before=now - dt.timedelta(days=3), not_after=now - dt.timedelta(days=1))
    sha256 = signer.only_entry()[0]
    stale = signer.entries[sha256].certificate_pem

    def serve_expired(request: Request) -> Response | None:
        return Response(stale, 200, content_type="application/octet-stream")

    signer.forced = serve_expired
    assert_error(client.run(), "expired")
    assert snapshot(client.file) == before


def test_expired_installed_certificate_is_not_shown(client: Client, signer: FakeCaramel) -> None:
    """The fake server's TLS refuses an expired client certificate in the handshake and the
    client then asks again without it, so the GET that arrives never carries one: only the
    absence of that retry shows the certificate was not offered in the first place."""
    import time

    started = time.monotonic()
    enrolled(client)
    one_run = time.monotonic() - started  # seconds under emulation, a fraction natively
    not_after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2 + 3 * one_run)
    signer.sign(not_before=not_after - dt.timedelta(hours=2), not_after=not_after)
    assert client.run().returncode == 0
    time.sleep(max(0.0, (not_after - dt.datetime.now(dt.UTC)).total_seconds()) + 1.5)
    result = client.run("-v")
    assert result.returncode == 69, result.stderr  # the server answers 202 for an expired one
    assert "again without it" not in result.stderr
    get = signer.requests("GET")[-1]
    assert get.client_certificate is None
    assert "If-Modified-Since" not in get.headers


# --- the client certificate, refused --------------------------------------------------


def test_certificate_refused_in_handshake_is_retried_without(
    client: Client, signer: FakeCaramel
) -> None:
    """A valid certificate from a CA the TLS server does not know makes the handshake fail."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from caramel_embedded import state

    installed(client, signer)
    parsed = state.parse(client.file.read_bytes())
    assert parsed is not None
    stranger = make_authority(key_slot=8)
    key = serialization.load_der_private_key(parsed.key_der, None)
    foreign = stranger.issue(key.public_key(), certificate_in(client.file).subject)  # type: ignore[arg-type]
    client.file.write_bytes(
        state.compose(parsed.key_der, parsed.request_der, foreign.public_bytes(Encoding.DER))
    )
    signer.seen.clear()
    result = client.run("-v")
    # The server sends our real certificate, which differs from the foreign one: installed.
    assert result.returncode == 0, result.stderr
    assert "again without it" in result.stderr
    assert [s.client_certificate for s in signer.requests("GET")] == [None]
    assert certificate_in(client.file).issuer == signer.authority.certificate.subject


def test_400_to_our_certificate_is_retried_without(client: Client, signer: FakeCaramel) -> None:
    installed(client, signer)

    def nginx_refuses_certificate(request: Request) -> Response | None:
        if request.environ.get("SSL_CLIENT_CERT"):
            return Response("400 The SSL certificate error", 400)
        return None

    signer.forced = nginx_refuses_certificate
    signer.seen.clear()
    before = snapshot(client.file)
    result = client.run()
    assert (result.returncode, result.stderr) == (0, "")
    assert [s.client_certificate is not None for s in signer.requests("GET")] == [True, False]
    assert snapshot(client.file) == before


# --- answers outside the protocol -----------------------------------------------------


@pytest.mark.parametrize(
    ("response", "words"),
    [
        pytest.param(lambda: Response("oops", 500), ("HTTP 500",), id="500"),
        pytest.param(
            lambda: Response("", 503, headers={"Retry-After": "3600"}), ("HTTP 503",), id="503"
        ),
        pytest.param(
            lambda: problem(400, "Bad Request", "something"), ("HTTP 400", "something"), id="400"
        ),
        pytest.param(
            lambda: Response("", 302, headers={"Location": "https://127.0.0.1:1/elsewhere"}),
            ("HTTP 302", "not followed"),
            id="redirect",
        ),
        pytest.param(lambda: Response("not a certificate", 200), ("PEM",), id="200-garbage"),
        pytest.param(lambda: Response(b"x" * 70_000, 200), ("exceeds",), id="200-too-large"),
    ],
)
def test_unexpected_answers_are_127_and_keep_state(
    client: Client, signer: FakeCaramel, response: object, words: tuple[str, ...]
) -> None:
    enrolled(client)
    before = snapshot(client.file)
    signer.forced = lambda request: response()  # type: ignore[operator]
    signer.seen.clear()
    assert_error(client.run(), *words)
    assert snapshot(client.file) == before
    assert len(signer.seen) == 1  # no retry, no redirect followed


def test_html_error_page_is_reduced_to_its_title(client: Client, signer: FakeCaramel) -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body>" + "x" * 500 + "</body>"
    signer.forced = lambda request: Response(page, 502, content_type="text/html")
    result = client.run()
    assert_error(result, "HTTP 502", "502 Bad Gateway")
    assert "xxx" not in result.stderr
    page = page.replace("502 Bad Gateway", "Upstream down")
    assert_error(client.run(), "HTTP 502 BAD GATEWAY: Upstream down")


def test_connection_refused_is_named(client: Client, tmp_path: Path) -> None:
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    client.server = f"https://127.0.0.1:{port}"
    assert_error(client.run(), "cannot connect", "Connection refused")


def test_post_refused_is_127_with_the_servers_reason(client: Client, signer: FakeCaramel) -> None:
    def bad_subject(request: Request) -> Response | None:
        if request.method == "POST":
            return problem(400, "Bad Request", "bad subject: C=XX")
        return None

    signer.forced = bad_subject
    assert_error(client.run(), "HTTP 400", "bad subject: C=XX")
    assert blocks(client.file) == ["PRIVATE KEY", "CERTIFICATE REQUEST"]  # the key is kept


def test_server_certificate_from_another_ca_is_refused(
    client: Client, signer: FakeCaramel, tmp_path: Path
) -> None:
    other_ca = make_authority(key_slot=9).write(tmp_path / "other-ca.pem")
    result = client.run("--ca-cert", str(other_ca))
    assert_error(result, "not trusted")


def test_hostname_is_checked(client: Client, signer: FakeCaramel) -> None:
    """127.1 reaches the same server, but the name is not in its certificate."""
    port = client.server.rsplit(":", 1)[1]
    client.server = f"https://127.1:{port}"
    assert_error(client.run(), "not trusted")
    assert signer.seen == []


def test_server_prefix_is_used(client: Client, signer: FakeCaramel) -> None:
    client.server += "/caramel/"
    assert client.run().returncode == 69
    assert re.fullmatch(r"/caramel/[0-9a-f]{64}", signer.requests("POST")[0].path)


def test_changed_client_id_posts_a_new_request_for_the_same_key(
    client: Client, signer: FakeCaramel
) -> None:
    installed(client, signer)
    key = key_of(client.file)
    client.client_id = "device-0002"
    result = client.run()
    assert result.returncode == 69
    assert "another client id" in result.stderr
    assert key_of(client.file) == key
    assert blocks(client.file) == ["PRIVATE KEY", "CERTIFICATE", "CERTIFICATE REQUEST"]
    names = {e.csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
             for e in signer.entries.values()}  # fmt: skip
    assert names == {CLIENT_ID, "device-0002"}


def test_verbose_output_never_shows_the_key(client: Client, signer: FakeCaramel) -> None:
    outputs = [client.run("-v")]
    first_key = key_of(client.file)
    signer.sign()
    outputs += [client.run("-v"), client.run("-v")]
    signer.reject()
    outputs.append(client.run("-v"))
    assert [r.returncode for r in outputs] == [69, 0, 0, 69]
    text = "".join(r.stdout + r.stderr for r in outputs)
    assert "PRIVATE KEY" not in text
    for key in (first_key, key_of(client.file)):
        base64_lines = pem.encode("PRIVATE KEY", key).decode().splitlines()[1:-1]
        assert not any(line in text for line in base64_lines)


def test_our_certificate_is_shown_where_proc_is_not_mounted(
    client: Client, signer: FakeCaramel
) -> None:
    """ssl takes the client certificate from a memory file opened through /proc; without
    /proc (a chroot, early boot) the locked combined file, which holds the same, serves."""
    import shutil

    installed(client, signer)
    signer.seen.clear()
    unshare = shutil.which("unshare")
    assert unshare, "this test needs unshare (util-linux) to hide /proc"
    hidden = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c",
         'mount -t tmpfs none /proc && exec "$@"', "sh", *client_command(), *client.args()],
        env=clean_environment(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (hidden.returncode, hidden.stderr) == (0, "")
    assert signer.requests("GET")[0].client_certificate is not None
