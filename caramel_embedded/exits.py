"""The command's exit statuses, by name, written once: the face's knowledge alone.

Only the command (``cli``) and the words of its help (``options``) may import this (an
import-linter contract in pyproject.toml); everything below them speaks in outcomes and
errors, and ``tests/test_house.py`` sees that no other module ends the process itself.
"""

from __future__ import annotations

HELD = 0  # a certificate is held: installed now, or still current (and --help, the prints)
LOCKED = 1  # another invocation holds the combined file's lock
WAITING = 69  # the request waits for a signature (EX_UNAVAILABLE)
ERROR = 127  # anything else, with one line on stderr

# An ``Outcome``'s value to its status: held or waiting for a signature.
OF_OUTCOME = {
    "installed": HELD,
    "current": HELD,
    "posted": WAITING,
    "pending": WAITING,
    "reposted": WAITING,
}
