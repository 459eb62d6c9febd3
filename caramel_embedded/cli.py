"""The command: arguments in, one exit status out, and at most one line on stderr.

This is the one place where errors become exit statuses: ``LockHeldError`` is 1, a request
waiting for its signature is 69, every other error (ours or unexpected) is 127 with one
line, never a traceback. TERM, INT, HUP, QUIT, USR1, USR2 and ALRM end the invocation at
once with 127 (their default actions would end it with 128 + the signal's number, or a
core dump): the signal handler raises, the stack unwinds through the combined file's
clean-up, and the file stays old or new, complete. The network deadline's own ALRM is told
apart from a stray one in ``transport``. Imports happen after the handlers are installed,
so a signal during start-up is answered the same way.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

_HANDLED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
)
_ERROR = 127


def main(argv: Sequence[str] | None = None) -> int:
    """Run one invocation; return its exit status (0, 1, 69 or 127).

    The cyclic garbage collector is switched off first: an invocation lives for a fraction
    of a second and leaves almost no cycles, while the collections that the start-up's
    imports would trigger cost about 6 ms of every cold start (reference counting still
    frees everything else as usual).
    """
    gc.disable()
    _install_signal_handlers()
    try:
        status = _main(sys.argv[1:] if argv is None else argv)
    except BaseException:  # a signal after _main's own handlers, at the very end
        status = _ERROR
    _exit_at_once_on_late_signals()
    return status


def _main(argv: Sequence[str]) -> int:
    from caramel_embedded.errors import CaramelError, LockHeldError
    from caramel_embedded.report import Reporter

    reporter = Reporter()
    try:
        from caramel_embedded import invocation, options

        settings = options.parse(argv)
        reporter = Reporter(settings.verbose, settings.syslog)
        if settings.show_version:
            return _print(options.version_text())
        if settings.print_client_id:
            return _print(invocation.resolve_client_id(settings))
        outcome = invocation.run(settings, reporter)
    except LockHeldError as error:
        reporter.notice(str(error))
        return 1
    except CaramelError as error:
        reporter.error(str(error))
        return _ERROR
    except SystemExit as done:  # --help
        return 0 if done.code in (0, None) else _ERROR
    except BaseException as error:
        reporter.error(f"internal error: {type(error).__name__}: {error}")
        return _ERROR
    if outcome.message:
        reporter.notice(outcome.message)
    return int(outcome.status)


def _print(text: str) -> int:
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except OSError:
        return _ERROR
    return 0


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    from caramel_embedded.errors import InterruptedBySignal

    # Further signals must not interrupt the clean-up that this one starts.
    for handled in _HANDLED_SIGNALS:
        signal.signal(handled, signal.SIG_IGN)
    raise InterruptedBySignal(signal.Signals(signum).name)


def _install_signal_handlers() -> None:
    for handled in _HANDLED_SIGNALS:
        signal.signal(handled, _raise_interrupted)


def _exit_at_once_on_late_signals() -> None:
    """After the work is done, a signal still means 127, with nothing left to unwind."""

    def exit_now(_signum: int, _frame: FrameType | None) -> None:
        os._exit(_ERROR)

    for handled in _HANDLED_SIGNALS:
        if signal.getsignal(handled) is not signal.SIG_IGN:
            signal.signal(handled, exit_now)
