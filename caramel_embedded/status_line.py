"""``--status``: the one line on stdout that says how a run ended, for ``sh`` and BusyBox.

Devices have no ``jq``: the line is ``key=value`` words separated by single spaces, in a
fixed order, each value either made of characters that ``sh`` takes literally or quoted
in single quotes as ``sh`` reads them (a ``'`` inside is written ``'\\''``). So ``eval
"$line"`` sets one shell variable per key, ``eval "set -- $line"`` gives one word per
key, and ``case " $line " in *" status=installed "*)`` needs no parsing at all.

What goes in is chosen by the command (``cli``) from the outcome and what the run knew:
never the key, never a message (messages go to stderr), never a proxy's credentials. The
``reason=`` word of an error is this module's one table, ``_REASONS``, so that a script on
a device can tell a network that does not carry from a CA that is wrong without reading
messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Characters that need no quotes in any POSIX shell word, nor as an assignment's value.
_PLAIN = re.compile(r"[A-Za-z0-9_.,:@%+/=-]+")
_KEY = re.compile(r"[a-z][a-z_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def quoted(value: str) -> str:
    """``value`` as one ``sh`` word that reads back as ``value`` (control characters, which
    would break the one line, as ``?``)."""
    value = _CONTROL.sub("?", value)
    if _PLAIN.fullmatch(value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"


def render(fields: Iterable[tuple[str, str]]) -> str:
    """The line (no newline) for ``(key, value)`` pairs, in their order."""
    words = []
    for key, value in fields:
        assert _KEY.fullmatch(key), key  # a key is a shell variable name, always
        words.append(f"{key}={quoted(value)}")
    return " ".join(words)


# The reason= word of --status for each error class, found along the error's class tree
# (so TLSError, a NetworkError, says tls, and DeadlineExpired says network). One table.
_REASONS = {
    "UsageError": "input",
    "ClientIdError": "input",
    "CombinedFileError": "input",
    "UnusableKeyError": "input",
    "KeyStoreMismatchError": "input",
    "TPMError": "tpm",
    "CACertificateError": "ca",
    "ClockNotSetError": "clock",
    "TLSError": "tls",
    "NetworkError": "network",
    "ServerAnswerError": "server",
    "CertificateCheckError": "server",
    "InterruptedBySignal": "signal",
    "OutputError": "internal",
}


def reason_of(error: BaseException) -> str:
    """The --status reason of an error: its nearest class in the table, else internal."""
    for kind in type(error).__mro__:
        if kind.__name__ in _REASONS:
            return _REASONS[kind.__name__]
    return "internal"
