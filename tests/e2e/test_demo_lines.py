"""What the demo and the kept demo server print, and which processes they take for theirs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from testbed.records import CsrRecord
from tests.e2e.demo_server import is_our_process, shown
from tests.e2e.lifecycle import listing_summary

pytestmark = pytest.mark.in_process

SHA = "e54cc0a78232cd2d825d4f7732ecdf7260096aed0bcdf8d34c2e1a051f99d812"


@pytest.mark.parametrize(
    ("not_after", "expected"),
    [
        pytest.param(None, "notAfter not signed", id="waiting"),
        pytest.param(
            dt.datetime(2026, 12, 9, 17, 23, 22), "notAfter 2026-12-09 17:23:22Z", id="signed"
        ),
    ],
)
def test_the_listing_line_shows_the_signed_certificate(
    not_after: dt.datetime | None, expected: str
) -> None:
    line = listing_summary(CsrRecord(1, "demo-device-01", SHA, not_after))
    assert line == f"caramel_tool --list: id 1, CN demo-device-01, sha256 {SHA[:16]}…, {expected}"


SERVER = Path("/repo/.cache/demo-server/server")


@pytest.mark.parametrize(
    ("cmdline", "ours"),
    [
        pytest.param(
            b"/venv/bin/python\0/venv/bin/pserve\0/repo/.cache/demo-server/server/caramel.ini\0",
            True,
            id="our-pserve",
        ),
        pytest.param(
            b"nginx: master process /usr/sbin/nginx -p /repo/.cache/demo-server/server "
            b"-c /repo/.cache/demo-server/server/nginx.conf",
            True,
            id="our-nginx-master-renamed",
        ),
        pytest.param(
            b"/venv/bin/pserve\0/tmp/caramel-e2e-x/caramel.ini\0", False, id="another-stack"
        ),
        pytest.param(
            b"nginx -p /repo/.cache/demo-server/server2", False, id="a-name-with-the-prefix"
        ),
        pytest.param(b"/usr/bin/sleep\0100\0", False, id="a-reused-pid"),
        pytest.param(b"", False, id="a-kernel-thread"),
    ],
)
def test_only_processes_of_our_stack_are_ours(cmdline: bytes, ours: bool) -> None:
    assert is_our_process(cmdline, SERVER) is ours


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/repo/.venv/bin/caramel-embedded", ".venv/bin/caramel-embedded", id="under"),
        pytest.param("/tmp/demo/ca.pem", "/tmp/demo/ca.pem", id="elsewhere"),
        pytest.param("/repository/x", "/repository/x", id="a-name-with-the-prefix"),
    ],
)
def test_printed_paths_are_short_from_the_repository(path: str, expected: str) -> None:
    assert shown(Path(path), Path("/repo")) == expected
