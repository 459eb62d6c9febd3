"""Seed corpora: the test suite's kinds of input, made once per cache (``make fuzz``).

Certificates, CA bundles, requests, keys, combined files and the server's answers are made
with the test suite's certificate factory (``testbed.ca_factory``) and the client's own
``pki`` (too big, and too easily remade, to check in); the short texts (dates, SERVERs,
command lines, proxy URLs, hardware files) are written here as the tests write them.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from caramel_embedded import hint, pem, state
from fuzz.identity import identity

_SEPARATOR = b"\n--\n"  # between the parts of one client_id or proxy input


def generate(directory: Path) -> Path:
    """The seeds, under ``directory/TARGET/``; made once per target (a marker in its folder
    says they are complete), so that a target added later gets its own in an old cache."""
    from fuzz.targets import NAMES

    if all((directory / target / ".complete").exists() for target in NAMES):
        return directory
    for target, inputs in _all().items():
        folder = directory / target
        folder.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)  # noqa: S324 - a name
        (folder / ".complete").touch()
    return directory


def _all() -> dict[str, list[bytes]]:
    device = identity()
    certificates = _certificates()
    ders = [device.ca_der, device.certificate_der, device.request_der, device.key_der]
    ders += certificates
    pems = [pem.encode(pem.CERTIFICATE, der) for der in ders[:2] + certificates]
    pems.append(b"".join(pems[2:5]))  # a bundle, as a rollover ships one
    pems.append(pems[0].replace(b"\n", b"\r\n"))
    pems.append(pem.encode(pem.PRIVATE_KEY, device.key_der) + pems[1])
    combined = [
        state.compose(device.key_der, device.request_der),
        state.compose(device.key_der, device.request_der, device.certificate_der),
        pem.encode(pem.PRIVATE_KEY, device.key_der),
    ]
    return {
        "der": ders,
        "pem": pems,
        "state": combined,
        "transport": list(_answers(pems[1])),
        "httpdate": _texts(
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Mon, 29 Feb 2028 12:00:00 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            " Tue, 07 Dec 2026 20:47:46 GMT ",
        ),
        "hint": [
            *_texts(
                "max-age=3600",
                "public, max-age=600",
                'private="a, max-age=9", max-age=60',
                "no-cache, max-age=5",
                "max-age=99999999999",
            ),
            _stamp(),
        ],
        "tpm_blob": _tpm_blobs(),
        "server_address": _texts(
            "ca.example",
            "ca.example:8443",
            "https://ca.example:8443/caramel/",
            "https://127.0.0.1:1/elsewhere",
            "https://[::1]/p",
            "[::1]:8443",
            "https://xn--bcher-kva.test",
            "HTTPS://Ca.Example",
            "http://ca.example",
        ),
        "command_line": [
            b"\0".join(words)
            for words in (
                [
                    b"127.0.0.1:8443",
                    b"dev-01",
                    b"--ca-cert",
                    b"/tmp/ca.pem",
                    b"--file",
                    b"/tmp/client.pem",
                    b"--timeout",
                    b"5",
                    b"--status",
                ],
                [b"--mode=0640", b"--owner", b"root:root", b"-v", b"ca.example"],
                [b"--wait", b"--wait-limit", b"60", b"--wait-interval=0.5", b"host"],
                [b"--key-bits", b"4096", b"--client-id-from", b"mac:eth0", b"-vh"],
                [b"--proxy", b"http://device:hunter2@proxy:3128", b"--", b"-1", b"x"],
                [b"--version"],
                [b"--print-client-id", b"--bogus"],
                [b"-", b"-.5"],
                [b"--print-ca", b"--sbom", b"--syslog", b"--timeout", b"-2"],
            )
        ],
        "client_id": [
            _SEPARATOR.join(parts)
            for parts in (
                [b"0123abcd\0", b"", b"Serial\t\t: 00000000c0ffee01\n", b"To be filled by O.E.M."],
                [
                    b"",
                    b"",
                    b"processor\t: 0\nSerial\t\t: 0000000000000000\n",
                    b"",
                    b"00:11:22:AA:bb:cc\n",
                    b"0f1e2d3c4b5a69788796a5b4c3d2e1f0\n",
                    b"dev-7\nrest",
                ],
                [b"", b"", b"", b"", b"00:00:00:00:00:00\n", b"", b"\n"],
            )
        ],
        "proxy": [
            _SEPARATOR.join(parts)
            for parts in (
                [
                    b"http://device:hunter2@proxy:3128",
                    b"localhost,.example,10.0.0.0/8",
                    b"ca.example",
                    b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01",
                    b"\x05\x01",
                ],
                [
                    b"http://u:p%40ss@proxy:1",
                    b"*",
                    b"[::1]",
                    b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic"
                    b"\r\n\r\n",
                    b"",
                ],
                [b"[::1]:8080", b"", b"127.0.0.1", b"HTTP/1.0 200 OK\r\n\r\n", b"\x01"],
                [b"socks5://proxy", b"::1/128", b"::1", b"garbage\r\n\r\n", b""],
            )
        ],
    }


def _stamp() -> bytes:
    """A stamp as the client writes one."""
    facts = hint.Facts(
        "ab" * 32, 1234, 1_765_000_000_123_456_789, "https://ca:443", "dev-1", "cd" * 32
    )
    return hint.render(hint.Stamp(facts, 1_765_000_000, 1_765_003_600))


def _tpm_blobs() -> list[bytes]:
    """Blocks laid out as tpm2-openssl writes them (a TPM is not needed to read one)."""
    from testbed.tss2 import blob, public_area

    return [blob(), blob(public_area(exponent=65537, scheme=b"\x00\x14\x00\x0b"))]


def _texts(*texts: str) -> list[bytes]:
    return [text.encode() for text in texts]


def _certificates() -> list[bytes]:
    """CAs and a leaf as the tests make them: UTCTime and GeneralizedTime, a bundle's two."""
    from testbed.ca_factory import make_authority, new_key
    from testbed.ca_factory import name as name_of

    utc = dt.UTC
    old = make_authority(
        ((NameOID.COUNTRY_NAME, "SE"), (NameOID.COMMON_NAME, "Old CA")),
        dt.datetime(1999, 12, 31, tzinfo=utc),
        dt.datetime(2051, 6, 1, tzinfo=utc),
        key_slot=1,
    )
    new = make_authority(key_slot=2)
    leaf = new.issue(new_key(3).public_key(), name_of(((NameOID.COMMON_NAME, "dev:01@a.b"),)))
    return [_der(old.certificate), _der(new.certificate), _der(leaf)]


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def _answers(certificate_pem: bytes) -> Iterable[bytes]:
    """The answers the fake signer and the real server's front give, as bytes on the wire."""

    def answer(status: str, headers: list[str], body: bytes) -> bytes:
        lines = [f"HTTP/1.1 {status}", *headers, f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    json = "Content-Type: application/problem+json"
    yield answer("200 OK", ["Content-Type: application/octet-stream"], certificate_pem)
    yield answer(
        "200 OK",
        ["Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT", "Cache-Control: max-age=3600"],
        certificate_pem,
    )
    yield answer("304 Not Modified", ["Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT"], b"")
    yield answer("202 Accepted", ["Content-Type: application/json"], b'{"sha256": "ab"}')
    yield answer("404 Not Found", [], b"")
    yield answer("403 Forbidden", [], b"")
    yield answer("400 Bad Request", [json], b'{"title": "Bad", "detail": "duplicate request"}')
    yield answer("500 Error", ["Content-Type: text/html"], b"<html><title>Oops</title></html>")
    yield answer("301 Moved", ["Location: https://elsewhere/"], b"")
    yield answer("200 OK", ["Content-Encoding: gzip"], gzip.compress(certificate_pem, mtime=0))
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(certificate_pem), certificate_pem)
    yield b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked


if __name__ == "__main__":
    print(generate(Path(os.environ.get("FUZZ_CACHE", ".cache/fuzz")) / "seeds"))
