"""A run that ends in 127 leaves the combined file's bytes as they were.

The device keeps its working certificate through a wrong CA, a changed client id, a dead
server: a new request for the held key is posted first, over a connection verified with
this run's CA, and written only once the server has accepted it. The one exception, a new
key written with its request before it is posted, is tested in test_protocol and test_kill.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from werkzeug import Request, Response

from testbed.ca_factory import FLEET_SUBJECT, key_pem, make_authority, name, new_key
from testbed.combined_check import parse_combined
from tests.conftest import CLIENT_ID, Client
from tests.fake_signer import FakeCaramel
from tests.test_protocol import assert_error, installed, snapshot

pytestmark = pytest.mark.arm

NEW_ID = "device-0002"


def common_name(subject: x509.Name) -> str:
    return str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[-1].value)


def dead_server() -> str:
    """An address on loopback where nothing listens (bound, never listening)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"https://127.0.0.1:{probe.getsockname()[1]}"


def next_ca_file(tmp_path: Path) -> Path:
    """Another fleet's CA, with another subject: the one a firmware update might embed."""
    subject = tuple((oid, "Next Fleet AB" if oid == NameOID.ORGANIZATION_NAME else value)
                    for oid, value in FLEET_SUBJECT)  # fmt: skip
    return make_authority(subject, key_slot=5).write(tmp_path / "next-ca.pem")


# --- a changed CA or client id ---------------------------------------------------------


def test_wrong_ca_keeps_the_installed_certificate(
    client: Client, signer: FakeCaramel, tmp_path: Path
) -> None:
    installed(client, signer)
    before = snapshot(client.file)
    result = client.run("--ca-cert", str(next_ca_file(tmp_path)))
    assert_error(result, "not trusted", "nothing was changed")
    assert snapshot(client.file) == before
    assert signer.requests("POST")[1:] == []  # only the first enrolment's
    assert client.run().returncode == 0  # the right CA again: nothing to do
    assert snapshot(client.file) == before


def test_changed_client_id_with_a_dead_server_keeps_the_file(
    client: Client, signer: FakeCaramel
) -> None:
    installed(client, signer)
    before = snapshot(client.file)
    client.server, client.client_id = dead_server(), NEW_ID
    assert_error(client.run(), "cannot connect", "nothing was changed")
    assert snapshot(client.file) == before


def test_changed_client_id_keeps_the_certificate_until_its_replacement(
    client: Client, signer: FakeCaramel
) -> None:
    first = installed(client, signer)
    key = parse_combined(client.file.read_bytes()).key_modulus
    client.client_id = NEW_ID
    result = client.run()
    assert result.returncode == 69, result.stderr
    assert "another client id" in result.stderr
    assert "stays" in result.stderr

    held = parse_combined(client.file.read_bytes())
    assert held.key_modulus == key
    assert held.certificate == first  # still there for the device's services
    assert common_name(held.request.subject) == NEW_ID
    new_sha = next(
        sha for sha, e in signer.entries.items() if common_name(e.csr.subject) == NEW_ID
    )
    assert signer.entries[new_sha].state == "pending"

    signer.seen.clear()
    assert client.run().returncode == 69  # pending: nothing written
    (get,) = signer.requests("GET")
    assert get.path.endswith(new_sha)
    assert get.client_certificate == first  # the older one still identifies the device
    assert "If-Modified-Since" not in get.headers  # but validates nothing at the new URL
    assert parse_combined(client.file.read_bytes()).data == held.data

    signer.sign(new_sha)
    assert client.run().returncode == 0
    replaced = parse_combined(client.file.read_bytes())
    assert replaced.certificate is not None
    assert replaced.certificate != first
    assert common_name(replaced.certificate.subject) == NEW_ID
    assert replaced.key_modulus == key
    signer.seen.clear()
    assert client.run().returncode == 0  # now its own: asked conditionally again
    assert "If-Modified-Since" in signer.requests("GET")[0].headers


def test_a_run_killed_between_post_and_write_loses_nothing(
    client: Client, signer: FakeCaramel
) -> None:
    """The server accepts the new request, the client dies before writing it: the file is
    as it was, and the next run makes the same request, which the server calls a duplicate."""
    installed(client, signer)
    before = snapshot(client.file)
    posted, release = threading.Event(), threading.Event()

    def hold_the_post(request: Request) -> Response | None:
        if request.method == "POST":
            posted.set()
            release.wait(60)
        return None

    signer.forced = hold_the_post
    client.client_id = NEW_ID
    process = client.start(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, new_session=True)
    try:
        assert posted.wait(60), "the new request was never posted"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    finally:
        release.set()
    assert snapshot(client.file) == before
    for _ in range(100):  # the held handler now registers the request
        if len(signer.entries) == 2:
            break
        time.sleep(0.05)
    assert len(signer.entries) == 2

    signer.forced = None
    result = client.run()
    assert (result.returncode, len(signer.entries)) == (69, 2), result.stderr
    assert signer.requests("POST")[-1].body == signer.requests("POST")[-2].body  # duplicate
    held = parse_combined(client.file.read_bytes())
    assert common_name(held.request.subject) == NEW_ID
    assert held.certificate is not None
    assert common_name(held.certificate.subject) == CLIENT_ID


# --- a provisioned key ---------------------------------------------------------------


def provision(client: Client) -> bytes:
    """A file holding only an RSA key, as a factory writes it."""
    key_bytes = key_pem(new_key(6))
    client.file.parent.mkdir(parents=True, exist_ok=True)
    client.file.write_bytes(key_bytes)
    client.file.chmod(0o600)
    return key_bytes


def test_provisioned_key_is_kept_and_its_request_posted(
    client: Client, signer: FakeCaramel
) -> None:
    key_bytes = provision(client)
    result = client.run()
    assert (result.returncode, result.stderr) == (69, "")
    held = parse_combined(client.file.read_bytes())
    assert held.data.startswith(key_bytes)
    assert held.certificate is None
    assert [p.body for p in signer.requests("POST")] == [
        held.request.public_bytes(serialization.Encoding.PEM)
    ]
    assert list(client.file.parent.glob("*.corrupt-*")) == []
    signer.sign()
    assert client.run().returncode == 0
    assert parse_combined(client.file.read_bytes()).data.startswith(key_bytes)


def test_provisioned_key_with_a_dead_server_keeps_the_file(client: Client) -> None:
    provision(client)
    before = snapshot(client.file)
    client.server = dead_server()
    assert_error(client.run(), "cannot connect", "nothing was changed")
    assert snapshot(client.file) == before


# --- after a rejection --------------------------------------------------------------


def test_post_after_a_rejection_does_not_show_the_wiped_certificate(
    client: Client, signer: FakeCaramel
) -> None:
    first = installed(client, signer)
    signer.reject()
    signer.seen.clear()
    assert client.run().returncode == 69
    (get,) = signer.requests("GET")
    (post,) = signer.requests("POST")
    assert get.client_certificate == first
    assert post.client_certificate is None


# --- a CA that is not a CA ---------------------------------------------------------


def test_a_leaf_given_as_the_ca_is_refused_before_the_file_is_read(
    client: Client, signer: FakeCaramel, tmp_path: Path
) -> None:
    leaf = signer.authority.issue(
        new_key(7).public_key(), name(((NameOID.COMMON_NAME, "127.0.0.1"),)),
        server_hosts=("127.0.0.1",),
    )  # fmt: skip
    leaf_file = tmp_path / "server.pem"
    leaf_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    result = client.run("--ca-cert", str(leaf_file))
    assert_error(result, str(leaf_file), "not a CA certificate")
    assert not client.file.exists()
    assert signer.seen == []
