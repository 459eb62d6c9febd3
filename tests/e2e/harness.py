"""A real Caramel server behind nginx, on loopback ports, for the e2e suite and the demo.

The fake signer in the package suite proves what we *think* the server does; this harness
runs what users deploy: Caramel 1.9.6 from PyPI under waitress (``pserve``), fronted by
nginx terminating TLS with ``ssl_verify_client optional`` against the Caramel CA.

Layout of one stack (every port a free loopback port, every file in one temporary
directory that is removed at the end):

* ``waitress`` runs the Caramel app (plain HTTP, reachable from nginx only in practice);
* front ``mtls`` (``front_url``) terminates TLS, asks for an optional client certificate,
  proxies to waitress and logs each request as one JSON line;
* front ``lm`` (``lm_front_url``) is the same, but fetches certificates through an inner
  nginx server that stamps ``Last-Modified`` on them and caches them for a short time, so
  nginx itself answers ``304`` to a matching ``If-Modified-Since`` (the server never does);
* ``caramel_tool`` administers (list, sign, reject, refresh).

Caramel gets its own virtualenv, cached in ``<repo>/.cache/caramel-server-venv``: its
pins (pyOpenSSL 24.2.1, cryptography < 44) conflict with the client's, and a fresh one
costs a download. Every process is started in its own session and dies with us: on
leaving the context, on an exception or interrupt, at interpreter exit, and (through the
kernel's parent-death signal) even when the Python process running us is killed.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import datetime as dt
import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_VENV = REPO_ROOT / ".cache" / "caramel-server-venv"

# The server's whole dependency set, pinned exactly so that every machine runs the same
# server. caramel 1.9.6 itself only asks for pyOpenSSL>=22 and cryptography>=38, but it
# uses OpenSSL.crypto.X509Extension, which pyOpenSSL removed after 24.2.1, and that
# pyOpenSSL needs cryptography < 44. pyramid imports pkg_resources, hence setuptools.
SERVER_REQUIREMENTS: tuple[str, ...] = (
    "caramel==1.9.6",
    "pyOpenSSL==24.2.1",
    "cryptography==43.0.3",
    "cffi==2.1.1",
    "pycparser==3.12",
    "SQLAlchemy==1.4.54",
    "greenlet==3.5.6",
    "pyramid==2.1",
    "pyramid_tm==2.6",
    "transaction==5.1",
    "zope.sqlalchemy==4.1",
    "zope.interface==8.7",
    "zope.deprecation==6.0",
    "waitress==3.0.2",
    "WebOb==1.8.11",
    "hupper==1.12.1",
    "plaster==1.1.2",
    "plaster-pastedeploy==1.0.1",
    "PasteDeploy==3.1.0",
    "translationstring==1.4",
    "venusian==3.1.1",
    "python-dateutil==4.0.0",
    "tzdata==2026.6",
    "packaging==26.4",
    "setuptools==65.5.0",
)

# The CA's subject as caramel_ca asks for it on stdin, in its prompt order: C, ST, L, O,
# OU (CN is fixed to "Caramel Signing Certificate"). ST is cut at 20 characters.
CA_SUBJECT_ANSWERS: tuple[tuple[str, str], ...] = (
    ("C", "SE"),
    ("ST", "Ostergotland"),
    ("L", "Linkoping"),
    ("O", "Caramel Embedded E2E"),
    ("OU", "Devices"),
)

# How long front "lm" keeps a fetched certificate (and so its Last-Modified).
LM_CACHE_SECONDS = 30

STARTUP_TIMEOUT = 30.0
# Ports are chosen free, then bound by another process a moment later: another program
# may take one in between. A start that finds its port taken is retried on new ports.
PORT_ATTEMPTS = 3
STOP_TIMEOUT = 10.0


class HarnessError(RuntimeError):
    """The stack could not be built or an admin command failed: not a client failure."""


# --------------------------------------------------------------------------------------
# The server's virtualenv


def _requirements_key() -> str:
    """What the cached venv must have been made from to be reused."""
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    text = "\n".join((base, sys.version, *SERVER_REQUIREMENTS))
    return hashlib.sha256(text.encode()).hexdigest()


def _progress(message: str) -> None:
    """Slow, one-time work says what it does: a silent minute looks like a hang."""
    print(f"[caramel e2e] {message}", file=sys.stderr, flush=True)


def ensure_server_venv(venv: Path = SERVER_VENV) -> Path:
    """The cached server venv, made (or remade, when the pins changed) under a lock.

    The lock keeps two concurrent runs from building the same directory at once.
    """
    stamp = venv / ".caramel-e2e-requirements"
    key = _requirements_key()
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / (venv.name + ".lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == key:
            return venv
        started = time.monotonic()
        _progress(f"creating the Caramel server venv in {venv} (once; it is cached)")
        shutil.rmtree(venv, ignore_errors=True)
        _checked([sys.executable, "-m", "venv", str(venv)], "python -m venv")
        requirements = venv / "requirements.txt"
        requirements.write_text("\n".join(SERVER_REQUIREMENTS) + "\n")
        _checked(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--requirement",
                str(requirements),
            ],
            "pip install of the server requirements",
        )
        # X509Extension is what newer pyOpenSSL lacks: prove the import works now, not
        # halfway through a test.
        _checked(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import caramel, caramel.models, OpenSSL.crypto; OpenSSL.crypto.X509Extension",
            ],
            "importing caramel in the server venv",
        )
        stamp.write_text(key)
        _progress(f"server venv ready in {time.monotonic() - started:.0f} s")
        return venv


def _checked(argv: Sequence[str], what: str) -> None:
    """Run a setup command; its output matters only when it fails."""
    done = subprocess.run(
        argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        raise HarnessError(f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


# --------------------------------------------------------------------------------------
# Processes that cannot outlive us

_PR_SET_PDEATHSIG = 1
_LIVE: set[Service] = set()
_LIVE_LOCK = threading.Lock()


try:
    _PRCTL: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: no parent-death signal
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGTERM when our parent dies.

    This is the safeguard for a parent killed with SIGKILL, where no Python cleanup runs.
    The function was looked up before the fork: the child only makes the call.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass(eq=False)
class Service:
    """One long-running child process (and its process group), with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        """Whether the process has not exited yet."""
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The end of its log, for error messages."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """TERM the whole group, KILL it if it lingers, and reap the leader."""
        with INTERRUPTS.critical():
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=STOP_TIMEOUT)
            with _LIVE_LOCK:
                _LIVE.discard(self)


def start_service(
    name: str, argv: Sequence[str], log: Path, cwd: Path, env: dict[str, str]
) -> Service:
    """Start a child in its own session (so one killpg reaches all it forks)."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (one foreign call, no locks)
        )
    service = Service(name, process, log)
    with _LIVE_LOCK:
        _LIVE.add(service)
    return service


@atexit.register
def _stop_leftovers() -> None:
    """Whatever a crashed caller did not stop is stopped when Python exits."""
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for service in leftovers:
        service.stop()


class _Interrupts:
    """TERM, HUP and INT unwind like Ctrl-C, except inside ``critical()`` sections.

    Python's default for TERM is to die at once, skipping every ``finally``, so the stack
    would outlive us. And an interrupt that lands between starting a process and
    recording it (or halfway through stopping one) would lose it: such sections defer
    the interrupt to their end.
    """

    signals = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

    def __init__(self) -> None:
        self.depth = 0
        self.pending: str | None = None

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.depth:
            self.pending = name
            return
        raise KeyboardInterrupt(f"signal {name}")

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """Run a block to its end; an interrupt meanwhile is raised after it."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if self.depth == 0 and self.pending is not None:
                name, self.pending = self.pending, None
                raise KeyboardInterrupt(f"signal {name}")

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle the signals while the block runs (main thread only: elsewhere Python
        cannot install handlers, and the defaults stay)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handler) for sig in self.signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


INTERRUPTS = _Interrupts()


WORKDIR_PREFIX = "caramel-e2e-"
OWNER_FILE = "owner.pid"


def remove_stale_workdirs() -> None:
    """Remove the working directories of runs that were killed outright (SIGKILL).

    Their processes died with them (parent-death signal); only the directory is left. A
    directory counts as stale when the process named in its owner file is gone.
    """
    for directory in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            owner = int((directory / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(directory, ignore_errors=True)
        except PermissionError:
            continue


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PortTaken(HarnessError):
    """Another process took a port between our choice and the service's bind."""


def wait_until_ready(
    service: Service, ready: Callable[[], bool], what: str, timeout: float = STARTUP_TIMEOUT
) -> None:
    """Return once ``ready()`` holds; fail early, with the log, if the service died.

    ``ready`` must prove that *our* process answers (a listener that another program
    put on the port would accept connections too): it checks content only we serve.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            tail = service.log_tail()
            error = PortTaken if "in use" in tail else HarnessError
            raise error(
                f"{service.name} exited with {service.process.returncode} before {what}:\n{tail}"
            )
        with contextlib.suppress(OSError, ssl.SSLError):
            if ready():
                return
        time.sleep(0.05)
    raise HarnessError(f"{service.name}: no {what} within {timeout} s:\n{service.log_tail()}")


def serves_ca_over_http(port: int, ca_pem: bytes) -> bool:
    """Caramel answers /root.crt with our CA: this waitress is ours."""
    with socket.create_connection(("127.0.0.1", port), 1) as sock:
        sock.sendall(b"GET /root.crt HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.startswith(b"HTTP/1.0 200 ") and answer.endswith(ca_pem)


def tls_handshake_with_ca(port: int, ca_cert: Path) -> bool:
    """A handshake that verifies against our CA: this nginx is ours, and has bound all its
    ports (nginx binds every listen socket before it accepts on any)."""
    context = ssl.create_default_context(cafile=str(ca_cert))
    with (
        socket.create_connection(("127.0.0.1", port), 1) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1"),
    ):
        return True


def find_nginx() -> str:
    """nginx lives in /usr/sbin, which a non-root PATH often lacks."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise HarnessError("nginx is not installed: run `make system-deps`")
    return found


# --------------------------------------------------------------------------------------
# What the server and nginx tell us


@dataclass(frozen=True)
class CsrRecord:
    """One line of ``caramel_tool --list``: ``ID CN SHA256 NOT_AFTER``.

    Rejected requests are not listed; NOT_AFTER is ``----------`` until signed.
    """

    id: int
    cn: str
    sha256: str
    not_after: dt.datetime | None

    @property
    def signed(self) -> bool:
        """Whether a certificate was ever issued for it."""
        return self.not_after is not None


def parse_csr_list(output: str) -> list[CsrRecord]:
    """Parse ``caramel_tool --list``; a line in another shape is an error, not skipped."""
    records = []
    for line in output.splitlines():
        if not line.strip():
            continue
        fields = line.split(" ", 3)
        if len(fields) != 4 or not fields[0].isdigit() or len(fields[2]) != 64:
            raise HarnessError(f"unexpected caramel_tool --list line: {line!r}")
        csr_id, cn, sha256, not_after = fields
        when = None if not_after.strip("-") == "" else dt.datetime.fromisoformat(not_after)
        records.append(CsrRecord(int(csr_id), cn, sha256, when))
    return records


@dataclass(frozen=True)
class AdminRun:
    """One caramel_tool command and what it said."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


@dataclass(frozen=True)
class AccessRecord:
    """One request as nginx logged it (our JSON ``log_format``)."""

    front: str
    method: str
    uri: str
    status: int
    body_bytes_sent: int
    bytes_sent: int
    client_verify: str
    client_subject: str
    client_serial: str
    user_agent: str
    if_modified_since: str
    last_modified: str
    cache_status: str
    upstream_status: str

    @property
    def path(self) -> str:
        """The URI without a leading slash: the sha256 for certificate requests."""
        return self.uri.lstrip("/")

    def summary(self) -> str:
        """One readable line, for reports and failure messages."""
        parts = [f"{self.front}: {self.method} {self.uri[:20]}… -> {self.status}"]
        parts.append(f"{self.body_bytes_sent} body bytes")
        parts.append(f"client cert {self.client_verify}")
        if self.client_subject:
            parts.append(f"({self.client_subject})")
        if self.if_modified_since:
            parts.append(f"If-Modified-Since {self.if_modified_since!r}")
        if self.last_modified:
            parts.append(f"Last-Modified {self.last_modified!r}")
        parts.append(f"UA {self.user_agent!r}")
        return ", ".join(parts)


def _as_int(value: str) -> int:
    return int(value) if value.isdigit() else 0


def parse_access_log(text: str) -> list[AccessRecord]:
    """Every complete line of the access log, in order."""
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        records.append(
            AccessRecord(
                front=raw["front"],
                method=raw["method"],
                uri=raw["uri"],
                status=_as_int(raw["status"]),
                body_bytes_sent=_as_int(raw["body_bytes_sent"]),
                bytes_sent=_as_int(raw["bytes_sent"]),
                client_verify=raw["client_verify"],
                client_subject=raw["client_subject"],
                client_serial=raw["client_serial"],
                user_agent=raw["user_agent"],
                if_modified_since=raw["if_modified_since"],
                last_modified=raw["last_modified"],
                cache_status=raw["cache_status"],
                upstream_status=raw["upstream_status"],
            )
        )
    return records


# --------------------------------------------------------------------------------------
# Configuration files

_LOG_FORMAT_FIELDS = {
    "front": "$front",
    "method": "$request_method",
    "uri": "$request_uri",
    "status": "$status",
    "body_bytes_sent": "$body_bytes_sent",
    "bytes_sent": "$bytes_sent",
    "client_verify": "$ssl_client_verify",
    "client_subject": "$ssl_client_s_dn",
    "client_serial": "$ssl_client_serial",
    "user_agent": "$http_user_agent",
    "if_modified_since": "$http_if_modified_since",
    "last_modified": "$sent_http_last_modified",
    "cache_status": "$upstream_cache_status",
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


def caramel_ini(directory: Path, ports: Ports) -> str:
    """The Caramel/pserve configuration.

    ``check_same_thread=false``: ``caramel_tool --refresh`` signs in worker threads with
    objects from the main thread's SQLite connection; without it every refresh fails (and
    still exits 0). waitress trusts X-Forwarded-Proto from nginx on loopback, so the URLs
    Caramel puts in its JSON answers say https and the front's address.
    """
    return f"""\
[app:main]
use = egg:caramel
sqlalchemy.url = sqlite:///{directory}/caramel.sqlite?check_same_thread=false
ca.cert = {directory}/ca/caramel.ca.cert
ca.key = {directory}/ca/caramel.ca.key
lifetime.short = 48
lifetime.long = 168

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


def nginx_conf(directory: Path, ports: Ports, ca_cert: Path, lm_cache_seconds: int) -> str:
    """Both fronts and the Last-Modified origin in one nginx (one master, one log).

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
        server 127.0.0.1:{ports.waitress};
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


# --------------------------------------------------------------------------------------
# The stack


class CaramelStack:
    """Caramel 1.9.6 under waitress behind two nginx fronts, as a context manager.

    Use::

        with CaramelStack() as stack:
            run_client([..., "--ca-cert", str(stack.ca_cert), stack.front_url, "dev-1"])

    Admin commands (``list_requests``, ``sign``, ``reject``, ``refresh``) raise
    ``HarnessError`` when caramel_tool reports a failure, including the ones it reports
    only in its output. ``admin_history`` keeps every admin command for reports.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        lm_cache_seconds: int = LM_CACHE_SECONDS,
        keep: bool = False,
    ) -> None:
        self._given_workdir = workdir
        self._keep = keep
        self.lm_cache_seconds = lm_cache_seconds
        # Set by start(); removed by close() only if start() made it.
        self.directory = Path("/nonexistent/caramel-e2e-not-started")
        self._made_workdir: Path | None = None
        self.venv = SERVER_VENV
        self.ports = Ports(0, 0, 0, 0)
        self.caramel: Service | None = None
        self.nginx: Service | None = None
        self.admin_history: list[AdminRun] = []
        self._signals: contextlib.ExitStack | None = None

    # ---- paths and addresses

    @property
    def ini(self) -> Path:
        """The Caramel configuration file (the argument of every caramel command)."""
        return self.directory / "caramel.ini"

    @property
    def ca_cert(self) -> Path:
        """The Caramel CA certificate: the only trust anchor of every client."""
        return self.directory / "ca" / "caramel.ca.cert"

    @property
    def ca_key(self) -> Path:
        """The CA's private key (tests forge certificates with it)."""
        return self.directory / "ca" / "caramel.ca.key"

    @property
    def access_log_path(self) -> Path:
        """nginx's JSON-lines access log, shared by all fronts."""
        return self.directory / "access.log"

    @property
    def front_url(self) -> str:
        """Front ``mtls``: TLS, optional client certificate, straight to Caramel."""
        return f"https://127.0.0.1:{self.ports.mtls}"

    @property
    def lm_front_url(self) -> str:
        """Front ``lm``: like ``mtls``, plus Last-Modified and 304 on certificates."""
        return f"https://127.0.0.1:{self.ports.lm}"

    def tool(self, name: str) -> Path:
        """A console script of the server venv."""
        return self.venv / "bin" / name

    def server_env(self) -> dict[str, str]:
        """The server's environment: Caramel also reads CARAMEL_* (CARAMEL_CA_CERT, say),
        the same names as the client's settings, so none of ours may leak into it."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CARAMEL_") and k not in {"PYTHONPATH", "PYTHONHOME"}
        }
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv)
        return env

    # ---- lifecycle

    def __enter__(self) -> CaramelStack:
        self._signals = contextlib.ExitStack()
        self._signals.enter_context(INTERRUPTS.installed())
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Build everything and return once both fronts accept connections."""
        self.venv = ensure_server_venv()
        if self._given_workdir is not None:
            self._given_workdir.mkdir(parents=True, exist_ok=True)
            self.directory = self._given_workdir
        else:
            remove_stale_workdirs()
            self.directory = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
            self._made_workdir = self.directory
        (self.directory / OWNER_FILE).write_text(f"{os.getpid()}\n")
        self.ports = Ports(free_port(), free_port(), free_port(), free_port())
        self.ini.write_text(caramel_ini(self.directory, self.ports))
        self._run_setup(["caramel_initialize_db", str(self.ini)], "caramel_initialize_db")
        self._make_ca()
        make_tls_server_certificate(self.ca_cert, self.ca_key, self.directory / "tls")
        for attempt in range(PORT_ATTEMPTS):
            try:
                self.start_caramel()
                break
            except PortTaken:
                if attempt == PORT_ATTEMPTS - 1:
                    raise
                self.ports = dataclasses.replace(self.ports, waitress=free_port())
                self.ini.write_text(caramel_ini(self.directory, self.ports))
        for attempt in range(PORT_ATTEMPTS):
            try:
                self.start_nginx()
                break
            except PortTaken:
                if attempt == PORT_ATTEMPTS - 1:
                    raise
                self.ports = Ports(self.ports.waitress, free_port(), free_port(), free_port())

    def _run_setup(
        self, argv: list[str], what: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.tool(argv[0])), *argv[1:]]
        done = subprocess.run(
            argv,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            check=False,
            cwd=self.directory,
            env=self.server_env(),
            timeout=120,
        )
        if done.returncode != 0:
            raise HarnessError(f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done

    def _make_ca(self) -> None:
        """caramel_ca prompts for C, ST, L, O, OU on stdin and exits 0 even when it refuses
        (existing files, missing settings), so success is judged by its files."""
        answers = "".join(value + "\n" for _, value in CA_SUBJECT_ANSWERS)
        done = self._run_setup(["caramel_ca", str(self.ini)], "caramel_ca", stdin=answers)
        if not (self.ca_cert.is_file() and self.ca_key.is_file()):
            raise HarnessError(f"caramel_ca made no CA:\n{done.stdout}{done.stderr}")
        self.ca_key.chmod(0o600)

    def start_caramel(self) -> None:
        """pserve (waitress) on its loopback port."""
        if self.caramel is not None and self.caramel.alive():
            return
        with INTERRUPTS.critical():
            self.caramel = start_service(
                "caramel (pserve)",
                [str(self.tool("pserve")), str(self.ini)],
                self.directory / "pserve.log",
                self.directory,
                self.server_env(),
            )
        ca_pem = self.ca_cert.read_bytes()
        port = self.ports.waitress
        wait_until_ready(
            self.caramel, lambda: serves_ca_over_http(port, ca_pem), f"serving on {port}"
        )

    def start_nginx(self) -> None:
        """nginx in the foreground with its own prefix, pid, temp paths and logs."""
        if self.nginx is not None and self.nginx.alive():
            return
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.directory / "nginx-tmp" / sub).mkdir(parents=True, exist_ok=True)
        conf = self.directory / "nginx.conf"
        conf.write_text(
            nginx_conf(self.directory, self.ports, self.ca_cert, self.lm_cache_seconds)
        )
        with INTERRUPTS.critical():
            self.nginx = start_service(
                "nginx",
                [
                    find_nginx(),
                    "-p",
                    str(self.directory),
                    "-c",
                    str(conf),
                    "-e",
                    str(self.directory / "nginx-error.log"),
                ],
                self.directory / "nginx-error.log",
                self.directory,
                self.server_env(),
            )
        for port in (self.ports.mtls, self.ports.lm):
            wait_until_ready(
                self.nginx,
                lambda port=port: tls_handshake_with_ca(port, self.ca_cert),
                f"TLS on {port}",
            )

    def stop_caramel(self) -> None:
        """Stop waitress: nginx stays up and answers 502."""
        if self.caramel is not None:
            self.caramel.stop()

    def stop_nginx(self) -> None:
        """Stop nginx: connections to the fronts are refused."""
        if self.nginx is not None:
            self.nginx.stop()

    def close(self) -> None:
        """Stop every process, then remove the working directory (unless kept).

        A second Ctrl-C or TERM meanwhile waits until this is done.
        """
        with INTERRUPTS.critical():
            try:
                self.stop_nginx()
                self.stop_caramel()
            finally:
                if self._signals is not None:
                    self._signals.close()
                    self._signals = None
                if not self._keep and self._made_workdir is not None:
                    shutil.rmtree(self._made_workdir, ignore_errors=True)
                    self._made_workdir = None

    # ---- administration

    def admin(self, *args: str) -> AdminRun:
        """Run ``caramel_tool INI ARGS`` and remember it; the caller judges the result."""
        argv = [str(self.tool("caramel_tool")), str(self.ini), *args]
        started = time.monotonic()
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            cwd=self.directory,
            env=self.server_env(),
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        run = AdminRun(argv, done.returncode, done.stdout, done.stderr, time.monotonic() - started)
        self.admin_history.append(run)
        return run

    def _admin_ok(self, *args: str) -> AdminRun:
        """caramel_tool logs errors to stderr, sometimes with status 0 (--refresh): any
        output on stderr is a failure."""
        done = self.admin(*args)
        if done.returncode != 0 or done.stderr.strip():
            raise HarnessError(
                f"caramel_tool {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}"
            )
        return done

    def list_requests(self) -> list[CsrRecord]:
        """The requests that are not rejected, signed ones first."""
        return parse_csr_list(self._admin_ok("--list").stdout)

    def request(self, sha256: str) -> CsrRecord | None:
        """The listed request with this CSR hash, if any."""
        return next((r for r in self.list_requests() if r.sha256 == sha256), None)

    def sign(self, csr_id: int) -> AdminRun:
        """``--sign ID``: ID is the number in the first column of --list, not a CN or hash.

        Two certificates for one CSR signed within the same second have the same
        notAfter, and the server picks the latest by notAfter: callers that sign again
        wait a second (see ``refresh``).
        """
        return self._admin_ok("--sign", str(csr_id))

    def reject(self, csr_id: int) -> AdminRun:
        """``--reject ID``: the server then answers 403 for it, and --list hides it."""
        return self._admin_ok("--reject", str(csr_id))

    def refresh(self, *extra: str) -> AdminRun:
        """``--refresh``: re-sign every signed request. It signs in worker threads and
        reports their failures only as log lines ("Future failed: ...") with status 0,
        which ``_admin_ok`` turns into an error."""
        return self._admin_ok("--refresh", *extra)

    # ---- what nginx saw

    def access_records(self) -> list[AccessRecord]:
        """Every request logged so far, in order."""
        try:
            text = self.access_log_path.read_text()
        except FileNotFoundError:
            return []
        # A line still being written has no newline yet: leave it for the next read.
        complete = text[: text.rfind("\n") + 1]
        return parse_access_log(complete)

    def log_mark(self, settle: float = 0.05) -> int:
        """A position in the access log: pass it to ``records_since``.

        nginx logs a request just after answering it, so the line of a request that has
        just been answered may still be coming: the mark is taken once the log has been
        quiet for ``settle`` seconds.
        """
        count = len(self.access_records())
        while True:
            time.sleep(settle)
            again = len(self.access_records())
            if again == count:
                return count
            count = again

    def records_since(
        self,
        mark: int,
        until: Callable[[list[AccessRecord]], bool] | None = None,
        timeout: float = 3.0,
    ) -> list[AccessRecord]:
        """Requests logged after ``mark``.

        nginx writes a line after it has sent the answer, so a client may exit before its
        request is logged: wait (briefly) until ``until`` holds, or until a short quiet
        period when it is not given.
        """
        deadline = time.monotonic() + timeout
        records = self.access_records()[mark:]
        while time.monotonic() < deadline:
            if until is not None and until(records):
                return records
            if until is None:
                time.sleep(0.2)
                again = self.access_records()[mark:]
                if again == records:
                    return records
                records = again
                continue
            time.sleep(0.05)
            records = self.access_records()[mark:]
        return records
