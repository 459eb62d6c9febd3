"""``proxy``: proxy URLs, ``no_proxy`` and the proxy's answer to ``CONNECT``.

Contract, for any input:
- ``parse`` returns a proxy (a host as SERVER's rules have it, a port 1 to 65535) or
  raises ``UsageError``; its texts (``str``, ``repr``) are its host and port alone, so the
  credentials are only in its ``Proxy-Authorization`` value, and are the URL's;
- ``bypassed`` answers, never raises;
- ``open_tunnel`` returns (a 2xx answer) or raises ``TunnelRefused`` (an ``OSError``, which
  the network turns into ``NetworkError``), whatever the proxy sends and however it is cut
  up, and takes from the socket the answer's header and not one byte more: what follows
  belongs to TLS.
"""

from __future__ import annotations

import base64
import socket
from urllib.parse import unquote

from caramel_embedded import proxy, server_address
from caramel_embedded.errors import UsageError
from fuzz.contract import Finding, agree, outcome

_SEPARATOR = b"\n--\n"


class ScriptedSocket:
    """A proxy that answers ``reply``, delivered in pieces of the given sizes."""

    def __init__(self, reply: bytes, pieces: bytes) -> None:
        self.reply = reply
        self.taken = 0
        self.pieces = [size or 1 for size in pieces] or [len(reply) or 1]
        self.sent = b""

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def recv(self, size: int, flags: int = 0) -> bytes:
        available = self.pieces[self.taken % len(self.pieces)]
        chunk = self.reply[self.taken : self.taken + min(size, available)]
        if not flags & socket.MSG_PEEK:
            self.taken += len(chunk)
        return chunk


def check(data: bytes) -> None:
    url, no_proxy, host, reply, pieces = [*data.split(_SEPARATOR, 4), b"", b"", b"", b""][:5]
    text = url.decode("utf-8", "surrogateescape")
    found = outcome(lambda: proxy.parse(text, "--proxy"), (UsageError,))
    if isinstance(found, proxy.Proxy):
        if not server_address.is_host(f"[{found.host}]" if ":" in found.host else found.host):
            raise Finding(f"proxy host {found.host!r} is not a host")
        if not 0 < found.port < 65536:
            raise Finding(f"proxy port {found.port}")
        if found.authorization is not None:
            user_password = base64.b64decode(found.authorization.removeprefix("Basic "))
            shown = f"[{found.host}]" if ":" in found.host else found.host
            if (str(found), repr(found)) != (
                f"{shown}:{found.port}",
                f"Proxy({shown}:{found.port})",
            ):
                raise Finding(f"the proxy's text is more than its host and port: {found!r}")
            credentials = text.strip().partition("://")[2 if "://" in text else 0]
            credentials = credentials.split("/", 1)[0].rpartition("@")[0]
            user, _, given = credentials.partition(":")
            agree(
                "credentials",
                user_password.decode("utf-8", "surrogateescape"),
                f"{unquote(user)}:{unquote(given)}",
            )
    proxy.bypassed(host.decode("utf-8", "surrogateescape"), no_proxy.decode("latin-1"))
    connection = ScriptedSocket(reply, pieces)
    tunnel = proxy.Proxy("proxy.test", 3128)
    try:
        proxy.open_tunnel(connection, tunnel, "caramel.test", 443)  # type: ignore[arg-type]
    except proxy.TunnelRefused:
        return
    end = reply.find(b"\r\n\r\n")
    agree("bytes taken", connection.taken, end + 4 if end != -1 else None)
