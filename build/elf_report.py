"""What a frozen binary needs from its target: the C library, and which version of it.

    python build/elf_report.py [--json] BINARY_OR_BUNDLE
    python build/elf_report.py --needs-only-libc ELF_FILE...

For a one-file binary it reads the launcher and every library packed inside it (through
PyInstaller's own archive reader, so run it with the build venv's Python); for a one-dir
bundle, every ELF file under the directory. It reports:

- the glibc floor: the highest ``GLIBC_x.y`` symbol version any of them requires, which is
  the lowest glibc the target may have. Measured here, from the bytes, so the README's
  figure cannot drift from the binary (tests/frozen/test_build.py compares the two);
- the shared libraries needed but not carried inside: all must belong to glibc, because
  the promise is that everything but the C library travels in the binary.

The ELF reader is plain Python (32/64-bit, either byte order), so an ARM build is examined
on any host without cross binutils. Exit 1 when something outside glibc is needed.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# glibc's own shared objects: what a target has when it has "the C library".
_GLIBC_SONAME = re.compile(
    r"(libc|libm|libdl|libpthread|librt|libutil|libresolv|libanl|libnsl|libBrokenLocale)"
    r"\.so\.\d+|ld-linux[-\w.]*\.so\.\d+|ld64\.so\.\d+"
)
_GLIBC_VERSION = re.compile(r"GLIBC_(\d+)\.(\d+)(?:\.(\d+))?")
_MACHINES = {3: "i386", 40: "arm", 62: "x86_64", 183: "aarch64"}
_SHT_DYNAMIC = 6
_SHT_GNU_VERNEED = 0x6FFFFFFE
_DT_NEEDED = 1


class NotELF(ValueError):
    """The bytes are not an ELF object we can read."""


@dataclass
class ElfFacts:
    """One ELF file's dynamic needs."""

    name: str
    machine: str
    needed: list[str] = field(default_factory=list)
    glibc_versions: set[tuple[int, ...]] = field(default_factory=set)


def read_elf(name: str, data: bytes) -> ElfFacts:
    """DT_NEEDED entries and GLIBC_* version needs, from the section headers."""
    if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        raise NotELF(name)
    wide = data[4] == 2
    order = "<" if data[5] == 1 else ">"
    machine = struct.unpack_from(order + "H", data, 18)[0]
    if wide:
        shoff, shentsize, shnum = (
            struct.unpack_from(order + "Q", data, 0x28)[0],
            *struct.unpack_from(order + "HH", data, 0x3A),
        )
        section_format = order + "IIQQQQIIQQ"
    else:
        shoff, shentsize, shnum = (
            struct.unpack_from(order + "I", data, 0x20)[0],
            *struct.unpack_from(order + "HH", data, 0x2E),
        )
        section_format = order + "IIIIIIIIII"
    sections = [
        struct.unpack_from(section_format, data, shoff + index * shentsize)
        for index in range(shnum)
    ]
    facts = ElfFacts(name, _MACHINES.get(machine, f"e_machine {machine}"))

    def string(section_index: int, offset: int) -> str:
        start = sections[section_index][4] + offset
        return data[start : data.index(b"\0", start)].decode("ascii", "replace")

    for _name, kind, _flags, _addr, offset, size, link, info, _align, _entsize in sections:
        if kind == _SHT_DYNAMIC:
            entry = order + ("qQ" if wide else "iI")
            step = struct.calcsize(entry)
            for position in range(offset, offset + size, step):
                tag, value = struct.unpack_from(entry, data, position)
                if tag == _DT_NEEDED:
                    facts.needed.append(string(link, value))
        elif kind == _SHT_GNU_VERNEED:
            position = offset
            for _ in range(info):
                _version, count, _file, aux, following = struct.unpack_from(
                    order + "HHIII", data, position
                )
                aux_position = position + aux
                for _ in range(count):
                    _hash, _flags2, _other, name_offset, aux_next = struct.unpack_from(
                        order + "IHHII", data, aux_position
                    )
                    match = _GLIBC_VERSION.fullmatch(string(link, name_offset))
                    if match:
                        facts.glibc_versions.add(tuple(int(g) for g in match.groups() if g))
                    aux_position += aux_next
                position += following
    return facts


def _packed_files(binary: Path) -> list[tuple[str, bytes]]:
    """The files inside a one-file binary (empty if it carries no PyInstaller archive)."""
    from PyInstaller.archive.readers import (  # type: ignore[import-untyped]
        CArchiveReader,
        NotAnArchiveError,
    )

    try:
        archive = CArchiveReader(str(binary))
    except (NotAnArchiveError, ValueError, OSError):
        return []
    packed = []
    for name, entry in archive.toc.items():
        if entry[-1] in ("b", "x"):  # binaries and data files; ELF magic decides below
            packed.append((name, archive.extract(name)))
        elif entry[-1] == "z":
            packed.extend(_deferred_files(archive.open_embedded_archive(name)))
    return packed


def _deferred_files(pyz: Any) -> list[tuple[str, bytes]]:
    """The files the spec carries in the PYZ, unpacked only when a run needs them
    (build/caramel-embedded.spec, "deferred native files"): modules named
    pyi_deferred_<path>_NNN whose one constant is a piece of the file, in order. Their
    glibc needs count as much as those of the files the launcher unpacks at start."""
    pieces: dict[str, list[tuple[str, bytes]]] = {}
    for module in pyz.toc:
        match = re.fullmatch(r"pyi_deferred_\w+_(\d{3})", module)
        if match:
            constants = pyz.extract(module).co_consts
            destination = next(c for c in constants if isinstance(c, str))
            data = next(c for c in constants if isinstance(c, bytes))
            pieces.setdefault(destination, []).append((match[1], data))
    return [
        (destination, b"".join(data for _, data in sorted(parts)))
        for destination, parts in sorted(pieces.items())
    ]


def collect(target: Path) -> list[ElfFacts]:
    """Every ELF object of a one-file binary (launcher + contents) or a one-dir bundle."""
    found: list[ElfFacts] = []
    if target.is_dir():
        candidates = [
            (str(path.relative_to(target)), path.read_bytes())
            for path in sorted(target.rglob("*"))
            if path.is_file() and not path.is_symlink()
        ]
    else:
        candidates = [(target.name, target.read_bytes()), *_packed_files(target)]
    for name, data in candidates:
        try:
            found.append(read_elf(name, data))
        except (NotELF, struct.error, ValueError):
            continue
    return found


@dataclass
class Report:
    """The target's needs, summed over every ELF object."""

    target: str
    machine: str
    elf_files: int
    glibc_floor: str
    glibc_floor_from: list[str]
    system_libraries: list[str]
    not_glibc: list[str]


def report(target: Path) -> Report:
    objects = collect(target)
    if not objects:
        raise SystemExit(f"elf_report.py: {target}: no ELF file found")
    carried = {Path(facts.name).name for facts in objects}
    system = sorted({lib for facts in objects for lib in facts.needed} - carried)
    floor = max((v for facts in objects for v in facts.glibc_versions), default=(0,))
    return Report(
        target=str(target),
        machine=objects[0].machine,
        elf_files=len(objects),
        glibc_floor="GLIBC_" + ".".join(map(str, floor)),
        glibc_floor_from=sorted(f.name for f in objects if floor in f.glibc_versions),
        system_libraries=system,
        not_glibc=[lib for lib in system if not _GLIBC_SONAME.fullmatch(lib)],
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("targets", nargs="+", type=Path)
    parser.add_argument("--json", action="store_true", help="one JSON object per target")
    parser.add_argument(
        "--needs-only-libc", action="store_true", help="only check each ELF file's DT_NEEDED"
    )
    arguments = parser.parse_args(argv)
    failed = False
    for target in arguments.targets:
        if arguments.needs_only_libc:
            facts = read_elf(target.name, target.read_bytes())
            extra = [lib for lib in facts.needed if not _GLIBC_SONAME.fullmatch(lib)]
            if extra:
                print(f"{target}: needs {' '.join(extra)} besides glibc", file=sys.stderr)
                failed = True
            continue
        result = report(target)
        failed = failed or bool(result.not_glibc)
        if arguments.json:
            print(json.dumps(result.__dict__))
            continue
        print(f"{result.target}: {result.machine}, {result.elf_files} ELF files")
        print(f"  glibc floor: {result.glibc_floor} (from {', '.join(result.glibc_floor_from)})")
        print(f"  from the system: {' '.join(result.system_libraries)}")
        if result.not_glibc:
            print(f"  NOT IN GLIBC (must be carried inside): {' '.join(result.not_glibc)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
