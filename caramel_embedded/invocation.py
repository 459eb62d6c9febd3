"""One invocation, start to end: the I/O around the decision core.

The order is the SPEC's: resolve the id and the CA, lock the file, load or create the key
and request, ask the server, act on its answer. Every path ends in an ``Outcome`` or one of
the ``errors`` family; the CLI turns both into an exit status and at most one line.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from caramel_embedded import client_id, combined_file, decision, trust
from caramel_embedded.decision import ExitStatus
from caramel_embedded.errors import CaramelError, InterruptedBySignal, ServerAnswerError
from caramel_embedded.options import Settings
from caramel_embedded.report import Reporter
from caramel_embedded.state import (
    CorruptFileError,
    LocalState,
    ProvisionedKey,
    compose,
    parse,
)

if TYPE_CHECKING:
    from caramel_embedded.transport import CaramelServer


class Outcome(NamedTuple):
    status: ExitStatus
    message: str | None = None  # the one line for 69 (rejected, set aside); None: silent


def utc_now() -> datetime:
    return datetime.now(UTC)


def resolve_client_id(settings: Settings) -> str:
    return client_id.resolve(settings.client_id, settings.client_id_from, settings.identity_root)


def run(
    settings: Settings, reporter: Reporter, clock: Callable[[], datetime] = utc_now
) -> Outcome:
    """Do what one invocation does; raise an ``errors`` class for anything but 0 and 69."""
    identity = resolve_client_id(settings)
    anchor = trust.load(settings.ca_cert)
    now = clock()
    trust.check_clock(anchor, now)
    assert settings.server is not None
    reporter.progress(f"client id {identity}, CA {anchor.subject_text}, server {settings.server}")
    with combined_file.locked(settings.file, settings.ownership) as handle:
        return _Invocation(
            settings=settings,
            reporter=reporter,
            identity=identity,
            anchor=anchor,
            handle=handle,
            now=now,
        ).run()


class _Invocation:
    def __init__(
        self,
        *,
        settings: Settings,
        reporter: Reporter,
        identity: str,
        anchor: trust.TrustAnchor,
        handle: combined_file.LockedFile,
        now: datetime,
    ) -> None:
        self.settings = settings
        self.reporter = reporter
        self.identity = identity
        self.anchor = anchor
        self.handle = handle
        self.now = now
        self._server: CaramelServer | None = None

    def run(self) -> Outcome:
        for name in self.handle.remove_stale_temporaries():
            self.reporter.progress(f"removed {name}, left by an interrupted invocation")
        data, mtime = self.handle.read()
        try:
            return self._run_with(parse(data, mtime))
        except CorruptFileError as error:
            aside = combined_file.corrupt_name(self.settings.file, self.now)
            note = (
                f"{self.settings.file} could not be parsed ({error}); kept it as {aside} "
                "and made a new key"
            )
            return self._enroll(set_aside_as=aside, note=note)

    def _run_with(self, state: LocalState | ProvisionedKey | None) -> Outcome:
        """Raises ``CorruptFileError`` when the key turns out unusable on the way."""
        if state is None:
            self.reporter.progress(f"no key in {self.settings.file}: making one")
            return self._enroll()
        if self.handle.apply_ownership():
            self.reporter.progress("owner or mode of the combined file corrected")
        try:
            if decision.needs_new_request(state, self.anchor.facts.subject, self.identity):
                return self._request_anew(state)
            assert isinstance(state, LocalState)
            return self._ask(state)
        finally:
            self._close_server()

    def _ask(self, state: LocalState) -> Outcome:
        server = self._connect()
        plan = decision.plan_request(state, self.now)
        self.reporter.progress(
            f"GET {plan.request_sha256[:16]}…"
            + (" with our certificate" if plan.present_client_certificate else "")
            + (f", If-Modified-Since {plan.if_modified_since}" if plan.if_modified_since else "")
        )
        answer = server.get_certificate(plan, self.settings.file)
        self.reporter.progress(f"server answered {answer.status} {answer.reason}")
        action = decision.after_get(state, plan, answer)
        if isinstance(action, decision.Keep):
            if action.new_validator is not None:
                self.handle.set_mtime(action.new_validator)
                self.reporter.progress("kept the certificate's new Last-Modified as the mtime")
            self.reporter.progress("installed certificate is current")
            return Outcome(ExitStatus.OK)
        if isinstance(action, decision.Install):
            return self._install(state, action)
        if isinstance(action, decision.Wait):
            return Outcome(ExitStatus.WAITING)
        if isinstance(action, decision.Post):
            return self._post(state)
        if isinstance(action, decision.StartOver):
            self._close_server()  # it may have shown the certificate that is wiped now
            note = (
                "the CA rejected our request: wiped key, certificate and request, made a new key"
            )
            return self._enroll(note=note)
        raise ServerAnswerError(action.message)

    def _install(self, state: LocalState, action: decision.Install) -> Outcome:
        from caramel_embedded import pki

        pki.check_issued_certificate(
            action.certificate_der,
            [ca.certificate_der for ca in self.anchor.certificates],
            state.key_der,
            self.identity,
            self.now,
        )
        facts = action.facts  # read once, by the decision
        mtime = decision.last_modified_or_not_before(action.last_modified, facts.not_before)
        content = compose(state.key_der, state.request_der, action.certificate_der)
        self.handle.replace(content, mtime=mtime)
        self.reporter.progress(
            f"installed a certificate valid until {facts.not_after:%Y-%m-%d %H:%M:%S} UTC"
        )
        return Outcome(ExitStatus.OK)

    def _enroll(self, set_aside_as: Path | None = None, note: str | None = None) -> Outcome:
        """Write a new key and its request, then post it: the key is on disk before.

        The one case where a run that ends in 127 has written: a posted key must never be
        lost, so it stays when the post fails.
        """
        from caramel_embedded import pki

        self.reporter.progress(f"generating an RSA {self.settings.key_bits}-bit key")
        key_der = pki.new_private_key(self.settings.key_bits)
        request_der = pki.new_request(key_der, self.anchor.certificate_der, self.identity)
        content = compose(key_der, request_der)
        self.handle.replace(content, set_aside_as=set_aside_as)
        failure = None if note is None else f"before that: {note}; its request is not posted yet"
        try:
            return self._post(_parsed(content), note, failure)
        finally:
            self._close_server()

    def _request_anew(self, state: LocalState | ProvisionedKey) -> Outcome:
        """Post a request for the held key; write it only once the server has accepted it.

        Until then the file keeps its bytes: a wrong CA or an unreachable server costs the
        device nothing, and an installed certificate stays in the file, usable, until the
        new request's certificate replaces it. A run killed between the post and the write
        loses nothing: the same key and subject give the same request bytes (an RSA PKCS#1
        v1.5 signature is deterministic), which the next run posts as a duplicate.
        """
        from caramel_embedded import pki

        request_der = pki.new_request(state.key_der, self.anchor.certificate_der, self.identity)
        if isinstance(state, ProvisionedKey):
            self.reporter.progress("the file holds a provisioned key: made its request")
            certificate_der, note = None, None
            failure = "the provisioned key's request was not accepted; the file is unchanged"
        else:
            certificate_der = state.certificate_der
            note = "the request named another client id or CA: posted a new one for the same key"
            if certificate_der is not None:
                note += " (the installed certificate stays until its replacement is signed)"
            failure = "a new request for the same key was not accepted; the file is unchanged"
        content = compose(state.key_der, request_der, certificate_der)
        outcome = self._post(_parsed(content), note, failure)
        self.handle.replace(content)
        return outcome

    def _post(
        self, state: LocalState, note: str | None = None, failure: str | None = None
    ) -> Outcome:
        """POST the held request; 69 once accepted, else the error with ``failure`` added."""
        server = self._connect()
        self.reporter.progress(f"POST {state.request_sha256[:16]}…")
        try:
            answer = server.post_request(state.request_sha256, state.request_pem)
        except CaramelError as error:
            raise _with_note(error, failure) from None
        self.reporter.progress(f"server answered {answer.status} {answer.reason}")
        action = decision.after_post(answer)
        if isinstance(action, decision.Fail):
            raise _with_note(ServerAnswerError(action.message), failure)
        if note is None:
            return Outcome(ExitStatus.WAITING)
        return Outcome(ExitStatus.WAITING, f"{note}; posted its request, waiting for a signature")

    def _connect(self) -> CaramelServer:
        from caramel_embedded import transport

        if self._server is None:
            assert self.settings.server is not None
            self._server = transport.CaramelServer(
                self.settings.server,
                self.anchor,
                self.identity,
                transport.Deadline(self.settings.timeout),
                self.reporter.progress,
            )
        return self._server

    def _close_server(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


def _with_note(error: CaramelError, note: str | None) -> CaramelError:
    """The same error, its line extended by what the run did or kept before it failed."""
    if note is not None and not isinstance(error, InterruptedBySignal):
        error.args = (f"{error} ({note})",)
    return error


def _parsed(content: bytes) -> LocalState:
    """The state of content we just composed (always key, [certificate,] request)."""
    state = parse(content)
    assert isinstance(state, LocalState)
    return state
