"""The bench's floor: the unchanged path done by a frozen Python with ``ssl`` alone.

    floor [--import-urllib3] URL CA_FILE COMBINED_FILE CLIENT_ID

A reference, not a client: ``make bench`` freezes it as the shipped bundle is frozen
(bench/floor.spec) and times it in the same rounds as the baseline and the client, so the
table shows what a frozen Python pays before any client code runs. It does the request of
bench/baseline.sh (same arguments) with no HTTP library and nothing of caramel_embedded:
trust only CA_FILE, TLS 1.2 at least, the combined file as the client certificate, one
``GET`` with the client id in the User-Agent and the file's modification time as
If-Modified-Since; 200 or 304 is success (0), anything else 127, as for the client.

With ``--import-urllib3`` it first imports urllib3 (which the client must use for HTTP) and
does nothing else with it: the difference between the two is the price of that import.

It imports only what ``ssl`` imports anyway (no urllib.parse, no email.utils, no argparse):
every module more would raise the floor. It does not check the certificate's expiry (the
baseline's ``openssl x509 -checkend``): the ``ssl`` module offers no public way to read a
certificate's dates from a file, and the point is the cost of start-up and one request.
"""

from __future__ import annotations

import gc
import os
import socket
import ssl
import sys
import time

USAGE = "usage: floor [--import-urllib3] URL CA_FILE COMBINED_FILE CLIENT_ID"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
TIMEOUT_SECONDS = 30.0  # as the baseline's curl --max-time


def http_date(timestamp: float) -> str:
    """IMF-fixdate in English whatever the locale (email.utils would cost an import)."""
    t = time.gmtime(timestamp)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def split_url(url: str) -> tuple[str, str, int, str]:
    """(authority, host, port, path) of an https URL (urllib.parse would cost an import)."""
    scheme, separator, rest = url.partition("://")
    if scheme.lower() != "https" or not separator:
        raise ValueError(f"not an https URL: {url}")
    authority, _, path = rest.partition("/")
    host, colon, port = authority.rpartition(":")
    if not colon or host.endswith(":"):  # no port, or a bare IPv6 literal
        host, port = authority, "443"
    return authority, host.strip("[]"), int(port), "/" + path


def status_of_request(url: str, ca_file: str, combined_file: str, client_id: str) -> int:
    """The status of one ``GET`` over TLS verified against CA_FILE alone."""
    authority, host, port, path = split_url(url)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=ca_file)
    # The combined file holds the key, the request and the certificate: OpenSSL takes the
    # first key and the certificate blocks and skips the CERTIFICATE REQUEST block.
    context.load_cert_chain(combined_file)
    request = (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {authority}\r\n"
        f"User-Agent: caramel-embedded-floor (client-id={client_id})\r\n"
        f"If-Modified-Since: {http_date(os.stat(combined_file).st_mtime)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    ).encode("ascii")
    with (
        socket.create_connection((host, port), timeout=TIMEOUT_SECONDS) as plain,
        context.wrap_socket(plain, server_hostname=host) as tls,
    ):
        tls.sendall(request)
        with tls.makefile("rb") as answer:
            status_line = answer.readline(1024)
    version, _, rest = status_line.partition(b" ")
    if not version.startswith(b"HTTP/1.") or not rest[:3].isdigit():
        raise ValueError(f"not an HTTP status line: {status_line!r}")
    return int(rest[:3])


def main(argv: list[str]) -> int:
    gc.disable()  # as the client does first (caramel_embedded.cli.main): the same start-up
    if argv[:1] == ["--import-urllib3"]:
        import urllib3  # noqa: F401  (the import is what this variant measures)

        argv = argv[1:]
    if len(argv) != 4:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        status = status_of_request(*argv)
    except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
        print(f"floor: {error}", file=sys.stderr)
        return 127
    return 0 if status in (200, 304) else 127


if __name__ == "__main__":
    # Ends as the client does (caramel_embedded.cli.run): flushed, then no interpreter
    # teardown, so that the floor stays the least a frozen Python pays for the request.
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
