"""A server given by name: the lookup and every address tried lie inside ``--timeout``.

The client runs in a private mount namespace (``unshare --mount``) whose ``/etc/hosts``,
``/etc/nsswitch.conf`` and ``/etc/resolv.conf`` are the test's files, bind-mounted over the
real ones for that process alone. Names end in ``.invalid`` and the only name server is a
UDP socket of the test on a loopback address: no query can leave the machine. The name
server's port is 53 (``resolv.conf`` names no port), so the suite runs as root, as it does
in CI; without root the mount namespace comes from ``--map-root-user``.

- A name server that reads every query and never answers: the C library would wait its own
  timeouts (here 2 x 30 s) and does not run Python's signal handlers meanwhile; the run must
  end with 127 within ``--timeout`` plus a second of the first query.
- A name with two addresses, ``::1`` first where a listener's backlog is full (SYNs are
  dropped: a black hole on loopback) and ``127.0.0.1`` serving: the first address must not
  use up the whole budget.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import re
import select
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cryptography.x509.oid import NameOID

from testbed.ca_factory import Authority, key_pem, name, new_key, pem_of
from testbed.command import client_command, start
from tests import fake_signer
from tests.conftest import Client
from tests.fake_signer import FakeCaramel

UNANSWERED_NAME = "caramel-unanswered.invalid"
SIGNER_NAME = "caramel-signer.invalid"
RESOLVER_WAITS = "options timeout:30 attempts:2\n"  # the C library's own wait: 60 s or more
STOP_WAITING_WITHIN = 1.0  # the issue's bound beyond --timeout, counted from the first query
SLACK = 10.0  # beyond the deadline, for a cold start on a loaded machine
HOSTS = "127.0.0.1 localhost\n::1 localhost\n"


# --- a private /etc for one process -------------------------------------------------------


def in_private_etc(files: dict[str, Path], argv: Sequence[str]) -> list[str]:
    """``argv`` in a mount namespace of its own, where each ``/etc`` file given is ours."""
    unshare = shutil.which("unshare")
    assert unshare, "these tests need unshare (util-linux) to give the client its own /etc"
    mounts = "".join(
        f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)} && "
        for target, source in files.items()
    )
    own_root = [] if os.geteuid() == 0 else ["--map-root-user"]
    return [
        unshare,
        *own_root,
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'{mounts}exec "$@"',
        "sh",
        *argv,
    ]


def private_etc(directory: Path, hosts: str, resolver: str | None = None) -> dict[str, Path]:
    """Files for /etc: hosts looked up first, then DNS at ``resolver`` (if any)."""
    directory.mkdir(exist_ok=True)
    files = {"/etc/hosts": directory / "hosts", "/etc/nsswitch.conf": directory / "nsswitch"}
    files["/etc/hosts"].write_text(hosts)
    files["/etc/nsswitch.conf"].write_text("hosts: files dns\n")
    if resolver is not None:
        files["/etc/resolv.conf"] = directory / "resolv.conf"
        files["/etc/resolv.conf"].write_text(f"nameserver {resolver}\n{RESOLVER_WAITS}")
    return files


def run_in(
    files: dict[str, Path], argv: Sequence[str], limit: float
) -> tuple[int, str, float, float]:
    """Run to the end (or kill at ``limit``); status, stderr, start and end (monotonic)."""
    started = time.monotonic()
    process = start(in_private_etc(files, argv), new_session=True)  # a launcher's child too
    try:
        _, stderr = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.communicate()
        pytest.fail(f"the run was still going after {limit:.0f} s")
    return process.returncode, stderr, started, time.monotonic()


# --- a name server that never answers -------------------------------------------------------


@dataclasses.dataclass
class SilentResolver:
    address: str
    queries: list[tuple[float, bytes]] = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def silent_resolver() -> Iterator[SilentResolver]:
    """A UDP socket on port 53 of a random 127.x.y.z that reads queries and answers none."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(50):
        address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        try:
            listener.bind((address, 53))
            break
        except OSError:
            continue
    else:
        listener.close()
        pytest.fail("no free loopback address for the silent name server")
    resolver = SilentResolver(address)
    stop = threading.Event()

    def read() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                data, _ = listener.recvfrom(4096)
                resolver.queries.append((time.monotonic(), data))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield resolver
    finally:
        stop.set()
        reader.join(5)
        listener.close()


def dns_labels(host: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in host.split("."))


@pytest.fixture
def pending(client: Client) -> bytes:
    """A combined file whose request the signer holds, not signed yet."""
    assert client.run().returncode == 69
    return client.file.read_bytes()


def test_name_server_that_never_answers_ends_with_127_within_the_timeout(
    client: Client, pending: bytes, tmp_path: Path
) -> None:
    timeout = 3
    with silent_resolver() as resolver:
        files = private_etc(tmp_path / "etc", HOSTS, resolver.address)
        unresolvable = dataclasses.replace(client, server=f"https://{UNANSWERED_NAME}:8443")
        argv = [*client_command(), *unresolvable.args("--timeout", str(timeout))]
        status, stderr, _, ended = run_in(files, argv, limit=timeout + SLACK)
    asked = [at for at, query in resolver.queries if dns_labels(UNANSWERED_NAME) in query]
    assert asked, f"the name server was never asked for {UNANSWERED_NAME}: {resolver.queries!r}"
    assert status == 127, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    assert UNANSWERED_NAME in lines[0], lines[0]
    assert re.search(rf"\b{timeout}\s*s\b", lines[0]), lines[0]
    waited = ended - asked[0]
    assert waited >= timeout - 0.5, f"gave up {waited:.2f} s after asking, before its deadline"
    assert waited < timeout + STOP_WAITING_WITHIN, f"ended {waited:.1f} s after the first query"
    assert client.file.read_bytes() == pending


def test_term_during_an_unanswered_lookup_ends_the_run_at_once(
    client: Client, pending: bytes, tmp_path: Path
) -> None:
    """A lookup blocked in the C library must not hold back the answer to a signal."""
    with silent_resolver() as resolver:
        files = private_etc(tmp_path / "etc", HOSTS, resolver.address)
        unresolvable = dataclasses.replace(client, server=f"https://{UNANSWERED_NAME}:8443")
        argv = [*client_command(), *unresolvable.args("--timeout", "120")]
        process = start(in_private_etc(files, argv), new_session=True)
        try:
            for _ in range(300):
                if resolver.queries or process.poll() is not None:
                    break
                time.sleep(0.1)
            assert resolver.queries, "the name server was never asked"
            sent = time.monotonic()
            process.terminate()
            _, stderr = process.communicate(timeout=SLACK)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.communicate()
            pytest.fail("SIGTERM did not end a run waiting for the name server")
    took = time.monotonic() - sent
    assert process.returncode == 127, stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert re.search(r"\b(SIG)?TERM\b", stderr), stderr
    assert took < STOP_WAITING_WITHIN + 1, f"SIGTERM took {took:.1f} s to end the run"
    assert client.file.read_bytes() == pending


# --- a name with two addresses, the first a black hole --------------------------------------


def named_tls_context(authority: Authority, host: str, directory: Path) -> ssl.SSLContext:
    """Server TLS for ``host`` only (not its addresses): the name must be what is verified."""
    key = new_key(90)
    certificate = authority.issue(
        key.public_key(), name(((NameOID.COMMON_NAME, host),)), server_hosts=(host,)
    )
    (directory / "server.crt").write_bytes(pem_of(certificate))
    (directory / "server.key").write_bytes(key_pem(key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "server.crt", directory / "server.key")
    return context


@pytest.fixture
def named_signer(authority: Authority, tmp_path: Path) -> Iterator[tuple[FakeCaramel, int]]:
    """The fake signer on 127.0.0.1, with a certificate for ``SIGNER_NAME``."""
    context = named_tls_context(authority, SIGNER_NAME, tmp_path)
    with fake_signer.serving(authority, tmp_path, context=context) as signer:
        yield signer, signer.port  # type: ignore[attr-defined]


@contextlib.contextmanager
def black_hole(port: int) -> Iterator[None]:
    """``[::1]:port`` listening with a full backlog: the kernel drops every further SYN."""
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    listener.bind(("::1", port))
    listener.listen(0)
    fillers: list[socket.socket] = []
    try:
        for _ in range(16):
            filler = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            fillers.append(filler)
            filler.setblocking(False)
            filler.connect_ex(("::1", port))
            if not select.select([], [filler], [], 1.0)[1]:
                break  # this one got no answer: the backlog is full
        else:
            pytest.fail("could not fill the backlog of the black-hole listener")
        yield
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def first_address_in(files: dict[str, Path], host: str, port: int) -> str:
    probe = f"import socket; print(socket.getaddrinfo({host!r}, {port}, type=1)[0][4][0])"
    result = subprocess.run(
        in_private_etc(files, [sys.executable, "-c", probe]),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


def test_first_address_that_never_answers_leaves_time_for_the_next(
    client: Client, named_signer: tuple[FakeCaramel, int], tmp_path: Path
) -> None:
    timeout = 10
    signer, port = named_signer
    hosts = f"{HOSTS}::1 {SIGNER_NAME}\n127.0.0.1 {SIGNER_NAME}\n"
    files = private_etc(tmp_path / "etc", hosts)
    assert first_address_in(files, SIGNER_NAME, port) == "::1"
    named = dataclasses.replace(client, server=f"{SIGNER_NAME}:{port}")
    with black_hole(port):
        argv = [*client_command(), *named.args("--timeout", str(timeout))]
        status, stderr, started, ended = run_in(files, argv, limit=timeout + SLACK)
    assert status == 69, stderr
    assert ended - started < timeout / 2, f"took {ended - started:.1f} s of its {timeout} s"
    posted = signer.requests("POST")
    assert len(posted) == 1
    assert posted[0].headers.get("Host") == f"{SIGNER_NAME}:{port}"
