"""An HTTPS proxy, as curl reads one: a CONNECT tunnel, TLS end to end with the server.

A small proxy on loopback (``tests/connect_proxy.py``) records every tunnel: its target,
its header, and the bytes the client sent through it. The request's path and our
User-Agent must never cross it in clear; the client certificate is shown to the server,
through the tunnel; the proxy's credentials go in Proxy-Authorization and nowhere else.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from caramel_embedded import proxy as proxy_module
from caramel_embedded.errors import UsageError
from tests.conftest import Client
from tests.connect_proxy import ConnectProxy, running
from tests.fake_signer import FakeCaramel
from tests.test_protocol import installed

SECRET = "s3cr%40t:x"  # percent-encoded in the URL: the password is "s3cr@t:x"


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    with running(ConnectProxy()) as started:
        yield started


def server_target(client: Client) -> str:
    return client.server.removeprefix("https://")


def assert_tunnelled_only(proxy: ConnectProxy, client: Client, signer: FakeCaramel) -> None:
    """Every tunnel went to the server, and nothing of the HTTP request crossed in clear."""
    assert proxy.tunnels, "nothing went through the proxy"
    for tunnel in proxy.tunnels:
        assert tunnel.target == server_target(client)
        assert tunnel.sent[:1] == b"\x16", "the first bytes through the tunnel are TLS's"
        for path in {seen.path for seen in signer.seen}:
            assert path.encode() not in tunnel.sent
        assert b"User-Agent" not in tunnel.sent
        assert b"caramel-embedded/" not in tunnel.sent


def test_whole_lifecycle_through_https_proxy(
    client: Client, signer: FakeCaramel, proxy: ConnectProxy
) -> None:
    env = {"https_proxy": proxy.url}
    assert client.run(env=env).returncode == 69
    signer.sign()
    assert client.run(env=env).returncode == 0
    result = client.run(env=env)
    assert result.returncode == 0, result.stderr
    # The installed certificate reached the server through the tunnel: TLS is end to end.
    assert signer.requests("GET")[-1].client_certificate is not None
    # One tunnel for each request the server saw: POST, GET (installed), GET (current).
    assert len(proxy.tunnels) == len(signer.seen) == 3
    assert_tunnelled_only(proxy, client, signer)
    assert "Proxy-Authorization" not in proxy.tunnels[0].headers


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "CARAMEL_PROXY"])
def test_other_ways_to_name_the_proxy(
    client: Client, signer: FakeCaramel, proxy: ConnectProxy, variable: str
) -> None:
    assert client.run(env={variable: proxy.url}).returncode == 69
    assert_tunnelled_only(proxy, client, signer)


def test_credentials_from_the_url_and_never_shown(
    client: Client, signer: FakeCaramel, proxy: ConnectProxy
) -> None:
    proxy.credentials = ("device", "s3cr@t:x")
    url = proxy.url.replace("http://", f"http://device:{SECRET}@")
    result = client.run("--proxy", url, "--status", "-v")
    assert result.returncode == 69, result.stderr
    token = base64.b64encode(b"device:s3cr@t:x").decode()
    assert proxy.tunnels[0].headers["Proxy-Authorization"] == f"Basic {token}"
    for secret in ("s3cr", token, SECRET):
        assert secret not in result.stdout + result.stderr
    assert f"127.0.0.1:{proxy.port}" in result.stderr  # -v names the proxy, host and port


def test_proxy_that_refuses_is_a_network_error_without_credentials(
    client: Client, proxy: ConnectProxy
) -> None:
    proxy.credentials = ("device", "right")
    url = proxy.url.replace("http://", "http://device:wrong-password@")
    result = client.run("--status", env={"https_proxy": url})
    assert result.returncode == 127
    assert "407" in result.stderr
    assert f"127.0.0.1:{proxy.port}" in result.stderr
    assert "wrong-password" not in result.stdout + result.stderr
    assert "status=error exit=127 reason=network" in result.stdout


@pytest.mark.parametrize(
    "no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "*", "127.0.0.0/8", " .0.1,127.0.0.1 "]
)
def test_no_proxy_goes_direct(
    client: Client, signer: FakeCaramel, proxy: ConnectProxy, no_proxy: str
) -> None:
    result = client.run(env={"https_proxy": proxy.url, "no_proxy": no_proxy})
    assert result.returncode == 69, result.stderr
    assert proxy.tunnels == []
    assert len(signer.requests("POST")) == 1


def test_no_proxy_that_does_not_match_goes_through(
    client: Client, signer: FakeCaramel, proxy: ConnectProxy
) -> None:
    env = {"https_proxy": proxy.url, "NO_PROXY": "example.com,10.0.0.0/8"}
    assert client.run(env=env).returncode == 69
    assert_tunnelled_only(proxy, client, signer)


@pytest.mark.parametrize("how", ["--proxy", "CARAMEL_PROXY"])
def test_empty_explicit_proxy_means_none(
    client: Client, signer: FakeCaramel, proxy: ConnectProxy, how: str
) -> None:
    env = {"https_proxy": proxy.url}
    if how == "--proxy":
        result = client.run("--proxy", "", env=env)
    else:
        result = client.run(env={**env, "CARAMEL_PROXY": ""})
    assert result.returncode == 69, result.stderr
    assert proxy.tunnels == []


def test_unreachable_proxy_is_a_network_error(client: Client) -> None:
    result = client.run("--status", "--proxy", "http://127.0.0.1:1")
    assert result.returncode == 127
    assert "proxy 127.0.0.1:1" in result.stderr
    assert "reason=network" in result.stdout


PROBE = """
import json, sys
from caramel_embedded import cli
status = cli.main(sys.argv[1:])
print(json.dumps({"status": status, "proxy": "caramel_embedded.proxy" in sys.modules}))
"""


def test_unchanged_path_without_a_proxy_never_imports_it(
    client: Client, signer: FakeCaramel
) -> None:
    installed(client, signer)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *client.args()], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout.splitlines()[-1]) == {"status": 0, "proxy": False}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://proxy:3128", ("proxy", 3128, None)),
        ("proxy:3128", ("proxy", 3128, None)),
        ("proxy", ("proxy", 1080, None)),
        ("http://[::1]:8080/", ("::1", 8080, None)),
        ("http://u:p%40ss@proxy:1", ("proxy", 1, "Basic " + base64.b64encode(b"u:p@ss").decode())),
    ],
)
def test_proxy_urls(text: str, expected: tuple[str, int, str | None]) -> None:
    assert proxy_module.parse(text, "test") == proxy_module.Proxy(*expected)


@pytest.mark.parametrize(
    "text", ["https://proxy:443", "socks5://proxy:1080", "http://:3128", "p:x"]
)
def test_unsupported_proxy_urls(text: str) -> None:
    with pytest.raises(UsageError):
        proxy_module.parse(text, "test")


@pytest.mark.parametrize(
    ("host", "no_proxy", "bypassed"),
    [
        ("ca.example.com", "example.com", True),
        ("ca.example.com", ".example.com", True),
        ("ca.example.com", "xample.com", False),
        ("example.com", "ca.example.com", False),
        ("::1", "[::1]", True),
        ("::1", "::/0", True),
        ("10.1.2.3", "10.0.0.0/8", True),
        ("11.1.2.3", "10.0.0.0/8", False),
        ("anything", "*", True),
        ("anything", "", False),
    ],
)
def test_no_proxy_as_curl_reads_it(host: str, no_proxy: str, bypassed: bool) -> None:
    assert proxy_module.bypassed(host, no_proxy) is bypassed


def test_proxy_never_shows_its_credentials() -> None:
    proxy = proxy_module.parse("http://device:hunter2@proxy:3128", "test")
    assert proxy.authorization is not None
    for shown in (str(proxy), repr(proxy), f"{proxy!r} {[proxy]}"):
        assert "hunter2" not in shown
        assert proxy.authorization.split()[1] not in shown
