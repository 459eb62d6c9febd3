"""The command: arguments in, one exit status out, and at most one line on stderr.

This is the one place where errors become exit statuses: ``LockHeldError`` is 1, a request
waiting for its signature is 69, every other error (ours or unexpected) is 127 with one
line, never a traceback. TERM, INT, HUP, QUIT, USR1, USR2 and ALRM end the invocation at
once with 127 (their default actions would end it with 128 + the signal's number, or a
core dump): the signal handler raises, the stack unwinds through the combined file's
clean-up, and the file stays old or new, complete. The network deadline's own ALRM is told
apart from a stray one in ``transport``. Imports happen after the handlers are installed,
so a signal during start-up is answered the same way.

Output that cannot be written never decides the status either: Python exits 120 when its
own flush of stdout or stderr fails at exit, so the output is flushed here, where a failure
can still be answered (stdout's text was the product: 127; stderr's were diagnostics: the
status stays), and a stream that failed is pointed at ``/dev/null`` for that last flush.
"""

from __future__ import annotations

import errno
import gc
import io
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, TextIO, cast

if TYPE_CHECKING:
    from caramel_embedded.errors import CaramelError
    from caramel_embedded.invocation import Job
    from caramel_embedded.options import Settings
    from caramel_embedded.report import Reporter

_NAMED_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM")
# Every other signal whose default action ends the process (128 + its number, or a core
# dump) and that can be caught without hiding a fault of our own (SEGV, BUS, ILL, FPE and
# ABRT stay the interpreter's): the SPEC's "no other status, whatever a signal does".
_OTHER_ENDING_SIGNALS = ("SIGPWR", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGXCPU", "SIGXFSZ",
                         "SIGSYS", "SIGTRAP", "SIGSTKFLT")  # fmt: skip
_HANDLED_SIGNALS = tuple(
    getattr(signal, name)
    for name in (*_NAMED_SIGNALS, *_OTHER_ENDING_SIGNALS)
    if hasattr(signal, name)
) + tuple(range(signal.SIGRTMIN, signal.SIGRTMAX + 1))
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
    _stand_in_for_closed_streams()
    try:
        status = _main(sys.argv[1:] if argv is None else argv)
    except BaseException:  # a signal after _main's own handlers, at the very end
        status = _ERROR
    _exit_at_once_on_late_signals()
    try:
        return _settle_output(status)
    except BaseException:
        return _ERROR


def _main(argv: Sequence[str]) -> int:
    from caramel_embedded.errors import CaramelError, LockHeldError
    from caramel_embedded.report import Reporter

    reporter = Reporter()
    wait_mode = False
    try:
        from caramel_embedded import client_id, invocation, options

        settings = _parse(argv)
        reporter = Reporter(settings.verbose, settings.syslog)
        wait_mode = settings.wait
        if settings.show_version:
            return _print(options.version_text())
        identity = client_id.resolve(
            settings.client_id, settings.client_id_from, settings.identity_root
        )
        if settings.print_client_id:
            return _print(identity)
        assert settings.server is not None  # options.parse demands it unless printing
        job = invocation.Job(
            server=settings.server,
            client_id=identity,
            file=settings.file,
            ca_cert=settings.ca_cert,
            ownership=settings.ownership,
            key_bits=settings.key_bits,
            timeout=settings.timeout,
        )
        if wait_mode:
            return _wait(job, settings, reporter)
        result = invocation.run(job, reporter.progress)
    except LockHeldError as error:
        reporter.notice(str(error))
        return EXIT_LOCKED
    except CaramelError as error:
        reporter.error(_for_administrator(error) if wait_mode else str(error))
        return _ERROR
    except SystemExit as done:  # --help
        return 0 if done.code in (0, None) else _ERROR
    except BaseException as error:
        reporter.error(f"internal error: {type(error).__name__}: {error}")
        return _ERROR
    if result.message:
        reporter.notice(result.message)
    return exit_status(result.outcome.value)


# Only the command knows exit numbers; the core names its outcomes (``decision.Outcome``).
_EXIT_STATUS = {"installed": 0, "current": 0, "posted": 69, "pending": 69, "reposted": 69}
EXIT_LOCKED = 1


def exit_status(outcome: str) -> int:
    """The exit status of an outcome, by its name: 0 held, 69 waiting for a signature."""
    return _EXIT_STATUS[outcome]


def _wait(job: Job, settings: Settings, reporter: Reporter) -> int:
    """``--wait``: one-shot passes until a certificate is held (0), the limit is over (69)
    or anything goes wrong (the error propagates: 127). A locked file is waited out."""
    import time

    from caramel_embedded import invocation, waiting
    from caramel_embedded.errors import LockHeldError

    def one_pass() -> int:
        try:
            result = invocation.run(job, reporter.progress)
        except LockHeldError as error:
            reporter.progress(f"{error}; trying again")
            return EXIT_LOCKED
        if result.message:
            reporter.notice(result.message)
        return exit_status(result.outcome.value)

    return waiting.until_held(
        one_pass,
        interval=settings.wait_interval,
        limit=settings.wait_limit,
        clock=time.monotonic,
        sleep=time.sleep,
        note=reporter.notice,
    )


def _for_administrator(error: CaramelError) -> str:
    from caramel_embedded import waiting
    from caramel_embedded.errors import InterruptedBySignal

    return (
        str(error) if isinstance(error, InterruptedBySignal) else waiting.for_administrator(error)
    )


def _parse(argv: Sequence[str]) -> Settings:
    """The settings; ``--help`` is printed here, where a failure to print it is seen.

    argparse swallows the errors of its own writes (and prints to stderr if stdout is
    closed), so it writes into memory, and the text is then written like ``--version``'s.
    """
    from caramel_embedded import options

    real_stdout, sys.stdout = sys.stdout, io.StringIO()
    try:
        return options.parse(argv)
    finally:
        text, sys.stdout = sys.stdout.getvalue(), real_stdout
        if text:
            _write_stdout(text)


def _print(text: str) -> int:
    _write_stdout(text + "\n")
    return 0


def _write_stdout(text: str) -> None:
    from caramel_embedded.errors import OutputError

    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError) as error:
        raise OutputError(f"cannot write to stdout: {_why(error)}") from None


class _ClosedStream(io.TextIOBase):
    """Stands in for a standard stream that was closed before the start (Python's None).

    A write to it fails like one to any broken stream (an ``OSError``, not an
    ``AttributeError`` on None), so a closed stream is one more failure handled as such.
    """

    lost = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.lost = True
        raise OSError(errno.EBADF, "closed")


def _stand_in_for_closed_streams() -> None:
    if sys.stdout is None:
        sys.stdout = cast(TextIO, _ClosedStream())
    if sys.stderr is None:
        sys.stderr = cast(TextIO, _ClosedStream())


def _settle_output(status: int) -> int:
    """Flush stdout and stderr now; the status the run earned, or 127 if stdout's is lost.

    Each write to stdout was flushed, and its failure reported, where it was made; this is
    the last word before the interpreter's own flush at exit, which must find nothing left
    to fail on.
    """
    lost = _flush_or_discard(sys.stdout)
    if lost is not None and status != _ERROR:
        from caramel_embedded.report import Reporter

        Reporter().error(f"cannot write to stdout: {lost}")
        status = _ERROR
    _flush_or_discard(sys.stderr)
    return status


def _flush_or_discard(stream: TextIO) -> str | None:
    """Flush ``stream``; if that fails, drop what it holds and say why.

    Its descriptor is pointed at /dev/null and flushed again, so the interpreter's own flush
    at exit finds nothing to fail on.
    """
    if getattr(stream, "lost", False):
        return "closed"
    try:
        stream.flush()
    except (OSError, ValueError) as error:
        _point_at_dev_null(stream)
        return _why(error)
    return None


def _point_at_dev_null(stream: TextIO) -> None:
    try:
        dev_null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(dev_null, stream.fileno())
        finally:
            os.close(dev_null)
        stream.flush()
    except (OSError, ValueError):  # no /dev/null: let nothing flush this stream at exit
        for name in ("stdout", "stderr"):
            if getattr(sys, name) is stream:
                setattr(sys, name, cast(TextIO, _ClosedStream()))


def _why(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    from caramel_embedded.errors import InterruptedBySignal

    # Further signals must not interrupt the clean-up that this one starts.
    for handled in _HANDLED_SIGNALS:
        signal.signal(handled, signal.SIG_IGN)
    try:
        name = signal.Signals(signum).name
    except ValueError:  # a real-time signal past SIGRTMIN has no name of its own
        name = f"SIGRTMIN+{signum - signal.SIGRTMIN}"
    raise InterruptedBySignal(name)


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
