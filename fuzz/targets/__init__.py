"""One target per parser; ``check(data)`` in each module states and holds its contract.

Importing this package imports no module of the client: ``fuzz.one`` instruments the client
for coverage, which only works for modules imported after it starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

# In the order ``make fuzz`` runs them.
NAMES = (
    "der",
    "pem",
    "state",
    "httpdate",
    "server_address",
    "command_line",
    "client_id",
    "proxy",
    "transport",
    "hint",
    "tpm_blob",
)


def load(name: str) -> Callable[[bytes], None]:
    if name not in NAMES:
        raise KeyError(f"no fuzz target {name!r}: one of {', '.join(NAMES)}")
    module = importlib.import_module(f"fuzz.targets.{name}")
    check: Callable[[bytes], None] = module.check
    return check
