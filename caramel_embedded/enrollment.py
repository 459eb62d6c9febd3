"""One pass of the protocol for one device: the decisions carried out, the I/O handed in.

This is the core that the command and the library share. It knows nothing of files,
locks, signals, exit numbers or the command line: what it holds comes in as parsed state,
what it must keep goes out through a ``Keeper`` (the combined file for the command, memory
for the library), and the server is reached through a ``Server`` made on demand. Every
choice is the decision core's (``decision``); this module only carries choices out, in the
order that keeps a key safe: a new key is kept before its request is posted, a held key's
new request only once the server has accepted it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from caramel_embedded import decision, hint, pem
from caramel_embedded.decision import Outcome
from caramel_embedded.errors import CaramelError, InterruptedBySignal, ServerAnswerError
from caramel_embedded.record import Record
from caramel_embedded.state import LocalState, ProvisionedKey, compose, parse
from caramel_embedded.wire import RequestPlan, ServerAnswer

if TYPE_CHECKING:
    from caramel_embedded.trust import TrustAnchor  # a parsed anchor is handed in


class Keeper(Protocol):
    """Where the pass keeps what it decided to keep."""

    def keep(self, content: bytes, *, mtime: int | None = None, set_aside: bool = False) -> None:
        """Hold ``content`` (the combined layout) from now on, atomically; with ``set_aside``,
        the content held before is kept apart, not lost (a damaged file)."""

    def keep_validator(self, mtime: int) -> None:
        """Remember a new validator for the installed certificate; the bytes stay."""


class Server(Protocol):
    """The Caramel server's two requests."""

    def get_certificate(self, plan: RequestPlan, client_pem: bytes | None) -> ServerAnswer:
        """``GET /<sha256>``, showing ``client_pem`` (key and certificate) as ``plan`` says."""

    def post_request(self, request_sha256: str, request_pem: bytes) -> ServerAnswer:
        """``POST /<sha256>`` with the request's exact bytes."""

    def close(self) -> None:
        """Drop every connection."""


class KeyStore(Protocol):
    """Where keys are made and what signs their requests: cryptography in memory (``FileKeys``),
    or the TPM (``tpm_keys``)."""

    label: str  # the PEM label of its keys' blocks in the combined file

    def new_key(self, bits: int) -> bytes:
        """A new RSA key's block, as DER."""

    def new_request(self, key_der: bytes, ca_certificate_der: bytes, client_id: str) -> bytes:
        """The key's request for the client id under the CA, as DER."""

    def close(self) -> None:
        """Let go of what the store opened (the TPM's loaded keys and connection)."""


class FileKeys:
    """Keys made by cryptography and held as PKCS#8 in the combined file (``file`` mode)."""

    label = pem.PRIVATE_KEY

    def new_key(self, bits: int) -> bytes:
        from caramel_embedded import pki

        return pki.new_private_key(bits)

    def new_request(self, key_der: bytes, ca_certificate_der: bytes, client_id: str) -> bytes:
        from caramel_embedded import pki

        return pki.new_request(key_der, ca_certificate_der, client_id)

    def close(self) -> None:
        pass  # nothing held


class Device(Record):
    """Who the pass acts for: its id, its CA(s), the size of a new key and where keys are."""

    client_id: str
    anchor: TrustAnchor
    key_bits: int
    keys: KeyStore = FileKeys()


class Result(Record):
    """How the pass ended, what is held now, and the one line worth telling (or None).

    ``hint_seconds``: the ``max-age`` of a 200 or 304 that left a certificate held (the
    server's hint, ``hint``); ``checked``: False only when a kept hint made the run skip
    asking."""

    outcome: Outcome
    state: LocalState
    message: str | None = None
    hint_seconds: int | None = None
    checked: bool = True

    def fresh_until(self, now: datetime, limit: int) -> datetime | None:
        """Until when the server's hint says nothing new is due for what this pass left
        held, capped (``hint.fresh_until``); None without a hint, without a certificate,
        or while the request waits."""
        certificate = self.state.certificate
        if not self.hint_seconds or certificate is None or self.outcome.waiting:
            return None
        return hint.fresh_until(now, self.hint_seconds, limit, certificate.not_after)


class Pass:
    """One pass: look at what is held, ask or post as the decisions say, keep the result."""

    def __init__(
        self,
        device: Device,
        keeper: Keeper,
        connect: Callable[[], Server],
        now: datetime,
        progress: Callable[[str], None],
    ) -> None:
        self.device = device
        self.keeper = keeper
        self.now = now
        self.progress = progress
        self.server = _Link(connect, progress)

    def run(self, held: decision.LocalHeld) -> Result:
        """Raises a ``CaramelError`` for anything that is not an outcome; ``UnusableKeyError``
        when a held key turns out unusable on the way (the caller sets it aside)."""
        subject = self.device.anchor.facts.subject
        action = decision.before_asking(held, subject, self.device.client_id)
        try:
            if isinstance(action, decision.Enroll):
                set_aside = action.set_aside is not None
                return _enroll(self, action.set_aside, Outcome.POSTED, set_aside)
            assert isinstance(held, LocalState | ProvisionedKey)
            if isinstance(action, decision.RequestAnew):
                return _request_anew(self, held)
            assert isinstance(held, LocalState)
            return self._ask(held)
        finally:
            self.server.close()

    def _ask(self, state: LocalState) -> Result:
        plan = decision.plan_request(state, self.now)
        self.progress(
            f"GET {plan.request_sha256[:16]}…"
            + (" with our certificate" if plan.present_client_certificate else "")
            + (f", If-Modified-Since {plan.if_modified_since}" if plan.if_modified_since else "")
        )
        client_pem = state.client_pem if plan.present_client_certificate else None
        answer = self.server.get(plan, client_pem)
        action = decision.after_get(state, plan, answer)
        if isinstance(action, decision.Fail):
            raise ServerAnswerError(action.message)
        if isinstance(action, decision.StartOver):
            self.server.close()  # its connection may have shown the certificate wiped now
            reason = "the CA rejected our request: wiped key, certificate and request"
            return _enroll(self, reason, Outcome.REPOSTED, set_aside=False)
        if isinstance(action, decision.Keep):
            if action.new_validator is not None:
                self.keeper.keep_validator(action.new_validator)
                self.progress("kept the certificate's new Last-Modified as the mtime")
            self.progress("installed certificate is current")
        elif isinstance(action, decision.Install):
            state = _install(self, state, action)
        elif isinstance(action, decision.Post):
            self.server.post(state)
        hint_seconds = None
        if isinstance(action, decision.Keep | decision.Install):
            hint_seconds = hint.max_age(answer.headers.get("cache-control"))
        return Result(decision.outcome_of(action), state, hint_seconds=hint_seconds)


class _Link:
    """The server, reached on the pass's first request and dropped at its end (or before a
    new key, whose requests must not go over a connection that showed the old one)."""

    def __init__(self, connect: Callable[[], Server], progress: Callable[[str], None]) -> None:
        self._connect = connect
        self._progress = progress
        self._server: Server | None = None

    def get(self, plan: RequestPlan, client_pem: bytes | None) -> ServerAnswer:
        answer = self._connected().get_certificate(plan, client_pem)
        self._progress(f"server answered {answer.status} {answer.reason}")
        return answer

    def post(self, state: LocalState, failure: str | None = None) -> None:
        """POST the request; raise the error, with ``failure`` said, unless it was accepted."""
        self._progress(f"POST {state.request_sha256[:16]}…")
        try:
            answer = self._connected().post_request(state.request_sha256, state.request_pem)
        except CaramelError as error:
            raise _with_note(error, failure) from None
        self._progress(f"server answered {answer.status} {answer.reason}")
        action = decision.after_post(answer)
        if isinstance(action, decision.Fail):
            raise _with_note(ServerAnswerError(action.message), failure)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _connected(self) -> Server:
        if self._server is None:
            self._server = self._connect()
        return self._server


# --- what the decisions ask for: a certificate installed, a new key, a new request --------


def _install(run: Pass, state: LocalState, action: decision.Install) -> LocalState:
    """Check the issued certificate against the CA, the key and the id, then keep it."""
    from caramel_embedded import pki

    device = run.device
    ca_certificates = [ca.certificate_der for ca in device.anchor.certificates]
    pki.check_issued_certificate(
        action.certificate_der,
        ca_certificates,
        state.key_der,
        device.client_id,
        run.now,
        key_label=state.key_label,
    )
    facts = action.facts  # read once, by the decision
    mtime = decision.last_modified_or_not_before(action.last_modified, facts.not_before)
    content = compose(state.key_der, state.request_der, action.certificate_der, state.key_label)
    run.keeper.keep(content, mtime=mtime)
    run.progress(f"installed a certificate valid until {facts.not_after:%Y-%m-%d %H:%M:%S} UTC")
    return _parsed(content, mtime)


def _enroll(run: Pass, reason: str | None, outcome: Outcome, set_aside: bool) -> Result:
    """A new key and its request, kept first, then posted: a posted key is never lost,
    so this is the one case where a failed pass has changed what is held."""
    device = run.device
    keys = device.keys
    where = " in the TPM" if keys.label != pem.PRIVATE_KEY else ""
    run.progress(f"generating an RSA {device.key_bits}-bit key{where}")
    key_der = keys.new_key(device.key_bits)
    request_der = keys.new_request(key_der, device.anchor.certificate_der, device.client_id)
    content = compose(key_der, request_der, key_label=keys.label)
    run.keeper.keep(content, set_aside=set_aside)
    state = _parsed(content)
    note = None if reason is None else f"{reason}, made a new key"
    failure = None if note is None else f"before that: {note}; its request is not posted yet"
    run.server.post(state, failure)
    return Result(outcome, state, _posted(note))


def _request_anew(run: Pass, held: LocalState | ProvisionedKey) -> Result:
    """A request for the held key, kept only once the server has accepted it.

    Until then nothing changes: a wrong CA or an unreachable server costs the device
    nothing, and an installed certificate stays, usable, until the new request's
    replaces it. A pass killed between the post and the keep loses nothing: the same
    key and subject give the same request bytes (an RSA PKCS#1 v1.5 signature is
    deterministic), which the next pass posts as a duplicate.
    """
    device = run.device
    request_der = device.keys.new_request(
        held.key_der, device.anchor.certificate_der, device.client_id
    )
    if isinstance(held, ProvisionedKey):
        run.progress("the key is a provisioned one: made its request")
        certificate_der, note = None, None
        failure = "the provisioned key's request was not accepted; nothing was changed"
    else:
        certificate_der = held.certificate_der
        note = "the request named another client id or CA: posted a new one for the same key"
        if certificate_der is not None:
            note += " (the installed certificate stays until its replacement is signed)"
        failure = "a new request for the same key was not accepted; nothing was changed"
    content = compose(held.key_der, request_der, certificate_der, held.key_label)
    state = _parsed(content)
    run.server.post(state, failure)
    run.keeper.keep(content)
    return Result(Outcome.POSTED, state, _posted(note))


def _posted(note: str | None) -> str | None:
    return None if note is None else f"{note}; posted its request, waiting for a signature"


def _with_note(error: CaramelError, note: str | None) -> CaramelError:
    """The same error, its line extended by what the pass did or kept before it failed."""
    if note is not None and not isinstance(error, InterruptedBySignal):
        error.args = (f"{error} ({note})",)
    return error


def _parsed(content: bytes, mtime: int | None = None) -> LocalState:
    """The state of content just composed (always key, [certificate,] request)."""
    state = parse(content, mtime)
    assert isinstance(state, LocalState)
    return state
