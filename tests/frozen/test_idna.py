"""An internationalised server name through the binary's idna stand-in (issue 13).

Both frozen forms replace the ``idna`` codec module by an ASCII fast path
(build/caramel_startup.py) so that ``unicodedata`` stays packed; ``ssl`` and ``socket``
pass every host name through that codec. SERVER takes host names in their ASCII form
(server_address.py), so an internationalised name reaches ``ssl`` as punycode: here
``xn--bcher-kva.test`` (bücher.test), mapped to 127.0.0.1 in a private /etc/hosts inside
a mount namespace of the test's own (no traffic leaves loopback), with the fake signer's
certificate naming it. The name is resolved, sent as SNI and checked against the
certificate by the frozen client. The non-ASCII spelling is refused as a usage error,
before any codec (the stand-in's answers for non-ASCII names are compared with CPython's
in tests/test_startup_hook.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from testbed.ca_factory import IDN_HOST
from testbed.command import clean_environment, client_command
from tests.conftest import Client
from tests.fake_signer import FakeCaramel
from tests.frozen.conftest import Binary

BIND_HOSTS = 'mount --bind "$1" /etc/hosts && shift && exec "$@"'


def run_with_hosts(
    hosts: Path, client: Client, server: str, *, own_network: bool = False
) -> subprocess.CompletedProcess[str]:
    """The client with `hosts` as /etc/hosts, in a mount namespace of its own (and a
    network namespace of its own when a look-up could otherwise leave the machine)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare (util-linux) is needed")
    arguments = [server, *client.args()[1:]]
    namespaces = ["-m", "-n"] if own_network else ["-m"]
    wrapper = [unshare, *namespaces, "sh", "-c", BIND_HOSTS, "sh", str(hosts)]
    return subprocess.run(
        [*wrapper, *client_command(), *arguments],
        env=clean_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_idn_server_name_in_punycode_is_resolved_and_verified(
    binary: Binary, client: Client, signer: FakeCaramel, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 {IDN_HOST}\n")
    port = client.server.rsplit(":", 1)[1]
    first = run_with_hosts(hosts, client, f"https://{IDN_HOST}:{port}")
    assert (first.returncode, first.stderr) == (69, "")
    assert len(signer.requests("POST")) == 1
    # Without the mapping the name does not resolve (in a network namespace of its own, so
    # that the look-up cannot reach a real DNS server): the mapping did the work.
    (tmp_path / "empty").write_text("")
    unmapped = run_with_hosts(
        tmp_path / "empty", client, f"https://{IDN_HOST}:{port}", own_network=True
    )
    assert unmapped.returncode == 127
    assert IDN_HOST in unmapped.stderr
    assert len(signer.requests("POST")) == 1


def test_a_non_ascii_server_name_is_a_usage_error(binary: Binary, client: Client) -> None:
    result = subprocess.run(
        [*client_command(), "https://bücher.test", *client.args()[1:]],
        env=clean_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 127
    assert result.stderr.startswith("caramel-embedded: SERVER")
    assert not client.file.exists()
