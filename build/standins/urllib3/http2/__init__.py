"""urllib3.http2 in the frozen forms: the same names, without ``importlib.metadata``.

urllib3.connection imports this package at its top (for its submodule ``probe``, which is
carried unchanged); the real ``__init__`` imports ``importlib.metadata`` at module level,
only for ``inject_into_urllib3()``, the opt-in HTTP/2 switch the client never calls:
about 10 ms of every start, and ``csv`` and ``zipfile`` with it. The spec puts this file in
the real one's place (build/caramel-embedded.spec) and leaves ``importlib.metadata`` out.

Pinned: tests/frozen/test_startup_hook.py fails when build/requirements.lock names another
urllib3 than URLLIB3_VERSION, or when the real module is no longer the one whose SHA-256
is REPLACES_SHA256: whoever upgrades urllib3 looks at this file again.
"""

from __future__ import annotations

import typing

URLLIB3_VERSION = "2.8.0"
REPLACES_SHA256 = "c73ac0487ed1e4035190f24ea2de651a70133aadca2aec97cc8e36adc9f09aab"

__all__ = [  # noqa: RUF022 (the real module's order: a test compares)
    "inject_into_urllib3",
    "extract_from_urllib3",
]

orig_HTTPSConnection: typing.Any = None


def inject_into_urllib3() -> None:
    """Refused: the frozen client speaks HTTP/1.1 only (h2 is not in the binary)."""
    raise ImportError("HTTP/2 is not part of caramel-embedded's frozen forms")


def extract_from_urllib3() -> None:
    """Nothing was injected, so there is nothing to take out."""
