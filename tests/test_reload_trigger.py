"""What a systemd path unit with ``PathChanged=`` on the combined file sees of each run.

systemd cannot run as a manager here, so the test watches the file as systemd does: an
inotify watch on the file itself with PathChanged='s mask (systemd's ``path.c``: a change
is any such event on the watch of the path itself, the "primary" one). An install (the
atomic rename over the path) must be seen; a run that changes nothing (the certificate
current, 304, still pending, locked) must not be seen at all, or every timer tick would
restart the services that use the certificate.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import Client
from tests.fake_signer import FakeCaramel
from tests.test_protocol import LAST_MODIFIED, enrolled, installed

IN_ATTRIB, IN_CLOSE_WRITE, IN_MOVED_FROM, IN_MOVED_TO = 0x4, 0x8, 0x40, 0x80
IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_MOVE_SELF = 0x100, 0x200, 0x400, 0x800
IN_IGNORED = 0x8000
# systemd's PathChanged=: IN_DELETE_SELF|IN_MOVE_SELF|IN_ATTRIB|IN_CLOSE_WRITE|IN_CREATE|
# IN_DELETE|IN_MOVED_FROM|IN_MOVED_TO (PathModified= adds IN_MODIFY).
PATH_CHANGED_MASK = (
    IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_CREATE
    | IN_DELETE
    | IN_MOVED_FROM
    | IN_MOVED_TO
)
_EVENT = struct.Struct("iIII")


class Watch:
    """An inotify watch on one file, as the primary watch of a path unit."""

    def __init__(self, path: Path) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self.wd = libc.inotify_add_watch(self.fd, os.fsencode(path), PATH_CHANGED_MASK)
        assert self.wd >= 0, os.strerror(ctypes.get_errno())

    def events(self) -> list[int]:
        """The masks of the events on the watch so far."""
        found = []
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        offset = 0
        while offset < len(data):
            wd, mask, _, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size + length
            if wd == self.wd:
                found.append(mask)
        return found

    def close(self) -> None:
        os.close(self.fd)


@contextmanager
def watched(path: Path) -> Iterator[Watch]:
    watch = Watch(path)
    try:
        yield watch
    finally:
        watch.close()


def test_an_install_is_seen(client: Client, signer: FakeCaramel) -> None:
    enrolled(client)
    signer.sign()
    with watched(client.file) as watch:
        result = client.run()
        assert result.returncode == 0, result.stderr
        events = watch.events()
    assert events, "the install went unseen"
    assert any(mask & (IN_ATTRIB | IN_DELETE_SELF) for mask in events), events


def test_a_new_certificate_over_an_installed_one_is_seen(
    client: Client, signer: FakeCaramel
) -> None:
    installed(client, signer)
    signer.sign()  # re-signed, as the server does every so often
    with watched(client.file) as watch:
        assert client.run().returncode == 0
        assert watch.events()


@pytest.mark.parametrize("case", ["current", "not-modified", "pending", "locked"])
def test_a_run_that_changes_nothing_is_not_seen(
    client: Client, signer: FakeCaramel, case: str
) -> None:
    if case == "pending":
        enrolled(client)
    elif case == "not-modified":
        installed(client, signer, last_modified=LAST_MODIFIED)
        signer.honour_if_modified_since = True
    else:
        installed(client, signer)
    expected = {"current": 0, "not-modified": 0, "pending": 69, "locked": 1}[case]
    lock = os.open(client.file, os.O_RDONLY)
    try:
        if case == "locked":
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with watched(client.file) as watch:
            result = client.run()
            assert result.returncode == expected, result.stderr
            assert watch.events() == [], "an unchanged run would trigger PathChanged="
    finally:
        os.close(lock)
    if case == "not-modified":
        assert signer.requests("GET")[-1].headers.get("If-Modified-Since") == LAST_MODIFIED
