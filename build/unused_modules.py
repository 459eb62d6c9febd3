"""Measure, rather than guess, which modules the frozen binary carries for nothing.

Two steps (``make trim-report`` runs both):

1. ``--record LOG ARGS...`` is a stand-in for the command under test: it runs
   caramel-embedded's CLI with ARGS in this interpreter, then appends every module name in
   ``sys.modules`` to LOG. The process-level suites run with
   ``CARAMEL_EMBEDDED_CMD="python build/unused_modules.py --record LOG"``, so LOG holds
   what every tested path (enrolment, install, 304, errors, --help, --syslog, ...)
   imported.
2. ``--report LOG WORKDIR`` compares LOG with the graph of a freeze (the Analysis table
   in PyInstaller's work directory, e.g. build/work/x86_64/onedir/caramel-embedded)
   and with the EXCLUDES of build/caramel-embedded.spec. It prints the modules the binary
   still carries that no run imported, largest first (candidates to exclude, after a
   look at why they are in the graph), and fails if the client imported an excluded
   module that the spec does not list in OPTIONAL_IMPORTS (imported inside
   ``try/except ImportError``): that exclusion would break a path the tests cover.
"""

from __future__ import annotations

# Only what the client imports anyway: --record must not add to the modules it records.
import sys
from pathlib import Path

SPEC = Path(__file__).with_name("caramel-embedded.spec")


def record(log: Path, arguments: list[str]) -> int:
    """Run the client as the command under test would, then log what it imported.

    One line per run: the modules the interpreter had loaded before the client started
    (site and its hooks), a tab, then every module loaded at the end.
    """
    # As the frozen forms start (the idna fast path, the urllib3.http2 stand-in), so that
    # what the binary leaves out is judged against what the binary would import.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import frozen_like

    sys.path.pop(0)
    frozen_like.install()
    at_start = sorted(sys.modules)
    from caramel_embedded import cli

    sys.argv = ["caramel-embedded", *arguments]
    try:
        status = cli.main(arguments)
    finally:
        with log.open("a") as out:
            out.write(" ".join(at_start) + "\t" + " ".join(sorted(sys.modules)) + "\n")
    return status


def _spec_list(name: str) -> list[str]:
    """A list of module names assigned to ``name`` in the spec (EXCLUDES, OPTIONAL_IMPORTS)."""
    import ast

    tree = ast.parse(SPEC.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == name:
            return list(ast.literal_eval(node.value))
    raise SystemExit(f"{SPEC}: no {name} list")


def _toc_entries(toc_file: Path) -> list[tuple[str, str, str]]:
    """(name, source path, type) triples anywhere in one of PyInstaller's .toc files."""
    import ast

    found: list[tuple[str, str, str]] = []

    def walk(value: object) -> None:
        if isinstance(value, list | tuple):
            if len(value) == 3 and all(isinstance(part, str) for part in value):
                found.append(value)  # type: ignore[arg-type]
                return
            for item in value:
                walk(item)

    walk(ast.literal_eval(toc_file.read_text()))
    return found


def _module_of(entry: tuple[str, str, str]) -> str:
    """Module name of a module or an extension (``python3.11/lib-dynload/_ssl.cpython...``)."""
    name, _source, kind = entry
    if kind != "EXTENSION":
        return name
    stem = name.removeprefix("python3.11/lib-dynload/").split(".cpython-")[0].split(".abi3")[0]
    return stem.replace("/", ".")


def report(log: Path, workdir: Path) -> int:
    from collections import defaultdict

    runs = log.read_text().splitlines()
    used: set[str] = set()
    by_client: set[str] = set()
    for line in runs:
        at_start, _, at_end = line.partition("\t")
        used.update(at_end.split())
        by_client.update(set(at_end.split()) - set(at_start.split()))
    if not used:
        raise SystemExit(f"{log}: no run recorded")
    # The Analysis lists every module and extension whether they end up in a PYZ (one-file)
    # or as files beside the launcher (the one-dir bundle is built with noarchive).
    entries = [
        entry
        for entry in _toc_entries(workdir / "Analysis-00.toc")
        if entry[2] in ("PYMODULE", "EXTENSION")
    ]
    unused_bytes: dict[str, int] = defaultdict(int)
    unused_names: dict[str, list[str]] = defaultdict(list)
    for entry in {entry[0]: entry for entry in entries}.values():
        module = _module_of(entry)
        if module in used:
            continue
        group = module.split(".")[0]
        source = Path(entry[1])
        unused_bytes[group] += source.stat().st_size if source.is_file() else 0
        unused_names[group].append(module)
    print(f"{len(used)} modules imported in {len(runs)} runs")
    print("carried but never imported (source bytes, by top-level name):")
    for group, size in sorted(unused_bytes.items(), key=lambda item: -item[1]):
        print(f"  {size:9,d}  {group}  ({len(unused_names[group])} modules)")
    optional = set(_spec_list("OPTIONAL_IMPORTS"))
    broken = sorted(
        name
        for name in _spec_list("EXCLUDES")
        if name not in optional
        and (name in by_client or any(u.startswith(name + ".") for u in by_client))
    )
    if broken:
        print(f"EXCLUDED BUT IMPORTED (the spec would break these paths): {' '.join(broken)}")
        return 1
    print("no excluded module was imported by any recorded run")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--record"] and len(argv) >= 2:
        return record(Path(argv[1]), argv[2:])
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--report", nargs=2, metavar=("LOG", "WORKDIR"), type=Path, required=True)
    log, workdir = parser.parse_args(argv).report
    return report(log, workdir)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
