"""The decision core: from what we hold and what the server said to what we do next.

Nothing here touches a socket, a file or the clock; the core (``enrollment``) carries the
actions out and the shells around it do the I/O. What is held maps to one local action
(``before_asking``), every answer to exactly one action, and every action to exactly one
named ``Outcome`` or a failure (the command alone turns them into exit statuses), so "any
server answer ends held, waiting or in one error" is a property of these few functions.
The wire's records (``RequestPlan``, ``ServerAnswer``) live in ``wire``, where the network
takes them from without importing the decisions.

The records here and across the package are ``Record``s (``record``): immutable and
typed as frozen dataclasses, but defining them costs no ``inspect`` import and no
compile per class at every cold start (``record`` says how much).
"""

from __future__ import annotations

import enum
import re
from datetime import datetime

from caramel_embedded import der, pem, subject
from caramel_embedded.httpdate import format_http_date, parse_http_date
from caramel_embedded.record import Record
from caramel_embedded.state import LocalState, ProvisionedKey
from caramel_embedded.wire import RequestPlan, ServerAnswer

_HTML_TITLE = r"(?is)<title>(.*?)</title>"  # compiled on first use: error pages only


class Outcome(enum.Enum):
    """How one pass ended, by name; the faces (command, library) say it in their terms."""

    INSTALLED = "installed"  # a new certificate is held
    CURRENT = "current"  # the held certificate is still the server's
    POSTED = "posted"  # a request was posted: a new key's, a held key's new one, or again
    PENDING = "pending"  # the server knows the request and has not signed it
    REPOSTED = "reposted"  # the server rejected the request: a new key's request posted

    @property
    def waiting(self) -> bool:
        """Whether the request still waits for a signature."""
        return self not in (Outcome.INSTALLED, Outcome.CURRENT)


# --- actions -----------------------------------------------------------------------------


class Keep(Record):
    """The installed certificate is current: the pass ends held, the file's bytes unwritten.

    ``new_validator`` is a ``Last-Modified`` that came with the installed certificate and
    differs from the one kept as the file's mtime (a caching proxy was put in front, or
    refreshed its copy): only the mtime takes it, so that the next request can get a 304.
    """

    new_validator: int | None = None


class Install(Record):
    """A new certificate arrived: check it, then install it with this modification time.

    ``facts`` are the ones read here to refuse a malformed certificate: the install needs
    its notBefore and notAfter too, and should not parse it a second time.
    """

    certificate_der: bytes
    last_modified: int | None
    facts: der.CertificateFacts


class Wait(Record):
    """The request waits for a signature: the pass ends pending."""


class Post(Record):
    """The server does not know the request: post it, then decide on that answer."""


class StartOver(Record):
    """The request was rejected: new key, new request, post it."""


class Fail(Record):
    """Anything the protocol does not allow: the pass ends in an error, the state kept."""

    message: str


Action = Keep | Install | Wait | Post | StartOver | Fail


# --- before asking: what the held state needs --------------------------------------------


class Corrupt(Record):
    """A combined file that is not what we write: set aside whole, never trusted."""

    reason: str


class Enroll(Record):
    """No usable key: make one and its request, keep both, then post (the key first)."""

    set_aside: str | None = None  # why the held file is set aside, if there was one


class RequestAnew(Record):
    """The held key needs a request for this client id and CA: post it, keep it once accepted."""

    provisioned: bool  # the file held a key alone, written at manufacture


class Ask(Record):
    """The held request is this device's under this CA: ask the server for its certificate."""


LocalAction = Enroll | RequestAnew | Ask
LocalHeld = LocalState | ProvisionedKey | Corrupt | None


def before_asking(held: LocalHeld, ca_subject: der.Name, client_id: str) -> LocalAction:
    """What the held state needs before the server is asked for a certificate.

    A provisioned key, or a request for another client id or CA, keeps its key: the new
    request is posted first and written once accepted, so a wrong CA or an unreachable
    server costs nothing. Only no key at all, or a damaged file, makes a new key.
    """
    if held is None:
        return Enroll()
    if isinstance(held, Corrupt):
        return Enroll(set_aside=held.reason)
    if isinstance(held, ProvisionedKey):
        return RequestAnew(provisioned=True)
    if not request_subject_matches(held.request_subject, ca_subject, client_id):
        return RequestAnew(provisioned=False)
    return Ask()


def outcome_of(action: Keep | Install | Wait | Post | StartOver) -> Outcome:
    """The outcome once ``action`` (what followed the GET) has been carried out."""
    return _OUTCOME_OF[type(action)]


_OUTCOME_OF: dict[type, Outcome] = {
    Keep: Outcome.CURRENT,
    Install: Outcome.INSTALLED,
    Wait: Outcome.PENDING,
    Post: Outcome.POSTED,
    StartOver: Outcome.REPOSTED,
}


def plan_request(state: LocalState, now: datetime) -> RequestPlan:
    """Show the installed certificate, and ask "modified since?", only while it is valid.

    An expired certificate is never shown (nginx answers 400 to one) and never used as a
    validator: a 304 must not keep an expired certificate in place. An older certificate
    that waits for the held request's (the client id or CA changed) is shown, since it still
    identifies the device, but it validates nothing at the new request's URL. A certificate
    for a key in the TPM is not shown: ``ssl`` would need the TPM's provider in its own
    context (docs/tpm.md says what that takes); Caramel does not ask for it.
    """
    valid = state.certificate is not None and state.certificate.is_valid_at(now)
    since = None
    if valid and state.certificate_answers_request and state.file_mtime is not None:
        since = format_http_date(state.file_mtime)
    shown = valid and state.key_label == pem.PRIVATE_KEY  # a TPM key: see docs/tpm.md
    return RequestPlan(state.request_sha256, shown, since)


def after_get(state: LocalState, plan: RequestPlan, answer: ServerAnswer) -> Action:
    """What follows the answer to ``GET /<sha256>``."""
    status = answer.status
    if status == 200:
        return _after_certificate(state, answer)
    if status == 304:
        if plan.if_modified_since is None:
            return Fail("server answered 304 Not Modified to a request that was not conditional")
        return Keep()
    if status == 202:
        return Wait()
    if status == 404:
        return Post()
    if status == 403:
        return StartOver()
    return Fail(describe(answer, "GET"))


def after_post(answer: ServerAnswer) -> Action:
    """What follows the answer to ``POST /<sha256>``: a duplicate is as good as accepted."""
    if answer.status == 202:
        return Wait()
    if answer.status == 400 and "duplicate" in problem_detail(answer).lower():
        return Wait()
    return Fail(describe(answer, "POST"))


def last_modified_or_not_before(answer_last_modified: int | None, not_before: datetime) -> int:
    """The validator to keep as the file's mtime after an install."""
    if answer_last_modified is not None:
        return answer_last_modified
    return int(not_before.timestamp())


def _after_certificate(state: LocalState, answer: ServerAnswer) -> Action:
    try:
        blocks = pem.decode_all(answer.body)
    except pem.PEMError:
        blocks = []
    if len(blocks) != 1 or blocks[0].label != pem.CERTIFICATE:
        return Fail("server answered 200 without exactly one PEM certificate")
    certificate_der = blocks[0].der
    last_modified = parse_http_date(answer.headers.get("last-modified"))
    if certificate_der == state.certificate_der:  # parsed already, when the file was read
        if last_modified is None or last_modified == state.file_mtime:
            return Keep()
        return Keep(new_validator=last_modified)
    try:
        facts = der.certificate_facts(certificate_der)
    except der.DERError as error:
        return Fail(f"server answered 200 with a malformed certificate: {error}")
    return Install(certificate_der, last_modified, facts)


def problem_detail(answer: ServerAnswer) -> str:
    """The human part of a problem+json, HTML or plain error body, one line, bounded."""
    text = answer.body[:2048].decode("utf-8", "replace")
    content_type = answer.headers.get("content-type", "")
    if "html" in content_type:
        title = re.search(_HTML_TITLE, text)
        text = title.group(1) if title else ""
    elif "json" in content_type:
        import json  # only error answers pay for it

        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if isinstance(document, dict):
            parts = [str(document.get(key, "")) for key in ("title", "detail")]
            text = ": ".join(part for part in parts if part)
    return " ".join(text.split())[:200]


def describe(answer: ServerAnswer, method: str) -> str:
    """One line for an answer the protocol does not allow."""
    line = f"server answered {method} with HTTP {answer.status}"
    if answer.reason:
        line += f" {answer.reason}"
    if 300 <= answer.status < 400 and "location" in answer.headers:
        line += f" to {answer.headers['location'][:200]} (redirects are not followed)"
    detail = problem_detail(answer) if answer.status >= 400 else ""
    if not detail or detail in line:
        return line
    return f"{line}: {detail}"


def request_subject_matches(request: der.Name, ca_subject: der.Name, client_id: str) -> bool:
    """Whether the held request still names this device under this CA.

    A changed client id (another MAC, a new serial source) or a new CA in the firmware
    would otherwise leave the device asking forever for a certificate it cannot get.
    """
    expected = subject.request_subject(
        [[attribute] for attribute in ca_subject],
        client_id,
        is_common_name=lambda attribute: attribute.oid == der.OID_COMMON_NAME,
        common_name=lambda value: der.Attribute(der.OID_COMMON_NAME, value),
    )
    return tuple(attribute for rdn in expected for attribute in rdn) == request
