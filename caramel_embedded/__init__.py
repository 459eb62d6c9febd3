"""caramel-embedded: a Caramel certificate client, as a command and as a library.

The command (``caramel-embedded``, ``python -m caramel_embedded``) is a one-shot for
devices: it keeps a key and certificate in one file and reports in its exit status. The
library serves apps that keep their key in a key-chain: bytes in, bytes out, nothing
written to disk, safe to call from threads::

    from caramel_embedded import CaramelError, Credentials, Status, refresh

    held = Credentials.from_bytes(blob) if blob else None
    result = refresh(held, server="https://ca.example.com", client_id=str(uuid.uuid4()),
                     ca_pem=CA_PEM, timeout=10.0, wait=5.0)
    keychain.store(result.credentials.to_bytes())
    if result.status is Status.WAITING: ...  # ask again later

Importing the package is cheap on purpose: every run of the command on a device is a cold
start, so the library's names are loaded only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from caramel_embedded.version import __version__ as __version__

__all__ = ["CaramelError", "Credentials", "Result", "Status", "refresh"]

if TYPE_CHECKING:
    from caramel_embedded.errors import CaramelError
    from caramel_embedded.library import Credentials, Result, Status, refresh


def __getattr__(name: str) -> object:
    """The public names, imported on first use (PEP 562)."""
    if name == "CaramelError":
        from caramel_embedded.errors import CaramelError

        return CaramelError
    if name in ("Credentials", "Result", "Status", "refresh"):
        from caramel_embedded import library

        return getattr(library, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
