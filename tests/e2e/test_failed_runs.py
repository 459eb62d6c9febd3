"""A failed run changes nothing, against the real Caramel server behind nginx.

The issue's report, replayed: a device holds a certificate; one run names another CA (a
typo in ``CARAMEL_CA_CERT``, or firmware that embeds the fleet's next CA too early), then
the client id changes. The certificate must survive both, and stay until Caramel has
signed the new request.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.x509.oid import NameOID

from testbed.ca_factory import make_authority
from testbed.command import run_client
from testbed.harness import CaramelStack
from tests.e2e.lifecycle import Lifecycle

pytestmark = pytest.mark.e2e

CLIENT_ID = "e2e-keep-01"
NEW_ID = "e2e-keep-02"


def test_wrong_ca_and_changed_id_keep_the_certificate(stack: CaramelStack, tmp_path: Path) -> None:
    device = Lifecycle(stack, tmp_path, CLIENT_ID)
    for step in ("first_run", "pending", "signed"):
        device.run_step(step)
    holding = device.snapshot()
    assert holding.cert_pem is not None

    other_ca = make_authority(
        ((NameOID.ORGANIZATION_NAME, "Next Fleet AB"), (NameOID.COMMON_NAME, "Next CA")),
        key_slot=5,
    ).write(tmp_path / "next-ca.pem")
    args = device.client_args(stack.front_url)
    wrong = run_client([*args, "--ca-cert", str(other_ca)])  # the last --ca-cert wins
    assert wrong.returncode == 127, wrong.stderr
    assert "not trusted" in wrong.stderr
    assert device.snapshot().same_bytes_and_mtime(holding)

    renamed = run_client([*args[:-1], NEW_ID])
    assert renamed.returncode == 69, renamed.stderr
    waiting = device.snapshot()
    assert waiting.key_pem == holding.key_pem
    assert waiting.cert_pem == holding.cert_pem, "the installed certificate must stay"
    assert waiting.csr is not None
    assert waiting.csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == NEW_ID
    (listed,) = [r for r in stack.list_requests() if r.sha256 == waiting.csr_sha256]
    assert not listed.signed

    mark = stack.log_mark()
    pending = run_client([*args[:-1], NEW_ID])
    assert pending.returncode == 69, pending.stderr
    assert device.snapshot().same_bytes_and_mtime(waiting)
    records = stack.records_since(mark, lambda rs: any(r.method == "GET" for r in rs))
    (get,) = [r for r in records if r.method == "GET"]
    assert (get.path, get.status) == (waiting.csr_sha256, 202)
    assert get.client_verify == "SUCCESS", "the older certificate still identifies the device"
    assert get.if_modified_since == "", "the older certificate validates nothing here"

    stack.sign(listed.id)
    signed = run_client([*args[:-1], NEW_ID])
    assert signed.returncode == 0, signed.stderr
    replaced = device.snapshot()
    assert replaced.certificate is not None
    assert replaced.certificate.subject == waiting.csr.subject
    assert replaced.key_pem == holding.key_pem

    mark = stack.log_mark()
    assert run_client([*args[:-1], NEW_ID]).returncode == 0
    records = stack.records_since(mark, lambda rs: any(r.method == "GET" for r in rs))
    (get,) = [r for r in records if r.method == "GET"]
    assert get.if_modified_since, "a certificate of the held request is asked for conditionally"
