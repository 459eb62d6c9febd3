"""Power cuts, state by state: every disk a power cut may leave, and the next run on each.

For each writing scenario (first run, install, rejection, a damaged file set aside, a changed
client id, a changed CA) one real run is recorded under strace. ``crash_states`` computes,
for every step of it, every disk its conservative persistence model allows; each distinct
disk is built in a scratch directory as real files, checked (``power_cut_checks``), and the
next invocation, the real command against the fake signer, runs on it and is checked in turn.

What the server holds is part of a state: a request the run posted may be held from the
moment the connection that carried it was opened (its time read from the trace against the
signer's receipt time), and is held once the signer had it. A crash point between the two
is explored with the server holding it and without.

Every state is explored, none sampled; ``-s`` (or ``-rP``) shows how many per scenario.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import itertools
import queue
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from testbed.ca_factory import FLEET_SUBJECT, Authority, key_pem, make_authority, new_key
from testbed.command import clean_environment, client_command
from tests.conftest import CLIENT_ID, Client
from tests.crash_states import (
    Create,
    Disk,
    Fsync,
    FsyncDirectory,
    Note,
    Op,
    Rename,
    all_crash_states,
    apply,
    parent,
    without,
)
from tests.fake_signer import Entry, FakeCaramel, serving
from tests.power_cut_checks import (
    Rules,
    build,
    problems_after_recovery,
    problems_of_crash_state,
    same_disk,
    snapshot,
)
from tests.strace_ops import STRACE_OPTIONS, Traced, TraceReader

pytestmark = pytest.mark.slow

FILE = "state/client.pem"
OTHER_ID = "device-0002"
WORKERS = 2
NEXT_SUBJECT = tuple((oid, "Fleet 2027" if oid == NameOID.ORGANIZATIONAL_UNIT_NAME else value)
                     for oid, value in FLEET_SUBJECT)  # fmt: skip


def umask() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    raise AssertionError("no Umask in /proc/self/status")


def key_of(request_pem: bytes) -> int:
    public = x509.load_pem_x509_csr(request_pem).public_key()
    return public.public_numbers().n  # type: ignore[union-attr]


# --- the scenarios: what is on disk and on the server before the recorded run -------------


def nothing(device: Client, signer: FakeCaramel) -> bytes | None:
    return None


def pending_and_signed(device: Client, signer: FakeCaramel) -> bytes | None:
    assert device.run().returncode == 69
    signer.sign()
    return None


def pending_and_rejected(device: Client, signer: FakeCaramel) -> bytes | None:
    assert device.run().returncode == 69
    signer.reject()
    return None


def damaged(device: Client, signer: FakeCaramel) -> bytes | None:
    """A file torn by an earlier writer: half a key."""
    torn = key_pem(new_key())[:700]
    device.file.parent.mkdir(parents=True)
    device.file.write_bytes(torn)
    device.file.chmod(0o600)
    return torn


def installed(device: Client, signer: FakeCaramel) -> bytes | None:
    assert device.run().returncode == 69
    signer.sign()
    assert device.run().returncode == 0
    return None


@dataclass(frozen=True)
class Scenario:
    name: str
    prepare: Callable[[Client, FakeCaramel], bytes | None]  # returns the damaged bytes
    status: int  # of the recorded run
    client_id: str = CLIENT_ID
    new_authority: bool = False  # the recorded run trusts another CA (a firmware update)


SCENARIOS = [
    Scenario("first run", nothing, 69),
    Scenario("install", pending_and_signed, 0),
    Scenario("rejection", pending_and_rejected, 69),
    Scenario("set aside a damaged file", damaged, 69),
    Scenario("changed client id", installed, 69, OTHER_ID),
    Scenario("changed CA", installed, 69, new_authority=True),
]


# --- recording -------------------------------------------------------------------------------


@dataclass
class Recording:
    root: Path
    initial: Disk
    trace: list[Traced]
    before: dict[str, Entry]  # the server's requests before the run
    posted: dict[str, tuple[Entry, float]]  # posted during the run, with their receipt time
    elsewhere: dict[str, Entry] = dataclasses.field(default_factory=dict)  # the old CA's server

    @property
    def ops(self) -> list[Op]:
        return [traced.op for traced in self.trace]


def record(device: Client, signer: FakeCaramel, status: int, traces: Path) -> Recording:
    """Run once under strace; check that the operations read give the disk the run left."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is needed (make system-deps installs it)")
    device.file.parent.parent.mkdir(exist_ok=True)  # the root: the run makes the rest
    root = device.file.parent.parent.resolve()
    initial = snapshot(root)
    before = dict(signer.entries)
    seen = len(signer.seen)
    traces.mkdir(exist_ok=True)
    trace_file = traces / f"{len(list(traces.iterdir()))}.strace"
    result = subprocess.run(
        [strace, *STRACE_OPTIONS, "-o", str(trace_file), *client_command(), *device.args()],
        env=clean_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == status, result.stderr
    text = trace_file.read_text()
    trace_file.unlink()  # the binary's unpacking makes it large
    trace = TraceReader(root, initial, umask()).read(text)
    births = {op.inode: op.mode for op in (t.op for t in trace) if isinstance(op, Create)}
    modelled = apply(initial, births, [t.op for t in trace])
    assert same_disk(modelled, snapshot(root)) == [], "the trace does not account for the disk"
    receipts = {
        s.path.rsplit("/", 1)[-1]: s.received for s in signer.seen[seen:] if s.method == "POST"
    }
    posted = {
        sha: (entry, receipts[sha]) for sha, entry in signer.entries.items() if sha not in before
    }
    return Recording(root, initial, trace, before, posted)


def held_window(trace: Sequence[Traced], received: float) -> tuple[int, int]:
    """(opened, had): the request may be held at crash points after step ``opened`` (its
    connection's connect) and is held after step ``had`` (the first step after its receipt)."""
    sends = [
        (index, traced)
        for index, traced in enumerate(trace)
        if isinstance(traced.op, Note) and traced.op.what == "send" and traced.time <= received
    ]
    assert sends, "no send before the server had the request"
    carrier = sends[-1][1].op
    assert isinstance(carrier, Note)
    opened = next(
        index
        for index, traced in enumerate(trace)
        if traced.op == Note("connect", carrier.connection)
    )
    had = next((i for i, t in enumerate(trace) if t.time > received), len(trace))
    return opened, had


def server_views(recording: Recording, crash_point: int) -> list[frozenset[str]]:
    """The posted requests the server may hold at a crash point, each possibility."""
    choices = []
    for _, received in recording.posted.values():
        opened, had = held_window(recording.trace, received)
        choices.append(
            (False,) if crash_point <= opened else (True,) if crash_point > had else (False, True)
        )
    shas = list(recording.posted)
    return [
        frozenset(sha for sha, held in zip(shas, held_each, strict=True) if held)
        for held_each in itertools.product(*choices)
    ]


def server_entries(recording: Recording, held: frozenset[str]) -> dict[str, Entry]:
    return recording.before | {sha: recording.posted[sha][0] for sha in held}


def rules_for(recording: Recording, entries: dict[str, Entry], damaged: bytes | None) -> Rules:
    original = recording.initial.file(FILE)
    entries = recording.elsewhere | entries
    return Rules(
        FILE,
        original=None if original is None else original.data,
        damaged=damaged,
        keys_at_risk=frozenset(
            key_of(e.csr_pem) for e in entries.values() if e.state != "rejected"
        ),
        rejected=frozenset(key_of(e.csr_pem) for e in entries.values() if e.state == "rejected"),
    )


# --- the states ---------------------------------------------------------------------------


def states_of(
    recording: Recording, ops: Sequence[Op]
) -> dict[tuple[Disk, frozenset[str]], list[int]]:
    """Every distinct (disk, requests held) pair, with the crash points that may leave it."""
    found: dict[tuple[Disk, frozenset[str]], list[int]] = {}
    for disk, crash_points in all_crash_states(recording.initial, ops).items():
        for crash_point in crash_points:
            for held in server_views(recording, crash_point):
                found.setdefault((disk, held), []).append(crash_point)
    return found


@pytest.fixture(scope="module")
def next_authority() -> Authority:
    """Another fleet's CA, with another subject: the one a firmware update might embed."""
    return make_authority(NEXT_SUBJECT, key_slot=5)


@pytest.fixture
def serve(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[Authority], FakeCaramel]]:
    """More fake signers, each closed at the test's end."""
    with contextlib.ExitStack() as stack:
        yield lambda authority: stack.enter_context(
            serving(authority, tmp_path_factory.mktemp("tls"))
        )


@dataclass(frozen=True)
class Explored:
    status: int
    problems: list[str]


def explore_one(
    number: int,
    state: tuple[Disk, frozenset[str]],
    crash_points: list[int],
    context: tuple[Recording, Scenario, bytes | None, Path, Path],
    idle: queue.Queue[FakeCaramel],
) -> Explored:
    """Check one state, build it, run the next invocation on it, check what it left."""
    recording, scenario, damaged_bytes, ca_file, scratch_root = context
    disk, held = state
    entries = server_entries(recording, held)
    rules = rules_for(recording, entries, damaged_bytes)
    where = f"state {number} (after step {crash_points[0]}, server holds {len(held)} new)"
    problems = [f"{where}: {p}" for p in problems_of_crash_state(disk, rules)]
    scratch = scratch_root / str(number)
    build(disk, scratch)
    signer = idle.get()
    try:
        signer.entries.clear()
        signer.entries.update(entries)
        url = signer.url  # type: ignore[attr-defined]
        result = Client(url, scratch / FILE, ca_file, scenario.client_id).run()
    finally:
        idle.put(signer)
    found = problems_after_recovery(disk, result.returncode, snapshot(scratch), rules)
    problems += [f"{where}: {p} ({result.stderr.strip()})" for p in found]
    return Explored(result.returncode, problems)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_every_power_cut_state_recovers_without_losing_a_key(
    scenario: Scenario,
    client: Client,
    signer: FakeCaramel,
    authority: Authority,
    next_authority: Authority,
    serve: Callable[[Authority], FakeCaramel],
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    """Prepared with the ``signer`` and its CA; recorded and explored against ``signers``,
    one per worker (what the server holds is part of a state), of the scenario's CA."""
    if scenario.new_authority:
        ca_file = next_authority.write(tmp_path / "next-ca.pem")
        signers = [serve(next_authority) for _ in range(WORKERS)]
    else:
        ca_file = client.ca_file
        signers = [signer, *(serve(authority) for _ in range(WORKERS - 1))]
    root = tmp_path / "record"
    damaged_bytes = scenario.prepare(Client(client.server, root / FILE, client.ca_file), signer)
    url = signers[0].url  # type: ignore[attr-defined]
    device = Client(url, root / FILE, ca_file, scenario.client_id)
    recording = record(device, signers[0], scenario.status, tmp_path / "traces")
    if scenario.new_authority:
        recording.elsewhere = dict(signer.entries)
    wrote = [op for op in recording.ops if isinstance(op, Rename) and op.target == FILE]
    assert wrote, f"{scenario.name}: the recorded run did not replace the file"

    states = states_of(recording, recording.ops)
    idle: queue.Queue[FakeCaramel] = queue.Queue()
    for each in signers:
        idle.put(each)
    context = (recording, scenario, damaged_bytes, ca_file, tmp_path / "states")
    with concurrent.futures.ThreadPoolExecutor(len(signers)) as pool:
        explored = list(
            pool.map(
                lambda numbered: explore_one(*numbered, context, idle),
                [(n, state, points) for n, (state, points) in enumerate(states.items())],
            )
        )
    statuses = collections.Counter(each.status for each in explored)
    problems = [problem for each in explored for problem in each.problems]
    summary = (
        f"power cut, {scenario.name}: {len(states)} states explored "
        f"({len({disk for disk, _ in states})} disks) from {len(recording.ops) + 1} crash "
        f"points; next runs ended {dict(sorted(statuses.items()))}"
    )
    print(summary)
    record_property("states", summary)
    assert problems == [], f"{summary}\n" + "\n".join(problems)
    assert len(states) > 1, summary


# --- the checker can fail: the same real trace, less one fsync ------------------------------


def test_a_missing_fsync_in_a_real_trace_gives_bad_states(
    client: Client, signer: FakeCaramel, tmp_path: Path
) -> None:
    """The first run's trace without the staging file's fsync leaves a partial file possible;
    without the directory's fsync, a key the server may hold can be lost."""
    device = Client(client.server, tmp_path / "record" / FILE, client.ca_file)
    recording = record(device, signer, 69, tmp_path / "traces")
    ops = recording.ops
    staged = next(op.inode for op in ops if isinstance(op, Rename) and op.target == FILE)

    def problems_without(dropped: Op) -> list[str]:
        assert dropped in ops, dropped
        found = []
        for (disk, held), _ in states_of(recording, without(ops, dropped)).items():
            rules = rules_for(recording, server_entries(recording, held), None)
            found += problems_of_crash_state(disk, rules)
        return found

    partial = problems_without(Fsync(staged))
    assert any(p.startswith("partial") for p in partial), partial
    lost = problems_without(FsyncDirectory(parent(FILE)))
    assert any(p.startswith("lost the key") for p in lost), lost
    whole = states_of(recording, ops)
    assert all(
        problems_of_crash_state(disk, rules_for(recording, server_entries(recording, held), None))
        == []
        for disk, held in whole
    )
