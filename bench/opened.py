"""Which files the one-file binary unpacks at start that the unchanged path never opens.

    .venv/bin/python bench/opened.py .cache/test-dist/x86_64/caramel-embedded

Runs the binary on both unchanged paths (bench/server.py's nginx) under strace, collects
the files of its extraction directory that any process opened for reading, and prints
every file the launcher unpacked with "opened" or "never opened" and its size. The spec's
DEFERRED_MODULES (build/caramel-embedded.spec) was chosen from this list; a file that
turns up "never opened" here is a candidate, one that is deferred but opened would show up
in tests/frozen/test_deferred.py. Figures, not a test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import server  # noqa: E402

_OPEN = re.compile(r'open(?:at)?\(.*?"(?P<path>[^"]*/_MEI[^/"]+/[^"]+)", (?P<flags>[^),]+)')

TOC_PROBE = """
import json, sys
from PyInstaller.archive.readers import CArchiveReader
toc = CArchiveReader(sys.argv[1]).toc
print(json.dumps({name: entry[2] for name, entry in toc.items() if entry[-1] in "bx"}))
"""


def opened_files(binary: Path, world: server.World, path: str, work: Path) -> set[str]:
    """Files under the extraction directory opened without O_CREAT or O_WRONLY."""
    strace = shutil.which("strace")
    if strace is None:
        raise SystemExit("opened.py: needs strace (make bench-deps)")
    trace = work / f"trace-{path}"
    unpack = work / f"unpack-{path}"
    unpack.mkdir()
    argv = [
        str(binary),
        world.server_url[path],
        server.CLIENT_ID,
        *("--file", str(world.combined_file), "--ca-cert", str(world.ca_file)),
    ]
    subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=openat,open", "-o", str(trace), *argv],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(unpack)},
        capture_output=True,
        check=True,
    )
    opened = set()
    for line in trace.read_text().splitlines():
        match = _OPEN.search(line)
        if match is None or "= -1" in line:
            continue
        if "O_CREAT" in match["flags"] or "O_WRONLY" in match["flags"]:
            continue
        opened.add(re.sub(r"^.*?/_MEI[^/]+/", "", match["path"]))
    return opened


def main(argv: list[str]) -> int:
    binary = Path(argv[0]).resolve()
    arch = dict(
        line.split("=", 1)
        for line in binary.with_name(binary.name + ".buildinfo").read_text().splitlines()
        if "=" in line
    )["arch"]
    build_python = REPO / ".cache" / f"build-venv-{arch}" / "bin" / "python"
    carried = json.loads(
        subprocess.run(
            [str(build_python), "-c", TOC_PROBE, str(binary)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    with tempfile.TemporaryDirectory(prefix="caramel-opened-") as scratch:
        work = Path(scratch)
        with server.running(work) as world:
            opened = set().union(*(opened_files(binary, world, p, work) for p in server.PATHS))
    for name, size in sorted(carried.items(), key=lambda item: -item[1]):
        print(f"{size:>12,}  {'opened' if name in opened else 'never opened'}  {name}")
    never = sum(size for name, size in carried.items() if name not in opened)
    print(f"{sum(carried.values()):>12,}  unpacked per start, of which never opened: {never:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
