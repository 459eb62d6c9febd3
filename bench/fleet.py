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
3. A day with hints: the filter also says ``Cache-Control: max-age`` (a daily re-signing,
   the day compressed), and a sample of devices runs the timer's checks of a whole day.
   What reaches nginx is counted, so the figures are what the client that runs costs,
   whether it honours the hint or not (the report says which it did).
4. A bounded ramp of load (new TLS connection and one certificate GET per check, as a
   device makes them) at rising rates, until the median answer time doubles: with
   ``--db postgresql`` for 1 and then 2 Caramel processes behind nginx's one upstream, and
   for SQLite with 1 process beside them (the same ramp, on a small stack of its own).
5. A power cut: the first checks of a fleet that boots at once, computed from the timer's
   settings and the capacity measured in 4.

With ``--db postgresql`` Caramel runs on a throwaway PostgreSQL cluster
(``testbed/postgres.py``), re-signing included. What Caramel's access-log table grows by
is measured on either database.

Bytes are counted twice: by nginx (HTTP request and answer, headers included) and by a
counting TCP relay the devices go through (what crosses the wire: TLS included, TCP/IP
headers not). Server CPU is read from /proc/PID/stat of pserve and nginx's workers.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import email.utils
import math
import os
import random
import re
import resource
import shutil
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed.command import clean_environment, client_command  # noqa: E402
from testbed.harness import CaramelStack  # noqa: E402
from testbed.pki import CombinedFile  # noqa: E402
from testbed.postgres import PostgresCluster  # noqa: E402
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


def server_cpu(stack: CaramelStack, database_pid: int | None = None) -> dict[str, float]:
    """CPU seconds so far of every pserve (Caramel), of nginx (master and workers) and,
    with ``database_pid`` (PostgreSQL's postmaster), of the database and its backends."""
    assert stack.nginx is not None
    master = stack.nginx.process.pid
    nginx = sum(_cpu_ticks(p) for p in [master, *_children(master)])
    cpu = {
        "caramel": sum(_cpu_ticks(s.process.pid) for s in stack.caramel_services) / CLK_TCK,
        "nginx": nginx / CLK_TCK,
    }
    if database_pid is not None:
        database = [database_pid, *_children(database_pid)]
        cpu["postgresql"] = sum(_cpu_ticks(p) for p in database) / CLK_TCK
    return cpu


def children_cpu() -> float:
    """CPU seconds of every finished child process of ours (clients, admin tools)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------------------
# The fleet


def _counted(counts: Mapping[Any, int]) -> str:
    """``200x3 304x21``: how many of each, in order."""
    return " ".join(f"{key}x{count}" for key, count in sorted(counts.items()))


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

    @property
    def server_cpu_total(self) -> float:
        return sum(self.server_cpu.values())

    def line(self) -> str:
        cpu = self.server_cpu_total
        answers = _counted(self.answers)
        exits = _counted(self.statuses)
        return (
            f"  {self.name:<34} {self.checks:>5} checks in {self.seconds:6.1f} s; "
            f"exit {exits}; answers {answers}; per check: "
            f"{self.per_check(self.requests):.2f} req, {self.per_check(self.wire_down):6.0f} B "
            f"down / {self.per_check(self.wire_up):5.0f} B up on the wire "
            f"(HTTP {self.per_check(self.http_down):5.0f}/{self.per_check(self.http_up):4.0f}); "
            f"server {1000 * self.per_check(cpu):5.1f} CPU s/1000 ("
            + ", ".join(
                f"{name} {1000 * self.per_check(seconds):.1f}"
                for name, seconds in self.server_cpu.items()
            )
            + ")"
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
    # PostgreSQL's postmaster, whose CPU counts as the server's (None: SQLite, in pserve).
    database_pid: int | None = None
    # Each device's runtime directory (CARAMEL_RUNTIME_DIR) under it, where a client that
    # honours the server's max-age keeps its stamp: a tmpfs, as on a device.
    runtime_root: Path | None = None

    def cpu(self) -> dict[str, float]:
        return server_cpu(self.stack, self.database_pid)

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
        extra = {}
        if self.runtime_root is not None:
            runtime = self.runtime_root / client_id
            runtime.mkdir(mode=0o700, exist_ok=True)
            extra["CARAMEL_RUNTIME_DIR"] = str(runtime)
        try:
            done = subprocess.run(
                argv,
                env=clean_environment(extra),
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
        cpu_before = self.cpu()
        client_before = children_cpu()
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(self.parallel) as pool:
            statuses = Counter(pool.map(self._check, ids))
        seconds = time.monotonic() - started
        client_cpu = children_cpu() - client_before
        records = self.stack.records_since(mark, timeout=5)
        cpu_after = self.cpu()
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
# A day with hints: Cache-Control: max-age from the filter, counted where it lands

# The first tick comes this long after the schedule's start: pserve's restart with the new
# settings fits in it, so every tick falls inside the compressed day.
HINT_LEAD_SECONDS = 5.0
MIN_TICK_SECONDS = 3.0


@dataclass
class HintDay:
    """A compressed day of the timer's checks for a sample of devices, the hint on.

    Everything is what reached the server (nginx's log, the relay's bytes, the server's
    CPU), so it holds for whatever client ran: one that honours max-age makes fewer
    checks, one that does not makes them all.
    """

    devices: int
    ticks: int
    tick_seconds: float
    day_seconds: int
    late_ticks: int
    exits: Counter[int]
    requests: int
    answers: Counter[int]
    hinted: int
    first_max_age: int | None
    wire_down: int
    wire_up: int
    http_down: int
    http_up: int
    server_cpu: dict[str, float]

    def per_device(self, value: float) -> float:
        return value / self.devices

    @property
    def every_check_sent(self) -> bool:
        """The client made (nearly) every check although the answers said max-age."""
        return self.requests >= 0.9 * self.devices * self.ticks


def tick_seconds_for(fleet: Fleet, devices: int) -> float:
    """A tick long enough for ``devices`` runs at the last round's pace, with room."""
    last = fleet.rounds[-1]
    return max(MIN_TICK_SECONDS, 1.5 * devices * last.seconds / last.checks)


def _max_age(cache_control: str) -> int | None:
    found = re.search(r"max-age=(\d+)", cache_control)
    return int(found.group(1)) if found else None


def hint_day(fleet: Fleet, ids: list[str], ticks: int, tick: float) -> HintDay:
    """Re-sign, then run ``ticks`` rounds of ``ids`` spaced ``tick`` apart: one day.

    The filter's schedule is that day compressed: ``resign_at`` = now (the re-signing just
    done), ``resign_every`` = the day, ``resign_takes`` = 0. So every certificate answer
    says max-age = the seconds left of the day, as a daily 03:00 re-signing says the hours
    left to the next one. The runtime directories are the fleet's (a tmpfs).
    """
    time.sleep(1.1)  # two signatures of one request in one second look the same
    resign(fleet.stack)
    anchor = dt.datetime.now(dt.UTC).replace(microsecond=0)
    day = math.ceil(HINT_LEAD_SECONDS + ticks * tick)
    start = time.monotonic()
    fleet.stack.set_conditional(
        True, {"resign_at": anchor.isoformat(), "resign_every": f"{day}s", "resign_takes": "0"}
    )
    mark = fleet.stack.log_mark()
    wire_before = fleet.relay.snapshot()
    cpu_before = fleet.cpu()
    exits: Counter[int] = Counter()
    late = 0
    with concurrent.futures.ThreadPoolExecutor(fleet.parallel) as pool:
        for n in range(ticks):
            wait = start + HINT_LEAD_SECONDS + n * tick - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                late += 1
            exits.update(pool.map(fleet._check, ids))
    records = [r for r in fleet.stack.records_since(mark, timeout=5) if r.front == "mtls"]
    cpu_after = fleet.cpu()
    wire_after = fleet.relay.snapshot()
    ages = [_max_age(r.cache_control) for r in records if r.status == 200]
    day_result = HintDay(
        devices=len(ids),
        ticks=ticks,
        tick_seconds=tick,
        day_seconds=day,
        late_ticks=late,
        exits=exits,
        requests=len(records),
        answers=Counter(r.status for r in records),
        hinted=sum(1 for r in records if _max_age(r.cache_control) is not None),
        first_max_age=next((a for a in ages if a is not None), None),
        wire_down=wire_after[1] - wire_before[1],
        wire_up=wire_after[0] - wire_before[0],
        http_down=sum(r.bytes_sent for r in records),
        http_up=sum(r.request_length for r in records),
        server_cpu={k: cpu_after[k] - cpu_before[k] for k in cpu_after},
    )
    answers = _counted(day_result.answers)
    say(
        f"  hints: {len(ids)} devices x {ticks} ticks of {tick:.1f} s (a day = {day} s): "
        f"{day_result.requests} requests reached nginx ({answers}; {day_result.hinted} with "
        f"max-age, the first {day_result.first_max_age} s), "
        f"{day_result.per_device(day_result.requests):.1f} per device, {late} ticks late"
    )
    return day_result


# --------------------------------------------------------------------------------------
# What Caramel's access-log table grows by


def access_log_size(
    stack: CaramelStack, cluster: PostgresCluster | None
) -> tuple[int, int | None]:
    """Rows and bytes (table and indexes) of Caramel's ``accesslog``, one row per GET of a
    certificate URL. SQLite's bytes come from its ``dbstat`` table (None where the
    library lacks it)."""
    if cluster is not None:
        return cluster.table_size("accesslog")
    path = stack.directory / "caramel.sqlite"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = int(db.execute("SELECT count(*) FROM accesslog").fetchone()[0])
        try:
            size = db.execute(
                "SELECT sum(pgsize) FROM dbstat WHERE name IN "
                "(SELECT name FROM sqlite_master WHERE tbl_name = 'accesslog')"
            ).fetchone()[0]
        except sqlite3.OperationalError:
            return rows, None
    return rows, int(size or 0)


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


@dataclass
class Measured:
    """What the run against the main stack measured, for the report."""

    fleet: Fleet
    plain: list[Round]
    conditional: list[Round]
    refresh_seconds: list[tuple[float, float]]
    sign_seconds: float
    # Requests signed: every later re-signing signs them all, whatever the fleet is cut to.
    signed: int
    hints: HintDay
    capacities: list[Capacity]
    access_log: tuple[tuple[int, int | None], tuple[int, int | None]]


def report(
    *, args: argparse.Namespace, schedule: Schedule, started: float, measured: Measured
) -> None:
    """The table and what it extrapolates, each extrapolation marked ``[x]``."""
    n_checks = schedule.checks_per_day
    plain, conditional = measured.plain, measured.conditional
    plain_new, plain_same = plain[0], plain[1:]
    cond_new, cond_same = conditional[0], conditional[1:]

    def mean(rounds: list[Round], attr: str) -> float:
        return float(sum(getattr(r, attr) for r in rounds)) / sum(r.checks for r in rounds)

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
    database = "PostgreSQL" if args.db == "postgresql" else "SQLite"
    say(f"## The fleet, measured (Caramel on {database})")
    say("")
    for line in _table(rows):
        say(line)
    say("")
    fleet = measured.fleet
    devices = len(fleet.ids)
    resign = ", ".join(f"{s:.1f} s ({c:.1f} CPU s)" for s, c in measured.refresh_seconds)
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
    say(f"- caramel_autosign signed {measured.signed} requests in {measured.sign_seconds:.1f} s")
    say(f"- caramel_tool --refresh re-signed {measured.signed} certificates in {resign}")
    without_hints = {
        "requests": day(cond_new, cond_same, "requests", n_checks),
        "down": day(cond_new, cond_same, "wire_down", n_checks),
        "up": day(cond_new, cond_same, "wire_up", n_checks),
        "cpu": day(cond_new, cond_same, "server_cpu_total", n_checks),
    }
    report_hints(measured.hints, without_hints, devices, schedule)
    report_access_log(measured, without_hints["requests"], devices)
    held = report_capacity(measured.capacities, schedule, measured.hints)
    say(
        f"- [x] power cut: every device boots in the same second; its first check comes "
        f"OnBootSec={schedule.on_boot:.0f} s later, at a per-device point of the "
        f"AccuracySec={schedule.accuracy:.0f} s window, plus (with RandomizedDelaySec="
        f"{schedule.randomized_delay:.0f} s, FixedRandomDelay) a fixed per-device delay; "
        f"simulated per device, then queued at the first configuration's capacity:"
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


def _mb(value: float) -> str:
    return f"{value / 1e6:.2f} MB"


def report_hints(
    hints: HintDay, without: dict[str, float], devices: int, schedule: Schedule
) -> None:
    """The day with the filter's max-age against the same day without it."""
    checks = hints.per_device(hints.requests)
    down, up = hints.per_device(hints.wire_down), hints.per_device(hints.wire_up)
    cpu = hints.per_device(sum(hints.server_cpu.values()))
    both_without = without["down"] + without["up"]
    rows = [
        [
            "per device-day (1 re-signing a day)",
            "filter, no max-age [x]",
            "filter + max-age (measured)",
        ],
        ["checks reaching the server", f"{without['requests']:.0f}", f"{checks:.1f}"],
        [
            "bytes on the wire, down + up",
            f"{_kb(without['down'])} + {_kb(without['up'])}",
            f"{_kb(down)} + {_kb(up)} ({100 * (down + up) / both_without:.0f} %)",
        ],
        ["the same per month (30 days)", _mb(30 * both_without), _mb(30 * (down + up))],
        [
            f"server CPU s per day, {devices:,} devices",
            f"{devices * without['cpu']:.1f}",
            f"{devices * cpu:.1f}",
        ],
        [
            "server CPU s per day, 100,000 devices [x]",
            f"{100_000 * without['cpu']:.0f}",
            f"{100_000 * cpu:.0f}",
        ],
    ]
    say("")
    say("## With the server's hint (Cache-Control: max-age), counted at the server")
    say("")
    for line in _table(rows):
        say(line)
    say("")
    say(
        f"- time compressed: the hint's day is {hints.day_seconds} s: the filter's "
        f"resign_every={hints.day_seconds}s, resign_at = the re-signing just made, "
        f"resign_takes=0 (as a daily 03:00 re-signing, scaled); {hints.devices} devices each "
        f"run the timer's {hints.ticks} checks of the day, one per tick of "
        f"{hints.tick_seconds:.1f} s, with a runtime directory of their own on a tmpfs"
        + (f"; {hints.late_ticks} ticks started late" if hints.late_ticks else "")
    )
    exits = _counted(hints.exits)
    answers = _counted(hints.answers)
    say(
        f"- what reached nginx: {hints.requests} requests ({answers}), {hints.hinted} of them "
        f"with max-age (the first certificate answer: max-age={hints.first_max_age}); the "
        f"client's exits: {exits}; the server CPU includes the day's idle time"
    )
    if hints.hinted == 0:
        say("- NO answer carried max-age: the filter's hint was not on; the column is void")
    elif hints.every_check_sent:
        say(
            f"- the client that ran sent every check anyway ({checks:.1f} of {hints.ticks} per "
            "device-day reached the server although the answers said max-age): it does not "
            "honour the hint, and its column is the filter's without it plus the header. "
            "With a client that honours it, one check per device-day reaches the server here."
        )
    else:
        say(
            f"- the client honoured the hint: {checks:.1f} of the {hints.ticks} checks per "
            f"device-day reached the server (goal: at most 2), bytes "
            f"{100 * (down + up) / both_without:.0f} % of the filter's day without it "
            "(goal: at most 15 %)"
        )
    del schedule


def report_access_log(measured: Measured, checks_without: float, devices: int) -> None:
    """What Caramel's access-log table grows by: one row per certificate GET."""
    (rows_before, bytes_before), (rows_after, bytes_after) = measured.access_log
    rows = rows_after - rows_before
    with_hints = measured.hints.per_device(measured.hints.requests)
    if bytes_before is None or bytes_after is None or rows <= 0:
        say(f"- Caramel's accesslog table: {rows} rows over the measured days (no size)")
        return
    per_row = (bytes_after - bytes_before) / rows
    say(
        f"- Caramel's accesslog table (one row per certificate GET, never pruned by "
        f"Caramel): {rows:,} rows over the measured days, {per_row:.0f} bytes a row with "
        f"its indexes; [x] per day for 100,000 devices: {100_000 * checks_without:,.0f} rows, "
        f"{_mb(100_000 * checks_without * per_row)} without the hint; with it "
        f"{100_000 * with_hints:,.0f} rows, {_mb(100_000 * with_hints * per_row)} (the "
        f"{with_hints:.1f} checks per device-day that reached Caramel from the client that "
        f"ran); {devices:,} devices: {_mb(devices * checks_without * per_row)} / "
        f"{_mb(devices * with_hints * per_row)} a day"
    )


def report_capacity(
    capacities: list[Capacity], schedule: Schedule, hints: HintDay
) -> float | None:
    """Each configuration's ramp, side by side; the first one's capacity is returned."""
    per_day = schedule.checks_per_day
    with_hints = max(1.0, hints.per_device(hints.requests))
    rows = [
        [
            "configuration (same ramp)",
            "holds",
            "median at 2/s",
            f"[x] devices at {per_day:.0f} checks/day",
            f"[x] at {with_hints:.1f} checks/day",
        ]
    ]
    for capacity in capacities:
        held = capacity.held
        ended = held is not None and capacity.steps and capacity.steps[-1].rate == held
        rows.append(
            [
                capacity.label,
                f"{'>= ' if ended or held is None else ''}{held or 0:.0f} checks/s",
                f"{1000 * capacity.steps[0].median:.0f} ms" if capacity.steps else "-",
                f"{(held or 0) * 86400 / per_day:,.0f}",
                f"{(held or 0) * 86400 / with_hints:,.0f}",
            ]
        )
    say("")
    say("## Capacity: the last ramp step before the median answer time doubled")
    say("")
    for line in _table(rows):
        say(line)
    say("")
    say(
        "- the load generator (the ramp's threads, Python TLS handshakes) runs on the same "
        f"{os.cpu_count()} cores as nginx, Caramel and the database, shared with other jobs: "
        "these are floors for a server of its own; plan for half, checks spread evenly "
        "(RandomizedDelaySec + FixedRandomDelay keep them spread)"
    )
    return capacities[0].held if capacities else None


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
    parser.add_argument(
        "--hint-sample", type=int, default=10, help="devices that run the day with hints"
    )
    parser.add_argument(
        "--db",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="Caramel's database (postgresql: a throwaway cluster, 1 then 2 processes)",
    )
    parser.add_argument("--ramp-seconds", type=float, default=60, help="time budget of each ramp")
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
    if not 1 <= args.hint_sample <= 200:
        parser.error("1 <= --hint-sample <= 200")
    return args


@dataclass
class Capacity:
    """One configuration's ramp."""

    label: str
    steps: list[Step]
    held: float | None


def measure_capacity(fleet: Fleet, device: str, label: str, budget: float) -> Capacity:
    say(f"ramp of load, {label} (filter on, If-Modified-Since current: 304s):")
    steps, held = ramp(fleet, device, budget)
    return Capacity(label, steps, held)


def sqlite_beside(root: Path, budget: float) -> Capacity:
    """The same ramp against SQLite with one process, on a small stack of its own (one
    device enrolled, signed and installed), for the PostgreSQL run to print beside."""
    with (
        CaramelStack(conditional=True) as stack,
        Relay(stack.ports.mtls) as relay,
    ):
        device = str(uuid.uuid5(uuid.NAMESPACE_DNS, "device-sqlite.fleet"))
        fleet = Fleet(stack, relay, root / "sqlite", [device], 1, time.monotonic() + budget + 60)
        (fleet.root / device).mkdir(parents=True, exist_ok=True)
        fleet._check(device)  # posts the request
        listed = [r for r in stack.list_requests() if r.cn == device]
        stack.sign(listed[0].id)
        if fleet._check(device) != 0:
            raise RuntimeError("the SQLite stack's device did not install its certificate")
        return measure_capacity(fleet, device, "SQLite, 1 Caramel process", budget)


def runtime_root(root: Path) -> contextlib.AbstractContextManager[Path | None]:
    """A tmpfs for the devices' runtime directories (a stamp is only kept on one)."""
    from testbed.tmpfs import tmpfs

    return tmpfs(root / "run", "16m")


def run_fleet(
    args: argparse.Namespace, root: Path, deadline: float, cluster: PostgresCluster | None
) -> Measured:
    """Everything that runs against the main stack; what the report needs."""
    processes = [1, 2] if cluster is not None else [1]
    ramps = len(processes) + (1 if cluster is not None else 0)
    with (
        CaramelStack(database_url=None if cluster is None else cluster.url) as stack,
        Relay(stack.ports.mtls) as relay,
        runtime_root(root) as run_dir,
    ):
        database = "SQLite" if cluster is None else "PostgreSQL"
        say(f"stack up (Caramel 1.9.6 on {database}, nginx); runtime directories: {run_dir}")
        ids = [
            str(uuid.uuid5(uuid.NAMESPACE_DNS, f"device-{i}.fleet")) for i in range(args.devices)
        ]
        fleet = Fleet(stack, relay, root, ids, args.parallel, deadline)
        fleet.database_pid = (
            None if cluster is None or cluster.process is None else (cluster.process.pid)
        )
        fleet.runtime_root = run_dir
        reserve = RESERVE_SECONDS + ramps * args.ramp_seconds
        ticks = round(read_schedule().checks_per_day)
        # Runs that do not scale with the fleet: the unchanged sample's and the hint day's
        # (its ticks are spaced 1.5 runs apart).
        unchanged = 2 * (args.checks_per_day - 1) * args.sample + 1.5 * args.hint_sample * ticks
        if args.fit:
            fleet.run_round("enrol: key, request, POST", ids[:PROBE_DEVICES])
            fleet.refit(1 + 3 * CHECK_TO_ENROL, unchanged * CHECK_TO_ENROL, reserve)
            if len(fleet.ids) > PROBE_DEVICES:
                fleet.run_round("enrol: the others", fleet.ids[PROBE_DEVICES:])
        else:
            fleet.run_round("enrol: key, request, POST")
        sign_seconds = autosign_all(stack, len(fleet.ids), deadline)
        signed = len(fleet.ids)
        say(f"  caramel_autosign: {signed} signed in {sign_seconds:.1f} s")
        fleet.run_round("install the first certificate")
        log_before = access_log_size(stack, cluster)
        refresh_seconds: list[tuple[float, float]] = []
        by_mode: dict[bool, list[Round]] = {}
        for conditional in (False, True):
            if args.fit:  # at the pace of the last round, checks this time
                fleet.refit(
                    1 if conditional else 2,
                    unchanged / (1 + conditional) + 1.5 * args.hint_sample * ticks,
                    reserve,
                )
            stack.set_conditional(conditional)
            mode = "filter" if conditional else "plain"
            time.sleep(1.1)  # two signatures of one request in one second look the same
            before, cpu_before = time.monotonic(), children_cpu()
            resign(stack)
            refresh_seconds.append((time.monotonic() - before, children_cpu() - cpu_before))
            say(f"  caramel_tool --refresh ({mode}): {refresh_seconds[-1][0]:.1f} s")
            sample = fleet.ids[: args.sample]
            by_mode[conditional] = [
                fleet.run_round(
                    f"{mode}: check {n + 1}/{args.checks_per_day}"
                    + (" (new cert.)" if n == 0 else f" (unchanged, {len(sample)} dev.)"),
                    fleet.ids if n == 0 else sample,
                )
                for n in range(args.checks_per_day)
            ]
        hint_ids = fleet.ids[: args.hint_sample]
        hints = hint_day(fleet, hint_ids, ticks, tick_seconds_for(fleet, len(hint_ids)))
        log_after = access_log_size(stack, cluster)
        capacities: list[Capacity] = []
        for count in processes:
            if count > 1:
                stack.set_processes(count)
            left = deadline - time.monotonic() - 20 - (ramps - len(capacities) - 1) * 40
            label = f"{database}, {count} Caramel process" + ("es" if count > 1 else "")
            capacities.append(measure_capacity(fleet, ids[0], label, min(args.ramp_seconds, left)))
    return Measured(
        fleet=fleet,
        plain=by_mode[False],
        conditional=by_mode[True],
        refresh_seconds=refresh_seconds,
        sign_seconds=sign_seconds,
        signed=signed,
        hints=hints,
        capacities=capacities,
        access_log=(log_before, log_after),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + DEADLINE_SECONDS
    schedule = read_schedule()
    root = Path(tempfile.mkdtemp(prefix="caramel-fleet-"))
    say(f"fleet: {args.devices} devices on {args.db}, files under {root}")
    try:
        with contextlib.ExitStack() as database:
            cluster = None
            if args.db == "postgresql":
                cluster = database.enter_context(PostgresCluster())
                say(f"PostgreSQL cluster up: {cluster.query('SHOW server_version')}, socket only")
            measured = run_fleet(args, root, deadline, cluster)
        if args.db == "postgresql":
            budget = min(args.ramp_seconds, deadline - time.monotonic() - 30)
            measured.capacities.append(sqlite_beside(root, budget))
        report(args=args, schedule=schedule, started=started, measured=measured)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
