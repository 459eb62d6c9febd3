"""The client id: given, or read from the hardware, and always validated.

The id becomes the certificate's CN and travels in the User-Agent, so it must be stable for
the life of the device: an explicit id that is empty or malformed is an error, never a
reason to fall back to a hardware id (that would silently change the identity).

``auto`` tries, in this order: the device-tree ``serial-number``, the ``Serial`` line of
``/proc/cpuinfo``, DMI ``product_serial``, then the MAC address of the first physical
network interface by name (one with a ``device`` link, so not ``lo``, bridges, VLANs,
tunnels or other virtual interfaces, and not an all-zero address). The filesystem root is a
parameter so that tests read fake ``/sys`` and ``/proc`` trees.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import ascii_letters, digits

from caramel_embedded.errors import ClientIdError

SOURCES = ("auto", "serial", "mac", "mac:IFACE", "machine-id", "file:PATH")

# 1 to 64 of these (a set, not a regular expression: one compile less at every start).
_ID_CHARACTERS = frozenset(ascii_letters + digits + "._:@-")
# Compiled on first use (re keeps them): a run with its id given never reads hardware.
_MAC = r"([0-9a-f]{2}:){5}[0-9a-f]{2}"
# One line: "Serial<tabs or spaces>: <one word>" (\s would reach into the next line).
_CPUINFO_SERIAL = r"(?m)^Serial[ \t]*:[ \t]*(\S+)[ \t\r]*$"
# Values that firmware and BIOS vendors leave in place of a real serial number.
_PLACEHOLDER_SERIALS = {
    "",
    "none",
    "default string",
    "to be filled by o.e.m.",
    "not specified",
    "system serial number",
    "0123456789",
    "n/a",
}
_SERIAL_FILES = (
    "proc/device-tree/serial-number",
    "sys/firmware/devicetree/base/serial-number",
    "sys/class/dmi/id/product_serial",
)


def validate(client_id: str, origin: str = "client id") -> str:
    """The id itself if it is 1 to 64 characters of ``A-Z a-z 0-9 . _ : @ -``."""
    if not _is_valid(client_id):
        shown = client_id if len(client_id) <= 80 else client_id[:77] + "..."
        raise ClientIdError(
            f"{origin} {shown!r} is not 1 to 64 characters of A-Z a-z 0-9 . _ : @ -"
        )
    return client_id


def _is_valid(client_id: str) -> bool:
    return 0 < len(client_id) <= 64 and set(client_id) <= _ID_CHARACTERS


def check_source(source: str) -> str:
    """The source itself if it names one we know; a usage problem otherwise."""
    if source in ("auto", "serial", "mac", "machine-id"):
        return source
    if (source.startswith("mac:") and len(source) > 4) or (
        source.startswith("file:") and len(source) > 5
    ):
        return source
    raise ClientIdError(f"unknown client id source {source!r}: one of {', '.join(SOURCES)}")


def resolve(explicit: str | None, source: str, root: Path = Path("/")) -> str:
    """The client id for this invocation."""
    if explicit is not None:
        return validate(explicit)
    check_source(source)
    if source == "auto":
        found = _serial(root) or _first_physical_mac(root)
        if found is None:
            raise ClientIdError(
                "no hardware serial number and no physical network interface with a MAC "
                "address: give CLIENT_ID or --client-id-from"
            )
        return found
    if source == "serial":
        return _require(_serial(root), "no hardware serial number found")
    if source == "mac":
        return _require(_first_physical_mac(root), "no physical network interface found")
    if source.startswith("mac:"):
        interface = source[4:]
        return _require(
            _interface_mac(root, interface), f"no MAC address for interface {interface!r}"
        )
    if source == "machine-id":
        return validate(_read_text(root / "etc/machine-id").strip(), "/etc/machine-id")
    path = Path(source[5:])
    text = _read_text(path)
    return validate(text.splitlines()[0].strip() if text.strip() else "", str(path))


def _require(found: str | None, message: str) -> str:
    if found is None:
        raise ClientIdError(message)
    return found


def _serial(root: Path) -> str | None:
    """The first usable hardware serial, in the documented order."""
    candidates = [_optional_text(root / _SERIAL_FILES[0]), _optional_text(root / _SERIAL_FILES[1])]
    cpuinfo = _optional_text(root / "proc/cpuinfo")
    match = re.search(_CPUINFO_SERIAL, cpuinfo or "")
    candidates.append(match.group(1) if match else None)
    candidates.append(_optional_text(root / _SERIAL_FILES[2]))
    for candidate in candidates:
        if candidate is None:
            continue
        serial = candidate.strip("\0 \t\r\n")
        if serial.lower() in _PLACEHOLDER_SERIALS or set(serial) <= {"0"}:
            continue
        if _is_valid(serial):
            return serial
    return None


def _first_physical_mac(root: Path) -> str | None:
    net = root / "sys/class/net"
    try:
        names = sorted(entry.name for entry in net.iterdir())
    except OSError:
        return None
    for name in names:
        if name == "lo" or not (net / name / "device").exists():
            continue
        mac = _interface_mac(root, name)
        if mac is not None:
            return mac
    return None


def _interface_mac(root: Path, interface: str) -> str | None:
    """12 lowercase hex digits, or None for a missing, malformed or all-zero address."""
    if "/" in interface or interface in (".", ".."):
        raise ClientIdError(f"bad interface name {interface!r}")
    address = (_optional_text(root / "sys/class/net" / interface / "address") or "").strip()
    address = address.lower()
    if not re.fullmatch(_MAC, address):
        return None
    digits = address.replace(":", "")
    return None if set(digits) == {"0"} else digits


def _optional_text(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return None


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError as error:
        raise ClientIdError(f"cannot read client id from {path}: {error.strerror}") from None
