"""A CA rollover that strands no device, against two real Caramel 1.9.6 servers.

The order operators use, with one Caramel server per CA behind one fixed address (a relay
that the "switch" moves from the old server to the new one, as a DNS or load-balancer
change does; the devices' configuration never changes):

0. firmware with the old CA; the old server signs;
1. firmware with the bundle old + new (the old first: requests still name the old CA);
2. the address switches to the new server: devices trust its TLS certificate, post their
   request there (unknown to it), and install what it signs, keeping the old certificate
   until then;
3. firmware with the new CA alone: a device whose request names the old CA posts one for
   the same key, and installs the certificate for it once signed.

After every single run of the client, every device holds a current certificate for its
own key and id, signed by one of the two CAs: no device is ever without one. Devices enrol
in every phase (made before, during and after the switch). The new CA differs from the
old in OU, which Caramel does not check (it compares C, ST, L and O with its CA), so the
new server accepts requests that name the old CA, and the last firmware changes the
request's subject.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from testbed import pki
from testbed.command import run_client
from testbed.harness import CA_SUBJECT_ANSWERS, CaramelStack
from testbed.relay import Relay

pytestmark = pytest.mark.e2e

NEW_CA_SUBJECT = tuple(
    (name, "Devices 2027" if name == "OU" else value) for name, value in CA_SUBJECT_ANSWERS
)


@pytest.fixture(scope="module")
def old() -> Iterator[CaramelStack]:
    """The server of the old CA."""
    with CaramelStack() as running:
        yield running


@pytest.fixture(scope="module")
def new() -> Iterator[CaramelStack]:
    """The server of the new CA (another key, OU "Devices 2027")."""
    with CaramelStack(ca_subject=NEW_CA_SUBJECT) as running:
        yield running


@dataclass
class Fleet:
    """The devices, the firmware's CA file, and the address they all use."""

    old: CaramelStack
    new: CaramelStack
    relay: Relay
    root: Path
    firmware: Path
    devices: dict[str, Path]

    def ship(self, *stacks: CaramelStack) -> None:
        """New firmware: its CA file holds these CAs, in this order."""
        self.firmware.write_bytes(b"".join(s.ca_cert.read_bytes() for s in stacks))

    def switch(self, stack: CaramelStack) -> None:
        """The fleet's server address now reaches this Caramel."""
        self.relay.target_port = stack.ports.mtls

    def check(self, client_id: str, expected: int) -> pki.CombinedFile:
        """One run of the real client; then the device must hold a usable certificate
        (except before its very first signature)."""
        file = self.devices.setdefault(client_id, self.root / client_id / "client.pem")
        done = run_client(
            ["--file", str(file), "--ca-cert", str(self.firmware), self.relay.url, client_id]
        )
        assert done.returncode == expected, (
            f"{client_id}: exit {done.returncode}, expected {expected}: {done.stderr}"
        )
        return pki.CombinedFile.read(file)

    def assert_every_device_holds_a_certificate(self) -> None:
        """Each device's file: a current certificate for its key and id, from either CA."""
        now = dt.datetime.now(dt.UTC)
        for client_id, file in self.devices.items():
            state = pki.CombinedFile.read(file)
            cert, key = state.certificate, state.private_key
            assert cert is not None, f"{client_id} holds no certificate: {state.describe()}"
            assert key is not None
            assert cert.public_key() == key.public_key(), f"{client_id}: not for its key"
            cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            assert [a.value for a in cn] == [client_id]
            assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc, client_id
            assert issuer_of(cert, self) in ("old", "new"), f"{client_id}: foreign issuer"

    def sign(self, stack: CaramelStack, state: pki.CombinedFile) -> None:
        """The operator signs the request the file holds, on this server."""
        listed = stack.request(state.csr_sha256 or "")
        assert listed is not None, f"{stack.ca_cert}: request {state.csr_sha256} not listed"
        stack.sign(listed.id)

    def enrol(self, stack: CaramelStack, client_id: str) -> pki.CombinedFile:
        """A new device: posts (69), is signed, installs (0)."""
        posted = self.check(client_id, 69)
        self.sign(stack, posted)
        installed = self.check(client_id, 0)
        assert issuer_of(installed.certificate, self) == ca_name(stack, self)
        return installed


def ca_name(stack: CaramelStack, fleet: Fleet) -> str:
    return "old" if stack is fleet.old else "new"


def issuer_of(cert: x509.Certificate | None, fleet: Fleet) -> str:
    """Which CA's key signed the certificate (the subjects differ only in OU)."""
    assert cert is not None
    for name, stack in (("old", fleet.old), ("new", fleet.new)):
        try:
            cert.verify_directly_issued_by(pki.load_ca(stack.ca_cert))
        except (ValueError, TypeError, InvalidSignature):
            continue
        return name
    return "neither"


def ou_of_request(state: pki.CombinedFile) -> str:
    assert state.csr is not None
    return str(state.csr.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value)


@pytest.fixture
def fleet(old: CaramelStack, new: CaramelStack, tmp_path: Path) -> Iterator[Fleet]:
    with Relay(old.ports.mtls) as relay:
        yield Fleet(old, new, relay, tmp_path, tmp_path / "firmware-ca.pem", {})


def test_rollover_strands_no_device(fleet: Fleet) -> None:
    """Old CA, then old + new, then the server switches, then the new CA alone."""
    old, new = fleet.old, fleet.new

    # 0. Firmware with the old CA, the old server.
    fleet.ship(old)
    fleet.switch(old)
    first = fleet.enrol(old, "rollover-early")
    fleet.assert_every_device_holds_a_certificate()

    # 1. Firmware with old + new; the old server still answers. Nothing changes for a
    #    device that holds its certificate; a new device enrols with the old CA.
    fleet.ship(old, new)
    again = fleet.check("rollover-early", 0)
    assert again.same_bytes_and_mtime(first), "the bundle alone changed the file"
    fleet.enrol(old, "rollover-during")
    fleet.assert_every_device_holds_a_certificate()

    # 2. The address moves to the new server. Each device's request is unknown there: it
    #    is posted (69) and the old certificate stays until the new server signs.
    fleet.switch(new)
    for client_id in ("rollover-early", "rollover-during"):
        before = pki.CombinedFile.read(fleet.devices[client_id])
        posted = fleet.check(client_id, 69)
        assert posted.cert_pem == before.cert_pem, f"{client_id}: the old certificate went"
        assert posted.key_pem == before.key_pem
        assert posted.csr_pem == before.csr_pem, "the request still names the old CA"
        fleet.assert_every_device_holds_a_certificate()
        fleet.sign(new, posted)
        installed = fleet.check(client_id, 0)
        assert issuer_of(installed.certificate, fleet) == "new"
        assert installed.key_pem == before.key_pem
        fleet.assert_every_device_holds_a_certificate()
    late = fleet.enrol(new, "rollover-late")
    assert ou_of_request(late) == "Devices", "with old + new, requests name the old CA"
    fleet.assert_every_device_holds_a_certificate()

    # 3. Firmware with the new CA alone: requests that name the old CA are replaced by
    #    ones for the same key that name the new one, posted first; the certificate the
    #    new server signed stays until the new request's certificate replaces it.
    fleet.ship(new)
    for client_id in ("rollover-early", "rollover-during", "rollover-late"):
        before = pki.CombinedFile.read(fleet.devices[client_id])
        reposted = fleet.check(client_id, 69)
        assert reposted.key_pem == before.key_pem, f"{client_id}: the key changed"
        assert reposted.cert_pem == before.cert_pem, f"{client_id}: the certificate went"
        assert reposted.csr_sha256 != before.csr_sha256
        assert ou_of_request(reposted) == "Devices 2027"
        fleet.assert_every_device_holds_a_certificate()
        fleet.sign(new, reposted)
        installed = fleet.check(client_id, 0)
        assert installed.certificate is not None
        assert issuer_of(installed.certificate, fleet) == "new"
        ou = installed.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        assert [a.value for a in ou] == ["Devices 2027"]
        assert fleet.check(client_id, 0).same_bytes_and_mtime(installed)
        fleet.assert_every_device_holds_a_certificate()
    fleet.enrol(new, "rollover-after")
    fleet.assert_every_device_holds_a_certificate()

    # And the old server is no longer trusted by the last firmware.
    fleet.switch(old)
    done = run_client(
        [
            "--file",
            str(fleet.devices["rollover-after"]),
            "--ca-cert",
            str(fleet.firmware),
            fleet.relay.url,
            "rollover-after",
        ]
    )
    assert done.returncode == 127, done.stderr
    fleet.assert_every_device_holds_a_certificate()
