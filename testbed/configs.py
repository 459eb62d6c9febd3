"""The files one stack runs on: Caramel's INI, nginx's configuration, the TLS certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testbed.processes import HarnessError

# --------------------------------------------------------------------------------------
# Configuration files

_LOG_FORMAT_FIELDS = {
    "front": "$front",
    "method": "$request_method",
    "uri": "$request_uri",
    "status": "$status",
    "body_bytes_sent": "$body_bytes_sent",
    "bytes_sent": "$bytes_sent",
    "request_length": "$request_length",
    "client_verify": "$ssl_client_verify",
    "client_subject": "$ssl_client_s_dn",
    "client_serial": "$ssl_client_serial",
    "user_agent": "$http_user_agent",
    "if_modified_since": "$http_if_modified_since",
    "last_modified": "$sent_http_last_modified",
    "cache_status": "$upstream_cache_status",
    "cache_control": "$sent_http_cache_control",
    "upstream_status": "$upstream_status",
}


def _log_format() -> str:
    """A JSON object per line: nginx escapes the values, json.loads reads them back."""
    body = ",".join(f'"{key}":"{var}"' for key, var in _LOG_FORMAT_FIELDS.items())
    return "{" + body + "}"


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one stack."""

    waitress: int
    mtls: int
    lm: int
    lm_origin: int


def sqlite_url(directory: Path) -> str:
    """The stack's default database: one SQLite file in its directory."""
    return f"sqlite:///{directory}/caramel.sqlite?check_same_thread=false&timeout=30"


def caramel_ini(
    directory: Path,
    ports: Ports,
    conditional: bool = False,
    *,
    filter_settings: Mapping[str, str] | None = None,
    database_url: str | None = None,
) -> str:
    """The Caramel/pserve configuration.

    ``conditional``: Caramel's app runs behind the operators' conditional filter
    (``for-caramel-operators/caramel_conditional.py``), wired as the operator's README
    says, through PasteDeploy's ``filter-with``; the admin tools read the same file. (A
    ``[pipeline:main]`` would not do: Caramel's admin scripts read their settings with
    ``get_appsettings``, which finds none in a pipeline, and then refuse to run.)

    ``check_same_thread=false``: ``caramel_tool --refresh`` signs in worker threads with
    objects from the main thread's SQLite connection; without it every refresh fails (and
    still exits 0). ``timeout=30``: its 16 threads wait for SQLite's one writer up to 30 s
    instead of the default 5 (on a loaded machine, re-signing 1,000 certificates hit the 5 s
    with "database is locked"). waitress trusts X-Forwarded-Proto from nginx on loopback,
    so the URLs Caramel puts in its JSON answers say https and the front's address.

    ``filter_settings``: lines of the filter's section (its hint: ``max_age``,
    ``resign_at``...), with ``conditional`` only. ``database_url``: another
    ``sqlalchemy.url`` (PostgreSQL for ``make fleet DB=postgresql``) than the SQLite file.
    """
    settings = "".join(f"{k} = {v}\n" for k, v in (filter_settings or {}).items())
    conditional_filter = (
        "filter-with = conditional\n\n"
        "[filter:conditional]\n"
        "paste.filter_factory = caramel_conditional:filter_factory\n" + settings
        if conditional
        else ""
    )
    return f"""\
[app:main]
use = egg:caramel
sqlalchemy.url = {database_url or sqlite_url(directory)}
ca.cert = {directory}/ca/caramel.ca.cert
ca.key = {directory}/ca/caramel.ca.key
lifetime.short = 48
lifetime.long = 168
{conditional_filter}
[server:main]
use = egg:waitress#main
listen = 127.0.0.1:{ports.waitress}
threads = 4
trusted_proxy = 127.0.0.1
trusted_proxy_headers = x-forwarded-proto
clear_untrusted_proxy_headers = yes

[loggers]
keys = root, caramel

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[logger_caramel]
level = INFO
handlers =
qualname = caramel

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)-5.5s [%(name)s] %(message)s
"""


def nginx_conf(
    directory: Path,
    ports: Ports,
    ca_cert: Path,
    lm_cache_seconds: int,
    more_caramels: Sequence[int] = (),
) -> str:
    """Both fronts and the Last-Modified origin in one nginx (one master, one log).

    ``more_caramels``: the ports of further Caramel processes, in the one ``upstream``
    beside the first (nginx spreads the requests over them, round robin).

    ``ssl_verify_client optional``: a client without a certificate is served, a verified
    one is logged as SUCCESS, and one whose certificate fails verification (expired, say)
    gets 400 before Caramel sees the request; this is why the client shows its certificate
    only while it is valid.

    Front ``lm``: nginx answers 304 itself only for responses it may cache and that carry
    ``Last-Modified``; Caramel sends none, and ``add_header`` acts too late for the 304
    check of the same server, so an inner server adds the header (the time of the fetch)
    and the front caches 200 answers for a short while.
    """
    user = "user root;" if os.geteuid() == 0 else ""
    tmp = directory / "nginx-tmp"
    proxy_headers = """
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;"""
    # The inner server passes on what the front told it.
    origin_headers = """
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto;"""
    tls = f"""
        ssl_certificate {directory}/tls/server.crt;
        ssl_certificate_key {directory}/tls/server.key;
        ssl_client_certificate {ca_cert};
        ssl_verify_client optional;
        ssl_verify_depth 2;
        ssl_session_cache off;
        ssl_session_tickets off;"""
    upstream = "\n        ".join(
        f"server 127.0.0.1:{port};" for port in (ports.waitress, *more_caramels)
    )
    return f"""\
{user}
daemon off;
master_process on;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/nginx-error.log notice;

events {{
    worker_connections 256;
}}

http {{
    server_tokens off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 64k;

    map $server_port $front {{
        {ports.mtls} mtls;
        {ports.lm} lm;
        {ports.lm_origin} lm-origin;
    }}
    log_format caramel escape=json '{_log_format()}';
    access_log {directory}/access.log caramel;

    proxy_cache_path {directory}/nginx-cache levels=1 keys_zone=certs:1m max_size=8m
                     inactive=10m use_temp_path=off;

    upstream caramel {{
        {upstream}
    }}

    server {{
        listen 127.0.0.1:{ports.mtls} ssl;
        server_name 127.0.0.1 localhost;{tls}

        location / {{
            proxy_pass http://caramel;{proxy_headers}
        }}
    }}

    server {{
        listen 127.0.0.1:{ports.lm_origin};
        server_name 127.0.0.1;

        location / {{
            proxy_pass http://caramel;{origin_headers}
            add_header Last-Modified $upstream_http_date;
        }}
    }}

    server {{
        listen 127.0.0.1:{ports.lm} ssl;
        server_name 127.0.0.1 localhost;{tls}

        location ~ "^/[0-9a-f]{{64}}$" {{
            proxy_pass http://127.0.0.1:{ports.lm_origin};{proxy_headers}
            proxy_cache certs;
            proxy_cache_key $request_uri;
            proxy_cache_valid 200 {lm_cache_seconds}s;
            add_header X-Cache-Status $upstream_cache_status always;
        }}

        location / {{
            proxy_pass http://127.0.0.1:{ports.lm_origin};{proxy_headers}
        }}
    }}
}}
"""


def make_tls_server_certificate(ca_cert_path: Path, ca_key_path: Path, out_dir: Path) -> None:
    """A certificate for 127.0.0.1 and localhost, issued by the Caramel CA.

    Clients trust only the Caramel CA, as deployments do when the CA serves both roles.
    Its notBefore is not earlier than the CA's, a nesting some verifiers insist on.
    """
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    if not isinstance(ca_key, rsa.RSAPrivateKey):
        raise HarnessError("caramel_ca made a key that is not RSA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    not_before = max(now - dt.timedelta(minutes=1), ca_cert.not_valid_before_utc)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Caramel E2E"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    out_dir.mkdir(mode=0o700, exist_ok=True)
    key_path = out_dir / "server.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    (out_dir / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
