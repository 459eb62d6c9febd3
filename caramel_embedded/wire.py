"""What crosses the wire, as records: how to ask, and what the server answered.

The decisions (``decision``) read and write these, and the network (``transport``) sends
and fills them; both import them from here, so the network needs nothing of the core.
"""

from __future__ import annotations

from collections.abc import Mapping

from caramel_embedded.record import Record


class ServerAnswer(Record):
    """One HTTP answer, reduced to what the protocol looks at (header names lowercase)."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes


class RequestPlan(Record):
    """How to ask for our certificate."""

    request_sha256: str
    present_client_certificate: bool
    if_modified_since: str | None
