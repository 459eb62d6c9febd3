"""SERVER as the SPEC writes it: ``host``, ``host:port`` or ``https://host[:port][/prefix]``."""

from __future__ import annotations

from string import ascii_letters, digits

from caramel_embedded.errors import UsageError
from caramel_embedded.record import Record

_NAME = frozenset(ascii_letters + digits + ".-")
_IPV6 = frozenset("0123456789ABCDEFabcdef:.")
_DIGITS = frozenset(digits)
# RFC 3986 path characters, without "%": a prefix is sent as it is, in ASCII, and a query,
# a fragment, a space or a character outside ASCII is none (found by fuzzing).
_PATH = frozenset(ascii_letters + digits + "-._~!$&'()*+,;=:@/")


def is_host(text: str) -> bool:
    """A host name (letters, digits, dots and hyphens, a letter or digit at both ends) or a
    bracketed IPv6 address: the server's, and a proxy's (``proxy``).

    Sets of characters, not a regular expression: compiling one cost 0.1 ms of every start.
    """
    if text.startswith("["):
        return (
            len(text) > 2
            and text.endswith("]")
            and set(text[1:-1]) <= _IPV6
            and _is_ipv6_address(text[1:-1])
        )
    return bool(text) and set(text) <= _NAME and text[0] not in ".-" and text[-1] not in ".-"


def is_port_number(text: str) -> bool:
    """Whether a port is written as one: ASCII digits (``str.isdigit`` takes "²", which
    ``int`` refuses), at most five after any leading zeros (``int`` refuses over 4300
    digits); both found by fuzzing. The range is the caller's to check."""
    return bool(text) and set(text) <= _DIGITS and len(text.lstrip("0")) <= 5


def _is_ipv6_address(text: str) -> bool:
    """Whether the characters make an IPv6 address (``[:0]`` does not: found by fuzzing).

    ipaddress is imported here, for a bracketed address only: a name costs nothing more.
    """
    import ipaddress

    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


class ServerAddress(Record):
    """Where the Caramel server is; requests go to ``prefix + "/" + name``."""

    host: str  # without brackets, as TLS and sockets want it
    port: int = 443
    prefix: str = ""

    def path(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}{self.prefix}"


def parse(text: str) -> ServerAddress:
    """The address, or a usage error that says what form is expected."""
    original = text
    text = text.strip()
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme.lower() != "https":
            raise UsageError(f"SERVER {original!r}: only https:// is supported")
    hostport, slash, prefix = text.partition("/")
    prefix = ("/" + prefix.strip("/")) if slash and prefix.strip("/") else ""
    host, port_text = hostport, ""
    if hostport.startswith("["):
        closing = hostport.find("]")
        if closing != -1:
            host, port_text = hostport[: closing + 1], hostport[closing + 1 :]
            if port_text and not port_text.startswith(":"):
                host = hostport  # invalid; rejected below
            port_text = port_text[1:]
    elif ":" in hostport:
        host, _, port_text = hostport.partition(":")
    if not is_host(host) or not set(prefix) <= _PATH:
        raise UsageError(
            f"SERVER {original!r}: expected host, host:port or https://host[:port][/prefix]"
        )
    port = 443
    if port_text or hostport.endswith(":"):
        if not is_port_number(port_text) or not 0 < int(port_text) < 65536:
            raise UsageError(f"SERVER {original!r}: bad port")
        port = int(port_text)
    return ServerAddress(host.strip("[]"), port, prefix)
