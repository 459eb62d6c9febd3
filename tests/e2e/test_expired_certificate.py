"""An expired installed certificate against the real nginx front.

With ``ssl_verify_client optional`` nginx answers 400 to a client that presents an
expired certificate (``test_server_facts`` shows it with curl), so a client that showed
it would be stuck at 127 until someone deleted its file. The client shows its
certificate only while it is valid: here it must fetch the current one and install it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from testbed import pki
from testbed.command import run_client
from testbed.harness import CaramelStack
from tests.e2e.lifecycle import Lifecycle

pytestmark = [pytest.mark.e2e, pytest.mark.arm]

CLIENT_ID = "e2e-expired-01"


def test_expired_certificate_is_not_presented(stack: CaramelStack, tmp_path: Path) -> None:
    """Expired certificate in the file: no client certificate shown, the new one installed."""
    device = Lifecycle(stack, tmp_path, CLIENT_ID)
    for step in ("first_run", "pending", "signed"):
        device.run_step(step)
    issued = device.snapshot()
    key = issued.private_key
    assert key is not None
    assert issued.key_pem is not None
    assert issued.cert_pem is not None
    assert issued.csr_pem is not None

    now = dt.datetime.now(dt.UTC)
    expired = pki.forge_certificate(
        stack.ca_cert,
        stack.ca_key,
        key,
        CLIENT_ID,
        now - dt.timedelta(days=3),
        now - dt.timedelta(days=1),
    )
    device.file.write_bytes(issued.key_pem + expired + issued.csr_pem)
    before = device.snapshot()
    assert before.certificate is not None
    assert before.certificate.not_valid_after_utc < now

    mark = stack.log_mark()
    done = run_client(device.client_args(stack.front_url))
    assert done.returncode == 0, f"status {done.returncode}: {done.stderr}"
    assert (done.stdout, done.stderr) == ("", "")

    after = device.snapshot()
    assert after.cert_pem == issued.cert_pem, "the server's current certificate is installed"
    assert after.key_pem == issued.key_pem
    assert after.csr_pem == issued.csr_pem
    assert after.mode == 0o600

    sha = after.csr_sha256
    records = stack.records_since(
        mark, lambda rs: any(r.method == "GET" and r.path == sha for r in rs)
    )
    gets = [r for r in records if r.method == "GET" and r.path == sha]
    assert [(r.status, r.client_verify) for r in gets] == [(200, "NONE")], [
        r.summary() for r in records
    ]
