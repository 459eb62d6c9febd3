"""A CA bundle: every certificate in --ca-cert is a trust anchor; the first names the request.

That is what lets a fleet move to a new CA without stranding a device: ship firmware with
old + new, switch the server, ship firmware with the new one alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from testbed.ca_factory import FLEET_SUBJECT, Authority, make_authority, name, new_key
from tests import fake_signer
from tests.conftest import Client
from tests.test_protocol import assert_error

# The next CA of the same fleet: the prefix Caramel checks (C, ST, L, O) is the same.
NEXT_SUBJECT = tuple((oid, "Fleet 2027" if oid == NameOID.ORGANIZATIONAL_UNIT_NAME else value)
                     for oid, value in FLEET_SUBJECT)  # fmt: skip


@pytest.fixture(scope="module")
def next_authority() -> Authority:
    return make_authority(NEXT_SUBJECT, key_slot=5)


@pytest.fixture
def next_signer(
    next_authority: Authority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[fake_signer.FakeCaramel]:
    """A Caramel server switched to the next CA: its TLS and its signatures."""
    with fake_signer.serving(next_authority, tmp_path_factory.mktemp("next-tls")) as fake:
        yield fake


def bundle(path: Path, *authorities: Authority) -> Path:
    path.write_bytes(b"".join(authority.pem for authority in authorities))
    return path


def organizational_unit(subject: x509.Name) -> str:
    return str(subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value)


def test_server_switched_to_the_next_ca_is_trusted_and_its_certificate_installed(
    client: Client,
    next_signer: fake_signer.FakeCaramel,
    authority: Authority,
    next_authority: Authority,
    tmp_path: Path,
) -> None:
    client.server = next_signer.url  # type: ignore[attr-defined]
    client.ca_file = bundle(tmp_path / "old-new.pem", authority, next_authority)
    assert client.run().returncode == 69
    _, entry = next_signer.only_entry()
    assert organizational_unit(entry.csr.subject) == "Fleet"  # the first CA's subject
    next_signer.sign()
    result = client.run()
    assert result.returncode == 0, result.stderr


def test_the_request_follows_the_first_ca(
    client: Client, signer: fake_signer.FakeCaramel, authority: Authority,
    next_authority: Authority, tmp_path: Path,
) -> None:  # fmt: skip
    client.ca_file = bundle(tmp_path / "new-old.pem", next_authority, authority)
    assert client.run().returncode == 69
    _, entry = signer.only_entry()
    assert organizational_unit(entry.csr.subject) == "Fleet 2027"


def test_a_leaf_in_a_bundle_is_refused(
    client: Client, signer: fake_signer.FakeCaramel, authority: Authority, tmp_path: Path
) -> None:
    leaf = authority.issue(new_key(7).public_key(), name(((NameOID.COMMON_NAME, "leaf"),)))
    path = tmp_path / "with-leaf.pem"
    path.write_bytes(authority.pem + leaf.public_bytes(Encoding.PEM))
    client.ca_file = path
    assert_error(client.run(), "not a CA certificate", "CN=leaf")
    assert not client.file.exists()
    assert signer.seen == []


def test_an_expired_ca_beside_a_valid_one_harms_nothing(
    client: Client, signer: fake_signer.FakeCaramel, authority: Authority, tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    ended = {"not_before": now - dt.timedelta(days=400), "not_after": now - dt.timedelta(days=1)}
    old = make_authority(NEXT_SUBJECT, key_slot=5, **ended)
    client.ca_file = bundle(tmp_path / "expired-valid.pem", authority, old)
    assert client.run().returncode == 69
    client.ca_file = bundle(tmp_path / "expired-only.pem", old)
    assert_error(client.run(), "expired")
