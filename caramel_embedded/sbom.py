"""The software bill of materials a frozen build carries, for ``--sbom``.

build/sbom.py writes it at build time into the launcher as the ELF section ``.sbom``
(CycloneDX JSON, not loaded: no start reads it). ``--sbom`` reads that section back from
the running executable's file. The package installed with pip runs under a Python
interpreter that carries none, and says so (an error), as ``this build embeds no CA`` does for
the CA. Imported only for ``--sbom``; it reads section headers, never the whole file.
"""

from __future__ import annotations

import struct
import sys
from typing import BinaryIO

from caramel_embedded.errors import BillOfMaterialsError

SECTION = b".sbom"
_MAX_BYTES = 4 * 1024 * 1024
_NONE = (
    "no software bill of materials: this build carries none (the frozen binary and bundle "
    "carry one, and the build writes it beside them as caramel-embedded.cdx.json)"
)


def carried(executable: str | None = None) -> str:
    """The document in the executable's ``.sbom`` section (default: this process's)."""
    path = sys.executable if executable is None else executable
    try:
        with open(path, "rb") as handle:
            data = _section(handle, SECTION)
    except (OSError, ValueError, struct.error):
        data = None
    if data is None:
        raise BillOfMaterialsError(_NONE)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BillOfMaterialsError(f"{path}: its {SECTION.decode()} section is not text") from None


def _section(handle: BinaryIO, name: bytes) -> bytes | None:
    """The bytes of the named section of an ELF file (32/64-bit, either byte order)."""
    ident = handle.read(16)
    if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2):
        return None
    wide = ident[4] == 2
    order = "<" if ident[5] == 1 else ">"
    header = ident + handle.read(48 if wide else 36)
    if wide:
        shoff = struct.unpack_from(order + "Q", header, 0x28)[0]
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", header, 0x3A)
        entry = order + "IIQQQQIIQQ"
    else:
        shoff = struct.unpack_from(order + "I", header, 0x20)[0]
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", header, 0x2E)
        entry = order + "IIIIIIIIII"
    if not shoff or shstrndx >= shnum:
        return None
    handle.seek(shoff)
    table = handle.read(shentsize * shnum)
    sections = [struct.unpack_from(entry, table, i * shentsize) for i in range(shnum)]
    names = _read(handle, sections[shstrndx][4], sections[shstrndx][5])
    for name_offset, _kind, _flags, _addr, offset, size, *_rest in sections:
        if names[name_offset : names.find(b"\0", name_offset)] == name:
            if size > _MAX_BYTES:
                return None
            return _read(handle, offset, size)
    return None


def _read(handle: BinaryIO, offset: int, size: int) -> bytes:
    handle.seek(offset)
    data = handle.read(size)
    if len(data) != size:
        raise ValueError("truncated ELF file")
    return data
