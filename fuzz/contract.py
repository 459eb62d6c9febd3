"""What every target holds the parsers to, beside each parser's own contract.

No surprise: a parser ends in its result or in one of the documented errors, the ones that
``--status`` names by a ``reason=`` word (``status_line``), or in the parser's own error
that its every caller turns into one of those (``DERError``, ``PEMError``...). Anything else
(``IndexError``, ``RecursionError``, ``MemoryError``, a ``ValueError`` from ``int``) is a
traceback on a device, and a finding here. Each target names the classes its parser may
raise, the narrowest that hold. A hang is libFuzzer's to catch (``-timeout=1``), and so is
memory past 2 GiB.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Finding(AssertionError):
    """The parser broke its contract on this input."""


def outcome(parse: Callable[[], T], allowed: tuple[type[BaseException], ...]) -> T | BaseException:
    """The parser's result, or the allowed error it raised; any other error goes through."""
    try:
        return parse()
    except allowed as error:
        return error


def agree(what: str, ours: object, reference: object) -> None:
    """A differential check: ours must equal the second implementation's."""
    if ours != reference:
        raise Finding(f"{what}: ours {ours!r} != reference {reference!r}")
