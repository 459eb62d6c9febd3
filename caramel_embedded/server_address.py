"""SERVER as the SPEC writes it: ``host``, ``host:port`` or ``https://host[:port][/prefix]``."""

import re
from typing import NamedTuple

from caramel_embedded.errors import UsageError

# A host name or a bracketed IPv6 address: the server's, and a proxy's (``proxy``).
HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")


class ServerAddress(NamedTuple):
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
    if not HOST.fullmatch(host) or any(c in prefix for c in "?#% "):
        raise UsageError(
            f"SERVER {original!r}: expected host, host:port or https://host[:port][/prefix]"
        )
    port = 443
    if port_text or hostport.endswith(":"):
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise UsageError(f"SERVER {original!r}: bad port")
        port = int(port_text)
    return ServerAddress(host.strip("[]"), port, prefix)
