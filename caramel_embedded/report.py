"""What the invocation tells people: one line on stderr, progress with -v, syslog on request.

The private key never reaches this module: callers pass sentences, not state.
"""

from __future__ import annotations

import sys
from typing import TextIO

PROGRAM = "caramel-embedded"


class Reporter:
    """Lines to stderr (and syslog); ``progress`` only when verbose."""

    def __init__(
        self, verbose: bool = False, use_syslog: bool = False, stream: TextIO | None = None
    ) -> None:
        self.verbose = verbose
        self._stream = stream if stream is not None else sys.stderr
        self._syslog = None
        if use_syslog:
            import syslog  # only devices that ask for it pay for it

            syslog.openlog(PROGRAM, syslog.LOG_PID, syslog.LOG_DAEMON)
            self._syslog = syslog

    def progress(self, message: str) -> None:
        if self.verbose:
            self._emit(message, "LOG_INFO")

    def notice(self, message: str) -> None:
        self._emit(message, "LOG_NOTICE")

    def error(self, message: str) -> None:
        self._emit(message, "LOG_ERR")

    def _emit(self, message: str, priority: str) -> None:
        line = " ".join(message.split())
        try:
            self._stream.write(f"{PROGRAM}: {line}\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not change the exit status
        if self._syslog is not None:
            self._syslog.syslog(getattr(self._syslog, priority), line)
