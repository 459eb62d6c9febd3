"""IPv6: a server given as ``https://[::1]:PORT``, and a name that has only an AAAA record.

The fake signer listens on ``::1`` alone; its TLS certificate names ``::1`` (an IP
subjectAltName) or the name. The name is looked up in a private ``/etc/hosts`` that holds
only its IPv6 address, in a mount namespace of the client's own (as in
``test_name_resolution``), so nothing but ``::1`` can answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.ca_factory import Authority
from testbed.command import client_command
from tests import fake_signer
from tests.conftest import Client
from tests.fake_signer import FakeCaramel
from tests.test_name_resolution import HOSTS, named_tls_context, private_etc, run_in

V6_NAME = "caramel-v6.invalid"


@pytest.fixture
def v6_signer(authority: Authority, tmp_path: Path) -> Iterator[tuple[FakeCaramel, int]]:
    with fake_signer.serving(authority, tmp_path, host="::1") as signer:
        yield signer, signer.port  # type: ignore[attr-defined]


def test_server_given_as_an_ipv6_address(
    client: Client, v6_signer: tuple[FakeCaramel, int]
) -> None:
    signer, port = v6_signer
    v6 = dataclasses.replace(client, server=f"https://[::1]:{port}")
    first = v6.run("--status")
    assert first.returncode == 69, first.stderr
    assert signer.requests("POST")[0].headers.get("Host") == f"[::1]:{port}"
    signer.sign()
    result = v6.run("--status")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("status=installed exit=0 ")
    assert v6.run().returncode == 0
    # The installed certificate went along as the client certificate, over IPv6 too.
    assert signer.requests("GET")[-1].client_certificate is not None


def test_ipv6_address_without_scheme(client: Client, v6_signer: tuple[FakeCaramel, int]) -> None:
    signer, port = v6_signer
    result = dataclasses.replace(client, server=f"[::1]:{port}").run()
    assert result.returncode == 69, result.stderr
    assert len(signer.requests("POST")) == 1


@pytest.fixture
def aaaa_signer(authority: Authority, tmp_path: Path) -> Iterator[tuple[FakeCaramel, int]]:
    """The fake signer on ::1 only, with a certificate for ``V6_NAME``."""
    context = named_tls_context(authority, V6_NAME, tmp_path)
    with fake_signer.serving(authority, tmp_path, host="::1", context=context) as signer:
        yield signer, signer.port  # type: ignore[attr-defined]


def test_name_with_only_an_aaaa_record(
    client: Client, aaaa_signer: tuple[FakeCaramel, int], tmp_path: Path
) -> None:
    signer, port = aaaa_signer
    files = private_etc(tmp_path / "etc", f"{HOSTS}::1 {V6_NAME}\n")
    named = dataclasses.replace(client, server=f"https://{V6_NAME}:{port}")
    status, stderr, _, _ = run_in(files, [*client_command(), *named.args()], limit=60)
    assert status == 69, stderr
    posted = signer.requests("POST")
    assert len(posted) == 1
    assert posted[0].headers.get("Host") == f"{V6_NAME}:{port}"
