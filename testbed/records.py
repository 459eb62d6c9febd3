"""What the server side tells: caramel_tool --list and nginx's JSON access log."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from testbed.processes import HarnessError

# --------------------------------------------------------------------------------------
# What the server and nginx tell us


@dataclass(frozen=True)
class CsrRecord:
    """One line of ``caramel_tool --list``: ``ID CN SHA256 NOT_AFTER``.

    Rejected requests are not listed; NOT_AFTER is ``----------`` until signed.
    """

    id: int
    cn: str
    sha256: str
    not_after: dt.datetime | None

    @property
    def signed(self) -> bool:
        """Whether a certificate was ever issued for it."""
        return self.not_after is not None


def parse_csr_list(output: str) -> list[CsrRecord]:
    """Parse ``caramel_tool --list``; a line in another shape is an error, not skipped."""
    records = []
    for line in output.splitlines():
        if not line.strip():
            continue
        fields = line.split(" ", 3)
        if len(fields) != 4 or not fields[0].isdigit() or len(fields[2]) != 64:
            raise HarnessError(f"unexpected caramel_tool --list line: {line!r}")
        csr_id, cn, sha256, not_after = fields
        when = None if not_after.strip("-") == "" else dt.datetime.fromisoformat(not_after)
        records.append(CsrRecord(int(csr_id), cn, sha256, when))
    return records


@dataclass(frozen=True)
class AdminRun:
    """One caramel_tool command and what it said."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


@dataclass(frozen=True)
class AccessRecord:
    """One request as nginx logged it (our JSON ``log_format``)."""

    front: str
    method: str
    uri: str
    status: int
    body_bytes_sent: int
    bytes_sent: int
    client_verify: str
    client_subject: str
    client_serial: str
    user_agent: str
    if_modified_since: str
    last_modified: str
    cache_status: str
    upstream_status: str
    # Request line, headers and body as received (what the client sent, TLS aside).
    request_length: int = 0
    # The Cache-Control the answer carried (the conditional filter's max-age hint).
    cache_control: str = ""

    @property
    def path(self) -> str:
        """The URI without a leading slash: the sha256 for certificate requests."""
        return self.uri.lstrip("/")

    def summary(self) -> str:
        """One readable line, for reports and failure messages."""
        parts = [f"{self.front}: {self.method} {self.uri[:20]}… -> {self.status}"]
        parts.append(f"{self.body_bytes_sent} body bytes")
        parts.append(f"client cert {self.client_verify}")
        if self.client_subject:
            parts.append(f"({self.client_subject})")
        if self.if_modified_since:
            parts.append(f"If-Modified-Since {self.if_modified_since!r}")
        if self.last_modified:
            parts.append(f"Last-Modified {self.last_modified!r}")
        parts.append(f"UA {self.user_agent!r}")
        return ", ".join(parts)


def _as_int(value: str) -> int:
    return int(value) if value.isdigit() else 0


def parse_access_log(text: str) -> list[AccessRecord]:
    """Every complete line of the access log, in order."""
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        records.append(
            AccessRecord(
                front=raw["front"],
                method=raw["method"],
                uri=raw["uri"],
                status=_as_int(raw["status"]),
                body_bytes_sent=_as_int(raw["body_bytes_sent"]),
                bytes_sent=_as_int(raw["bytes_sent"]),
                client_verify=raw["client_verify"],
                client_subject=raw["client_subject"],
                client_serial=raw["client_serial"],
                user_agent=raw["user_agent"],
                if_modified_since=raw["if_modified_since"],
                last_modified=raw["last_modified"],
                cache_status=raw["cache_status"],
                upstream_status=raw["upstream_status"],
                request_length=_as_int(raw.get("request_length", "")),
                cache_control=raw.get("cache_control", ""),
            )
        )
    return records
