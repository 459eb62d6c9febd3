"""``make fleet``: a fleet of devices against one real Caramel 1.9.6 behind nginx, measured.

Figures, never a test: nothing here passes or fails on a number. Everything runs on
loopback, against the e2e harness's stack (``testbed/harness.py``), and every loop is
bounded in count and in time.

What runs (time compressed; the output says how):

1. ``--devices`` identities (UUIDs, so Caramel's own ``caramel_autosign`` signs them),
   each with its own combined file, enrol with the real client (the command
   ``tests/command.py`` selects: the package, or ``CARAMEL_EMBEDDED_CMD``), at most
   ``--parallel`` at a time; ``caramel_autosign`` signs the batch; a round installs.
2. Simulated days, first with Caramel as it is, then with the operators' conditional filter
   (``for-caramel-operators/``): each day is one ``caramel_tool --refresh`` (every
   certificate re-signed) and ``--checks-per-day`` rounds in which every device checks
   once. A real day is the firmware timer's (``firmware-integration/systemd``): one check
   per ``OnUnitActiveSec``; the first round after a re-signing stands for the one check that
   fetches the new certificate, the others for the rest of the day's checks.
3. A bounded ramp of load (new TLS connection and one certificate GET per check, as a
   device makes them) at rising rates, until the median answer time doubles.
4. A power cut: the first checks of a fleet that boots at once, computed from the timer's
   settings and the capacity measured in 3.

Bytes are counted twice: by nginx (HTTP request and answer, headers included) and by a
counting TCP relay the devices go through (what crosses the wire: TLS included, TCP/IP
headers not). Server CPU is read from /proc/PID/stat of pserve and nginx's workers.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import email.utils
import os
import random
import re
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed.command import clean_environment, client_command  # noqa: E402
from testbed.harness import CaramelStack  # noqa: E402
from testbed.pki import CombinedFile  # noqa: E402
from testbed.processes import HarnessError, Service, start_service  # noqa: E402
from testbed.relay import Relay  # noqa: E402

TIMER = REPO / "firmware-integration" / "systemd" / "caramel-embedded.timer"
CLIENT_TIMEOUT = 30  # the client's own default bound on its network work
DEADLINE_SECONDS = 14 * 60  # the whole run stops itself before 15 minutes
# The fleet is cut to what fits in the deadline at the pace measured on the first devices'
# enrolment, then of each round: a check costs about this share of an enrolment (on an idle
# machine half, no key to make; 0.6 to 0.8 on a loaded one). Later rounds refit at their
# own measured pace.
PROBE_DEVICES = 40
CHECK_TO_ENROL = 0.75
# Kept for what does not scale with the rounds: signing, re-signing, restarts, the report.
RESERVE_SECONDS = 90
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(line: str = "") -> None:
    """Progress and results on stdout, as they come (a long run shows it is alive)."""
    print(line, flush=True)


# --------------------------------------------------------------------------------------
# The firmware timer's schedule


@dataclass(frozen=True)
class Schedule:
    """What caramel-embedded.timer says, in seconds."""

    on_boot: float
    interval: float
    randomized_delay: float
    accuracy: float

    @property
    def checks_per_day(self) -> float:
        return 86400 / self.interval


def _seconds(value: str) -> float:
    """A systemd time span as the timer uses them: ``1h``, ``10min``, ``30s``, ``1min 30s``."""
    units = {"h": 3600, "min": 60, "m": 60, "s": 1, "sec": 1, "ms": 0.001}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units.get(unit or "s", 1)
    return total


def read_schedule(path: Path = TIMER) -> Schedule:
    """The timer's settings, so the figures follow the file that ships."""
    settings: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            settings[key.strip()] = value.strip()
    return Schedule(
        on_boot=_seconds(settings.get("OnBootSec", "0")),
        interval=_seconds(settings["OnUnitActiveSec"]),
        randomized_delay=_seconds(settings.get("RandomizedDelaySec", "0")),
        accuracy=_seconds(settings.get("AccuracySec", "1min")),
    )


# --------------------------------------------------------------------------------------
# Server CPU from /proc


def _cpu_ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def server_cpu(stack: CaramelStack) -> dict[str, float]:
    """CPU seconds so far of pserve (Caramel) and of nginx (master and workers)."""
    assert stack.caramel is not None
    assert stack.nginx is not None
    master = stack.nginx.process.pid
    nginx = sum(_cpu_ticks(p) for p in [master, *_children(master)])
    return {
        "caramel": _cpu_ticks(stack.caramel.process.pid) / CLK_TCK,
        "nginx": nginx / CLK_TCK,
    }


def children_cpu() -> float:
    """CPU seconds of every finished child process of ours (clients, admin tools)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------------------
# The fleet


@dataclass
class Round:
    """One pass of every device: what the devices and the server saw."""

    name: str
    checks: int
    seconds: float
    statuses: Counter[int]
    answers: Counter[int]
    requests: int
    http_down: int
    http_up: int
    wire_down: int
    wire_up: int
    connections: int
    server_cpu: dict[str, float]
    client_cpu: float

    def per_check(self, value: float) -> float:
        return value / self.checks if self.checks else 0.0

    def line(self) -> str:
        cpu = sum(self.server_cpu.values())
        answers = " ".join(f"{k}x{v}" for k, v in sorted(self.answers.items()))
        exits = " ".join(f"{k}x{v}" for k, v in sorted(self.statuses.items()))
        return (
            f"  {self.name:<34} {self.checks:>5} checks in {self.seconds:6.1f} s; "
            f"exit {exits}; answers {answers}; per check: "
            f"{self.per_check(self.requests):.2f} req, {self.per_check(self.wire_down):6.0f} B "
            f"down / {self.per_check(self.wire_up):5.0f} B up on the wire "
            f"(HTTP {self.per_check(self.http_down):5.0f}/{self.per_check(self.http_up):4.0f}); "
            f"server {1000 * self.per_check(cpu):5.1f} CPU s/1000 "
            f"(caramel {1000 * self.per_check(self.server_cpu['caramel']):.1f}, "
            f"nginx {1000 * self.per_check(self.server_cpu['nginx']):.1f})"
        )


@dataclass
class Fleet:
    """The devices, the stack, and what each round measured."""

    stack: CaramelStack
    relay: Relay
    root: Path
    ids: list[str]
    parallel: int
    deadline: float
    rounds: list[Round] = field(default_factory=list)
    cuts: list[str] = field(default_factory=list)

    def file(self, client_id: str) -> Path:
        return self.root / client_id / "client.pem"

    def _check(self, client_id: str) -> int:
        argv = [
            *client_command(),
            "--file",
            str(self.file(client_id)),
            "--ca-cert",
            str(self.stack.ca_cert),
            "--timeout",
            str(CLIENT_TIMEOUT),
            self.relay.url,
            client_id,
        ]
        try:
            done = subprocess.run(
                argv,
                env=clean_environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=CLIENT_TIMEOUT + 30,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return -1
        return done.returncode

    def refit(self, runs_per_device: float, other_runs: float, reserve: float) -> None:
        """Cut the fleet to what the time left carries at the last round's pace.

        ``runs_per_device``: client runs still to come per device (in units of the last
        round's runs); ``other_runs``: runs that do not scale with the fleet (the sample).
        The devices cut sit out the rest of the run; per-check figures do not change.
        """
        last = self.rounds[-1]
        per_run = last.seconds / last.checks
        left = self.deadline - time.monotonic() - reserve - other_runs * per_run
        fits = max(PROBE_DEVICES, int(left / (runs_per_device * per_run)))
        if fits < len(self.ids):
            self.cuts.append(
                f"at the pace of round {last.name!r} ({last.checks / last.seconds:.1f} runs/s, "
                f"{self.parallel} at a time) {len(self.ids)} devices do not fit in the "
                f"15 minutes: the fleet is cut to {fits}"
            )
            say(f"  {self.cuts[-1]}")
            self.ids = self.ids[:fits]

    def run_round(self, name: str, ids: list[str] | None = None) -> Round:
        """Every device (or the ``ids`` given) checks once, at most ``parallel`` at a time."""
        ids = self.ids if ids is None else ids
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"out of time before round {name!r}")
        mark = self.stack.log_mark()
        wire_before = self.relay.snapshot()
        cpu_before = server_cpu(self.stack)
        client_before = children_cpu()
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(self.parallel) as pool:
            statuses = Counter(pool.map(self._check, ids))
        seconds = time.monotonic() - started
        client_cpu = children_cpu() - client_before
        records = self.stack.records_since(mark, timeout=5)
        cpu_after = server_cpu(self.stack)
        wire_after = self.relay.snapshot()
        mine = [r for r in records if r.front == "mtls"]
        result = Round(
            name=name,
            checks=len(ids),
            seconds=seconds,
            statuses=statuses,
            answers=Counter(r.status for r in mine),
            requests=len(mine),
            http_down=sum(r.bytes_sent for r in mine),
            http_up=sum(r.request_length for r in mine),
            wire_down=wire_after[1] - wire_before[1],
            wire_up=wire_after[0] - wire_before[0],
            connections=wire_after[2] - wire_before[2],
            server_cpu={k: cpu_after[k] - cpu_before[k] for k in cpu_after},
            client_cpu=client_cpu,
        )
        self.rounds.append(result)
        say(result.line())
        return result


def autosign_all(stack: CaramelStack, count: int, deadline: float) -> float:
    """Caramel's own batch signer, ``caramel_autosign``, until ``count`` are signed.

    It is a daemon that never exits (it signs every unsigned request whose CN is a UUID,
    over and over): it is stopped once ``caramel_tool --list`` shows them all signed.
    """
    started = time.monotonic()
    service: Service = start_service(
        "caramel_autosign",
        [str(stack.tool("caramel_autosign")), str(stack.ini)],
        stack.directory / "autosign.log",
        stack.directory,
        stack.server_env(),
    )
    try:
        while time.monotonic() < deadline:
            signed = sum(1 for r in stack.list_requests() if r.signed)
            if signed >= count:
                return time.monotonic() - started
            if not service.alive():
                raise RuntimeError(f"caramel_autosign exited:\n{service.log_tail()}")
            time.sleep(2)
        raise TimeoutError(f"caramel_autosign signed {signed} of {count} in time")
    finally:
        service.stop()


def resign(stack: CaramelStack, attempts: int = 3) -> None:
    """``caramel_tool --refresh``, again if it reports failures, as an operator would.

    It signs in 16 threads against SQLite's single writer; a signature that waits too
    long fails ("database is locked") and the tool still exits 0. Running it again
    re-signs every certificate, the ones that failed included.
    """
    for attempt in range(1, attempts + 1):
        try:
            stack.refresh()
            return
        except HarnessError as error:
            first = str(error).splitlines()[1] if "\n" in str(error) else str(error)
            say(f"  caramel_tool --refresh, attempt {attempt}: {first}")
            if attempt == attempts:
                raise
            time.sleep(1.1)  # a second signature in the same second would look the same


# --------------------------------------------------------------------------------------
# Capacity: a bounded ramp of load


def _one_check(context: ssl.SSLContext, port: int, path: str, since: str) -> float:
    """One device-like check: a new TLS connection, one GET, the whole answer read."""
    started = time.monotonic()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(
            f"GET /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-Modified-Since: {since}\r\n"
            "User-Agent: fleet-ramp\r\nConnection: close\r\n\r\n".encode()
        )
        head = b""
        while chunk := tls.recv(65536):
            head += chunk
    if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 304")):
        raise RuntimeError(head[:80].decode(errors="replace"))
    return time.monotonic() - started


@dataclass
class Step:
    rate: float
    sent: int
    failed: int
    median: float
    p90: float


def ramp(fleet: Fleet, device: str, budget: float) -> tuple[list[Step], float | None]:
    """Open-loop load at rising rates: requests start on a fixed clock whether or not the
    earlier ones have been answered (as independent devices do), and each answer time
    counts from the planned start, so a queue building up shows. Each step is bounded
    to a few seconds and a few hundred requests; the ramp stops at the first step whose
    median is at least twice the first step's, or when its time budget is spent."""
    state = CombinedFile.read(fleet.file(device))
    assert state.certificate is not None
    since = email.utils.format_datetime(state.certificate.not_valid_before_utc, usegmt=True)
    context = ssl.create_default_context(cafile=str(fleet.stack.ca_cert))
    context.load_cert_chain(str(fleet.file(device)))
    port = fleet.stack.ports.mtls
    path = state.csr_sha256 or ""
    rates = [2, 5, 10, 15, 20, 30, 40, 50, 60, 80, 100, 130, 160, 200]
    steps: list[Step] = []
    stop_at = time.monotonic() + budget
    held: float | None = None
    for rate in rates:
        if time.monotonic() > stop_at:
            break
        count = int(min(300, max(20, rate * 4)))
        planned = [i / rate for i in range(count)]
        times: list[float] = []
        failed = 0
        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            base = time.monotonic() + 0.2

            def timed(offset: float, base: float = base) -> float:
                delay = base + offset - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                lag = time.monotonic() - (base + offset)
                return lag + _one_check(context, port, path, since)

            futures = [pool.submit(timed, p) for p in planned]
            for future in futures:
                try:
                    times.append(future.result())
                except (OSError, RuntimeError):
                    failed += 1
        times.sort()
        step = Step(
            rate,
            count,
            failed,
            statistics.median(times) if times else float("inf"),
            times[int(len(times) * 0.9)] if times else float("inf"),
        )
        steps.append(step)
        say(
            f"  {rate:>5} checks/s x {count:>3}: median {1000 * step.median:6.1f} ms, "
            f"90th {1000 * step.p90:7.1f} ms, failed {failed}"
        )
        if step.median >= 2 * steps[0].median or failed:
            break
        held = rate
    return steps, held


# --------------------------------------------------------------------------------------
# A power cut, from the schedule


def boot_burst(
    schedule: Schedule, devices: int, randomized: bool, capacity: float | None, seed: int = 15
) -> tuple[int, int, float | None]:
    """The first check of every device after all boot in the same second.

    Each device's timer elapses at OnBootSec plus a point in the AccuracySec window
    (systemd puts it at a per-boot random position, so devices differ) plus, with
    RandomizedDelaySec and FixedRandomDelay, a delay fixed per device (a hash of its
    machine-id): uniform over the fleet. Returns the requests in the busiest minute, in
    the busiest second, and the longest wait for an answer if the server answers
    ``capacity`` checks per second in order (a fluid queue; None without a capacity).
    """
    rng = random.Random(seed)  # noqa: S311 (a reproducible simulation, not a secret)
    starts = sorted(
        schedule.on_boot
        + rng.uniform(0, schedule.accuracy)
        + (rng.uniform(0, schedule.randomized_delay) if randomized else 0.0)
        for _ in range(devices)
    )
    per_second = Counter(int(t) for t in starts)
    busiest_second = max(per_second.values())
    busiest_minute = 0
    j = 0
    for i, t in enumerate(starts):
        while starts[j] < t - 60:
            j += 1
        busiest_minute = max(busiest_minute, i - j + 1)
    worst_wait = None
    if capacity:
        backlog = 0.0
        worst_wait = 0.0
        for second in range(int(starts[-1]) + 2):
            backlog = max(0.0, backlog + per_second.get(second, 0) - capacity)
            worst_wait = max(worst_wait, backlog / capacity)
    return busiest_minute, busiest_second, worst_wait


# --------------------------------------------------------------------------------------
# The report


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        )
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return lines


def _kb(value: float) -> str:
    return f"{value / 1000:.1f} kB"


def report(
    *,
    args: argparse.Namespace,
    fleet: Fleet,
    schedule: Schedule,
    plain: list[Round],
    conditional: list[Round],
    refresh_seconds: list[tuple[float, float]],
    sign_seconds: float,
    held: float | None,
    steps: list[Step],
    started: float,
) -> None:
    """The table and what it extrapolates, each extrapolation marked ``[x]``."""
    n_checks = schedule.checks_per_day
    plain_new, plain_same = plain[0], plain[1:]
    cond_new, cond_same = conditional[0], conditional[1:]

    def mean(rounds: list[Round], attr: str) -> float:
        return sum(getattr(r, attr) for r in rounds) / sum(r.checks for r in rounds)

    def day(new: Round, same: list[Round], attr: str, checks: float) -> float:
        # One check per re-signing fetches the new certificate; the rest find it unchanged.
        per_new = new.per_check(getattr(new, attr))
        per_same = mean(same, attr)
        return per_new + (checks - 1) * per_same

    k = args.checks_per_day
    rows = [["per device per day", "Caramel as it is", "with the conditional filter"]]
    rows.append(
        [
            f"measured: a simulated day ({k} checks)",
            f"{day(plain_new, plain_same, 'requests', k):.0f} req, "
            f"{_kb(day(plain_new, plain_same, 'wire_down', k))} down, "
            f"{_kb(day(plain_new, plain_same, 'wire_up', k))} up",
            f"{day(cond_new, cond_same, 'requests', k):.0f} req, "
            f"{_kb(day(cond_new, cond_same, 'wire_down', k))} down, "
            f"{_kb(day(cond_new, cond_same, 'wire_up', k))} up",
        ]
    )
    rows.append(
        [
            f"[x] a real day ({n_checks:.0f} checks, 1 re-signing)",
            f"{day(plain_new, plain_same, 'requests', n_checks):.0f} req, "
            f"{_kb(day(plain_new, plain_same, 'wire_down', n_checks))} down, "
            f"{_kb(day(plain_new, plain_same, 'wire_up', n_checks))} up",
            f"{day(cond_new, cond_same, 'requests', n_checks):.0f} req, "
            f"{_kb(day(cond_new, cond_same, 'wire_down', n_checks))} down, "
            f"{_kb(day(cond_new, cond_same, 'wire_up', n_checks))} up",
        ]
    )
    rows.append(
        [
            "[x] HTTP only (nginx: headers+body), a real day",
            f"{_kb(day(plain_new, plain_same, 'http_down', n_checks))} down, "
            f"{_kb(day(plain_new, plain_same, 'http_up', n_checks))} up",
            f"{_kb(day(cond_new, cond_same, 'http_down', n_checks))} down, "
            f"{_kb(day(cond_new, cond_same, 'http_up', n_checks))} up",
        ]
    )

    def cpu(rounds: list[Round]) -> float:
        return (
            1000 * sum(sum(r.server_cpu.values()) for r in rounds) / sum(r.checks for r in rounds)
        )

    rows.append(
        [
            "server CPU s per 1,000 checks (unchanged cert.)",
            f"{cpu(plain_same):.1f}",
            f"{cpu(cond_same):.1f}",
        ]
    )
    rows.append(
        [
            "server CPU s per 1,000 checks (new cert.)",
            f"{cpu([plain_new]):.1f}",
            f"{cpu([cond_new]):.1f}",
        ]
    )
    say("")
    say("## The fleet, measured")
    say("")
    for line in _table(rows):
        say(line)
    say("")
    devices = len(fleet.ids)
    resign = ", ".join(f"{s:.1f} s ({c:.1f} CPU s)" for s, c in refresh_seconds)
    say(f"- devices: {devices}, run by `{' '.join(client_command())}`, {args.parallel} at a time")
    say(
        f"- time scaled: a real day is {n_checks:.0f} checks per device (timer "
        f"OnUnitActiveSec={schedule.interval:.0f} s); a simulated day is 1 re-signing + "
        f"{k} rounds of checks, the first (every device) fetching the new certificate, the "
        f"other {k - 1} (a sample of {min(args.sample, devices)} devices: their checks are "
        f"all alike) standing for the day's other {n_checks - 1:.0f}. [x] rows scale the "
        "measured per-check figures to the real day."
    )
    for cut in fleet.cuts:
        say(f"- {cut} (the per-device and per-check figures do not depend on the count)")
    say(f"- caramel_autosign signed {devices} requests in {sign_seconds:.1f} s")
    say(f"- caramel_tool --refresh re-signed {devices} certificates in {resign}")
    cap = (
        f"{held:.0f} checks/s (median answer "
        f"{1000 * steps[0].median:.0f} ms at {steps[0].rate:.0f}/s; it doubled at the next step)"
        if held is not None and len(steps) > 1 and steps[-1].rate != held
        else f"at least {held or 0:.0f} checks/s (the ramp ended before the median doubled)"
    )
    say(f"- one Caramel process (waitress, 4 threads, SQLite) behind nginx holds {cap}")
    if held:
        per_device = n_checks / 86400
        say(
            f"- [x] at one check per {schedule.interval / 60:.0f} min per device, that rate "
            f"carries about {held / per_device:,.0f} devices if their checks are spread "
            "evenly (RandomizedDelaySec + FixedRandomDelay keep them spread); leave headroom"
        )
    say(
        f"- [x] power cut: every device boots in the same second; its first check comes "
        f"OnBootSec={schedule.on_boot:.0f} s later, at a per-device point of the "
        f"AccuracySec={schedule.accuracy:.0f} s window, plus (with RandomizedDelaySec="
        f"{schedule.randomized_delay:.0f} s, FixedRandomDelay) a fixed per-device delay; "
        "simulated per device, then queued at the measured capacity:"
    )
    for size in sorted({devices, 10_000, 100_000}):
        for randomized in (True, False):
            minute, second, wait = boot_burst(schedule, size, randomized, held)
            label = "with RandomizedDelaySec" if randomized else "without it"
            waiting = ""
            if wait is not None:
                waiting = f", longest wait for an answer ~{wait:.0f} s"
                if wait > CLIENT_TIMEOUT:
                    waiting += f" (over the client's {CLIENT_TIMEOUT} s: those fail, 127)"
            say(
                f"    {size:>7,} devices, {label:<23}: busiest minute {minute:>6,} requests, "
                f"busiest second {second:>5,}{waiting}"
            )
    say(f"- whole run: {time.monotonic() - started:.0f} s")


# --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; bounds keep a typo from starting 50,000 processes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=6, help="clients at a time")
    parser.add_argument(
        "--checks-per-day", type=int, default=2, help="rounds per simulated day (at least 2)"
    )
    parser.add_argument(
        "--sample", type=int, default=200, help="devices in the rounds that find no change"
    )
    parser.add_argument("--ramp-seconds", type=float, default=60, help="time budget of the ramp")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument(
        "--no-fit",
        dest="fit",
        action="store_false",
        help="run every device even if the run then stops at its deadline",
    )
    args = parser.parse_args(argv)
    if args.checks_per_day < 2 or not 1 <= args.devices <= 5000 or not 1 <= args.parallel <= 64:
        parser.error("--checks-per-day >= 2, 1 <= --devices <= 5000, 1 <= --parallel <= 64")

    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + DEADLINE_SECONDS
    schedule = read_schedule()
    root = Path(tempfile.mkdtemp(prefix="caramel-fleet-"))
    say(f"fleet: {args.devices} devices, files under {root}")
    try:
        with CaramelStack() as stack, Relay(stack.ports.mtls) as relay:
            say(f"stack up in {time.monotonic() - started:.1f} s (Caramel 1.9.6, nginx)")
            ids = [
                str(uuid.uuid5(uuid.NAMESPACE_DNS, f"device-{i}.fleet"))
                for i in range(args.devices)
            ]
            fleet = Fleet(stack, relay, root, ids, args.parallel, deadline)
            reserve = RESERVE_SECONDS + args.ramp_seconds
            unchanged = 2 * (args.checks_per_day - 1) * args.sample
            if args.fit:
                fleet.run_round("enrol: key, request, POST", ids[:PROBE_DEVICES])
                # Per device still to come: its enrolment (the probe's pace) and three
                # checks (install, a new certificate on each simulated day).
                fleet.refit(1 + 3 * CHECK_TO_ENROL, unchanged * CHECK_TO_ENROL, reserve)
                if len(fleet.ids) > PROBE_DEVICES:
                    fleet.run_round("enrol: the others", fleet.ids[PROBE_DEVICES:])
            else:
                fleet.run_round("enrol: key, request, POST")
            sign_seconds = autosign_all(stack, len(fleet.ids), deadline)
            say(f"  caramel_autosign: {len(fleet.ids)} signed in {sign_seconds:.1f} s")
            fleet.run_round("install the first certificate")
            refresh_seconds: list[tuple[float, float]] = []
            by_mode: dict[bool, list[Round]] = {}
            for conditional in (False, True):
                if args.fit:  # at the pace of the last round, checks this time
                    fleet.refit(1 if conditional else 2, unchanged / (1 + conditional), reserve)
                stack.set_conditional(conditional)
                mode = "filter" if conditional else "plain"
                # Two signatures of one request in one second look the same to Caramel.
                time.sleep(1.1)
                before, cpu_before = time.monotonic(), children_cpu()
                resign(stack)
                refresh_seconds.append((time.monotonic() - before, children_cpu() - cpu_before))
                say(f"  caramel_tool --refresh ({mode}): {refresh_seconds[-1][0]:.1f} s")
                # The first check after a re-signing fetches the new certificate: the whole
                # fleet. The unchanged ones are alike for every device: a sample of it.
                sample = fleet.ids[: args.sample]
                by_mode[conditional] = [
                    fleet.run_round(
                        f"{mode}: check {n + 1}/{args.checks_per_day}"
                        + (" (new cert.)" if n == 0 else f" (unchanged, {len(sample)} dev.)"),
                        fleet.ids if n == 0 else sample,
                    )
                    for n in range(args.checks_per_day)
                ]
            say("ramp of load (filter on, If-Modified-Since current: 304s):")
            steps, held = ramp(
                fleet, ids[0], min(args.ramp_seconds, deadline - time.monotonic() - 20)
            )
            report(
                args=args,
                fleet=fleet,
                schedule=schedule,
                plain=by_mode[False],
                conditional=by_mode[True],
                refresh_seconds=refresh_seconds,
                sign_seconds=sign_seconds,
                held=held,
                steps=steps,
                started=started,
            )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
