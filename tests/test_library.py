"""The library face: refresh() on bytes, nothing on disk, safe in threads, one core.

Against the same fake signer over real TLS as the command's suite, in this process (the
library is called in-process by its users too).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

import caramel_embedded
from caramel_embedded import CaramelError, Credentials, Status, pem, refresh
from testbed.ca_factory import Authority, make_authority
from tests.fake_signer import FakeCaramel, tls_server_context
from tests.test_failed_run_keeps_file import dead_server

pytestmark = pytest.mark.in_process

README = Path(__file__).resolve().parents[1] / "docs" / "library.md"


def call(
    signer: FakeCaramel, held: Credentials | None, client_id: str = "app-1", **extra: object
) -> caramel_embedded.Result:
    options: dict[str, object] = {"timeout": 20.0, "ca_pem": signer.authority.pem, **extra}
    return refresh(held, server=signer.url, client_id=client_id, **options)  # type: ignore[arg-type,attr-defined]


def common_name(pem_bytes: bytes) -> str:
    certificate = x509.load_pem_x509_certificate(pem_bytes)
    return str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


# --- the protocol, as the command does it -----------------------------------------------


def test_first_call_posts_then_installs_then_is_current(signer: FakeCaramel) -> None:
    first = call(signer, None)
    assert first.status is Status.WAITING
    assert first.credentials.certificate_pem is None
    assert first.credentials.not_after is None
    assert first.credentials.request_pem == signer.requests("POST")[0].body
    signer.sign()
    stored = first.credentials.to_bytes()  # what the app keeps in its key-chain
    second = call(signer, Credentials.from_bytes(stored))
    assert second.status is Status.INSTALLED
    assert second.credentials.key_pem == first.credentials.key_pem
    assert second.credentials.certificate_pem is not None
    assert common_name(second.credentials.certificate_pem) == "app-1"
    assert second.credentials.not_after is not None
    third = call(signer, Credentials.from_bytes(second.credentials.to_bytes()))
    assert third.status is Status.CURRENT
    assert third.credentials == second.credentials
    assert signer.requests("GET")[-1].headers.get("If-Modified-Since")  # notBefore, kept


def test_the_servers_hint_comes_back_capped_and_never_skips_a_call(signer: FakeCaramel) -> None:
    first = call(signer, None)
    signer.sign()
    assert call(signer, first.credentials).fresh_until is None  # no hint sent
    signer.cache_control = "max-age=600"
    before = time.time()
    held = call(signer, first.credentials)
    assert held.fresh_until is not None
    assert before + 600 - 2 <= held.fresh_until.timestamp() <= time.time() + 600
    signer.cache_control = "max-age=604800"  # a week: capped as the command caps it
    asked = len(signer.seen)
    before = time.time()
    again = call(signer, held.credentials)
    assert len(signer.seen) == asked + 1  # the library asked all the same
    assert again.fresh_until is not None
    assert again.credentials.not_after is not None
    quarter = (again.credentials.not_after.timestamp() - before) / 4  # 48 h: 12 h
    assert quarter < 86400
    assert before + quarter - 2 <= again.fresh_until.timestamp() <= time.time() + quarter
    signer.sign(not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=30))  # a long one
    before = time.time()
    longer = call(signer, again.credentials)
    assert longer.status is Status.INSTALLED
    assert longer.fresh_until is not None
    assert before + 86400 - 2 <= longer.fresh_until.timestamp() <= time.time() + 86400  # 24 h
    assert call(signer, None, client_id="app-new").fresh_until is None  # waiting: no hint


def test_rejected_credentials_come_back_with_a_new_key(signer: FakeCaramel) -> None:
    first = call(signer, None)
    signer.reject()
    again = call(signer, first.credentials)
    assert again.status is Status.WAITING
    assert again.credentials.key_pem != first.credentials.key_pem
    assert len(signer.requests("POST")) == 2


def test_auto_signing_server_installs_within_the_wait(signer: FakeCaramel) -> None:
    """The story's app server signs every unseen id at once: wait=5 returns installed."""
    signer.auto_sign = True
    result = call(signer, None, wait=5.0)
    assert result.status is Status.INSTALLED


def test_wait_ends_waiting_when_nobody_signs(signer: FakeCaramel) -> None:
    started = time.monotonic()
    result = call(signer, None, wait=1.0)
    assert result.status is Status.WAITING
    assert time.monotonic() - started >= 1.0
    assert len(signer.requests("GET")) >= 1  # asked again while waiting


def test_errors_raise_caramel_error_and_keep_a_new_key(signer: FakeCaramel) -> None:
    with pytest.raises(CaramelError, match="cannot connect") as raised:
        refresh(None, server=dead_server(), client_id="app-2", ca_pem=signer.authority.pem)
    kept = raised.value.credentials
    assert isinstance(kept, Credentials)  # the new key and its request: keep them
    assert kept.request_pem is not None
    leaf = signer.authority.issue(
        make_authority(key_slot=6).key.public_key(),  # any key
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]),
    )
    with pytest.raises(CaramelError, match="ca_pem: not a CA certificate"):
        call(signer, None, ca_pem=leaf.public_bytes(Encoding.PEM))
    with pytest.raises(CaramelError, match="client id"):
        call(signer, None, client_id="not valid")


def test_credentials_round_trip_and_refuse_garbage(signer: FakeCaramel) -> None:
    held = call(signer, None).credentials
    assert Credentials.from_bytes(held.to_bytes()) == held
    assert "PRIVATE" not in repr(held)
    for garbage in (b"", b"hello", held.to_bytes()[:-40]):
        with pytest.raises(CaramelError):
            Credentials.from_bytes(garbage)


def test_credentials_with_a_tpm_key_are_refused() -> None:
    """The command's tpm2 mode writes a TSS2 block where the key was: not the library's."""
    from tests.test_tpm_blob import REQUEST_PEM, blob

    with pytest.raises(CaramelError, match="TPM"):
        Credentials.from_bytes(pem.encode("TSS2 PRIVATE KEY", blob()) + REQUEST_PEM)


# --- nothing on disk -------------------------------------------------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_CHANGING_EVENTS = {
    "os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link",
    "os.symlink", "os.truncate", "os.utime", "tempfile.mkstemp", "tempfile.mkdtemp",
    "shutil.copyfile", "shutil.move",
}  # fmt: skip
_watching = threading.Event()
_seen_writes: list[tuple[str, tuple[object, ...]]] = []


def _audit(event: str, arguments: tuple[object, ...]) -> None:
    if not _watching.is_set():
        return
    if event == "open":
        _, mode, flags = (*arguments, None, None)[:3]
        writes = isinstance(mode, str) and any(c in mode for c in "wax+")
        if writes or (isinstance(flags, int) and flags & _WRITE_FLAGS):
            _seen_writes.append((event, arguments))
    elif event in _CHANGING_EVENTS:
        _seen_writes.append((event, arguments))


@pytest.fixture
def audited() -> Iterator[list[tuple[str, tuple[object, ...]]]]:
    """Every open for writing (and every file-changing call) while the test's body runs."""
    if _audit not in _installed:
        sys.addaudithook(_audit)  # hooks cannot be removed: one for the session, gated
        _installed.append(_audit)
    _seen_writes.clear()
    _watching.set()
    try:
        yield _seen_writes
    finally:
        _watching.clear()


_installed: list[object] = []


def test_refresh_never_opens_a_file_for_writing(
    signer: FakeCaramel, audited: list[tuple[str, tuple[object, ...]]]
) -> None:
    first = call(signer, None)  # a new key, posted
    signer.sign()
    installed = call(signer, first.credentials)  # shown nothing, installed
    current = call(signer, installed.credentials)  # shows the certificate (memory file)
    signer.reject()
    call(signer, current.credentials)  # rejected: a new key
    assert current.status is Status.CURRENT
    assert signer.requests("GET")[-2].client_certificate is not None  # it was shown
    assert audited == []


def test_the_audit_sees_the_commands_writes(
    signer: FakeCaramel, audited: list[tuple[str, tuple[object, ...]]], tmp_path: Path,
    ca_file: Path,
) -> None:  # fmt: skip
    """The control: the same hook, around the command's in-process run, sees its file."""
    from caramel_embedded import combined_file, invocation, server_address

    job = invocation.Job(
        server=server_address.parse(signer.url),  # type: ignore[attr-defined]
        client_id="app-3", file=tmp_path / "client.pem", ca_cert=ca_file,
        ownership=combined_file.Ownership(), key_bits=2048, timeout=20.0,
    )  # fmt: skip
    invocation.run(job, lambda _: None)
    assert any(event in ("open", "os.rename") for event, _ in audited)


# --- threads -------------------------------------------------------------------------


def test_eight_identities_at_once_in_threads(signer: FakeCaramel) -> None:
    alarm_handler = signal.getsignal(signal.SIGALRM)
    handlers = list(logging.getLogger().handlers)
    results: dict[str, caramel_embedded.Result] = {}
    failures: list[BaseException] = []

    def device(number: int) -> None:
        try:
            results[f"app-{number}"] = call(signer, None, client_id=f"app-{number}")
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=device, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    assert sorted(results) == [f"app-{n}" for n in range(8)]
    assert len({r.credentials.key_pem for r in results.values()}) == 8
    assert len(signer.entries) == 8
    assert signal.getsignal(signal.SIGALRM) is alarm_handler
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert logging.getLogger().handlers == handlers


@pytest.fixture
def trickling_server(authority: Authority, tmp_path: Path) -> Iterator[str]:
    """A TLS server that answers one byte every 0.2 s: only a whole-call deadline ends it."""
    context = tls_server_context(authority, tmp_path)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(connection, server_side=True) as tls:
                    tls.recv(4096)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 60000\r\n\r\n")
                    while not stop.is_set():
                        tls.sendall(b"x")
                        time.sleep(0.2)
            except (OSError, ssl.SSLError):
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def test_the_deadline_holds_against_a_trickling_server_in_a_thread(
    trickling_server: str, authority: Authority
) -> None:
    outcome: list[object] = []

    def app() -> None:
        started = time.monotonic()
        try:
            refresh(None, server=trickling_server, client_id="app-9", ca_pem=authority.pem,
                    timeout=2.0)  # fmt: skip
        except CaramelError as error:
            outcome.append(error)
        outcome.append(time.monotonic() - started)

    thread = threading.Thread(target=app)
    thread.start()
    thread.join(60)
    error, took = outcome
    assert isinstance(error, CaramelError)
    assert "within 2 s" in str(error)
    assert took < 2.0 + 1.0 + 3.0  # the key's making is not network time: allow for it


# --- docs/library.md's example runs ------------------------------------------------------


class Keychain(dict[str, object]):
    def set(self, name: str, value: object) -> None:
        self[name] = value


def readme_example() -> str:
    section = README.read_text().split("## As a library", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)  # type: ignore[union-attr]


def test_the_readme_example_with_an_auto_signing_server(signer: FakeCaramel) -> None:
    signer.auto_sign = True
    namespace: dict[str, object] = {}
    exec(compile(readme_example(), "docs/library.md", "exec"), namespace)
    ensure_certificate = namespace["ensure_certificate"]
    keychain = Keychain()
    url, ca = signer.url, signer.authority.pem  # type: ignore[attr-defined]
    assert ensure_certificate(keychain, url, ca) is Status.INSTALLED  # type: ignore[operator]
    assert ensure_certificate(keychain, url, ca) is Status.CURRENT  # type: ignore[operator]
    held = Credentials.from_bytes(keychain["caramel"])  # type: ignore[arg-type]
    assert held.certificate_pem is not None
    assert common_name(held.certificate_pem) == keychain["caramel-id"]


def test_the_library_needs_neither_the_command_line_nor_the_file() -> None:
    """One core, two faces: the library loads none of the command's modules."""
    import subprocess

    probe = (
        "import sys\n"
        "from caramel_embedded import CaramelError, Credentials, Status, refresh\n"
        "import caramel_embedded.library\n"
        "print(sorted(m for m in sys.modules if m in {'argparse', 'caramel_embedded.cli',"
        " 'caramel_embedded.options', 'caramel_embedded.invocation',"
        " 'caramel_embedded.combined_file', 'caramel_embedded.report', 'fcntl', 'syslog'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_an_error_while_waiting_keeps_what_an_earlier_pass_made(signer: FakeCaramel) -> None:
    """The first pass makes a key and posts it; the server then fails: the key comes back."""
    from werkzeug import Response

    def fail_after_the_post(request: object) -> Response | None:
        if signer.requests("POST") and getattr(request, "method", "") == "GET":
            return Response("down for maintenance", 503)
        return None

    signer.forced = fail_after_the_post
    with pytest.raises(CaramelError, match="503") as raised:
        call(signer, None, wait=3.0)
    kept = raised.value.credentials
    assert isinstance(kept, Credentials)
    assert kept.request_pem == signer.requests("POST")[0].body
