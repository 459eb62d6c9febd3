"""The persistence model enumerates what it should: what an fsync pins, what it does not,
torn writes, unordered directory changes; and a trace that lacks an fsync gives a state the
power-cut checks call bad."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from testbed.ca_factory import key_pem, new_key
from tests.crash_states import (
    Create,
    Disk,
    DiskFile,
    Fsync,
    FsyncDirectory,
    Link,
    Mkdir,
    Op,
    Rename,
    Sync,
    TooManyStates,
    Write,
    all_crash_states,
    crash_states,
    torn_writes,
    without,
)
from tests.power_cut_checks import Rules, combined_or_none, problems_of_crash_state

pytestmark = pytest.mark.in_process

OLD = b"o" * 300
NEW = b"n" * 600


def disk(*files: tuple[str, bytes], directories: tuple[str, ...] = ("a",)) -> Disk:
    """A disk of single-named files, mode 0600, times unset."""
    return Disk(
        frozenset(directories),
        tuple(DiskFile(name, data, 0o600, None, name) for name, data in sorted(files)),
    )


def contents(states: set[Disk] | list[Disk]) -> set[tuple[tuple[str, bytes], ...]]:
    """Each state as its (name, bytes) pairs: what the tests compare."""
    return {tuple((found.name, found.data) for found in state.files) for state in states}


REPLACE = [
    Create("a/.t", "#1", 0o600),
    Write("#1", 0, NEW),
    Fsync("#1"),
    Rename("a/.t", "a/f", "#1"),
    FsyncDirectory("a"),
]


def test_before_the_first_step_the_disk_is_as_it_was() -> None:
    initial = disk(("a/f", OLD))
    assert crash_states(initial, REPLACE, 0) == {initial}


def test_an_unsynced_create_and_write_may_each_be_lost_or_torn() -> None:
    ops: list[Op] = [Create("a/f", "#1", 0o600), Write("#1", 0, NEW)]
    assert contents(crash_states(disk(), ops, 2)) == {
        (),
        (("a/f", b""),),
        (("a/f", NEW[:512]),),
        (("a/f", NEW),),
    }


def test_an_fsync_of_the_file_pins_its_bytes_but_not_its_name() -> None:
    ops: list[Op] = [Create("a/f", "#1", 0o600), Write("#1", 0, NEW), Fsync("#1")]
    assert contents(crash_states(disk(), ops, 3)) == {(), (("a/f", NEW),)}


def test_an_fsync_of_the_directory_pins_the_name() -> None:
    ops: list[Op] = [Create("a/f", "#1", 0o600), Write("#1", 0, NEW), Fsync("#1")]
    ops.append(FsyncDirectory("a"))
    assert contents(crash_states(disk(), ops, 4)) == {(("a/f", NEW),)}


def test_sync_pins_everything_before_it() -> None:
    ops: list[Op] = [Create("a/f", "#1", 0o600), Write("#1", 0, NEW), Sync()]
    assert contents(crash_states(disk(), ops, 3)) == {(("a/f", NEW),)}


def test_write_fsync_rename_leaves_the_old_file_or_the_new_one_at_every_step() -> None:
    states = all_crash_states(disk(("a/f", OLD)), REPLACE)
    assert contents(list(states)) == {
        (("a/f", OLD),),
        (("a/.t", b""), ("a/f", OLD)),
        (("a/.t", NEW[:512]), ("a/f", OLD)),
        (("a/.t", NEW), ("a/f", OLD)),
        (("a/f", NEW),),
    }
    assert contents(crash_states(disk(("a/f", OLD)), REPLACE, len(REPLACE))) == {(("a/f", NEW),)}


def test_without_the_fsync_the_rename_may_land_before_the_bytes() -> None:
    states = all_crash_states(disk(("a/f", OLD)), without(REPLACE, Fsync("#1")))
    torn = {dict(pairs).get("a/f") for pairs in contents(list(states))}
    assert {b"", NEW[:512]} <= torn


def test_changes_in_one_directory_are_not_ordered_among_themselves() -> None:
    """A link then a rename, one directory fsync after both: the rename may survive alone
    (the fault the set-aside had); an fsync between them orders them."""
    ops: list[Op] = [
        Create("a/.t", "#1", 0o600),
        Write("#1", 0, NEW),
        Fsync("#1"),
        Link("a/f", "a/f.corrupt", "a/f"),
        Rename("a/.t", "a/f", "#1"),
        FsyncDirectory("a"),
    ]
    unordered = contents(list(all_crash_states(disk(("a/f", OLD)), ops)))
    assert (("a/f", NEW),) in unordered  # the old bytes gone
    ordered = [*ops[:4], FsyncDirectory("a"), *ops[4:]]
    assert all(
        OLD in dict(pairs).values()
        for pairs in contents(list(all_crash_states(disk(("a/f", OLD)), ordered)))
    )


def test_a_name_whose_directory_was_lost_is_unreachable() -> None:
    ops: list[Op] = [Mkdir("a"), Create("a/f", "#1", 0o600), FsyncDirectory("a")]
    states = crash_states(disk(directories=()), ops, 3)
    assert states == {Disk(), disk(("a/f", b""))}


def test_a_kept_link_shares_the_inode() -> None:
    ops: list[Op] = [Link("a/f", "a/g", "a/f"), FsyncDirectory("a")]
    (state,) = crash_states(disk(("a/f", OLD)), ops, 2)
    assert [(f.name, f.data, f.inode) for f in state.files] == [
        ("a/f", OLD, "a/f"),
        ("a/g", OLD, "a/f"),
    ]


def test_torn_writes_end_on_the_file_s_sector_boundaries() -> None:
    torn = torn_writes(Write("#1", 500, bytes(1100)))
    assert [(t.offset, len(t.data)) for t in torn] == [(500, n) for n in (12, 524, 1036, 1100)]


def test_too_many_operations_at_risk_raise_rather_than_explode() -> None:
    ops: list[Op] = [Create(f"a/{n}", f"#{n}", 0o600) for n in range(17)]
    with pytest.raises(TooManyStates):
        crash_states(disk(), ops, 17)


# --- the checks catch what a missing fsync makes possible -----------------------------------


def combined_file() -> bytes:
    """A real combined file (key, request) for the checks' strict reader."""
    key = new_key()
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-0001")]))
        .sign(key, hashes.SHA256())
    )
    return key_pem(key) + request.public_bytes(Encoding.PEM)


def test_the_checks_find_the_partial_file_a_missing_fsync_allows() -> None:
    old, new = combined_file(), combined_file()
    assert combined_or_none(new) is not None
    initial = disk(("a/f", old))
    replace = [
        Create("a/.t", "#1", 0o600),
        Write("#1", 0, new),
        Fsync("#1"),
        Rename("a/.t", "a/f", "#1"),
        FsyncDirectory("a"),
    ]
    rules = Rules("a/f", original=old, keys_at_risk=frozenset())

    def problems(ops: list[Op]) -> list[str]:
        return [
            p for s in all_crash_states(initial, ops) for p in problems_of_crash_state(s, rules)
        ]

    assert problems(replace) == []
    found = problems(without(replace, Fsync("#1")))
    assert any(p.startswith("partial or foreign content in a/f") for p in found), found
