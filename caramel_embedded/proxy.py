"""An HTTPS proxy, as curl reads one: ``https_proxy``/``HTTPS_PROXY``, ``no_proxy``.

The proxy only carries bytes: the client asks it for a tunnel (``CONNECT host:port``),
then speaks TLS through it to the Caramel server itself, so the server's certificate is
checked against our CA and the client certificate is shown to the server alone; the proxy
sees the server's name and port, never a path or a header of ours. Its own credentials,
taken from its URL (``http://user:password@proxy:3128``), go in ``Proxy-Authorization``
and nowhere else: not in a message, not in ``--status``, not with ``-v``.

Imported only when a proxy is configured: the unchanged path of a device without one
does not pay for it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from urllib.parse import unquote

from caramel_embedded.errors import UsageError
from caramel_embedded.record import Record
from caramel_embedded.server_address import is_host, is_port_number

_CONNECT_REPLY_LIMIT = 8 * 1024


class Proxy(Record):
    """Where the tunnel starts, and the header that opens it (None without credentials)."""

    host: str  # without brackets
    port: int
    authorization: str | None = None  # the whole Proxy-Authorization value: a secret

    def __str__(self) -> str:  # never the credentials
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __repr__(self) -> str:  # nor in a repr that an internal error might show
        return f"Proxy({self})"


class TunnelRefused(OSError):
    """The proxy would not open the tunnel (or did not answer as a proxy)."""


def parse(text: str, source: str) -> Proxy:
    """``[http://][user[:password]@]host[:port]`` (port 1080 if none, as curl), or a usage
    error. Only a proxy spoken to in clear (``http://``) is supported: TLS is end to end."""
    rest = text.strip()
    scheme, found, after = rest.partition("://")
    if found:
        if scheme.lower() != "http":
            raise UsageError(f"{source}: only an http:// proxy is supported (the proxy's scheme)")
        rest = after
    rest = rest.split("/", 1)[0]
    credentials, at, hostport = rest.rpartition("@")
    if not at:
        hostport, credentials = rest, ""
    host, port_text = hostport, ""
    if hostport.startswith("[") and "]" in hostport:
        closing = hostport.index("]")
        host, port_text = hostport[: closing + 1], hostport[closing + 1 :].removeprefix(":")
    elif ":" in hostport:
        host, _, port_text = hostport.partition(":")
    if not is_host(host) or (port_text and not is_port_number(port_text)):
        raise UsageError(f"{source}: expected [http://][user[:password]@]host[:port]")
    port = int(port_text) if port_text else 1080
    if not 0 < port < 65536:
        raise UsageError(f"{source}: bad port")
    return Proxy(host.strip("[]"), port, _basic(credentials) if at else None)


def _basic(credentials: str) -> str:
    import base64

    user, _, password = credentials.partition(":")
    # The bytes as given: a command line or environment that is not UTF-8 reaches us with
    # surrogate escapes, which strict UTF-8 cannot encode (found by fuzzing).
    token = f"{unquote(user)}:{unquote(password)}".encode("utf-8", "surrogateescape")
    return "Basic " + base64.b64encode(token).decode("ascii")


def bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``no_proxy`` (curl's form) exempts ``host``: ``*``; a name that is the host
    or one of its parent domains (a leading dot is the same); an address; a CIDR range."""
    host = host.lower().strip("[]").rstrip(".")
    for raw in no_proxy.split(","):
        entry = raw.strip().lower().strip("[]").lstrip(".").rstrip(".")
        if not entry:
            continue
        if entry == "*":
            return True
        if "/" in entry:
            if _in_network(host, entry):
                return True
        elif host == entry or host.endswith("." + entry):
            return True
    return False


def _in_network(host: str, entry: str) -> bool:
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False


def choose(explicit: str | None, environ: Mapping[str, str], server_host: str) -> Proxy | None:
    """The proxy for ``server_host``: ``explicit`` (--proxy / CARAMEL_PROXY; empty: none)
    else ``https_proxy``, else ``HTTPS_PROXY``; none when ``no_proxy`` (or ``NO_PROXY``)
    exempts the server."""
    if explicit is not None:
        text, source = explicit, "--proxy"
    else:
        variable = next((v for v in ("https_proxy", "HTTPS_PROXY") if environ.get(v)), None)
        if variable is None:
            return None
        text, source = environ[variable], variable
    if not text.strip():
        return None
    proxy = parse(text, source)
    no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
    return None if bypassed(server_host, no_proxy) else proxy


def open_tunnel(connection: socket.socket, proxy: Proxy, host: str, port: int) -> None:
    """Ask the proxy, over ``connection``, for a tunnel to ``host:port``; raise
    ``TunnelRefused`` unless it answers 2xx. The socket's timeout (and the deadline) bound
    the wait; nothing after the proxy's header is consumed, it belongs to TLS."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if proxy.authorization is not None:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    reply = _read_reply_header(connection, proxy)
    status_line = reply.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    # A status is three ASCII digits: str.isdigit() takes "²07", which int() refuses (found
    # by fuzzing).
    status = parts[1] if len(parts) > 1 else ""
    three_digits = len(status) == 3 and status.isascii() and status.isdigit()
    if not parts[0].startswith("HTTP/1.") or not three_digits:
        raise TunnelRefused(0, f"proxy {proxy} did not answer as an HTTP proxy")
    if not 200 <= int(status) < 300:
        raise TunnelRefused(
            0, f"proxy {proxy} refused the tunnel to {target}: {' '.join(parts[1:])[:100]}"
        )


def _read_reply_header(connection: socket.socket, proxy: Proxy) -> bytes:
    """The proxy's reply up to its blank line, and not one byte more (peek, then take)."""
    taken = b""
    while True:
        seen = connection.recv(_CONNECT_REPLY_LIMIT, socket.MSG_PEEK)
        if not seen:
            raise TunnelRefused(0, f"proxy {proxy} closed the connection")
        end = (taken[-3:] + seen).find(b"\r\n\r\n")
        if end != -1:
            return taken + connection.recv(end + 4 - len(taken[-3:]))
        taken += connection.recv(len(seen))
        if len(taken) > _CONNECT_REPLY_LIMIT:
            raise TunnelRefused(0, f"proxy {proxy} sent an oversized reply")
