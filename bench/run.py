"""``make bench``: what the frozen forms cost on the unchanged path, against curl.

Prints figures, never asserts: a table per unchanged path (304, and 200 with the installed
certificate), a size table per architecture, and PASS/FAIL per goal of issue 5. Every
variant runs the same invocation against the same nginx on loopback:

- ``baseline``: bench/baseline.sh (``openssl x509 -checkend`` + one ``curl``);
- ``package``: ``python -m caramel_embedded`` from the project's venv;
- ``one-file, $TMPDIR on disk``: the launcher unpacks into a directory on persistent storage;
- ``one-file, $TMPDIR on tmpfs``: the same into a tmpfs mounted for the run (as on a device
  whose /tmp is RAM);
- ``one-dir``: the bundle's launcher.

Wall times are medians over ``--runs`` rounds (at least 15), after warm-up runs. In each
round every variant runs once, in an order that rotates from round to round, so slow
moments of the machine hit all variants alike; the ratio to the baseline is the median of
the per-round ratios (each variant against the baseline of the same round).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import measure, server  # noqa: E402

ARCHES = ("x86_64", "aarch64", "armhf")
MIB = 1024 * 1024
GOAL_ONEFILE_BYTES = 12_000_000
GOAL_ONEFILE_RATIO = 3.0
GOAL_ONEDIR_RATIO = 2.0
GOAL_RSS_KIB = 40 * 1024


@dataclass
class Variant:
    """One way of doing the unchanged path, and its figures per path."""

    name: str
    argv_for: dict[str, list[str]]
    env: dict[str, str]
    frozen: bool = False
    runs: dict[str, list[measure.Run]] = field(default_factory=dict)
    ratios: dict[str, list[float]] = field(default_factory=dict)
    rss_kib: dict[str, int] = field(default_factory=dict)
    io: dict[str, measure.FileBytes] = field(default_factory=dict)


def _client_argv(command: list[str], world: server.World, path: str) -> list[str]:
    return [
        *command,
        world.server_url[path],
        server.CLIENT_ID,
        "--file",
        str(world.combined_file),
        "--ca-cert",
        str(world.ca_file),
    ]


@contextlib.contextmanager
def _tmpfs(mount_point: Path) -> Iterator[Path | None]:
    """A tmpfs for the one-file launcher's unpacking; None where we may not mount."""
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=128m,mode=1777", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    try:
        yield mount_point if mounted.returncode == 0 else None
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _variants(
    world: server.World, work: Path, binary: Path, bundle: Path, tmpfs: Path | None
) -> list[Variant]:
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    baseline = shutil.which("sh") or "/bin/sh"
    disk_unpack = work / "unpack-on-disk"
    disk_unpack.mkdir()
    variants = [
        Variant(
            "baseline (openssl + curl)",
            {
                path: [
                    baseline,
                    str(REPO / "bench" / "baseline.sh"),
                    world.urls[path],
                    str(world.ca_file),
                    str(world.combined_file),
                    server.CLIENT_ID,
                ]
                for path in server.PATHS
            },
            environment,
        ),
        Variant(
            "package (python -m)",
            {
                path: _client_argv(
                    [str(REPO / ".venv" / "bin" / "python"), "-m", "caramel_embedded"], world, path
                )
                for path in server.PATHS
            },
            environment,
        ),
        Variant(
            "one-file, TMPDIR on disk",
            {path: _client_argv([str(binary)], world, path) for path in server.PATHS},
            {**environment, "TMPDIR": str(disk_unpack)},
            frozen=True,
        ),
    ]
    if tmpfs is not None:
        variants.append(
            Variant(
                "one-file, TMPDIR on tmpfs",
                {path: _client_argv([str(binary)], world, path) for path in server.PATHS},
                {**environment, "TMPDIR": str(tmpfs)},
                frozen=True,
            )
        )
    variants.append(
        Variant(
            "one-dir bundle",
            {path: _client_argv([str(bundle)], world, path) for path in server.PATHS},
            environment,
            frozen=True,
        )
    )
    return variants


def _state_of(path: Path) -> tuple[bytes, int, int]:
    info = path.stat()
    return path.read_bytes(), info.st_mtime_ns, info.st_ino


RSS_RUNS = 5


def measure_all(variants: list[Variant], world: server.World, rounds: int, warm_up: int) -> None:
    """Timed rounds (rotating order), then runs for peak RSS and one strace run each."""
    gnu_time = "/usr/bin/time"
    strace = shutil.which("strace")
    if not os.access(gnu_time, os.X_OK) or strace is None:
        raise SystemExit("bench: needs GNU time (/usr/bin/time) and strace: make bench-deps")
    before = _state_of(world.combined_file)
    for path in server.PATHS:
        for variant in variants:
            variant.runs[path] = []
            variant.ratios[path] = []
            for _ in range(warm_up):
                measure.run_once(variant.argv_for[path], variant.env)
        for round_index in range(rounds):
            shift = round_index % len(variants)
            order = variants[shift:] + variants[:shift]
            this_round = {}
            for variant in order:
                run = measure.run_once(variant.argv_for[path], variant.env)
                if run.status != 0:
                    raise SystemExit(f"bench: {variant.name} ({path}) exited {run.status}")
                variant.runs[path].append(run)
                this_round[variant.name] = run.wall_seconds
            base = this_round[variants[0].name]
            for variant in variants:
                variant.ratios[path].append(this_round[variant.name] / base)
        for variant in variants:
            argv, env = variant.argv_for[path], variant.env
            variant.rss_kib[path] = max(
                measure.peak_rss_kib(argv, env, gnu_time) for _ in range(RSS_RUNS)
            )
            variant.io[path] = measure.file_bytes(argv, env, strace)
    if _state_of(world.combined_file) != before:
        raise SystemExit("bench: the combined file changed: this was not the unchanged path")


def _megabytes(count: int) -> str:
    return f"{count / 1_000_000:.1f} MB" if count >= 100_000 else f"{count / 1000:.0f} kB"


def print_tables(variants: list[Variant], rounds: int) -> None:
    titles = {
        "not_modified": "304 Not Modified",
        "same_certificate": "200 with the installed certificate",
    }
    for path in server.PATHS:
        print(f"\n### Unchanged path: {titles[path]} (median of {rounds} runs)\n")
        print(
            "| variant | wall, median | x baseline | peak RSS | read from disk "
            "| written to disk | written to tmpfs |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for variant in variants:
            runs = variant.runs[path]
            wall = statistics.median(run.wall_seconds for run in runs)
            ratio = statistics.median(variant.ratios[path])
            rss = variant.rss_kib[path] / 1024
            io = variant.io[path]
            files = (
                f"{_megabytes(io.read_persistent)} | {_megabytes(io.written_persistent)} | "
                f"{_megabytes(io.written_ram)}"
            )
            print(f"| {variant.name} | {wall:.3f} s | {ratio:.2f} | {rss:.1f} MiB | {files} |")


def _tree_bytes(directory: Path) -> tuple[int, int]:
    files = [p for p in directory.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files), len(files)


def _squashfs_bytes(source: Path, mksquashfs: str | None) -> str:
    """Bytes the source takes in an xz squashfs, the usual read-only firmware root."""
    if mksquashfs is None:
        return "(no mksquashfs)"
    with tempfile.TemporaryDirectory(prefix="bench-squashfs-") as scratch:
        content = Path(scratch) / "content"
        if source.is_dir():
            shutil.copytree(source, content, symlinks=True)
        else:
            content.mkdir()
            shutil.copy2(source, content)
        image = Path(scratch) / "image.sqfs"
        subprocess.run(
            [
                *(mksquashfs, str(content), str(image)),
                *("-comp", "xz", "-noappend", "-quiet", "-no-progress", "-all-root"),
            ],
            stdout=subprocess.DEVNULL,
            check=True,
        )
        return f"{image.stat().st_size:,} B"


def print_sizes(dists: list[Path]) -> dict[str, int]:
    """Sizes of whatever builds exist, per architecture; returns the one-file sizes."""
    mksquashfs = shutil.which("mksquashfs") or shutil.which("mksquashfs", path="/usr/sbin")
    print("\n### Size per architecture\n")
    print(
        "| arch | one-file binary | in squashfs (xz) | one-dir bundle (files) | in squashfs (xz) |"
    )
    print("|---|---:|---:|---:|---:|")
    onefile_sizes = {}
    for arch in ARCHES:
        found = [d / arch for d in dists if (d / arch / "caramel-embedded").is_file()]
        if not found:
            print(f"| {arch} | not built | | not built | |")
            continue
        binary = found[0] / "caramel-embedded"
        onefile_sizes[arch] = binary.stat().st_size
        row = [arch, f"{onefile_sizes[arch]:,} B", _squashfs_bytes(binary, mksquashfs)]
        bundle = found[0] / "caramel-embedded-dir"
        if bundle.is_dir():
            total, count = _tree_bytes(bundle)
            row += [f"{total:,} B ({count})", _squashfs_bytes(bundle, mksquashfs)]
        else:
            row += ["not built", ""]
        print("| " + " | ".join(row) + " |")
    return onefile_sizes


def print_goals(variants: list[Variant], onefile_sizes: dict[str, int]) -> None:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    by_name = {variant.name: variant for variant in variants}
    print("\n### Goals\n")
    for arch, size in onefile_sizes.items():
        print(
            f"- {verdict(size <= GOAL_ONEFILE_BYTES)}: one-file binary ({arch}) "
            f"{size:,} B, at most {GOAL_ONEFILE_BYTES:,} B"
        )
    goals = [
        ("one-file, TMPDIR on tmpfs", GOAL_ONEFILE_RATIO),
        ("one-dir bundle", GOAL_ONEDIR_RATIO),
    ]
    for name, limit in goals:
        variant = by_name.get(name)
        if variant is None:
            print(f"- FAIL: {name}: not measured (a tmpfs needs root)")
            continue
        for path in server.PATHS:
            ratio = statistics.median(variant.ratios[path])
            print(
                f"- {verdict(ratio <= limit)}: {name}, {path}: {ratio:.2f}x baseline, "
                f"at most {limit:g}x"
            )
    for variant in variants:
        if not variant.frozen:
            continue
        rss = max(variant.rss_kib.values())
        print(
            f"- {verdict(rss <= GOAL_RSS_KIB)}: {variant.name}: peak RSS {rss / 1024:.1f} MiB, "
            "at most 40 MiB"
        )
    for variant in variants:
        if variant.name.startswith("baseline") or not variant.io:
            continue
        written = max(io.written_persistent for io in variant.io.values())
        shipped = variant.name != "one-file, TMPDIR on disk"
        label = "" if shipped else " (informative: the configuration to avoid)"
        print(
            f"- {verdict(written == 0)}: {variant.name}: {written:,} B written to "
            f"persistent storage on the unchanged path, none allowed{label}"
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", type=Path, required=True, help="the one-file binary")
    parser.add_argument("--bundle", type=Path, required=True, help="the one-dir launcher")
    parser.add_argument("--runs", type=int, default=21, help="timed rounds (at least 15)")
    parser.add_argument("--warm-up", type=int, default=2)
    parser.add_argument(
        "--sizes-from", type=Path, action="append", default=[], help="dist dirs (DIR/ARCH/)"
    )
    arguments = parser.parse_args(argv)
    if arguments.runs < 15:
        parser.error("--runs: at least 15")
    with tempfile.TemporaryDirectory(prefix="caramel-bench-") as scratch:
        work = Path(scratch)
        with server.running(work) as world, _tmpfs(work / "tmpfs") as tmpfs:
            variants = _variants(
                world, work, arguments.binary.resolve(), arguments.bundle.resolve(), tmpfs
            )
            print(
                f"bench: {len(variants)} variants x 2 paths x {arguments.runs} rounds ...",
                file=sys.stderr,
            )
            measure_all(variants, world, arguments.runs, arguments.warm_up)
    print_tables(variants, arguments.runs)
    sizes = print_sizes(arguments.sizes_from)
    print_goals(variants, sizes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
