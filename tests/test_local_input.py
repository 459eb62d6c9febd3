"""Bad local input: one clear line, a defined status, and nothing lost."""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from caramel_embedded import pem
from testbed.ca_factory import make_authority
from testbed.command import run_client
from tests.conftest import Client
from tests.fake_signer import FakeCaramel
from tests.test_protocol import assert_error, blocks, enrolled, installed, snapshot

pytestmark = pytest.mark.arm32


def corrupt_copies(directory: Path) -> list[Path]:
    return sorted(directory.glob("client.pem.corrupt-*"))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(b"\x00\xff garbage \x01", id="binary"),
        pytest.param(b"-----BEGIN PRIVATE KEY-----\nMIIE", id="truncated"),
        pytest.param(
            pem.encode("CERTIFICATE REQUEST", b"\x30\x03\x02\x01\x00"), id="request-only"
        ),
    ],
)
def test_unparseable_file_is_set_aside_and_client_starts_over(
    client: Client, signer: FakeCaramel, damage: bytes
) -> None:
    client.file.parent.mkdir(parents=True)
    client.file.write_bytes(damage)
    os.chmod(client.file, 0o640)
    result = client.run()
    assert result.returncode == 69
    (aside,) = corrupt_copies(client.file.parent)
    assert aside.read_bytes() == damage
    assert stat.S_IMODE(aside.stat().st_mode) == 0o640
    assert len(result.stderr.splitlines()) == 1
    assert str(aside) in result.stderr
    assert blocks(client.file) == ["PRIVATE KEY", "CERTIFICATE REQUEST"]
    assert stat.S_IMODE(client.file.stat().st_mode) == 0o600
    assert len(signer.requests("POST")) == 1


def test_damaged_installed_file_is_never_overwritten(client: Client, signer: FakeCaramel) -> None:
    installed(client, signer)
    damaged = client.file.read_bytes()[:-40]
    client.file.write_bytes(damaged)
    assert client.run().returncode == 69
    assert [p.read_bytes() for p in corrupt_copies(client.file.parent)] == [damaged]


def test_empty_file_counts_as_no_file(client: Client, signer: FakeCaramel) -> None:
    client.file.parent.mkdir(parents=True)
    client.file.write_bytes(b"")
    result = client.run()
    assert (result.returncode, result.stderr) == (69, "")
    assert corrupt_copies(client.file.parent) == []
    assert blocks(client.file) == ["PRIVATE KEY", "CERTIFICATE REQUEST"]


def test_directory_at_the_path_is_127_and_left_alone(client: Client, signer: FakeCaramel) -> None:
    client.file.mkdir(parents=True)
    (client.file / "keep").write_text("mine")
    assert_error(client.run(), "is a directory")
    assert (client.file / "keep").read_text() == "mine"
    assert signer.seen == []


def entries(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_file_under_a_regular_file_is_127_and_creates_nothing(
    client: Client, signer: FakeCaramel, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    before = entries(tmp_path)
    for file in (blocker / "client.pem", blocker / "sub" / "deeper" / "client.pem"):
        client.file = file
        result = client.run("--status")
        assert_error(result, str(file), f"{blocker} is not a directory")
        assert "reason=input" in result.stdout
    assert entries(tmp_path) == before
    assert blocker.read_text() == "not a directory"
    assert signer.seen == []


@pytest.fixture
def shared_directory() -> Iterator[Path]:
    """A root-owned directory that others may enter and read but not write: pytest's own
    temporary directories are private to root."""
    directory = Path(tempfile.mkdtemp(prefix="caramel-unprivileged-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def test_directory_an_unprivileged_user_cannot_make_is_127_and_creates_nothing(
    client: Client, signer: FakeCaramel, shared_directory: Path
) -> None:
    """The default /var/lib/caramel/client.pem, run as a user who may not make it."""
    if os.geteuid() != 0:
        pytest.fail("this test runs the client as nobody and needs root (CI runs as root)")
    ca_file = shared_directory / "ca.pem"
    shutil.copyfile(client.ca_file, ca_file)
    ca_file.chmod(0o644)
    file = shared_directory / "var" / "lib" / "caramel" / "client.pem"
    client.file, client.ca_file = file, ca_file
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    result = run_client(client.args("--status"), wrapper=as_nobody)
    assert_error(result, str(file), f"cannot create {shared_directory / 'var'}", "ermission")
    assert "reason=input" in result.stdout
    assert entries(shared_directory) == ["ca.pem"]
    assert signer.seen == []


def test_symlink_at_the_path_is_never_followed(
    client: Client, signer: FakeCaramel, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere.pem"
    target.write_text("precious")
    client.file.parent.mkdir(parents=True)
    client.file.symlink_to(target)
    assert_error(client.run(), "symbolic link")
    assert target.read_text() == "precious"
    assert client.file.is_symlink()
    dangling = tmp_path / "state" / "dangling.pem"
    dangling.symlink_to(tmp_path / "nowhere.pem")
    client.file = dangling
    assert_error(client.run(), "symbolic link")
    assert not (tmp_path / "nowhere.pem").exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        pytest.param(None, ("No such file",), id="missing"),
        pytest.param(b"not a certificate\n", ("not one PEM certificate",), id="garbage"),
        pytest.param(pem.encode("CERTIFICATE", b"\x30\x03abc"), ("not a readable",), id="bad-der"),
        pytest.param(b"", ("not one PEM certificate",), id="empty"),
    ],
)
def test_bad_ca_is_127_and_touches_nothing(
    client: Client, signer: FakeCaramel, tmp_path: Path, content: bytes | None,
    words: tuple[str, ...],
) -> None:  # fmt: skip
    enrolled(client)
    before = snapshot(client.file)
    bad_ca = tmp_path / "bad-ca.pem"
    if content is not None:
        bad_ca.write_bytes(content)
    signer.seen.clear()
    assert_error(client.run("--ca-cert", str(bad_ca)), str(bad_ca), *words)
    assert snapshot(client.file) == before
    assert signer.seen == []


def test_clock_before_the_ca_is_said_plainly(
    client: Client, signer: FakeCaramel, tmp_path: Path
) -> None:
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    ca = make_authority(not_before=future, key_slot=1).write(tmp_path / "future-ca.pem")
    result = client.run("--ca-cert", str(ca))
    assert_error(result, "clock is not set")
    assert not client.file.exists()


@pytest.mark.parametrize("bad_id", ["", "white space", "x" * 65])
def test_bad_client_id_is_127_and_creates_nothing(
    client: Client, signer: FakeCaramel, bad_id: str
) -> None:
    client.client_id = bad_id
    assert_error(client.run())
    assert not client.file.exists()
    assert signer.seen == []


def test_mode_is_applied_from_creation(client: Client, signer: FakeCaramel) -> None:
    result = client.run("--mode", "0640", env={"CARAMEL_MODE": "0600"})
    assert result.returncode == 69
    assert stat.S_IMODE(client.file.stat().st_mode) == 0o640


def test_owner_and_mode_fixed_on_existing_file_without_rewriting(
    client: Client, signer: FakeCaramel
) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test changes file owners and needs root (CI and make test run as root)")
    nobody = pwd.getpwnam("nobody")
    enrolled(client)
    os.chmod(client.file, 0o644)
    content, mtime_ns, inode = snapshot(client.file)
    result = client.run("--owner", "nobody", "--mode", "0600")
    assert result.returncode == 69, result.stderr
    info = client.file.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (nobody.pw_uid, 0o600)
    assert snapshot(client.file) == (content, mtime_ns, inode)


def test_owner_holds_for_a_new_file(client: Client, signer: FakeCaramel) -> None:
    nobody = pwd.getpwnam("nobody")
    result = client.run("--owner", f"nobody:{nobody.pw_gid}")
    assert result.returncode == 69, result.stderr
    info = client.file.stat()
    assert (info.st_uid, info.st_gid) == (nobody.pw_uid, nobody.pw_gid)


def test_key_and_certificate_that_do_not_match_are_set_aside(
    client: Client, signer: FakeCaramel
) -> None:
    """A file whose key cannot present its certificate is unusable: kept aside, new key."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from caramel_embedded import state
    from testbed.ca_factory import new_key

    installed(client, signer)
    parsed = state.parse(client.file.read_bytes())
    assert parsed is not None
    stranger = signer.authority.issue(new_key(11).public_key(), signer.only_entry()[1].csr.subject)
    mismatched = state.compose(
        parsed.key_der, parsed.request_der, stranger.public_bytes(Encoding.DER)
    )
    client.file.write_bytes(mismatched)
    result = client.run()
    assert result.returncode == 69
    assert "do not load together" in result.stderr
    assert [p.read_bytes() for p in corrupt_copies(client.file.parent)] == [mismatched]
    assert pem.decode_all(client.file.read_bytes())[0].der != parsed.key_der


def test_key_that_cryptography_cannot_load_is_set_aside(
    client: Client, signer: FakeCaramel
) -> None:
    """Right structure, wrong numbers: found when the key is first used, then kept aside."""
    from caramel_embedded import state

    enrolled(client)
    parsed = state.parse(client.file.read_bytes())
    assert parsed is not None
    broken_key = bytearray(parsed.key_der)
    broken_key[-20:] = b"\x00" * 20  # inside the last CRT coefficient
    damaged = state.compose(bytes(broken_key), parsed.request_der)
    client.file.write_bytes(damaged)
    signer.sign()
    result = client.run()
    assert result.returncode == 69, result.stderr
    assert "could not be parsed" in result.stderr
    assert [p.read_bytes() for p in corrupt_copies(client.file.parent)] == [damaged]
