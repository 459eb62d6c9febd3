"""Fixtures of the real-server suite: one Caramel stack per test module.

Each module gets its own stack because the lifecycle ends by stopping its servers; a
stack starts in a few seconds once the server venv is cached. The stack stops when the
module ends, when a test fails, and on Ctrl-C or TERM (see ``harness``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testbed.harness import CaramelStack


@pytest.fixture(scope="module")
def stack() -> Iterator[CaramelStack]:
    """A running Caramel 1.9.6 behind nginx, private to the module."""
    with CaramelStack() as running:
        yield running
