"""The server's hint, its decisions as tables: ``max-age`` read, capped, and judged.

No network and no disk but for the mount table's reading (a text given here), the stamp's
bytes, and the directory test at the end, on a tmp_path that is not a tmpfs here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from caramel_embedded import hint, hint_stamp

pytestmark = pytest.mark.in_process

NOW = datetime(2026, 12, 8, 12, 0, 0, tzinfo=UTC)
HOUR = 3600
FACTS = hint.Facts(
    "ab" * 32, 1234, 1_765_000_000_123_456_789, "https://ca:443", "dev-1", "cd" * 32
)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("max-age=3600", 3600),
        ("public, max-age=600", 600),
        ("Max-Age=600", 600),
        (" max-age = 600 ", 600),
        ("max-age=0", None),
        ("max-age=", None),
        ("max-age", None),
        ("max-age=-5", None),
        ("max-age=1e3", None),
        ("max-age=12.5", None),
        ('max-age="600"', None),
        (
            "max-age=\uff16\uff10\uff10",
            None,
        ),  # fullwidth digits: str.isdigit takes them, HTTP does not
        ("max-age=600, max-age=600", None),  # repeated: ignored, not guessed
        ("max-age=600, no-cache", None),
        ("no-store, max-age=600", None),
        ("s-maxage=600", None),
        ('private="a, max-age=9", max-age=60', 60),  # the quoted one is not a directive
        ('private="a, max-age=9"', None),
        ("max-age=99999999999999999999999", 2147483648),  # RFC 9111's cap, no int overflow
        ("max-age=" + "9" * 5000, 2147483648),
    ],
    ids=repr,
)
def test_max_age_reads_only_a_single_well_formed_value(value: str | None, seconds: int) -> None:
    assert hint.max_age(value) == seconds


@pytest.mark.parametrize(
    ("hint_seconds", "limit", "valid_for", "expected"),
    [
        pytest.param(HOUR, 86400, timedelta(days=2), HOUR, id="the hint itself"),
        pytest.param(3 * 86400, 86400, timedelta(days=30), 86400, id="capped by the limit"),
        pytest.param(86400, 86400, timedelta(hours=8), 2 * HOUR, id="a quarter of validity"),
        pytest.param(86400, 0, timedelta(days=2), None, id="limit 0: never"),
        pytest.param(86400, 86400, timedelta(seconds=3), None, id="less than a second left"),
        pytest.param(86400, 86400, timedelta(hours=-1), None, id="expired"),
    ],
)
def test_fresh_until_is_the_smallest_of_hint_limit_and_quarter_validity(
    hint_seconds: int, limit: int, valid_for: timedelta, expected: int | None
) -> None:
    until = hint.fresh_until(NOW, hint_seconds, limit, NOW + valid_for)
    assert (None if until is None else (until - NOW).total_seconds()) == expected


def stamp(**changes: object) -> hint.Stamp:
    made = int(NOW.timestamp()) - HOUR
    return hint.Stamp(FACTS, made, made + 4 * HOUR).replace(**changes)


LONG_VALID = (NOW - timedelta(days=1), NOW + timedelta(days=2))


@pytest.mark.parametrize(
    ("kept", "facts", "now", "limit", "valid", "skip", "words"),
    [
        pytest.param(stamp(), FACTS, NOW, 86400, LONG_VALID, True, "nothing new", id="skip"),
        pytest.param(None, FACTS, NOW, 86400, LONG_VALID, False, "no hint", id="no stamp"),
        *(
            pytest.param(
                stamp(),
                FACTS.replace(**{field: value}),
                NOW,
                86400,
                LONG_VALID,
                False,
                "changed",
                id=f"{field} changed",
            )
            for field, value in [
                ("file_sha256", "ef" * 32),
                ("file_inode", 1235),
                ("file_mtime_ns", FACTS.file_mtime_ns + 1),
                ("server", "https://other:443"),
                ("client_id", "dev-2"),
                ("ca_sha256", "00" * 32),
            ]
        ),
        pytest.param(
            stamp(), FACTS, NOW - timedelta(hours=2), 86400, LONG_VALID, False, "clock went back",
            id="clock back",
        ),
        pytest.param(
            stamp(), FACTS, NOW + timedelta(hours=3), 86400, LONG_VALID, False, "over",
            id="hint over",
        ),
        pytest.param(
            stamp(), FACTS, NOW, 1800, LONG_VALID, False, "over", id="limit lowered since",
        ),
        pytest.param(stamp(), FACTS, NOW, 86400, None, False, "no certificate", id="no cert"),
        pytest.param(
            stamp(), FACTS, NOW, 86400, (NOW + timedelta(hours=1), NOW + timedelta(days=2)),
            False, "not valid", id="certificate not yet valid",
        ),
        # 3 h left to the stamp: the certificate must last 12 h more; 11 h is too soon.
        pytest.param(
            stamp(), FACTS, NOW, 86400, (NOW - timedelta(days=1), NOW + timedelta(hours=11)),
            False, "too soon", id="certificate ends within 4x the time left",
        ),
        pytest.param(
            stamp(), FACTS, NOW, 86400, (NOW - timedelta(days=1), NOW + timedelta(hours=12)),
            True, "nothing new", id="certificate lasts exactly 4x the time left",
        ),
    ],
)  # fmt: skip
def test_judge_skips_only_when_every_fact_holds(
    kept: hint.Stamp | None,
    facts: hint.Facts,
    now: datetime,
    limit: int,
    valid: tuple[datetime, datetime] | None,
    skip: bool,
    words: str,
) -> None:
    verdict = hint.judge(kept, facts, now, limit, valid)
    assert verdict.skip is skip
    assert words in verdict.why


def test_a_stamp_reads_back_as_written() -> None:
    kept = stamp()
    assert hint.read(hint.render(kept)) == kept


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"",
        lambda data: data[:-1],  # no final newline
        lambda data: data.replace(b"hint 1", b"hint 2"),
        lambda data: data.replace(b"made_at", b"made_on"),
        lambda data: data.replace(b"file_inode 1234", b"file_inode -1234"),
        lambda data: data.replace(b"file_inode 1234", b"file_inode 12 34"),
        lambda data: data.replace(b"file_inode 1234", b"file_inode 01234"),
        lambda data: data.replace(b"dev-1", "dév-1".encode()),
        lambda data: data + b"extra 1\n",
        lambda data: data * 2,
        lambda data: data + b" " * 2000,
        lambda data: b"\n".join(sorted(data.split(b"\n"))),  # fields out of order
    ],
)
def test_an_odd_stamp_is_no_stamp(damage: object) -> None:
    assert hint.read(damage(hint.render(stamp()))) is None  # type: ignore[operator]


def test_a_stamp_that_ends_before_it_was_made_is_no_stamp() -> None:
    made = int(NOW.timestamp())
    assert hint.read(hint.render(hint.Stamp(FACTS, made, made))) is None


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683772k
27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
28 27 8:1 /srv /mnt/with\\040space rw,relatime shared:1 - ext4 /dev/sda1 rw
30 27 0:40 / /run rw - ramfs ramfs rw
31 27 0:41 / /odd rw - tmpfs none rw
32 27 0:41 / /odd2 rw - ext4 none rw
"""


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("0:23", "tmpfs"),
        ("8:1", "ext4"),  # bind mounts of one file system agree
        ("0:40", "ramfs"),
        ("0:41", None),  # two lines that disagree: not known
        ("0:99", None),
    ],
)
def test_mount_type_is_the_mount_tables_word_for_the_device(
    device: str, expected: str | None
) -> None:
    assert hint_stamp.mount_type(MOUNTINFO, device) == expected


@pytest.mark.parametrize(
    ("file_system", "taken"),
    [("tmpfs", True), ("ramfs", True), ("ext4", False), ("devtmpfs", False), (None, False)],
)
def test_only_ram_takes_a_stamp(file_system: str | None, taken: bool) -> None:
    assert hint.is_runtime_file_system(file_system) is taken
