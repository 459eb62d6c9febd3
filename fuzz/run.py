"""``make fuzz``: every target for N seconds, one after the other, and what each reached.

Per target: libFuzzer's executions, its coverage figures (``cov``: edges of the client's
code reached; ``ft``: features, edges with hit counts and compared values) and the
findings (crash, timeout or out-of-memory inputs, kept under .cache/fuzz/findings). The
status is 1 when any target found anything. The corpus grows under .cache/fuzz/corpus
from one run to the next, from the seeds that ``fuzz.seeds`` makes (the test suite's kinds
of input) and any checked in under fuzz/seeds/TARGET.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

from fuzz import seeds, targets
from fuzz.identity import CACHE

ROOT = Path(__file__).resolve().parents[1]
CHECKED_IN = Path(__file__).resolve().parent / "seeds"
# libFuzzer's options: a run longer than 1 s is a hang; 2 GiB of memory is a leak or a bomb.
OPTIONS = ("-timeout=1", "-rss_limit_mb=2048", "-print_final_stats=1", "-max_len=16384")
_PROGRESS = re.compile(rb"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)")
_EXECUTED = re.compile(rb"stat::number_of_executed_units: (\d+)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fuzz.run")
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--targets", default=",".join(targets.NAMES))
    parser.add_argument("--nice", type=int, default=0, help="run each target at this niceness")
    parser.add_argument("--runs", type=int, default=0, help="stop a target after this many")
    arguments = parser.parse_args(argv)
    generated = seeds.generate(CACHE / "seeds")
    findings = 0
    print(f"{'target':<16}{'executions':>12}{'seconds':>9}{'cov':>7}{'ft':>7}  findings")
    for name in arguments.targets.split(","):
        found = run_target(
            name, arguments.seconds, generated / name, arguments.nice, arguments.runs
        )
        findings += found
    print(f"fuzz: {findings} finding(s)")
    return 1 if findings else 0


def run_target(name: str, seconds: int, generated: Path, nice: int, runs: int = 0) -> int:
    corpus = CACHE / "corpus" / name
    artifacts = CACHE / "findings" / name
    log = CACHE / "logs" / f"{name}.log"
    for directory in (corpus, artifacts, log.parent):
        directory.mkdir(parents=True, exist_ok=True)
    before = set(artifacts.iterdir())
    command = [
        *(["nice", "-n", str(nice)] if nice else []),
        sys.executable,
        "-m",
        "fuzz.one",
        name,
        f"-max_total_time={seconds}",
        *([f"-runs={runs}"] if runs else []),
        f"-artifact_prefix={artifacts}/",
        *OPTIONS,
        str(corpus),
        str(generated),
        *([str(CHECKED_IN / name)] if (CHECKED_IN / name).is_dir() else []),
    ]
    started = time.monotonic()
    with log.open("wb") as output:
        status = subprocess.run(
            command, cwd=ROOT, stdout=output, stderr=output, check=False
        ).returncode
    elapsed = time.monotonic() - started
    text = log.read_bytes()
    progress = _PROGRESS.findall(text)
    executed = _EXECUTED.search(text)
    runs = int(executed.group(1)) if executed else int(progress[-1][0]) if progress else 0
    cov, ft = (int(progress[-1][1]), int(progress[-1][2])) if progress else (0, 0)
    new = sorted(set(artifacts.iterdir()) - before)
    found = len(new) or (1 if status != 0 else 0)
    print(f"{name:<16}{runs:>12}{elapsed:>9.0f}{cov:>7}{ft:>7}  {found}", flush=True)
    if found:
        for artifact in new:
            print(f"  input: {artifact}")
        tail = text.decode("utf-8", "replace").splitlines()
        start = next(
            (
                i
                for i, line in enumerate(tail)
                if "Uncaught Python exception" in line
                or "ERROR: libFuzzer" in line
                or "ALARM" in line
            ),
            max(0, len(tail) - 30),
        )
        print("\n".join(f"  | {line}" for line in tail[start : start + 40]))
        print(f"  log: {log}")
    return found


if __name__ == "__main__":
    sys.exit(main())
