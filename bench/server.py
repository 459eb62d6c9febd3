"""The bench's world: a CA, a device with its certificate installed, nginx on loopback.

nginx serves the device's certificate as a static file at ``/<sha256 of its request>``, as
a Caramel server (or a proxy in front of one) does, over TLS with ``ssl_verify_client
optional`` against the CA. Two ports give the two unchanged paths:

- ``not_modified``: ``if_modified_since exact`` -- nginx sends the file's time as
  ``Last-Modified`` and answers 304 to that exact ``If-Modified-Since``;
- ``same_certificate``: ``if_modified_since off`` -- always 200 with the same certificate
  (the Caramel server itself ignores the header).

The combined file and the served certificate carry the same modification time, so every
variant (the client and the curl baseline) sends the matching ``If-Modified-Since``.

A third port, ``renewal``, serves a renewed certificate for the same request (always 200):
a slow path that loads cryptography (the new certificate is checked against the key and
installed) without generating a key, whose time would vary from run to run. The bench
runs it on a fresh copy of the combined file each time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from caramel_embedded import pki, state
from testbed.ca_factory import make_authority, server_credentials
from testbed.processes import find_nginx, free_port

CLIENT_ID = "bench-device-0001"
PATHS = ("not_modified", "same_certificate")
RENEWAL = "renewal"
_DER = serialization.Encoding.DER


@dataclass(frozen=True)
class World:
    """What every variant is given: the CA, the device's file, and a URL per path."""

    ca_file: Path
    combined_file: Path
    urls: dict[str, str]
    server_url: dict[str, str]  # SERVER argument of the client, per path


def _device(directory: Path, ca_file: Path) -> tuple[Path, str]:
    """A combined file with a certificate installed, served at the request's digest."""
    authority = make_authority()
    authority.write(ca_file)
    key_der = pki.new_private_key(2048)
    request_der = pki.new_request(key_der, authority.certificate.public_bytes(_DER), CLIENT_ID)
    request = x509.load_der_x509_csr(request_der)
    certificate = authority.issue(
        request.public_key(),  # type: ignore[arg-type]
        request.subject,
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5),
    )
    combined = directory / "state" / "client.pem"
    combined.parent.mkdir()
    combined.write_bytes(state.compose(key_der, request_der, certificate.public_bytes(_DER)))
    combined.chmod(0o600)
    parsed = state.parse(combined.read_bytes())
    assert parsed is not None
    served = directory / "www" / parsed.request_sha256
    served.parent.mkdir()
    served.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    renewed = authority.issue(
        request.public_key(),  # type: ignore[arg-type]
        request.subject,
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
    )
    (directory / "www-renewed").mkdir()
    (directory / "www-renewed" / parsed.request_sha256).write_bytes(
        renewed.public_bytes(serialization.Encoding.PEM)
    )
    stamp = int(time.time()) - 60
    for path in (combined, served):
        os.utime(path, (stamp, stamp))
    server_credentials(authority, directory)
    return combined, parsed.request_sha256


def _nginx_conf(directory: Path, ca_file: Path, ports: dict[str, int]) -> str:
    user = "user root;" if os.geteuid() == 0 else ""
    servers = "".join(
        f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {directory}/server.crt;
        ssl_certificate_key {directory}/server.key;
        ssl_client_certificate {ca_file};
        ssl_verify_client optional;
        ssl_session_cache off;
        ssl_session_tickets off;
        root {directory}/{"www-renewed" if path == RENEWAL else "www"};
        default_type application/octet-stream;
        if_modified_since {"exact" if path == "not_modified" else "off"};
        etag off;
    }}"""
        for path, port in ports.items()
    )
    return f"""{user}
daemon off;
master_process on;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {directory}/nginx-tmp;
{servers}
}}
"""


def _wait_for_ports(ports: dict[str, int], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    for port in ports.values():
        while True:
            if process.poll() is not None:
                raise SystemExit("bench: nginx exited at start (see nginx-error.log)")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: nginx does not listen on {port}")
            time.sleep(0.05)


@contextlib.contextmanager
def running(directory: Path) -> Iterator[World]:
    """The world, with nginx up for as long as the block runs."""
    ca_file = directory / "ca.pem"
    combined, sha = _device(directory, ca_file)
    ports = {path: free_port() for path in (*PATHS, RENEWAL)}
    (directory / "nginx-tmp").mkdir()
    conf = directory / "nginx.conf"
    conf.write_text(_nginx_conf(directory, ca_file, ports))
    process = subprocess.Popen(
        [find_nginx(), "-p", str(directory), "-c", str(conf), "-e", str(directory / "nginx.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_ports(ports, process)
        yield World(
            ca_file=ca_file,
            combined_file=combined,
            urls={path: f"https://127.0.0.1:{port}/{sha}" for path, port in ports.items()},
            server_url={path: f"https://127.0.0.1:{port}" for path, port in ports.items()},
        )
    finally:
        process.terminate()
        process.wait(10)
