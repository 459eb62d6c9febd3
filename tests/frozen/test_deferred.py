"""The one-file binary unpacks at start only what the unchanged path opens (issue 13).

cryptography's native files, ``unicodedata`` and the lib-dynload modules the unchanged path
never opens travel inside the PYZ and are written into the run's own extraction directory
on their first import (build/caramel_startup.py). These tests keep the three promises
that come with it: the unchanged path writes none of them, a slow path writes what it
needs, and a ``$TMPDIR`` too small for a deferred file ends the run with 127, one line
naming ``$TMPDIR``, and the combined file as it was. The other suites run every slow path
(first run, rejection, corrupt file) through the same binary.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from testbed.command import clean_environment, client_command
from tests.conftest import Client
from tests.fake_signer import FakeCaramel
from tests.frozen.conftest import REPO, Binary
from tests.frozen.test_launcher import tmpfs
from tests.test_protocol import LAST_MODIFIED, installed

ARCHIVE_READER = """
import json, sys
from PyInstaller.archive.readers import CArchiveReader
archive = CArchiveReader(sys.argv[1])
pyz = archive.open_embedded_archive("PYZ.pyz")
stand_in = pyz.extract("urllib3.http2")
print(json.dumps({
    "unpacked": sum(e[2] for e in archive.toc.values() if e[-1] in "bx"),
    "extracted": sorted(n for n, e in archive.toc.items() if e[-1] in "bx"),
    "pyz": sorted(pyz.toc),
    "http2_names": sorted(stand_in.co_names),
}))
"""


def archive_facts(binary: Binary) -> dict[str, object]:
    listed = subprocess.run(
        [str(binary.build_python), "-c", ARCHIVE_READER, str(binary.path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(listed.stdout)  # type: ignore[no-any-return]


def deferred_writes(client: Client, tmp_path: Path, name: str) -> list[str]:
    """Run once under strace; the deferred files the client wrote (the finder writes each
    as NAME.partial, then renames it; the launcher never writes such a name)."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is needed (make system-deps installs it)")
    trace = tmp_path / f"{name}.strace"
    command = [strace, "-f", "-qq", "-e", "trace=openat,open", "-o", str(trace)]
    result = subprocess.run(
        [*command, *client_command(), *client.args()],
        env=clean_environment({"TMPDIR": str(tmp_path)}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 69), result.stderr
    created = re.findall(r'"[^"]*/_MEI[^/"]+/([^"]+)\.partial", [^)]*O_CREAT', trace.read_text())
    return sorted(Path(path).name for path in created)


def test_unchanged_path_writes_no_deferred_file(
    binary: Binary, client: Client, signer: FakeCaramel, tmp_path: Path
) -> None:
    installed(client, signer, last_modified=LAST_MODIFIED)
    assert deferred_writes(client, tmp_path, "200") == []
    signer.honour_if_modified_since = True
    assert deferred_writes(client, tmp_path, "304") == []
    assert signer.requests("GET")[-1].headers.get("If-Modified-Since") == LAST_MODIFIED


def test_first_run_writes_cryptographys_files_on_import(
    binary: Binary, client: Client, signer: FakeCaramel, tmp_path: Path
) -> None:
    written = deferred_writes(client, tmp_path, "first")
    assert "_rust.abi3.so" in written
    assert "libgcc_s.so.1" in written or binary.arch != "x86_64"
    facts = archive_facts(binary)
    assert not any("_rust" in name for name in facts["extracted"])  # type: ignore[union-attr]


def test_unpacked_per_start_and_what_the_archive_leaves_out(binary: Binary) -> None:
    """The launcher's own share (issue 13's goal: at most 14 MB per start); no
    importlib.metadata anywhere in the binary, and urllib3.http2 is the stand-in."""
    facts = archive_facts(binary)
    assert facts["unpacked"] <= 14_000_000  # type: ignore[operator]
    extracted = facts["extracted"]
    assert not any(re.search(r"unicodedata|_cffi_backend|dist-info", n) for n in extracted)  # type: ignore[union-attr]
    pyz = facts["pyz"]
    assert "importlib.metadata" not in pyz  # type: ignore[operator]
    assert "REPLACES_SHA256" in facts["http2_names"]  # type: ignore[operator]


STAND_IN = REPO / "build" / "standins" / "urllib3" / "http2" / "__init__.py"


def test_urllib3_http2_stand_in_is_pinned_to_the_locked_urllib3(binary: Binary) -> None:
    """A new urllib3 in build/requirements.lock, or a changed urllib3/http2/__init__.py,
    fails here until someone has compared the stand-in with it."""
    text = STAND_IN.read_text()
    pinned = re.search(r'URLLIB3_VERSION = "([^"]+)"', text)
    replaces = re.search(r'REPLACES_SHA256 = "([0-9a-f]{64})"', text)
    assert pinned
    assert replaces
    lock = (REPO / "build" / "requirements.lock").read_text()
    assert re.search(rf"^urllib3=={re.escape(pinned[1])} ", lock, re.MULTILINE)
    real = subprocess.run(
        [
            str(binary.build_python),
            "-c",
            "import os, urllib3; print(urllib3.__version__); "
            "print(os.path.join(os.path.dirname(urllib3.__file__), 'http2', '__init__.py'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert real[0] == pinned[1]
    real_text = Path(real[1]).read_bytes()
    assert hashlib.sha256(real_text).hexdigest() == replaces[1]
    # The same public names as the module it replaces.
    names = re.compile(r'^\s+"(\w+)",$', re.MULTILINE)
    assert names.findall(text) == names.findall(real_text.decode())


def test_full_tmpdir_at_a_deferred_file_ends_with_127_and_one_line(
    binary: Binary, client: Client, signer: FakeCaramel, tmp_path: Path
) -> None:
    """Room for the launcher's own unpacking, not for cryptography's library: the first
    run fails at its first cryptography import, and a new certificate cannot be installed
    either; the combined file stays as the SPEC says (none, or the old one)."""
    room = archive_facts(binary)["unpacked"] + 2 * 1024 * 1024  # type: ignore[operator]
    with tmpfs(tmp_path / "small", f"{room // 4096 * 4096}") as small:
        first = client.run(env={"TMPDIR": str(small)})
        left = list(small.iterdir())
    assert first.returncode == 127, first.stderr
    lines = first.stderr.splitlines()
    assert len(lines) == 1, first.stderr
    assert lines[0].startswith("caramel-embedded: ")
    assert "$TMPDIR" in lines[0]
    assert str(small) in lines[0]
    assert not client.file.exists() or client.file.stat().st_size == 0
    assert left == []  # the launcher still removed its directory

    installed(client, signer)
    before = client.file.read_bytes()
    signer.sign()  # a new certificate: installing it needs cryptography
    with tmpfs(tmp_path / "small-again", f"{room // 4096 * 4096}") as small:
        renewal = client.run(env={"TMPDIR": str(small)})
    assert renewal.returncode == 127, renewal.stderr
    assert "$TMPDIR" in renewal.stderr
    assert renewal.stderr.count("\n") == 1
    assert client.file.read_bytes() == before
