"""tpm2 mode against a software TPM: the key made and kept inside the TPM, the SPEC kept.

Each test starts its own swtpm (tests/swtpm.py) on a free loopback port. The frozen forms
do not carry the TPM's support yet (docs/tpm.md), so these run in the package pass.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from caramel_embedded import pem, tpm_blob
from testbed import swtpm
from testbed.command import client_command
from tests.conftest import Client
from tests.fake_signer import FakeCaramel
from tests.test_protocol import snapshot

pytestmark = pytest.mark.in_process

TSS2 = "TSS2 PRIVATE KEY"


@pytest.fixture
def tpm(tmp_path: Path) -> Iterator[swtpm.SoftwareTPM]:
    with swtpm.running(tmp_path / "tpm") as running:
        yield running


def tpm_args(tpm: swtpm.SoftwareTPM) -> tuple[str, ...]:
    return ("--key-store", "tpm2", "--tpm", tpm.tcti)


def labels(path: Path) -> list[str]:
    return [block.label for block in pem.decode_all(path.read_bytes())]


def block(path: Path, label: str) -> bytes:
    (found,) = [b.der for b in pem.decode_all(path.read_bytes()) if b.label == label]
    return found


def tpm_public_key(path: Path) -> rsa.RSAPublicKey:
    numbers = tpm_blob.rsa_public(block(path, TSS2))
    return rsa.RSAPublicNumbers(numbers.exponent, numbers.modulus).public_key()


def request_of(path: Path) -> x509.CertificateSigningRequest:
    return x509.load_der_x509_csr(block(path, "CERTIFICATE REQUEST"))


def assert_one_line_127(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 127, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def enrolled(client: Client, tpm: swtpm.SoftwareTPM) -> None:
    result = client.run(*tpm_args(tpm))
    assert result.returncode == 69, result.stderr


# --- the key, the request, the certificate ---------------------------------------------


def test_first_run_makes_the_key_in_the_tpm_and_posts_its_request(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM
) -> None:
    enrolled(client, tpm)
    assert labels(client.file) == [TSS2, "CERTIFICATE REQUEST"]
    request = request_of(client.file)
    assert request.is_signature_valid
    assert request.public_key() == tpm_public_key(client.file)
    posted = signer.requests("POST")[-1].body
    assert posted == pem.encode("CERTIFICATE REQUEST", request.public_bytes(Encoding.DER))
    assert swtpm.transient_handles(tpm) == []  # every object flushed


def test_the_request_verifies_with_the_tpm_key_as_openssl_reads_it(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM
) -> None:
    """tpm2-openssl itself loads the block (the board's other services will) and its public
    key verifies the request."""
    enrolled(client, tpm)
    env = {**tpm.tools_env(), "TPM2OPENSSL_TCTI": tpm.tcti}
    public = subprocess.run(
        ["openssl", "pkey", "-provider", "tpm2", "-provider", "default", "-pubout",
         "-in", str(client.file)],
        env=env, capture_output=True, check=True,
    ).stdout  # fmt: skip
    request = client.file.with_name("request.pem")
    request.write_bytes(
        pem.encode("CERTIFICATE REQUEST", block(client.file, "CERTIFICATE REQUEST"))
    )
    verified = subprocess.run(
        ["openssl", "req", "-verify", "-noout", "-in", str(request)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    spki = PublicFormat.SubjectPublicKeyInfo
    assert tpm_public_key(client.file).public_bytes(Encoding.PEM, spki) == public


def test_the_request_repeats_byte_for_byte(
    client: Client, tpm: swtpm.SoftwareTPM, signer: FakeCaramel
) -> None:
    """Two separate TPM sessions sign the same request: the same bytes (PKCS#1 v1.5)."""
    from caramel_embedded import tpm_keys

    enrolled(client, tpm)
    key_der = block(client.file, TSS2)
    ca_der = signer.authority.certificate.public_bytes(Encoding.DER)
    made = []
    for _ in range(2):
        keys = tpm_keys.TPMKeys(tpm.tcti)
        try:
            made.append(keys.new_request(key_der, ca_der, client.client_id))
        finally:
            keys.close()
    assert made[0] == made[1] == block(client.file, "CERTIFICATE REQUEST")
    assert swtpm.transient_handles(tpm) == []


def test_the_issued_certificate_is_installed_and_matches_the_tpm_key(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM
) -> None:
    enrolled(client, tpm)
    signer.sign()
    result = client.run(*tpm_args(tpm))
    assert result.returncode == 0, result.stderr
    assert labels(client.file) == [TSS2, "CERTIFICATE", "CERTIFICATE REQUEST"]
    certificate = x509.load_der_x509_certificate(block(client.file, "CERTIFICATE"))
    assert certificate.public_key() == tpm_public_key(client.file)


def test_a_certificate_for_another_key_is_refused(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM
) -> None:
    enrolled(client, tpm)
    before = snapshot(client.file)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    signer.sign(public_key=other)
    assert_one_line_127(client.run(*tpm_args(tpm)), "another key")
    assert snapshot(client.file) == before


def test_the_unchanged_path_needs_no_tpm(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM
) -> None:
    """A held, current certificate is kept without opening the TPM: a TPM that is down costs
    a device with a working certificate nothing."""
    enrolled(client, tpm)
    signer.sign()
    assert client.run(*tpm_args(tpm)).returncode == 0
    before = snapshot(client.file)
    tpm.stop()
    result = client.run(*tpm_args(tpm), "--status")
    assert result.returncode == 0, result.stderr
    assert "status=current" in result.stdout
    assert snapshot(client.file) == before


def test_a_rejection_makes_a_new_tpm_key(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM
) -> None:
    enrolled(client, tpm)
    old_key = block(client.file, TSS2)
    signer.reject()
    result = client.run(*tpm_args(tpm))
    assert result.returncode == 69, result.stderr
    assert labels(client.file) == [TSS2, "CERTIFICATE REQUEST"]
    assert block(client.file, TSS2) != old_key
    request = request_of(client.file)
    assert request.public_key() == tpm_public_key(client.file)
    assert len(signer.entries) == 2


# --- no private key outside the TPM ----------------------------------------------------

_WRITES = "write,pwrite64,writev,pwritev,pwritev2,sendto,sendmsg,sendmmsg"
_STRING = re.compile(rb'"((?:\\x[0-9a-f]{2})*)"')


def traced(trace: Path) -> list[str]:
    """The command under test, its every write (of every process) traced into ``trace``."""
    return [
        "strace", "-f", "-qq", "-e", f"trace={_WRITES}", "-e", "signal=none",
        "-s", "1048576", "-xx", "-o", str(trace), *client_command(),
    ]  # fmt: skip


def written_bytes(trace: Path) -> bytes:
    """Every buffer the traced processes wrote anywhere (files, pipes, sockets), joined."""
    out = bytearray()
    for line in trace.read_bytes().splitlines():
        for match in _STRING.finditer(line):
            out += bytes.fromhex(match.group(1).replace(b"\\x", b"").decode())
            out += b"\n"
    return bytes(out)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is a system-deps package")
def test_no_private_key_is_written_anywhere(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM, tmp_path: Path
) -> None:
    """Every write of a first run, a rejection's new key and an install, by strace (files,
    temporary files, pipes and sockets alike), and every file left in the state directory:
    the key's block is the TPM's, and no PRIVATE KEY block is ever written."""
    trace = tmp_path / "trace"
    command = traced(trace)
    everything = b""
    for step in ("enrol", "reject", "install"):
        if step == "reject":
            signer.reject()
        if step == "install":
            signer.sign(_latest(signer))
        result = subprocess.run(
            [*command, *client.args(*tpm_args(tpm))],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode in (0, 69), result.stderr
        everything += written_bytes(trace)
    assert b"-----BEGIN TSS2 PRIVATE KEY-----" in everything  # the trace saw the writes
    assert b"BEGIN PRIVATE KEY" not in everything
    assert b"BEGIN RSA PRIVATE KEY" not in everything
    for path in client.file.parent.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert b"BEGIN PRIVATE KEY" not in content, path
            assert b"BEGIN RSA PRIVATE KEY" not in content, path
    assert labels(client.file) == [TSS2, "CERTIFICATE", "CERTIFICATE REQUEST"]


def _latest(signer: FakeCaramel) -> str:
    pending = [sha for sha, entry in signer.entries.items() if entry.state == "pending"]
    assert len(pending) == 1
    return pending[0]


def test_the_trace_sees_a_file_key(client: Client, signer: FakeCaramel, tmp_path: Path) -> None:
    """The detector of the test above, shown able to fail: file mode's key is seen."""
    if shutil.which("strace") is None:
        pytest.skip("strace is a system-deps package")
    trace = tmp_path / "trace"
    result = subprocess.run(
        [*traced(trace), *client.args()], capture_output=True, text=True, check=False
    )
    assert result.returncode == 69, result.stderr
    assert b"-----BEGIN PRIVATE KEY-----" in written_bytes(trace)


# --- a TPM that fails, a key of the other kind: 127, one line, the file untouched --------


def status_words(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return dict(word.split("=", 1) for word in result.stdout.split())


def renamed(client: Client) -> Client:
    """The same device under another client id: its key needs a new request (a signature)."""
    return Client(client.server, client.file, client.ca_file, "device-0002")


def test_an_unreachable_tpm_on_a_first_run(client: Client, tpm: swtpm.SoftwareTPM) -> None:
    tpm.stop()
    result = client.run(*tpm_args(tpm), "--status")
    assert_one_line_127(result, "TPM unreachable", tpm.tcti)
    assert status_words(result)["reason"] == "tpm"
    assert not client.file.exists() or client.file.stat().st_size == 0  # no key, no request


def test_an_absent_tpm_device_is_named(client: Client, tmp_path: Path) -> None:
    missing = tmp_path / "tpmrm0"
    result = client.run("--key-store", "tpm2", "--tpm", f"device:{missing}", "--status")
    assert_one_line_127(result, f"no TPM: {missing} does not exist")
    assert status_words(result)["reason"] == "tpm"


@pytest.mark.parametrize("step", ["new request", "rejection"])
def test_an_unreachable_tpm_leaves_the_file_as_it_was(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM, step: str
) -> None:
    enrolled(client, tpm)
    if step == "rejection":
        signer.reject()
    device = renamed(client) if step == "new request" else client
    before = snapshot(client.file)
    tpm.stop()
    result = device.run(*tpm_args(tpm), "--status")
    assert_one_line_127(result, "TPM unreachable")
    assert status_words(result)["reason"] == "tpm"
    assert snapshot(client.file) == before


def test_a_tpm_in_lockout_is_named(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM
) -> None:
    enrolled(client, tpm)
    before = snapshot(client.file)
    swtpm.lock_out(tpm)
    result = renamed(client).run(*tpm_args(tpm), "--status")
    assert_one_line_127(result, "dictionary-attack lockout", "sign the request")
    assert status_words(result)["reason"] == "tpm"
    assert snapshot(client.file) == before
    assert swtpm.transient_handles(tpm) == []


def test_the_key_does_not_load_on_another_tpm(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM, tmp_path: Path
) -> None:
    enrolled(client, tpm)
    before = snapshot(client.file)
    with swtpm.running(tmp_path / "other-tpm") as other:
        result = renamed(client).run(*tpm_args(other), "--status")
        assert swtpm.transient_handles(other) == []
    assert_one_line_127(result, "refused to load the key")
    assert status_words(result)["reason"] == "tpm"
    assert snapshot(client.file) == before


def test_a_file_key_is_refused_in_tpm2_mode(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM
) -> None:
    assert client.run().returncode == 69  # file mode
    before = snapshot(client.file)
    result = client.run(*tpm_args(tpm), "--status")
    assert_one_line_127(result, "holds a file key", "needs --key-store file")
    assert status_words(result)["reason"] == "input"
    assert snapshot(client.file) == before


def test_a_tpm_key_is_refused_in_file_mode(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM
) -> None:
    enrolled(client, tpm)
    before = snapshot(client.file)
    result = client.run("--status")
    assert_one_line_127(result, "holds a TPM key", "needs --key-store tpm2")
    assert snapshot(client.file) == before


def test_a_provisioned_tpm_key_keeps_its_key(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM
) -> None:
    """A TSS2 block alone (made at manufacture, e.g. by ``openssl genpkey -provider tpm2``)
    is the device's key: its request is made by the TPM and posted."""
    env = {**tpm.tools_env(), "TPM2OPENSSL_TCTI": tpm.tcti}
    client.file.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "genpkey", "-provider", "tpm2", "-algorithm", "RSA",
         "-pkeyopt", "bits:2048", "-out", str(client.file)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    provisioned = block(client.file, TSS2)
    enrolled(client, tpm)
    assert block(client.file, TSS2) == provisioned
    assert request_of(client.file).public_key() == tpm_public_key(client.file)


def test_a_second_invocation_finds_the_lock_held(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM
) -> None:
    from tests.fake_signer import Gate

    gate = Gate(("POST",), limit=60)
    signer.forced = gate
    try:
        first = client.start(*tpm_args(tpm))
        assert gate.arrival.wait(60), "the first run never posted"
        second = client.run(*tpm_args(tpm))
        assert second.returncode == 1, second.stderr
    finally:
        gate.opened.set()
        signer.forced = None
    assert first.wait(60) == 69
    assert labels(client.file) == [TSS2, "CERTIFICATE REQUEST"]


def test_the_unchanged_path_loads_nothing_of_the_tpm(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM
) -> None:
    """tpm2 mode's unchanged path reads the blob (pure Python) and stops there: no ctypes,
    no provider, no libtss2, no cryptography."""
    from tests.test_lean_path import PROBE

    enrolled(client, tpm)
    signer.sign()
    assert client.run(*tpm_args(tpm)).returncode == 0
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, *client.args(*tpm_args(tpm))],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result == {
        "status": 0,
        "heavy": ["caramel_embedded.tpm_blob", "caramel_embedded.tpm_keys"],
    }


def test_a_build_without_ctypes_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """The frozen forms leave ctypes out: tpm2 mode there is one TPM line, not a traceback."""
    import caramel_embedded
    from caramel_embedded import tpm_keys
    from caramel_embedded.errors import TPMError

    monkeypatch.setitem(sys.modules, "ctypes", None)
    monkeypatch.delitem(sys.modules, "caramel_embedded.tpm", raising=False)
    monkeypatch.delattr(caramel_embedded, "tpm", raising=False)  # imported by a test before
    keys = tpm_keys.TPMKeys("device:/dev/tpmrm0")
    with pytest.raises(TPMError, match="this build carries no TPM support"):
        keys.new_key(2048)


def test_a_damaged_file_is_set_aside_and_a_tpm_key_made(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM
) -> None:
    enrolled(client, tpm)
    damaged = client.file.read_bytes().replace(
        b"TSS2 PRIVATE KEY-----\nMII", b"TSS2 PRIVATE KEY-----\nXII", 1
    )
    client.file.write_bytes(damaged)
    result = client.run(*tpm_args(tpm))
    assert result.returncode == 69, result.stderr
    (aside,) = client.file.parent.glob("client.pem.corrupt-*")
    assert aside.read_bytes() == damaged
    assert labels(client.file) == [TSS2, "CERTIFICATE REQUEST"]
    assert request_of(client.file).public_key() == tpm_public_key(client.file)


def test_a_term_while_the_tpm_makes_the_key_leaves_nothing(
    client: Client, signer: FakeCaramel, tpm: swtpm.SoftwareTPM
) -> None:
    """TERM while the key is being made (the TPM is busy for a few hundred ms): 127, no key
    written, and nothing left loaded in the TPM (a TPM without a resource manager would
    keep it until it restarts)."""
    process = client.start(*tpm_args(tpm), "-v")
    assert process.stderr is not None
    for line in process.stderr:
        if "generating an RSA 2048-bit key in the TPM" in line:
            process.send_signal(signal.SIGTERM)
            break
    else:
        pytest.fail("the run never said it was making the key")
    rest = process.stderr.read()
    assert process.wait(60) == 127, rest
    assert "interrupted by SIGTERM" in rest
    assert not client.file.exists() or client.file.stat().st_size == 0
    assert swtpm.transient_handles(tpm) == []
    assert signer.requests("POST") == []
