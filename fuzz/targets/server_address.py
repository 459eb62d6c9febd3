"""``server_address``: SERVER, against ``urllib.parse`` and the SPEC's rules.

The SPEC: ``host``, ``host:port`` or ``https://host[:port][/prefix]``; only https; a host
is a name (letters, digits, dots and hyphens, a letter or digit at both ends) or an IPv6
address in brackets; a port is 1 to 65535; a prefix is a path (RFC 3986 path characters,
no percent-encoding, no query, no fragment), its slashes at both ends dropped. White space
around the whole is ignored.

Contract, for any text: ``parse`` returns an address or raises ``UsageError``; it accepts
exactly what ``urllib.parse.urlsplit`` splits into parts that keep those rules, and finds
the same host (as urllib, case aside), port and prefix; the address it returns, written
out (``str``), reads back as itself.
"""

from __future__ import annotations

import ipaddress
import string
import urllib.parse

from caramel_embedded import server_address
from caramel_embedded.errors import UsageError
from fuzz.contract import Finding, agree, outcome

_NAME = frozenset(string.ascii_letters + string.digits + ".-")
# RFC 3986 pchar and "/", without "%" (no percent-encoding)
_PATH = frozenset(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/")


def check(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")  # as Python gives argv
    parsed = outcome(lambda: server_address.parse(text), (UsageError,))
    ours = None
    if isinstance(parsed, server_address.ServerAddress):
        ours = (parsed.host.lower(), parsed.port, parsed.prefix)
        agree("written and read again", server_address.parse(str(parsed)), parsed)
    agree(repr(text), ours, reference(text))


def reference(text: str) -> tuple[str, int, str] | None:
    rest = text.strip()
    if "://" in rest:
        scheme, _, rest = rest.partition("://")
        if scheme.lower() != "https":
            return None
    if any(c in rest for c in "?#%\\") or not rest.isascii() or not rest.isprintable():
        return None  # a query, a fragment, user information: none is SERVER's
    try:
        parts = urllib.parse.urlsplit("https://" + rest)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if "@" in parts.netloc:
        return None  # user information
    if host is None or parts.netloc.endswith(":") or port == 0:
        return None
    if parts.netloc.startswith("["):
        after = parts.netloc.partition("]")[2]
        if after and not after.startswith(":"):
            return None  # urllib skips what stands between "]" and ":"; the SPEC does not
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    elif not (set(host) <= _NAME and host[0] not in ".-" and host[-1] not in ".-"):
        return None
    if not set(parts.path) <= _PATH:
        return None
    prefix = parts.path.strip("/")
    if not isinstance(port, int | None):
        raise Finding("urllib gave a port that is not a number")
    return host, port or 443, "/" + prefix if prefix else ""
