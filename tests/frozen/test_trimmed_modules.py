"""Paths that use a module no process-level suite reaches, run through the trimmed binary.

The spec leaves out what no tested path imports (build/unused_modules.py measures it), so
a path that only in-process tests reach could lose a module unnoticed. ``--syslog`` is one:
the syslog module must be in the binary, and its lines must reach the log socket.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from werkzeug import Response

from tests.conftest import Client
from tests.fake_signer import FakeCaramel
from tests.frozen.conftest import Binary

DEV_LOG = Path("/dev/log")


@contextlib.contextmanager
def syslog_listener() -> Iterator[socket.socket | None]:
    """A datagram socket at /dev/log when the machine has none (no syslog daemon, as in
    CI); None where a real one is there, which the test must not displace."""
    if DEV_LOG.exists() or DEV_LOG.is_symlink():
        yield None
        return
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        listener.bind(str(DEV_LOG))
        listener.settimeout(5)
        yield listener
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(DEV_LOG)


def test_syslog_option_logs_through_the_binary(
    binary: Binary, client: Client, signer: FakeCaramel
) -> None:
    signer.forced = lambda _request: Response("busy", 503)
    message = ""
    with syslog_listener() as listener:
        result = client.run("--syslog")
        if listener is not None:
            with contextlib.suppress(TimeoutError):
                message = listener.recv(4096).decode("utf-8", "replace")
    assert result.returncode == 127
    assert result.stderr.startswith("caramel-embedded: ")
    assert "503" in result.stderr
    if listener is not None:
        assert "caramel-embedded" in message
        assert "503" in message


SCRIPTS_READER = """
import sys
from PyInstaller.archive.readers import CArchiveReader
toc = CArchiveReader(sys.argv[1]).toc
print(" ".join(name for name, entry in toc.items() if entry[-1] in "sS"))
"""


def test_no_run_time_hook_but_cryptographys_and_ours_runs_at_start(binary: Binary) -> None:
    """pyi_rth_inspect (inspect, zipfile and a listing of base_library.zip at every start,
    26 ms of a bare start) is left out by the spec; ours (pyi_rth_caramel_startup: the idna
    fast path and the finder of deferred files, build/caramel_startup.py) runs last before
    the client. Any other hook that appears must be looked at, and measured, before it is
    let in."""
    listed = subprocess.run(
        [str(binary.build_python), "-c", SCRIPTS_READER, str(binary.path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.split() == [
        "pyiboot01_bootstrap",
        "pyi_rth_cryptography_openssl",
        "pyi_rth_caramel_startup",
        "__main__",
    ]
