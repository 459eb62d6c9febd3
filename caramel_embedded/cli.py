"""The command: arguments in, one exit status out, and at most one line on stderr.

This is the one place where errors become exit statuses: ``LockHeldError`` is 1, a request
waiting for its signature is 69, every other error (ours or unexpected) is 127 with one
line, never a traceback. It also chooses what the ``--status`` line says (``status_line``
holds its format and the one table of ``reason=`` words).

TERM, INT, HUP, QUIT, USR1, USR2 and ALRM end the invocation at once with 127 (their
default actions would end it with 128 + the signal's number, or a core dump): the signal
handler raises, the stack unwinds through the combined file's clean-up, and the file stays
old or new, complete. The network deadline's own ALRM is told
apart from a stray one in ``transport``. Imports happen after the handlers are installed,
so a signal during start-up is answered the same way.

Output that cannot be written never decides the status either (``output`` keeps Python's
120 away): stdout's text was the product, so its loss is 127; stderr's were diagnostics,
so the status stays.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from caramel_embedded import exits
from caramel_embedded.record import Record

if TYPE_CHECKING:
    from caramel_embedded.enrollment import Result
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
_ERROR = exits.ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Run one invocation; return its exit status (0, 1, 69 or 127).

    The cyclic garbage collector is switched off first: an invocation lives for a fraction
    of a second and leaves almost no cycles, while the collections that the start-up's
    imports would trigger cost about 6 ms of every cold start (reference counting still
    frees everything else as usual).
    """
    gc.disable()
    _install_signal_handlers()
    from caramel_embedded import output  # the streams, before anything can write

    output.stand_in_for_closed_streams()
    arguments = sys.argv[1:] if argv is None else argv
    try:
        ending = _main(arguments)
        status = _with_status_line(ending, arguments)
    except BaseException:  # a signal after _main's own handlers, at the very end
        status = _ERROR
    _exit_at_once_on_late_signals()
    try:
        return _settle_output(status)
    except BaseException:
        return _ERROR


def run() -> NoReturn:
    """The process's entry point (``python -m``, the console script, both frozen forms):
    one invocation, then the exit without the interpreter's teardown.

    By the time ``main`` returns, everything the run owed the world is done: the combined
    file is written and synced or untouched, its lock is the kernel's to drop, and both
    streams have been flushed. What is left is the interpreter freeing every module and
    object one by one, which measured 10 to 30 ms of every unchanged-path run (the whole
    client's own work is of that order; docs/performance.md). ``os._exit`` hands all of it
    to the kernel at once. The last flush repeats ``main``'s, for the one line an unwritable
    stdout adds to stderr.
    """
    status = main()
    from caramel_embedded import output

    output.settle()
    os._exit(status)


class _Ending(Record):
    """How the invocation ended: its exit status and what ``--status`` says of it."""

    exit: int
    status: str  # an Outcome's value, "locked", "error", or "" (--help: no line)
    reason: str | None = None
    facts: tuple[tuple[str, str], ...] = ()  # client_id, not_after, request, checked: known
    status_line: bool | None = None  # None: the settings were never read (look at argv)


def _product(settings: Settings) -> str | None:
    """What --version, --print-ca or --sbom print (then the run does nothing else)."""
    if settings.show_version:
        from caramel_embedded import options

        return options.version_text()
    if settings.print_ca:
        return _trust_anchor_pem(settings)
    if settings.print_sbom:
        from caramel_embedded import sbom

        return sbom.carried().rstrip("\n")
    return None


def _main(argv: Sequence[str]) -> _Ending:
    from caramel_embedded.errors import CaramelError, HelpShown, LockHeldError, UsageError
    from caramel_embedded.report import Reporter

    reporter = Reporter()
    wait_mode = False
    wanted: bool | None = None
    known: dict[str, str] = {}
    try:
        from caramel_embedded import client_id, invocation

        settings = _parse(argv)
        reporter = Reporter(settings.verbose, settings.syslog)
        wait_mode, wanted = settings.wait, settings.status_line
        if settings.status_line and _prints_a_product(settings):
            raise UsageError(
                "--status goes with a run, not with --version, --print-client-id, --print-ca "
                "or --sbom"
            )
        product = _product(settings)
        if product is not None:
            return _printed(product)
        identity = client_id.resolve(
            settings.client_id, settings.client_id_from, settings.identity_root
        )
        if settings.print_client_id:
            return _printed(identity)
        known["client_id"] = identity
        job = _job(settings, identity)
        if wait_mode:
            return _wait(job, settings, reporter, known)
        result = invocation.run(job, reporter.progress)
    except LockHeldError as error:
        reporter.notice(str(error))
        return _Ending(EXIT_LOCKED, "locked", None, _facts(known), wanted)
    except CaramelError as error:
        from caramel_embedded import status_line

        reporter.error(_for_administrator(error) if wait_mode else str(error))
        return _Ending(_ERROR, "error", status_line.reason_of(error), _facts(known), wanted)
    except HelpShown:
        return _Ending(exits.HELD, "", None, (), False)
    except SystemExit as done:  # the frozen start-up hook, which has said its one line
        return _Ending(exits.HELD if done.code in (0, None) else _ERROR, "", None, (), False)
    except BaseException as error:
        reporter.error(f"internal error: {type(error).__name__}: {error}")
        return _Ending(_ERROR, "error", "internal", _facts(known), wanted)
    if result.message:
        reporter.notice(result.message)
    return _ended(result, known, wanted)


def _job(settings: Settings, identity: str) -> Job:
    """What the invocation is asked to do, once the client id is resolved."""
    from caramel_embedded import invocation

    assert settings.server is not None  # options.parse demands it unless printing
    return invocation.Job(
        server=settings.server,
        client_id=identity,
        file=settings.file,
        ca_cert=settings.ca_cert,
        ownership=settings.ownership,
        key_bits=settings.key_bits,
        timeout=settings.timeout,
        proxy=settings.proxy,
        runtime_dir=settings.runtime_dir,
        # --wait never skips a check for a kept hint, nor does --check-now
        follow_hint=not (settings.wait or settings.check_now),
        hint_limit=settings.hint_limit,
        key_store=settings.key_store,
        tpm=settings.tpm,
    )


# Only the command knows exit numbers (``exits``); the core names its outcomes
# (``decision.Outcome``).
EXIT_LOCKED = exits.LOCKED
EXIT_WAITING = exits.WAITING


def exit_status(outcome: str) -> int:
    """The exit status of an outcome, by its name: 0 held, 69 waiting for a signature."""
    return exits.OF_OUTCOME[outcome]


def _ended(result: Result, known: dict[str, str], wanted: bool | None) -> _Ending:
    """The ending of a pass that reached an outcome, with what is held now."""
    facts = dict(known)
    facts["request"] = result.state.request_sha256
    if result.state.certificate is not None:
        facts["not_after"] = f"{result.state.certificate.not_after:%Y-%m-%dT%H:%M:%SZ}"
    facts["checked"] = "yes" if result.checked else "no"  # no: the server's hint was followed
    outcome = result.outcome.value
    return _Ending(exit_status(outcome), outcome, None, _facts(facts), wanted)


def _facts(known: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (key, known[key])
        for key in ("client_id", "not_after", "request", "checked")
        if key in known
    )


def _with_status_line(ending: _Ending, argv: Sequence[str]) -> int:
    """Write the --status line (when asked for) and return the exit status.

    Asked for means ``--status`` was read, or, when the arguments could not be read at
    all (a usage error), that ``--status`` is among them. A line that cannot be written
    is a lost product, like --print-client-id's: 127 and one line on stderr.
    """
    wanted = "--status" in argv if ending.status_line is None else ending.status_line
    if not wanted or not ending.status:
        return ending.exit
    from caramel_embedded import output, status_line
    from caramel_embedded.errors import OutputError
    from caramel_embedded.report import Reporter

    fields = [("status", ending.status), ("exit", str(ending.exit))]
    if ending.reason is not None:
        fields.append(("reason", ending.reason))
    try:
        output.write_stdout(status_line.render([*fields, *ending.facts]) + "\n")
    except OutputError as error:
        Reporter().error(str(error))
        return _ERROR
    return ending.exit


def _prints_a_product(settings: Settings) -> bool:
    return (
        settings.show_version
        or settings.print_client_id
        or settings.print_ca
        or settings.print_sbom
    )


def _printed(text: str) -> _Ending:
    _print(text)
    return _Ending(exits.HELD, "", status_line=False)


def _trust_anchor_pem(settings: Settings) -> str:
    """--print-ca: every CA of the trust anchor in use, checked as a run checks it (a run
    refuses an expired bundle, and a clock before every CA's notBefore, before it starts)."""
    from datetime import UTC, datetime

    from caramel_embedded import trust

    anchor = trust.load(settings.ca_cert)
    trust.check_clock(anchor, datetime.now(UTC))
    return anchor.pem.decode("ascii").rstrip("\n")


def _wait(job: Job, settings: Settings, reporter: Reporter, known: dict[str, str]) -> _Ending:
    """``--wait``: one-shot passes until a certificate is held (0), the limit is over (69)
    or anything goes wrong (the error propagates: 127). A locked file is waited out.
    The --status line speaks of the whole wait: its last pass that reached an outcome."""
    import time

    from caramel_embedded import invocation, waiting
    from caramel_embedded.errors import LockHeldError

    last: list[Result] = []

    def one_pass() -> int:
        try:
            result = invocation.run(job, reporter.progress)
        except LockHeldError as error:
            reporter.progress(f"{error}; trying again")
            return EXIT_LOCKED
        if result.message:
            reporter.notice(result.message)
        last[:] = [result]
        return exit_status(result.outcome.value)

    ended = waiting.until_held(
        one_pass,
        still_waiting=lambda status: status in (EXIT_WAITING, EXIT_LOCKED),
        interval=settings.wait_interval,
        limit=settings.wait_limit,
        clock=time.monotonic,
        sleep=time.sleep,
        note=reporter.notice,
    )
    status = EXIT_WAITING if ended is None else ended  # None: the wait limit passed
    if not last:  # every pass found the file locked until the limit
        return _Ending(status, "locked", None, _facts(known), settings.status_line)
    ending = _ended(last[0], known, settings.status_line)
    return ending.replace(exit=status)


def _for_administrator(error: CaramelError) -> str:
    from caramel_embedded import waiting
    from caramel_embedded.errors import InterruptedBySignal

    return (
        str(error) if isinstance(error, InterruptedBySignal) else waiting.for_administrator(error)
    )


def _parse(argv: Sequence[str]) -> Settings:
    """The settings; ``--help`` is printed here, where a failure to print it is seen."""
    from caramel_embedded import options, output

    with output.stdout_in_memory():
        return options.parse(argv)


def _print(text: str) -> None:
    from caramel_embedded import output

    output.write_stdout(text + "\n")


def _settle_output(status: int) -> int:
    """The status the run earned, or 127 if stdout's text (the product) was lost."""
    from caramel_embedded import output

    lost = output.settle()
    if lost is not None and status != _ERROR:
        from caramel_embedded.report import Reporter

        Reporter().error(f"cannot write to stdout: {lost}")
        return _ERROR
    return status


# One handler for every handled signal, whose answer depends on how far the run got: raise
# (working), nothing (unwinding after a first signal: nothing may interrupt the clean-up),
# or end the process at once with 127 (the work is done, nothing is left to unwind). A
# change of phase is then one assignment, not fifty calls to signal.signal().
_WORKING, _UNWINDING, _DONE = "working", "unwinding", "done"
_phase = [_WORKING]


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    if _phase[0] == _DONE:
        os._exit(_ERROR)
    if _phase[0] == _UNWINDING:
        return
    from caramel_embedded.errors import InterruptedBySignal

    _phase[0] = _UNWINDING
    try:
        name = signal.Signals(signum).name
    except ValueError:  # a real-time signal past SIGRTMIN has no name of its own
        name = f"SIGRTMIN+{signum - signal.SIGRTMIN}"
    raise InterruptedBySignal(name)


def _install_signal_handlers() -> None:
    _phase[0] = _WORKING
    for handled in _HANDLED_SIGNALS:
        signal.signal(handled, _on_signal)


def _exit_at_once_on_late_signals() -> None:
    """After the work is done, a signal still means 127, with nothing left to unwind; one
    that came while unwinding is still ignored."""
    if _phase[0] == _WORKING:
        _phase[0] = _DONE
