"""What reaches people: one prefixed line per message, progress only with -v, syslog on ask."""

from __future__ import annotations

import io
import sys
import types

import pytest

from caramel_embedded.report import Reporter

pytestmark = pytest.mark.in_process


class FakeSyslog(types.ModuleType):
    """Stands in for ``syslog``: the real one would write to the host's log, unseen."""

    LOG_PID = 1
    LOG_DAEMON = 24
    LOG_INFO = 6
    LOG_NOTICE = 5
    LOG_ERR = 3

    def __init__(self) -> None:
        super().__init__("syslog")
        self.opened: tuple[str, int, int] | None = None
        self.lines: list[tuple[int, str]] = []

    def openlog(self, ident: str, option: int, facility: int) -> None:
        self.opened = (ident, option, facility)

    def syslog(self, priority: int, message: str) -> None:
        self.lines.append((priority, message))


def test_lines_are_prefixed_and_folded_to_one_line() -> None:
    stream = io.StringIO()
    reporter = Reporter(stream=stream)
    reporter.error("bad\nthing  happened")
    reporter.progress("not shown without -v")
    assert stream.getvalue() == "caramel-embedded: bad thing happened\n"


def test_verbose_shows_progress() -> None:
    stream = io.StringIO()
    Reporter(verbose=True, stream=stream).progress("step")
    assert stream.getvalue() == "caramel-embedded: step\n"


def test_syslog_gets_every_line_with_its_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeSyslog()
    monkeypatch.setitem(sys.modules, "syslog", fake)
    stream = io.StringIO()
    reporter = Reporter(verbose=True, use_syslog=True, stream=stream)
    reporter.progress("working")
    reporter.notice("waiting")
    reporter.error("failed")
    assert fake.opened == ("caramel-embedded", fake.LOG_PID, fake.LOG_DAEMON)
    assert fake.lines == [(6, "working"), (5, "waiting"), (3, "failed")]
    assert stream.getvalue().count("\n") == 3


def test_closed_stderr_does_not_raise() -> None:
    stream = io.StringIO()
    stream.close()
    Reporter(stream=stream).error("nobody listens")
