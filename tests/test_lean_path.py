"""The unchanged path stays lean: no X.509 layer of cryptography, no dataclasses, no argparse.

Every invocation on a device is a cold start; the 304 and the unchanged 200 run every
timer tick. These tests run the package in a fresh interpreter and look at what it
imported, so that a stray top-level import fails here rather than on a board.

dataclasses imports inspect, ast and dis, and building a frozen dataclass runs exec():
about 8 ms of every frozen start for 17 small records, so the package has its own
``Record`` (caramel_embedded/record.py).

The probe starts as the frozen forms do (build/caramel_startup.py's idna fast path, and
build/standins' urllib3.http2 in the real one's place), so that it also fails if the
client's own code imports ``importlib.metadata`` (about 10 ms, left out of the frozen
forms) or needs ``unicodedata`` (deferred in the one-file form: 1.1 MB unpacked).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Client
from tests.fake_signer import FakeCaramel
from tests.test_protocol import LAST_MODIFIED, installed
from tests.test_server_hint import with_hint

# The package in a fresh interpreter: the package pass only (a frozen binary has its own
# start-up checks in tests/frozen).
pytestmark = pytest.mark.in_process

BUILD = Path(__file__).resolve().parents[1] / "build"
# argparse (with gettext) was about 2 ms of every start: the command reads its own line
# (caramel_embedded/command_line.py).
# tpm2 mode's modules and ctypes (caramel_embedded/tpm.py) are for that mode alone: file
# mode, the default, must not import them, let alone load the provider or libtss2.
HEAVY = (
    "dataclasses", "inspect", "ast", "dis", "importlib.metadata", "unicodedata",
    "argparse", "gettext", "ctypes", "_ctypes",
)  # fmt: skip
PROBE = f"""
import json, sys
HEAVY = {HEAVY!r}
sys.path.insert(0, {str(BUILD)!r})
import frozen_like
frozen_like.install()
sys.path.pop(0)
from caramel_embedded import cli
status = cli.main(sys.argv[1:])
heavy = sorted(
    m for m in sys.modules
    if m.startswith("cryptography")
    or m.startswith("caramel_embedded.tpm")
    or m in HEAVY
)
print(json.dumps({{"status": status, "heavy": heavy}}))
"""


# What a run that follows the server's hint (no check) must not import either: the network.
NETWORK = ("urllib3", "ssl", "_ssl", "socket", "http")
NO_NETWORK_PROBE = PROBE.replace(
    "or m in HEAVY", f"or m in HEAVY or m.split('.')[0] in {NETWORK!r}"
)
assert NO_NETWORK_PROBE != PROBE


def run_probe(client: Client, *extra: str, probe: str = PROBE) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", probe, *client.args(*extra)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_unchanged_200_imports_nothing_heavy(client: Client, signer: FakeCaramel) -> None:
    installed(client, signer)
    assert run_probe(client) == {"status": 0, "heavy": []}


def test_304_imports_nothing_heavy(client: Client, signer: FakeCaramel) -> None:
    installed(client, signer, last_modified=LAST_MODIFIED)
    signer.honour_if_modified_since = True
    assert run_probe(client) == {"status": 0, "heavy": []}
    # The signer answers 304 only to this validator: without it the probe ran the 200 path.
    assert signer.requests("GET")[-1].headers.get("If-Modified-Since") == LAST_MODIFIED


def test_pending_path_imports_nothing_heavy(client: Client, signer: FakeCaramel) -> None:
    assert client.run().returncode == 69
    assert run_probe(client) == {"status": 69, "heavy": []}


# An exit handler that would print if the interpreter tore itself down after the run.
TEARDOWN_PROBE = """
import atexit, runpy, sys
atexit.register(lambda: print("interpreter teardown", file=sys.stderr))
sys.argv[0] = "caramel-embedded"
runpy.run_module("caramel_embedded", run_name="__main__", alter_sys=True)
"""


def test_the_command_ends_without_the_interpreters_teardown(
    client: Client, signer: FakeCaramel
) -> None:
    """Freeing every module one by one cost 10 to 30 ms of each unchanged-path run: the
    entry point (``python -m``, the console script and the frozen forms' ``__main__``) hands
    the end to the kernel once its work and output are done, with the status it earned."""
    installed(client, signer)
    result = subprocess.run(
        [sys.executable, "-c", TEARDOWN_PROBE, *client.args("-v")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "interpreter teardown" not in result.stderr
    assert result.stderr.strip(), "the -v progress lines were flushed before the end"


def test_the_fast_end_keeps_the_status_an_unwritable_stdout_earns() -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-c", TEARDOWN_PROBE, "--version"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    assert result.returncode == 127
    assert result.stderr.startswith("caramel-embedded: cannot write to stdout"), result.stderr
    assert "interpreter teardown" not in result.stderr


def test_a_followed_hint_imports_no_network(
    client: Client, signer: FakeCaramel, ram_dir: Path
) -> None:
    with_hint(client, signer, ram_dir)
    seen = len(signer.seen)
    followed = run_probe(client, "--runtime-dir", str(ram_dir), probe=NO_NETWORK_PROBE)
    assert followed == {"status": 0, "heavy": []}
    assert len(signer.seen) == seen
    # The probe sees the network where it is imported: the same run, asking.
    asked = run_probe(client, "--runtime-dir", str(ram_dir), "--check-now", probe=NO_NETWORK_PROBE)
    assert asked["status"] == 0
    assert "urllib3" in asked["heavy"]  # type: ignore[operator]


def test_file_mode_key_making_imports_nothing_of_tpm2_mode(client: Client) -> None:
    """A first run in file mode makes a key (cryptography is imported then, and with it some
    of HEAVY), and nothing of tpm2 mode: neither its modules nor ctypes."""
    result = run_probe(client)
    assert result["status"] == 69
    heavy = result["heavy"]
    assert isinstance(heavy, list)
    assert any(module.startswith("cryptography") for module in heavy)  # the key was made
    of_tpm2_mode = [m for m in heavy if m.startswith("caramel_embedded.tpm") or "ctypes" in m]
    assert of_tpm2_mode == []
