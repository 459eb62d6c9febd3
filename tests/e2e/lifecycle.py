"""The certificate lifecycle against the real server: one list of steps for the e2e suite
and the demo, so the demo shows exactly what the tests assert.

Each step runs the client (and admin commands) and checks three things: the exit status,
the combined file, and the server's side (``caramel_tool --list`` and nginx's log). A step
that sees anything else raises ``StepFailed`` with the command, its output and what nginx
logged, which is what a developer needs to tell a client bug from a server surprise.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import fcntl
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.x509.oid import NameOID

from testbed import pki
from testbed.command import client_command, run_client
from testbed.harness import AccessRecord, CaramelStack, CsrRecord

EXIT_OK = 0
EXIT_LOCKED = 1
EXIT_PENDING = 69
EXIT_ERROR = 127
EXIT_STATUSES = frozenset({EXIT_OK, EXIT_LOCKED, EXIT_PENDING, EXIT_ERROR})

# Seconds between two signatures of one CSR: the server tells certificates apart by
# notAfter, which has a resolution of one second.
SIGNATURE_GAP = 1.1


class StepFailed(AssertionError):
    """A lifecycle step saw something other than what the contract says."""


@dataclass
class CommandRun:
    """One command a step ran, as the demo prints it and a failure reports it."""

    argv: list[str]
    status: int
    stdout: str
    stderr: str
    expected: int | None = None
    seconds: float = 0.0

    @property
    def command_line(self) -> str:
        """The command as a shell would take it."""
        return shlex.join(self.argv)

    def render(self) -> list[str]:
        """Lines for a report: the command, its status, and its output."""
        status = f"exit {self.status}"
        if self.expected is not None:
            status += (
                " (expected)" if self.status == self.expected else f" (EXPECTED {self.expected})"
            )
        lines = [f"  $ {self.command_line}", f"    -> {status}, {self.seconds:.2f} s"]
        lines += [f"    stdout: {line}" for line in self.stdout.splitlines()]
        lines += [f"    stderr: {line}" for line in self.stderr.splitlines()]
        return lines


@dataclass
class StepReport:
    """What one step did and saw."""

    number: int
    name: str
    title: str
    expected: int
    commands: list[CommandRun] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    server: list[str] = field(default_factory=list)

    def render(self) -> str:
        """The step as the demo prints it."""
        lines = [f"[{self.number}/{len(STEPS)}] {self.title} (expect exit {self.expected})"]
        for command in self.commands:
            lines += command.render()
        lines += [f"  combined file: {change}" for change in self.changes]
        lines += [f"  server: {line}" for line in self.server]
        return "\n".join(lines)


# The lifecycle, in order: (name, title, expected exit status of the client).
STEP_TABLE: tuple[tuple[str, str, int], ...] = (
    ("first_run", "first run: a new key and CSR, posted to the server", EXIT_PENDING),
    ("pending", "again before anyone signs: still pending", EXIT_PENDING),
    ("signed", "the administrator signs: the certificate is installed", EXIT_OK),
    ("current", "again: the certificate is current, nothing is written", EXIT_OK),
    ("not_modified", "behind the Last-Modified front: 304, no certificate sent", EXIT_OK),
    ("refresh", "the administrator refreshes: a new certificate, same key", EXIT_OK),
    ("reject", "the administrator rejects: a new key and a new CSR, posted", EXIT_PENDING),
    ("locked", "another invocation holds the lock on the file", EXIT_LOCKED),
    ("server_stopped", "the server is stopped: an error, the file is kept", EXIT_ERROR),
)
STEPS: tuple[str, ...] = tuple(name for name, _, _ in STEP_TABLE)

# Steps whose failure leaves the device as the next step needs it (holding its signed
# certificate): the walk goes on after them, so one failure does not hide the others.
SOFT_STEPS = frozenset({"not_modified"})


def listing_summary(record: CsrRecord) -> str:
    """The demo's line for the server's record of our request (``caramel_tool --list``):
    its notAfter once signed, else that it is not signed yet."""
    not_after = f"{record.not_after:%Y-%m-%d %H:%M:%S}Z" if record.not_after else "not signed"
    return (
        f"caramel_tool --list: id {record.id}, CN {record.cn}, "
        f"sha256 {record.sha256[:16]}…, notAfter {not_after}"
    )


class Lifecycle:
    """One device's combined file walked through ``STEPS`` against one ``CaramelStack``.

    Steps depend on their predecessors and must run in order; after a failure the walk
    is over (``failed_step`` says where), unless the step is one of ``SOFT_STEPS``.
    """

    def __init__(
        self,
        stack: CaramelStack,
        workdir: Path,
        client_id: str,
        verbose: bool = False,
        tpm: str | None = None,
    ) -> None:
        self.stack = stack
        self.tpm = tpm  # a TCTI: the walk in tpm2 mode, the key inside that TPM
        self.client_id = client_id
        self.verbose = verbose
        self.file = workdir / "client.pem"
        self.ca = pki.load_ca(stack.ca_cert)
        self.report: StepReport | None = None
        self.failed_step: str | None = None
        self._next = 0
        self._mark = 0
        self._admin_seen = 0
        self._signed_at = 0.0

    # ---- running steps

    def run_step(self, name: str) -> StepReport:
        """Run the next step; it must be ``name`` (the order is the point).

        After a failure the walk stops, unless the failed step is one that leaves the
        device's state as the next step needs it (``SOFT_STEPS``).
        """
        __tracebackhide__ = True
        if self.failed_step is not None:
            raise StepFailed(f"step {self.failed_step!r} failed; the lifecycle cannot go on")
        expected_name, title, expected = STEP_TABLE[self._next]
        if name != expected_name:
            raise StepFailed(f"steps run in order: next is {expected_name!r}, not {name!r}")
        self.report = StepReport(self._next + 1, name, title, expected)
        self._mark = self.stack.log_mark()
        self._admin_seen = len(self.stack.admin_history)
        step: Callable[[], None] = getattr(self, f"step_{name}")
        try:
            step()
        except StepFailed:
            self._collect_admin()
            if name in SOFT_STEPS and self.snapshot().cert_pem is not None:
                self._next += 1
            else:
                self.failed_step = name
            raise
        except BaseException:
            self.failed_step = name
            self._collect_admin()
            raise
        self._next += 1
        return self.report

    def _collect_admin(self) -> None:
        """Admin commands run since the last look go into the report, in order."""
        assert self.report is not None
        for done in self.stack.admin_history[self._admin_seen :]:
            self.report.commands.append(
                CommandRun(done.argv, done.returncode, done.stdout, done.stderr, 0, done.seconds)
            )
        self._admin_seen = len(self.stack.admin_history)

    # ---- commands

    def client_args(self, server: str) -> list[str]:
        """The documented command line: caramel-embedded [OPTIONS] SERVER CLIENT_ID."""
        args = ["--file", str(self.file), "--ca-cert", str(self.stack.ca_cert)]
        if self.tpm is not None:
            args += ["--key-store", "tpm2", "--tpm", self.tpm]
        if self.verbose:
            args.append("-v")
        return [*args, server, self.client_id]

    def client(self, server: str, expected: int) -> CommandRun:
        """One invocation, checked for its status and, without -v, the output rules."""
        assert self.report is not None
        self._collect_admin()
        args = self.client_args(server)
        started = time.monotonic()
        try:
            done = run_client(args)
        except subprocess.TimeoutExpired as exc:
            raise StepFailed(f"the client did not finish: {shlex.join(exc.cmd)}") from exc
        run = CommandRun(
            [*client_command(), *args],
            done.returncode,
            done.stdout,
            done.stderr,
            expected,
            time.monotonic() - started,
        )
        self.report.commands.append(run)
        self.expect(run.status in EXIT_STATUSES, f"status {run.status} is not in the contract")
        self.expect(run.status == expected, f"expected exit status {expected}, got {run.status}")
        if not self.verbose:
            self._check_output_rules(run)
        return run

    def _check_output_rules(self, run: CommandRun) -> None:
        """SPEC: nothing on success; at most one line for 1 and 69; one line for errors."""
        lines = run.stderr.splitlines()
        if run.status == EXIT_OK:
            self.expect(not run.stdout and not run.stderr, "a success must print nothing")
        elif run.status in (EXIT_LOCKED, EXIT_PENDING):
            self.expect(len(lines) <= 1, f"status {run.status} prints at most one line")
        else:
            self.expect(len(lines) == 1, "an error prints exactly one line on stderr")

    def tool(self, argv: Sequence[str], expected: int = 0) -> CommandRun:
        """A helper command of the check itself (curl, openssl), kept in the report."""
        assert self.report is not None
        self._collect_admin()
        started = time.monotonic()
        done = subprocess.run(
            list(argv), capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
        run = CommandRun(
            list(argv),
            done.returncode,
            done.stdout,
            done.stderr,
            expected,
            time.monotonic() - started,
        )
        self.report.commands.append(run)
        self.expect(run.status == expected, f"{argv[0]} exited {run.status}")
        return run

    # ---- checks

    def expect(self, condition: bool, message: str) -> None:
        """Fail the step with everything needed to understand why."""
        __tracebackhide__ = True
        if condition:
            return
        context = [f"step {self.report.name if self.report else '?'}: {message}"]
        if self.report is not None:
            for command in self.report.commands:
                context += command.render()
        records = self.stack.access_records()[self._mark :]
        context += [f"  nginx: {record.summary()}" for record in records] or ["  nginx: nothing"]
        context.append(f"  file: {pki.CombinedFile.read(self.file).describe()}")
        raise StepFailed("\n".join(context))

    def snapshot(self) -> pki.CombinedFile:
        """The combined file now."""
        return pki.CombinedFile.read(self.file)

    def requests(
        self, until: Callable[[list[AccessRecord]], bool] | None = None
    ) -> list[AccessRecord]:
        """What nginx logged during this step (waiting briefly for late lines)."""
        return self.stack.records_since(self._mark, until)

    def client_requests(
        self, until: Callable[[list[AccessRecord]], bool] | None = None
    ) -> list[AccessRecord]:
        """The client's own requests this step (our curl calls are told apart by UA)."""
        records = self.requests(until)
        return [r for r in records if r.front != "lm-origin" and "curl/" not in r.user_agent]

    def listed_for_client(self) -> list[CsrRecord]:
        """The server's pending or signed requests with our client id as CN."""
        return [r for r in self.stack.list_requests() if r.cn == self.client_id]

    def record_changes(self, before: pki.CombinedFile, after: pki.CombinedFile) -> None:
        """Note what changed in the file, for the demo."""
        assert self.report is not None
        self.report.changes = pki.describe_change(before, after)

    def record_server(self, records: Sequence[AccessRecord], extra: Sequence[str] = ()) -> None:
        """Note what the server side saw, for the demo."""
        assert self.report is not None
        self.report.server += [*extra, *(r.summary() for r in records)]

    def check_untouched(self, before: pki.CombinedFile, after: pki.CombinedFile) -> None:
        """Nothing written: same bytes and the same modification time."""
        self.expect(after.raw == before.raw, "the combined file's bytes changed")
        self.expect(after.mtime_ns == before.mtime_ns, "the combined file's mtime changed")

    def check_request_state(self, state: pki.CombinedFile, with_cert: bool) -> None:
        """The file's shape and its CSR: key, [certificate], request; mode 0600."""
        key_label = "PRIVATE KEY" if self.tpm is None else pki.TPM_KEY
        labels = [key_label, "CERTIFICATE", "CERTIFICATE REQUEST"]
        if not with_cert:
            labels.remove("CERTIFICATE")
        self.expect(state.exists, "no combined file")
        self.expect(state.labels == labels, f"file blocks {state.labels}, expected {labels}")
        self.expect(state.mode == 0o600, f"file mode {state.mode:04o}, expected 0600")
        numbers, csr = state.public_numbers, state.csr
        self.expect(numbers is not None and numbers.n.bit_length() == 2048, "not RSA-2048")
        assert csr is not None
        self.expect(csr.is_signature_valid, "the CSR's signature does not verify")
        self.expect(
            csr.public_key().public_numbers() == numbers, "the CSR is not for the file's key"
        )
        wanted = pki.csr_subject(self.ca, self.client_id)
        self.expect(
            csr.subject == wanted,
            f"CSR subject {csr.subject.rfc4514_string()}, expected {wanted.rfc4514_string()}",
        )

    def listed_request(self, state: pki.CombinedFile) -> CsrRecord:
        """The server lists exactly one request for us: the file's CSR, CN = client id."""
        listed = self.listed_for_client()
        self.expect(
            [r.sha256 for r in listed] == [state.csr_sha256],
            f"server lists {[(r.id, r.sha256[:12]) for r in listed]} for CN={self.client_id}, "
            f"expected the file's CSR {state.csr_sha256}",
        )
        return listed[0]

    def check_listed(self, state: pki.CombinedFile) -> CsrRecord:
        """``listed_request``, and its line in the step's server summary."""
        listed = self.listed_request(state)
        assert self.report is not None
        self.report.server.append(listing_summary(listed))
        return listed

    def check_certificate(self, state: pki.CombinedFile) -> None:
        """Installed certificate: ours (CN, key), current, and chained to the CA."""
        self.check_request_state(state, with_cert=True)
        cert = state.certificate
        assert cert is not None
        assert state.cert_pem is not None
        cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        self.expect(cn == [self.client_id], f"certificate CN {cn}, expected {self.client_id}")
        self.expect(
            cert.public_key().public_numbers() == state.public_numbers,
            "the certificate is not for the file's key",
        )
        now = dt.datetime.now(dt.UTC)
        self.expect(
            cert.not_valid_before_utc <= now < cert.not_valid_after_utc,
            "the certificate is not current",
        )
        verified = pki.openssl_verify(self.stack.ca_cert, state.cert_pem)
        self.expect(
            verified.returncode == 0 and verified.stdout.strip().endswith(": OK"),
            f"openssl verify: {verified.stdout}{verified.stderr}",
        )

    def check_presented(self, record: AccessRecord) -> None:
        """nginx verified the certificate the client presented, and the UA names us. In
        tpm2 mode the client shows none (docs/tpm.md, "Mutual TLS")."""
        if self.tpm is not None:
            self.expect(
                record.client_verify != "SUCCESS" and self.client_id in record.user_agent,
                f"nginx: {record.client_verify!r}, expected no client certificate in tpm2 mode",
            )
            return
        self.expect(
            record.client_verify == "SUCCESS",
            f"nginx: client certificate {record.client_verify!r}, expected SUCCESS",
        )
        self.expect(
            f"CN={self.client_id}," in record.client_subject + ",",
            f"nginx: client certificate subject {record.client_subject!r}",
        )
        self.expect(
            self.client_id in record.user_agent,
            f"User-Agent {record.user_agent!r} lacks the client id",
        )

    def only(self, records: Sequence[AccessRecord], what: str) -> AccessRecord:
        """Exactly one request of a kind."""
        self.expect(len(records) == 1, f"expected one {what}, nginx logged {len(records)}")
        return records[0]

    def gets(self, records: Sequence[AccessRecord], sha256: str | None) -> list[AccessRecord]:
        """The GETs of one certificate URL."""
        return [r for r in records if r.method == "GET" and r.path == sha256]

    def posts(self, records: Sequence[AccessRecord], sha256: str | None) -> list[AccessRecord]:
        """The POSTs of one CSR."""
        return [r for r in records if r.method == "POST" and r.path == sha256]

    # ---- the steps

    def step_first_run(self) -> None:
        """No file: the client makes a key and CSR, finds it unknown (404), posts it."""
        before = self.snapshot()
        self.expect(not before.exists, f"{self.file} exists before the first run")
        self.client(self.stack.front_url, EXIT_PENDING)
        after = self.snapshot()
        self.record_changes(before, after)
        self.check_request_state(after, with_cert=False)
        sha = after.csr_sha256
        records = self.client_requests(lambda rs: bool(self.posts(rs, sha)))
        self.record_server(records)
        post = self.only(self.posts(records, sha), f"POST /{sha}")
        self.expect(post.status == 202, f"the POST got {post.status}, expected 202")
        self.expect(self.client_id in post.user_agent, f"User-Agent {post.user_agent!r}")
        self.expect(
            [r.status for r in self.gets(records, sha)] in ([404], []),
            "the GET before the POST did not get 404",
        )
        self.check_listed(after)

    def step_pending(self) -> None:
        """Posted, not signed: 202, nothing written, nothing posted again."""
        before = self.snapshot()
        self.client(self.stack.front_url, EXIT_PENDING)
        after = self.snapshot()
        self.record_changes(before, after)
        self.check_untouched(before, after)
        sha = after.csr_sha256
        records = self.client_requests(lambda rs: bool(self.gets(rs, sha)))
        self.record_server(records)
        get = self.only(self.gets(records, sha), f"GET /{sha}")
        self.expect(get.status == 202, f"the GET got {get.status}, expected 202")
        self.expect(not self.posts(records, sha), "the client posted a pending request again")
        self.check_listed(after)

    def step_signed(self) -> None:
        """The admin signs; the client installs it; curl can use the file as it is."""
        before = self.snapshot()
        # The summary shows the server's record after the signing (below), not this one.
        listed = self.listed_request(before)
        self.stack.sign(listed.id)
        self._signed_at = time.monotonic()
        self.client(self.stack.front_url, EXIT_OK)
        after = self.snapshot()
        self.record_changes(before, after)
        self.check_certificate(after)
        self.expect(after.key_pem == before.key_pem, "the key changed")
        self.expect(after.csr_pem == before.csr_pem, "the CSR changed")
        sha = after.csr_sha256
        records = self.client_requests(lambda rs: bool(self.gets(rs, sha)))
        get = self.only(self.gets(records, sha), f"GET /{sha}")
        self.expect(get.status == 200, f"the GET got {get.status}, expected 200")
        if self.tpm is not None:  # curl would need the TPM's provider to use the file
            self.record_server(records)
            self.check_listed(after)
            return
        # The combined file works with curl as it is, and nginx verifies it.
        mark = self.stack.log_mark()
        self.tool(
            [
                "curl",
                "--silent",
                "--show-error",
                "--fail",
                "--output",
                os.devnull,
                "--cacert",
                str(self.stack.ca_cert),
                "--cert",
                str(self.file),
                f"{self.stack.front_url}/{sha}",
            ]
        )
        curl = self.stack.records_since(mark, bool)
        self.record_server([*records, *curl])
        used = self.only(curl, "curl request")
        self.expect(used.status == 200, f"curl --cert got {used.status}")
        self.expect(
            used.client_verify == "SUCCESS" and f"CN={self.client_id}," in used.client_subject,
            f"nginx did not verify curl's certificate: {used.summary()}",
        )
        # The server's record now names the certificate the device installed.
        signed = self.check_listed(after)
        installed = after.certificate
        assert installed is not None
        self.expect(
            signed.not_after is not None
            and signed.not_after.replace(tzinfo=dt.UTC) == installed.not_valid_after_utc,
            f"the server lists notAfter {signed.not_after} for our request, the installed "
            f"certificate has {installed.not_valid_after_utc}",
        )

    def step_current(self) -> None:
        """Nothing new: 0, nothing written; the certificate is shown and verified."""
        before = self.snapshot()
        self.client(self.stack.front_url, EXIT_OK)
        after = self.snapshot()
        self.record_changes(before, after)
        self.check_untouched(before, after)
        sha = after.csr_sha256
        records = self.client_requests(lambda rs: bool(self.gets(rs, sha)))
        self.record_server(records)
        get = self.only(self.gets(records, sha), f"GET /{sha}")
        self.expect(get.status == 200, f"the GET got {get.status}, expected 200")
        self.check_presented(get)
        # No Last-Modified came with this certificate: If-Modified-Since is its notBefore.
        cert = after.certificate
        assert cert is not None
        self.expect(bool(get.if_modified_since), "no If-Modified-Since with a certificate")
        sent = email.utils.parsedate_to_datetime(get.if_modified_since)
        self.expect(
            sent == cert.not_valid_before_utc,
            f"If-Modified-Since {get.if_modified_since!r} is not the notBefore "
            f"{cert.not_valid_before_utc}",
        )

    def step_not_modified(self) -> None:
        """Front ``lm`` stamps Last-Modified with the time it fetched the certificate.

        The first call sends the notBefore as If-Modified-Since (the certificate came
        without Last-Modified) and gets the same certificate again, with Last-Modified: no
        bytes may change. The second call sends that Last-Modified back and gets 304 with
        no body. The first fetch is made in a later second than the notBefore, so the two
        dates differ and the first call cannot get a 304 by coincidence.
        """
        before = self.snapshot()
        sha = before.csr_sha256
        cert = before.certificate
        assert cert is not None
        time.sleep(max(0.0, cert.not_valid_before_utc.timestamp() + 1.05 - time.time()))
        self.client(self.stack.lm_front_url, EXIT_OK)
        first = self.client_requests(lambda rs: bool(self.gets(rs, sha)))
        mark = self.stack.log_mark()
        self.client(self.stack.lm_front_url, EXIT_OK)
        second = [
            r
            for r in self.stack.records_since(mark, lambda rs: bool(self.gets(rs, sha)))
            if r.front == "lm"
        ]
        after = self.snapshot()
        self.record_changes(before, after)
        self.record_server([*first, *second])
        self.expect(after.raw == before.raw, "the combined file's bytes changed")
        primer = self.only(self.gets(first, sha), f"first GET /{sha}")
        self.expect(
            primer.status == 200 and bool(primer.last_modified),
            f"the first GET got {primer.status} (Last-Modified {primer.last_modified!r}), "
            "expected 200 with Last-Modified",
        )
        get = self.only(self.gets(second, sha), f"second GET /{sha}")
        self.expect(
            get.if_modified_since == primer.last_modified,
            f"the second GET sent If-Modified-Since {get.if_modified_since!r}, not the "
            f"Last-Modified {primer.last_modified!r} that came with the certificate",
        )
        self.expect(get.status == 304, f"the second GET got {get.status}, expected 304")
        self.expect(get.body_bytes_sent == 0, f"304 with {get.body_bytes_sent} body bytes")
        self.check_presented(get)

    def step_refresh(self) -> None:
        """The admin re-signs the same CSR: a new certificate for the same key."""
        before = self.snapshot()
        old = before.certificate
        listed_before = self.check_listed(before)
        # Two signatures within one second are indistinguishable to the server.
        time.sleep(max(0.0, self._signed_at + SIGNATURE_GAP - time.monotonic()))
        self.stack.refresh()
        listed_after = self.check_listed(before)
        self.expect(
            listed_before.not_after is not None
            and listed_after.not_after is not None
            and listed_after.not_after > listed_before.not_after,
            f"refresh did not issue a later certificate ({listed_before.not_after} -> "
            f"{listed_after.not_after})",
        )
        self.client(self.stack.front_url, EXIT_OK)
        after = self.snapshot()
        self.record_changes(before, after)
        self.check_certificate(after)
        new = after.certificate
        assert old is not None
        assert new is not None
        self.expect(new.serial_number != old.serial_number, "the certificate was not replaced")
        self.expect(new.not_valid_after_utc > old.not_valid_after_utc, "notAfter did not move")
        self.expect(after.key_pem == before.key_pem, "the key changed")
        self.expect(after.csr_pem == before.csr_pem, "the CSR changed")
        sha = after.csr_sha256
        records = self.client_requests(lambda rs: bool(self.gets(rs, sha)))
        self.record_server(records)
        get = self.only(self.gets(records, sha), f"GET /{sha}")
        self.expect(get.status == 200, f"the GET got {get.status}, expected 200")
        self.check_presented(get)

    def step_reject(self) -> None:
        """403: the client forgets key, certificate and CSR, and posts a new request."""
        before = self.snapshot()
        listed = self.check_listed(before)
        self.stack.reject(listed.id)
        self.client(self.stack.front_url, EXIT_PENDING)
        after = self.snapshot()
        self.record_changes(before, after)
        self.check_request_state(after, with_cert=False)
        self.expect(after.key_pem != before.key_pem, "the key was not replaced")
        self.expect(after.csr_sha256 != before.csr_sha256, "the CSR was not replaced")
        old_sha, new_sha = before.csr_sha256, after.csr_sha256
        records = self.client_requests(lambda rs: bool(self.posts(rs, new_sha)))
        rejected = self.only(self.gets(records, old_sha), f"GET of the rejected /{old_sha}")
        self.expect(rejected.status == 403, f"the rejected GET got {rejected.status}")
        post = self.only(self.posts(records, new_sha), f"POST /{new_sha}")
        self.expect(post.status == 202, f"the new POST got {post.status}")
        self.record_server(records)
        self.check_listed(after)

    def step_locked(self) -> None:
        """Our process holds the flock: the client exits 1 at once, touching nothing."""
        before = self.snapshot()
        fd = os.open(self.file, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.client(self.stack.front_url, EXIT_LOCKED)
        finally:
            os.close(fd)
        after = self.snapshot()
        self.record_changes(before, after)
        self.check_untouched(before, after)
        records = self.client_requests()
        self.record_server(records, ["(the lock was held by the test process)"])
        self.expect(not records, "the client went to the server while the file was locked")

    def step_server_stopped(self) -> None:
        """Caramel down (nginx answers 502), then nginx down too: 127, file kept."""
        before = self.snapshot()
        self.stack.stop_caramel()
        self.client(self.stack.front_url, EXIT_ERROR)
        sha = before.csr_sha256
        records = self.client_requests(lambda rs: bool(self.gets(rs, sha)))
        get = self.only(self.gets(records, sha), f"GET /{sha}")
        self.expect(get.status == 502, f"nginx answered {get.status} without Caramel")
        self.stack.stop_nginx()
        self.client(self.stack.front_url, EXIT_ERROR)
        after = self.snapshot()
        self.record_changes(before, after)
        self.check_untouched(before, after)
        self.record_server(records, ["Caramel stopped, then nginx stopped"])
