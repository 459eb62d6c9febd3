"""The decision core, as tables: no network, no disk, no clock."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from caramel_embedded import cli, decision, der, pem
from caramel_embedded.decision import (
    Ask,
    Corrupt,
    Enroll,
    Fail,
    Install,
    Keep,
    Outcome,
    Post,
    RequestAnew,
    StartOver,
    Wait,
)
from caramel_embedded.state import LocalState, ProvisionedKey, compose, parse
from caramel_embedded.wire import RequestPlan, ServerAnswer
from testbed.ca_factory import make_authority, new_key
from tests.conftest import CLIENT_ID

pytestmark = pytest.mark.in_process

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
AUTHORITY = make_authority(key_slot=1, not_before=NOW - dt.timedelta(days=30))
KEY = new_key(2)


def _certificate_der(
    not_before: dt.datetime, not_after: dt.datetime, client_id: str = CLIENT_ID
) -> bytes:
    """A certificate as Caramel issues it: the request's subject, our key."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from caramel_embedded import pki

    subject = pki.request_subject(AUTHORITY.certificate.public_bytes(Encoding.DER), client_id)
    certificate = AUTHORITY.issue(KEY.public_key(), subject, not_before, not_after)
    return certificate.public_bytes(Encoding.DER)


def _state(certificate_der: bytes | None, mtime: int | None = 1_780_000_000) -> LocalState:
    from cryptography.hazmat.primitives import serialization

    from caramel_embedded import pki

    key_der = KEY.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    request_der = pki.new_request(
        key_der, AUTHORITY.certificate.public_bytes(serialization.Encoding.DER), CLIENT_ID
    )
    state = parse(compose(key_der, request_der, certificate_der), mtime)
    assert state is not None
    return state


VALID = _certificate_der(NOW - dt.timedelta(hours=1), NOW + dt.timedelta(hours=47))
EXPIRED = _certificate_der(NOW - dt.timedelta(hours=49), NOW - dt.timedelta(hours=1))
NEWER = _certificate_der(NOW, NOW + dt.timedelta(hours=48))
PENDING = _state(None)
INSTALLED = _state(VALID)
INSTALLED_EXPIRED = _state(EXPIRED)
# The client id changed: the file holds the new request and the older id's certificate.
OLDER_ID = _certificate_der(NOW - dt.timedelta(hours=1), NOW + dt.timedelta(hours=47), "old-id")
WAITING_FOR_REPLACEMENT = _state(OLDER_ID)
LAST_MODIFIED = "Mon, 01 Jun 2026 11:00:00 GMT"


def answer(status: int, body: bytes = b"", **headers: str) -> ServerAnswer:
    return ServerAnswer(status, "", {k.replace("_", "-"): v for k, v in headers.items()}, body)


def plan_for(state: LocalState) -> RequestPlan:
    return decision.plan_request(state, NOW)


@pytest.mark.parametrize(
    ("state", "present", "since"),
    [
        pytest.param(PENDING, False, None, id="no-certificate"),
        pytest.param(INSTALLED, True, "Thu, 28 May 2026 20:26:40 GMT", id="valid-certificate"),
        pytest.param(INSTALLED_EXPIRED, False, None, id="expired-never-shown-nor-conditional"),
        pytest.param(WAITING_FOR_REPLACEMENT, True, None, id="older-certificate-shown-not-asked"),
    ],
)
def test_request_plan(state: LocalState, present: bool, since: str | None) -> None:
    plan = plan_for(state)
    assert plan.present_client_certificate is present
    assert plan.if_modified_since == since
    assert plan.request_sha256 == state.request_sha256


@pytest.mark.parametrize(
    ("state", "server_answer", "expected"),
    [
        pytest.param(PENDING, answer(202), Wait(), id="202-waits"),
        pytest.param(PENDING, answer(404), Post(), id="404-posts"),
        pytest.param(INSTALLED, answer(403), StartOver(), id="403-starts-over"),
        pytest.param(PENDING, answer(403), StartOver(), id="403-pending-starts-over"),
        pytest.param(INSTALLED, answer(304), Keep(), id="304-keeps"),
        pytest.param(
            INSTALLED, answer(200, pem.encode("CERTIFICATE", VALID)), Keep(), id="same-200-keeps"
        ),
        pytest.param(
            INSTALLED,
            answer(200, pem.encode("CERTIFICATE", NEWER)),
            Install(NEWER, None, der.certificate_facts(NEWER)),
            id="new-200-installs",
        ),
        pytest.param(
            PENDING,
            answer(200, pem.encode("CERTIFICATE", VALID), last_modified=LAST_MODIFIED),
            Install(VALID, 1_780_311_600, der.certificate_facts(VALID)),
            id="200-keeps-last-modified",
        ),
        pytest.param(
            INSTALLED,
            answer(200, pem.encode("CERTIFICATE", VALID), last_modified=LAST_MODIFIED),
            Keep(new_validator=1_780_311_600),
            id="same-200-new-last-modified-kept-as-mtime",
        ),
        pytest.param(
            _state(VALID, mtime=1_780_311_600),
            answer(200, pem.encode("CERTIFICATE", VALID), last_modified=LAST_MODIFIED),
            Keep(),
            id="same-200-same-last-modified-keeps",
        ),
        pytest.param(
            PENDING,
            answer(200, pem.encode("CERTIFICATE", VALID), last_modified="yesterday"),
            Install(VALID, None, der.certificate_facts(VALID)),
            id="200-ignores-bad-last-modified",
        ),
        pytest.param(
            WAITING_FOR_REPLACEMENT,
            answer(200, pem.encode("CERTIFICATE", VALID)),
            Install(VALID, None, der.certificate_facts(VALID)),
            id="200-replaces-the-older-certificate",
        ),
        pytest.param(WAITING_FOR_REPLACEMENT, answer(202), Wait(), id="202-keeps-the-older"),
        pytest.param(
            WAITING_FOR_REPLACEMENT, answer(403), StartOver(), id="403-wipes-the-older-too"
        ),
    ],
)
def test_after_get(state: LocalState, server_answer: ServerAnswer, expected: object) -> None:
    assert decision.after_get(state, plan_for(state), server_answer) == expected


@pytest.mark.parametrize(
    ("state", "server_answer", "reason"),
    [
        pytest.param(PENDING, answer(304), "not conditional", id="304-unasked"),
        pytest.param(INSTALLED_EXPIRED, answer(304), "not conditional", id="304-for-expired"),
        pytest.param(
            WAITING_FOR_REPLACEMENT, answer(304), "not conditional", id="304-for-the-older"
        ),
        pytest.param(PENDING, answer(200, b"hello"), "exactly one PEM", id="200-not-pem"),
        pytest.param(
            PENDING,
            answer(200, pem.encode("CERTIFICATE", VALID) * 2),
            "exactly one PEM",
            id="200-two-certificates",
        ),
        pytest.param(
            PENDING,
            answer(200, pem.encode("CERTIFICATE", b"\x30\x03abc")),
            "malformed",
            id="200-bad-der",
        ),
        pytest.param(PENDING, answer(500), "HTTP 500", id="500"),
        pytest.param(PENDING, answer(400), "HTTP 400", id="400-on-get"),
        pytest.param(
            PENDING, answer(301, location="https://elsewhere/"), "not followed", id="redirect"
        ),
        pytest.param(PENDING, answer(503, retry_after="60"), "HTTP 503", id="retry-after"),
        pytest.param(PENDING, answer(418), "HTTP 418", id="teapot"),
    ],
)
def test_after_get_failures(state: LocalState, server_answer: ServerAnswer, reason: str) -> None:
    action = decision.after_get(state, plan_for(state), server_answer)
    assert isinstance(action, Fail)
    assert reason in action.message


@pytest.mark.parametrize(
    ("server_answer", "expected_wait"),
    [
        pytest.param(answer(202, b'{"sha256": "x"}'), True, id="accepted"),
        pytest.param(
            answer(
                400,
                b'{"title": "Bad Request", "detail": "duplicate request"}',
                content_type="application/problem+json",
            ),
            True,
            id="duplicate-is-accepted",
        ),
        pytest.param(
            answer(400, b'{"detail": "bad subject"}', content_type="application/problem+json"),
            False,
            id="bad-subject",
        ),
        pytest.param(answer(411), False, id="411"),
        pytest.param(answer(413), False, id="413"),
        pytest.param(answer(200), False, id="200-is-not-accepted"),
    ],
)
def test_after_post(server_answer: ServerAnswer, expected_wait: bool) -> None:
    action = decision.after_post(server_answer)
    assert isinstance(action, Wait) is expected_wait
    if not expected_wait:
        assert isinstance(action, Fail)


def test_error_detail_comes_from_problem_json() -> None:
    action = decision.after_post(
        answer(
            400,
            b'{"title": "Bad Request", "detail": "bad subject: C=XX"}',
            content_type="application/problem+json",
        )
    )
    assert isinstance(action, Fail)
    assert action.message == "server answered POST with HTTP 400: Bad Request: bad subject: C=XX"


def test_validator_is_last_modified_else_not_before() -> None:
    not_before = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert decision.last_modified_or_not_before(123, not_before) == 123
    assert decision.last_modified_or_not_before(None, not_before) == int(not_before.timestamp())


def test_request_subject_must_name_this_device_under_this_ca() -> None:
    ca_subject = der.certificate_facts(
        AUTHORITY.certificate.public_bytes(
            __import__("cryptography").hazmat.primitives.serialization.Encoding.DER
        )
    ).subject
    assert decision.request_subject_matches(PENDING.request_subject, ca_subject, CLIENT_ID)
    assert not decision.request_subject_matches(PENDING.request_subject, ca_subject, "other")
    assert not decision.request_subject_matches(PENDING.request_subject, ca_subject[1:], CLIENT_ID)


CA_SUBJECT = der.certificate_facts(AUTHORITY.certificate.public_bytes(Encoding.DER)).subject


@pytest.mark.parametrize(
    ("held", "client_id", "expected"),
    [
        pytest.param(None, CLIENT_ID, Enroll(), id="no-file-new-key"),
        pytest.param(Corrupt("why"), CLIENT_ID, Enroll(set_aside="why"), id="corrupt-set-aside"),
        pytest.param(
            ProvisionedKey(PENDING.key_der), CLIENT_ID, RequestAnew(True), id="provisioned-kept"
        ),
        pytest.param(PENDING, "other", RequestAnew(False), id="changed-id-same-key"),
        pytest.param(INSTALLED, "other", RequestAnew(False), id="changed-id-keeps-certificate"),
        pytest.param(PENDING, CLIENT_ID, Ask(), id="pending-asks"),
        pytest.param(INSTALLED, CLIENT_ID, Ask(), id="installed-asks"),
    ],
)
def test_before_asking(held: decision.LocalHeld, client_id: str, expected: object) -> None:
    assert decision.before_asking(held, CA_SUBJECT, client_id) == expected


def test_another_ca_subject_needs_a_new_request() -> None:
    assert decision.before_asking(PENDING, CA_SUBJECT[1:], CLIENT_ID) == RequestAnew(False)


def test_certificate_answers_request_only_for_its_own_subject() -> None:
    assert INSTALLED.certificate_answers_request
    assert not WAITING_FOR_REPLACEMENT.certificate_answers_request
    assert not PENDING.certificate_answers_request


@pytest.mark.parametrize(
    ("action", "outcome", "status"),
    [
        pytest.param(Keep(), Outcome.CURRENT, 0, id="keep-current-0"),
        pytest.param(Install(VALID, None, der.certificate_facts(VALID)), Outcome.INSTALLED, 0,
                     id="install-installed-0"),
        pytest.param(Wait(), Outcome.PENDING, 69, id="wait-pending-69"),
        pytest.param(Post(), Outcome.POSTED, 69, id="post-posted-69"),
        pytest.param(StartOver(), Outcome.REPOSTED, 69, id="start-over-reposted-69"),
    ],
)  # fmt: skip
def test_each_action_has_one_outcome_and_the_command_one_status(
    action: Keep | Install | Wait | Post | StartOver, outcome: Outcome, status: int
) -> None:
    """The real mapping: the core names the outcome, only the command knows its number."""
    assert decision.outcome_of(action) is outcome
    assert cli.exit_status(outcome.value) == status
    assert outcome.waiting is (status == 69)


def test_every_outcome_has_a_status() -> None:
    assert {cli.exit_status(outcome.value) for outcome in Outcome} == {0, 69}


@given(
    status=st.integers(min_value=100, max_value=599),
    body=st.one_of(st.binary(max_size=300), st.sampled_from([pem.encode("CERTIFICATE", VALID)])),
    headers=st.dictionaries(
        st.sampled_from(["last-modified", "content-type", "location", "retry-after"]),
        st.text(max_size=40),
    ),
    installed=st.booleans(),
)
def test_any_answer_maps_to_one_exit_status(
    status: int, body: bytes, headers: dict[str, str], installed: bool
) -> None:
    state = INSTALLED if installed else PENDING
    server_answer = ServerAnswer(status, "", headers, body)
    for action in (
        decision.after_get(state, plan_for(state), server_answer),
        decision.after_post(server_answer),
    ):
        if isinstance(action, Fail):
            continue  # an error: 127, the one status the command gives every CaramelError
        assert cli.exit_status(decision.outcome_of(action).value) in (0, 69)
        assert status in (200, 202, 304, 400, 403, 404)
