"""A fake Caramel server: pytest-httpserver over real TLS, answering as the protocol says.

It keeps requests by SHA-256 (posted, signed, rejected), records every request with the
client certificate the TLS layer saw, and lets a test force an answer or a delay.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from testbed.ca_factory import Authority, pem_of, server_credentials

PREFIX_ATTRIBUTES = (
    NameOID.COUNTRY_NAME,
    NameOID.STATE_OR_PROVINCE_NAME,
    NameOID.LOCALITY_NAME,
    NameOID.ORGANIZATION_NAME,
)
_SHA = re.compile(r"/(?:.*/)?([0-9a-f]{64})")


@dataclass
class Entry:
    csr_pem: bytes
    csr: x509.CertificateSigningRequest
    state: str = "pending"  # pending, signed, rejected
    certificate_pem: bytes | None = None
    last_modified: str | None = None


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    client_certificate: x509.Certificate | None
    body: bytes
    received: float = field(default_factory=time.time)  # once the whole request was read


@dataclass
class FakeCaramel:
    authority: Authority
    entries: dict[str, Entry] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    delay: float = 0.0
    forced: Callable[[Request], Response | None] | None = None
    honour_if_modified_since: bool = False
    auto_sign: bool = False  # sign every new request at once, as an app's Caramel server may
    cache_control: str | None = None  # sent on 200 and 304, as an operator's front may
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- admin ----------------------------------------------------------------------
    def only_entry(self) -> tuple[str, Entry]:
        assert len(self.entries) == 1, f"expected one request, have {len(self.entries)}"
        return next(iter(self.entries.items()))

    def sign(
        self,
        sha256: str | None = None,
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        public_key: object = None,
        common_name: str | None = None,
        authority: Authority | None = None,
        last_modified: str | None = None,
    ) -> x509.Certificate:
        sha256 = sha256 or self.only_entry()[0]
        entry = self.entries[sha256]
        subject = entry.csr.subject
        if common_name is not None:
            subject = x509.Name(
                [
                    x509.NameAttribute(
                        a.oid, common_name if a.oid == NameOID.COMMON_NAME else a.value
                    )
                    for a in subject
                ]
            )
        certificate = (authority or self.authority).issue(
            public_key or entry.csr.public_key(),  # type: ignore[arg-type]
            subject,
            not_before=not_before,
            not_after=not_after,
        )
        entry.state = "signed"
        entry.certificate_pem = pem_of(certificate)
        entry.last_modified = last_modified
        return certificate

    def reject(self, sha256: str | None = None) -> None:
        sha256 = sha256 or self.only_entry()[0]
        self.entries[sha256].state = "rejected"

    def requests(self, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if method is None or s.method == method]

    # --- protocol -------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        body = request.get_data()
        client_pem = request.environ.get("SSL_CLIENT_CERT")
        client = x509.load_pem_x509_certificate(client_pem.encode()) if client_pem else None
        with self.lock:
            self.seen.append(
                Seen(request.method, request.path, dict(request.headers), client, body)
            )
        if self.delay:
            time.sleep(self.delay)
        if self.forced is not None:
            forced = self.forced(request)
            if forced is not None:
                return forced
        if request.path.endswith("/root.crt") and request.method == "GET":
            return Response(self.authority.pem, 200, content_type="application/x-pem-file")
        match = _SHA.fullmatch(request.path)
        if match is None:
            return Response("not found", 404)
        sha256 = match.group(1)
        if request.method == "POST":
            return self._post(sha256, body, request)
        if request.method == "GET":
            return self._get(sha256, request)
        return Response("method not allowed", 405)

    def _post(self, sha256: str, body: bytes, request: Request) -> Response:
        if not request.content_length:
            return problem(411, "Length Required", "no length")
        if request.content_length > 2048:
            return problem(413, "Request Entity Too Large", "Max size: 2 kB")
        if hashlib.sha256(body).hexdigest() != sha256:
            return problem(400, "Bad Request", "hash mismatch")
        try:
            csr = x509.load_pem_x509_csr(body)
        except ValueError as error:
            return problem(400, "Bad Request", f"crypto error: {error}")
        ca_prefix = [a for a in self.authority.certificate.subject if a.oid in PREFIX_ATTRIBUTES]
        csr_prefix = [a for a in csr.subject if a.oid in PREFIX_ATTRIBUTES]
        if [(a.oid, a.value) for a in csr_prefix] != [(a.oid, a.value) for a in ca_prefix]:
            return problem(400, "Bad Request", "bad subject")
        if sha256 in self.entries:
            return problem(400, "Bad Request", "duplicate request")
        self.entries[sha256] = Entry(body, csr)
        if self.auto_sign:
            self.sign(sha256)
        return Response(
            json.dumps({"sha256": sha256, "url": f"https://{request.host}/{sha256}"}),
            202,
            content_type="application/json",
        )

    def _get(self, sha256: str, request: Request) -> Response:
        entry = self.entries.get(sha256)
        if entry is None:
            return Response("", 404)
        if entry.state == "rejected":
            return Response("", 403)
        if entry.state != "signed" or entry.certificate_pem is None:
            return Response("{}", 202, content_type="application/json")
        certificate = x509.load_pem_x509_certificate(entry.certificate_pem)
        if certificate.not_valid_after_utc <= dt.datetime.now(dt.UTC):
            return Response("{}", 202, content_type="application/json")
        headers = {}
        if self.cache_control is not None:
            headers["Cache-Control"] = self.cache_control
        if entry.last_modified is not None:
            headers["Last-Modified"] = entry.last_modified
            if (
                self.honour_if_modified_since
                and request.headers.get("If-Modified-Since") == entry.last_modified
            ):
                return Response(status=304, headers=headers)
        return Response(
            entry.certificate_pem, 200, headers=headers, content_type="application/octet-stream"
        )


class Gate:
    """Holds matching requests inside the signer until ``opened`` is set; notes who arrived.

    Set as ``FakeCaramel.forced``: a test then knows that an invocation is waiting for the
    answer (``arrival``) and lets it go when it chooses. It opens by itself after ``limit``
    seconds, whatever happens, so a failed test never hangs the suite.
    """

    def __init__(self, methods: tuple[str, ...] = ("GET", "POST"), limit: float = 90.0) -> None:
        self.methods = methods
        self.limit = limit
        self.arrived: list[str] = []
        self.arrival = threading.Event()
        self.opened = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response | None:
        if request.method in self.methods and not self.opened.is_set():
            with self._lock:
                self.arrived.append(f"{request.method} {request.path}")
            self.arrival.set()
            self.opened.wait(self.limit)
        return None  # then the signer answers as the protocol says

    def reset(self) -> None:
        with self._lock:
            self.arrived.clear()
        self.arrival.clear()
        self.opened.clear()


def problem(status: int, title: str, detail: str) -> Response:
    return Response(
        json.dumps({"status": status, "title": title, "detail": detail}),
        status,
        content_type="application/problem+json",
    )


def tls_server_context(authority: Authority, directory: Path) -> ssl.SSLContext:
    """Server TLS that asks for (but does not require) a client certificate from the CA."""
    cert_path, key_path = server_credentials(authority, directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.load_verify_locations(cadata=authority.pem.decode())
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


@contextlib.contextmanager
def serving(
    authority: Authority,
    directory: Path,
    host: str = "127.0.0.1",
    context: ssl.SSLContext | None = None,
) -> Iterator[FakeCaramel]:
    """A fake signer of ``authority`` on ``host`` for the block; ``.url`` and ``.port`` say
    where. ``context``: another server TLS (a certificate for one name only, say)."""
    server, fake = start(authority, directory, host, context)
    fake.port = server.port  # type: ignore[attr-defined]
    fake.url = f"https://{f'[{host}]' if ':' in host else host}:{server.port}"  # type: ignore[attr-defined]
    try:
        yield fake
    finally:
        server.clear()
        server.stop()


def start(
    authority: Authority,
    directory: Path,
    host: str = "127.0.0.1",
    context: ssl.SSLContext | None = None,
) -> tuple[HTTPServer, FakeCaramel]:
    signer = FakeCaramel(authority)
    server = HTTPServer(
        host=host,
        port=0,
        ssl_context=context or tls_server_context(authority, directory),
        threaded=True,
    )
    server.expect_request(re.compile(".*")).respond_with_handler(signer.handle)
    server.start()
    return server, signer
