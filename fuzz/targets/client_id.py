"""``client_id``: the id read from hardware files, against the documented rules.

The rules (``client_id``'s docstring, the SPEC): an id is 1 to 64 characters of
``A-Z a-z 0-9 . _ : @ -``; ``serial`` is the first usable of the device-tree
``serial-number`` (two places), the first ``Serial: WORD`` line of /proc/cpuinfo, DMI
``product_serial`` (NULs and white space around it dropped; a vendor's placeholder or all
zeros is no serial); ``mac`` is the MAC address of the first physical interface, written
as 12 lowercase hex digits, never all zeros; ``auto`` is ``serial``, else ``mac``.

Contract, for any file contents: every source gives an id that follows the rules, or
raises ``ClientIdError``; ``serial``, ``mac`` and ``auto`` give what the rules say.
"""

from __future__ import annotations

import atexit
import os
import shutil
import string
import tempfile
from functools import partial
from pathlib import Path

from caramel_embedded import client_id
from caramel_embedded.errors import ClientIdError
from fuzz.contract import Finding, agree, outcome

_FILES = (
    "proc/device-tree/serial-number",
    "sys/firmware/devicetree/base/serial-number",
    "proc/cpuinfo",
    "sys/class/dmi/id/product_serial",
    "sys/class/net/eth0/address",
    "etc/machine-id",
    "id",
)
_ID = frozenset(string.ascii_letters + string.digits + "._:@-")
_PLACEHOLDERS = (
    "", "none", "default string", "to be filled by o.e.m.", "not specified",
    "system serial number", "0123456789", "n/a",
)  # fmt: skip
_SEPARATOR = b"\n--\n"  # between the files' contents in one input
# Every input writes the files: in memory (/dev/shm, a tmpfs) where there is one, since
# each write to a disk-backed /tmp can cost a millisecond.
_SHARED_MEMORY = "/dev/shm"  # noqa: S108 - a directory of our own is made inside it
_ROOT = Path(
    tempfile.mkdtemp(
        prefix="fuzz-client-id-", dir=_SHARED_MEMORY if os.path.isdir(_SHARED_MEMORY) else None
    )
)
atexit.register(shutil.rmtree, _ROOT, True)
(_ROOT / "sys/class/net/eth0/device").mkdir(parents=True)
(_ROOT / "sys/class/net/lo").mkdir(parents=True)


def check(data: bytes) -> None:
    contents = data.split(_SEPARATOR)
    for index, relative in enumerate(_FILES):
        path = _ROOT / relative
        if index < len(contents):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(contents[index])
        else:
            path.unlink(missing_ok=True)
    found = {}
    for source in ("auto", "serial", "mac", "mac:eth0", "machine-id", f"file:{_ROOT / 'id'}"):
        given = outcome(partial(client_id.resolve, None, source, _ROOT), (ClientIdError,))
        if isinstance(given, str) and not (0 < len(given) <= 64 and set(given) <= _ID):
            raise Finding(f"{source} gave the id {given!r}, which is not a client id")
        found[source] = given if isinstance(given, str) else None
    agree("serial", found["serial"], _serial(contents))
    agree("mac", found["mac"], _mac(contents))
    agree("mac:eth0", found["mac:eth0"], _mac(contents))
    agree("auto", found["auto"], found["serial"] or found["mac"])


def _text(contents: list[bytes], index: int) -> str | None:
    return contents[index].decode("utf-8", "replace") if index < len(contents) else None


def _serial(contents: list[bytes]) -> str | None:
    from_cpuinfo = None
    for line in (_text(contents, 2) or "").split("\n"):  # the first "Serial: WORD" line
        key, colon, value = line.partition(":")
        word = value.lstrip(" \t").rstrip(" \t\r")
        if colon and key.rstrip(" \t") == "Serial" and word and not _has_space(word):
            from_cpuinfo = word
            break
    for candidate in (_text(contents, 0), _text(contents, 1), from_cpuinfo, _text(contents, 3)):
        if candidate is None:
            continue
        serial = candidate.strip("\0 \t\r\n")
        if serial.lower() in _PLACEHOLDERS or set(serial) <= {"0"}:
            continue
        if 0 < len(serial) <= 64 and set(serial) <= _ID:
            return serial
    return None


def _has_space(text: str) -> bool:
    return any(character.isspace() for character in text)


def _mac(contents: list[bytes]) -> str | None:
    text = (_text(contents, 4) or "").strip().lower()
    pairs = text.split(":")
    hexdigits = set("0123456789abcdef")
    if len(pairs) != 6 or any(len(pair) != 2 or not set(pair) <= hexdigits for pair in pairs):
        return None
    digits = "".join(pairs)
    return None if set(digits) == {"0"} else digits
