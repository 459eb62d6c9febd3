"""build/caramel_startup.py's idna codec: the real codec's results, without its imports.

Both frozen forms put a stand-in in the place of ``encodings.idna`` at start (issue 13):
``ssl`` and ``socket`` pass every host name through the idna codec, and the real module
imports ``unicodedata`` (1.1 MB the one-file form would unpack at every start) although an
ASCII name needs no Unicode tables. Anything the stand-in answers must be what the real
codec answers, errors included; anything else goes to the real codec.

In-process tests of a module of the build: the package pass only (``in_process``).
"""

from __future__ import annotations

import encodings.idna as real_idna
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.script_module import load

pytestmark = pytest.mark.in_process

BUILD = Path(__file__).resolve().parents[1] / "build"


startup = load(BUILD / "caramel_startup.py", "caramel_startup")

NAMES = [
    "",
    "localhost",
    "127.0.0.1",
    "caramel.example.com",
    "caramel.example.com.",
    "CaRaMeL.Example",
    "xn--bcher-kva.example",
    "a" * 63 + ".example",
    "a" * 64 + ".example",
    "example." + "a" * 63,
    "example." + "a" * 64,
    "two..dots",
    ".leading",
    "bücher.example",
    "ДОМЕН.example",
    "straße.de",
]


def outcome(encode: object, name: str) -> tuple[str, object]:
    try:
        return ("ok", encode(name))  # type: ignore[operator]
    except UnicodeError as error:
        return ("error", str(error))


@pytest.mark.parametrize("name", NAMES)
def test_stand_in_encodes_as_the_real_codec(name: str) -> None:
    assert outcome(startup.idna_encode, name) == outcome(real_idna.Codec().encode, name)


PROBE = f"""
import json, sys
sys.path.insert(0, {str(BUILD)!r})
import caramel_startup
caramel_startup.install({{}})
seen = {{}}
seen["ascii"] = "Caramel.Example".encode("idna").decode()
seen["after_ascii"] = sorted(m for m in ("unicodedata", "stringprep") if m in sys.modules)
import socket
socket.getaddrinfo("localhost", 443)
seen["after_getaddrinfo"] = sorted(m for m in ("unicodedata", "stringprep") if m in sys.modules)
seen["non_ascii"] = "bücher.example".encode("idna").decode()
seen["decoded"] = b"xn--bcher-kva.example".decode("idna")
seen["after_non_ascii"] = sorted(m for m in ("unicodedata", "stringprep") if m in sys.modules)
seen["stand_in"] = sys.modules["encodings.idna"].__doc__.startswith("The idna codec, ASCII")
seen["to_ascii"] = sys.modules["encodings.idna"].ToASCII("bücher").decode()
print(json.dumps(seen))
"""


def test_ascii_names_import_no_unicode_tables_and_others_get_the_real_codec() -> None:
    result = subprocess.run(
        [sys.executable, "-I", "-c", PROBE], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == {
        "ascii": "Caramel.Example",
        "after_ascii": [],
        "after_getaddrinfo": [],
        "non_ascii": "xn--bcher-kva.example",
        "decoded": "bücher.example",
        "after_non_ascii": ["stringprep", "unicodedata"],
        "stand_in": True,
        "to_ascii": "xn--bcher-kva",
    }
