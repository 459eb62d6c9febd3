"""The server's hint that nothing new is expected for a while: the decisions, without I/O.

An operator's front may add ``Cache-Control: max-age=N`` to a certificate's 200 or 304
answer (Caramel itself never does). A one-shot run that ends held after such an answer
keeps a stamp, "fresh until", in the runtime directory (``hint_stamp`` reads and writes
it); a later run skips all network work only while every fact the stamp was made from
still holds. Everything here is a pure function of what it is given, so that "any doubt
means a normal check" is a table of cases (tests/test_hint.py), not a property of I/O.

Why the caps: ``--hint-limit`` (24 h by default) bounds how late a device learns of an
operator's rejection, and a quarter of the certificate's remaining validity keeps a
skipped check far from the certificate's end, whatever the server says. A skip also needs
the certificate to stay valid for four times the time left to the stamp, so a clock that
jumped forward or a stamp made for a longer-lived certificate cannot carry a device close
to its expiry without asking.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from caramel_embedded.record import Record

VALIDITY_SHARE = 4  # at most a quarter of the remaining validity; valid 4x the time left
_DELTA_SECONDS_CAP = 2147483648  # RFC 9111 1.2.2: a larger delta-seconds reads as this
_TMPFS_TYPES = frozenset({"tmpfs", "ramfs"})


def max_age(cache_control: str | None) -> int | None:
    """N of ``max-age=N`` in a ``Cache-Control`` value, or None for no usable hint.

    None when the field is absent, when ``max-age`` is missing, repeated, empty, quoted or
    not all digits (a malformed value is ignored, never guessed at), when it is 0, and when
    ``no-cache`` or ``no-store`` says that nothing may be reused. Directives are split at
    commas outside quoted strings, so a quoted ``"…, max-age=9"`` is not read as one.
    """
    if cache_control is None:
        return None
    found: list[str] = []
    for directive in _directives(cache_control):
        name, _, value = directive.partition("=")
        name = name.strip().lower()
        if name in ("no-cache", "no-store"):
            return None
        if name == "max-age":
            found.append(value.strip())
    if len(found) != 1:
        return None
    digits = found[0]
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    seconds = _DELTA_SECONDS_CAP if len(digits) > 10 else min(int(digits), _DELTA_SECONDS_CAP)
    return seconds or None


def _directives(value: str) -> list[str]:
    """The comma-separated directives of a list field, commas inside quotes kept."""
    directives: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for character in value:
        if escaped:
            escaped = False
        elif quoted and character == "\\":
            escaped = True
        elif character == '"':
            quoted = not quoted
        elif character == "," and not quoted:
            directives.append("".join(current))
            current = []
            continue
        current.append(character)
    directives.append("".join(current))
    return directives


def fresh_until(
    now: datetime, hint_seconds: int, limit: int, certificate_not_after: datetime
) -> datetime | None:
    """``now + min(N, limit, a quarter of the certificate's remaining validity)``, in whole
    seconds (rounded down), or None when that leaves no time at all."""
    remaining = (certificate_not_after - now).total_seconds()
    seconds = int(min(hint_seconds, limit, remaining / VALIDITY_SHARE))
    if seconds <= 0:
        return None
    return now + timedelta(seconds=seconds)


def is_runtime_file_system(file_system_type: str | None) -> bool:
    """Only RAM takes a stamp: never flash, whose erase cycles a timer would wear out."""
    return file_system_type in _TMPFS_TYPES


class Facts(Record):
    """What a stamp is made from and must match: the combined file (its bytes' SHA-256,
    inode and mtime in nanoseconds), the server, the client id and the CA (its PEM's
    SHA-256)."""

    file_sha256: str
    file_inode: int
    file_mtime_ns: int
    server: str
    client_id: str
    ca_sha256: str


class Stamp(Record):
    """A kept hint: the facts it was made for, when (UTC seconds), and until when."""

    facts: Facts
    made_at: int
    fresh_until: int


class Verdict(Record):
    """Whether this run may skip its check, and why (for ``-v``)."""

    skip: bool
    why: str


def judge(
    stamp: Stamp | None,
    facts: Facts,
    now: datetime,
    limit: int,
    certificate_valid: tuple[datetime, datetime] | None,
) -> Verdict:
    """Skip only when every fact matches, the clock has not gone back since the stamp was
    made, ``now`` is before its end (cut to ``limit`` after it was made, should the limit
    have been lowered since), and the certificate (``(not_before, not_after)``) is valid
    now and stays valid for at least four times the time left. Anything else: check."""
    if stamp is None:
        return Verdict(False, "no hint kept")
    if stamp.facts != facts:
        return Verdict(False, _what_changed(stamp.facts, facts))
    moment = now.timestamp()
    if moment < stamp.made_at:
        return Verdict(False, "the clock went back since the hint was kept")
    until = min(stamp.fresh_until, stamp.made_at + limit)
    if moment >= until:
        return Verdict(False, "the server's hint is over")
    if certificate_valid is None:
        return Verdict(False, "no certificate held")
    not_before, not_after = certificate_valid
    if not not_before <= now < not_after:
        return Verdict(False, "the certificate is not valid now")
    if (not_after.timestamp() - moment) < VALIDITY_SHARE * (until - moment):
        return Verdict(False, "the certificate ends too soon to follow the hint")
    return Verdict(True, f"the server's hint: nothing new before {_utc_text(until)}")


def _what_changed(kept: Facts, now: Facts) -> str:
    if (kept.file_sha256, kept.file_inode, kept.file_mtime_ns) != (
        now.file_sha256,
        now.file_inode,
        now.file_mtime_ns,
    ):
        return "the combined file changed since the hint was kept"
    return "the server, client id or CA changed since the hint was kept"


def _utc_text(seconds: float) -> str:
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%d %H:%M:%S} UTC"


# --- the stamp's bytes: a few ASCII lines, read strictly ----------------------------------

_MAGIC = "caramel-embedded hint 1"
_FIELDS = (
    "file_sha256", "file_inode", "file_mtime_ns", "server", "client_id", "ca_sha256",
    "made_at", "fresh_until",
)  # fmt: skip
_NUMBERS = frozenset({"file_inode", "file_mtime_ns", "made_at", "fresh_until"})
MAX_STAMP_BYTES = 1024


def render(stamp: Stamp) -> bytes:
    """The stamp as it is kept: a magic line, then ``key value`` lines in a fixed order."""
    values = {**_facts_fields(stamp.facts), "made_at": stamp.made_at}
    values["fresh_until"] = stamp.fresh_until
    lines = [_MAGIC, *(f"{key} {values[key]}" for key in _FIELDS)]
    return ("\n".join(lines) + "\n").encode("ascii")


def read(data: bytes) -> Stamp | None:
    """The stamp in ``data``, or None for anything but exactly what ``render`` writes."""
    if len(data) > MAX_STAMP_BYTES or not data.isascii() or not data.endswith(b"\n"):
        return None
    lines = data.decode("ascii")[:-1].split("\n")
    if len(lines) != len(_FIELDS) + 1 or lines[0] != _MAGIC:
        return None
    values: dict[str, str] = {}
    for key, line in zip(_FIELDS, lines[1:], strict=True):
        name, space, value = line.partition(" ")
        if name != key or not space or not value or not value.isprintable() or " " in value:
            return None
        if key in _NUMBERS and (not value.isdigit() or len(value) > 20):
            return None
        values[key] = value
    facts = Facts(
        values["file_sha256"],
        int(values["file_inode"]),
        int(values["file_mtime_ns"]),
        values["server"],
        values["client_id"],
        values["ca_sha256"],
    )
    stamp = Stamp(facts, int(values["made_at"]), int(values["fresh_until"]))
    if stamp.made_at >= stamp.fresh_until or render(stamp) != data:  # e.g. "007" for 7
        return None
    return stamp


def _facts_fields(facts: Facts) -> dict[str, object]:
    return {key: getattr(facts, key) for key in _FIELDS[:6]}
