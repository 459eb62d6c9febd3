"""A real Caramel server behind nginx, on loopback ports, for the e2e suite and the demo.

The fake signer in the package suite proves what we *think* the server does; this harness
runs what users deploy: Caramel 1.9.6 from PyPI under waitress (``pserve``), fronted by
nginx terminating TLS with ``ssl_verify_client optional`` against the Caramel CA.

Layout of one stack (every port a free loopback port, every file in one temporary
directory that is removed at the end):

* ``waitress`` runs the Caramel app (plain HTTP, reachable from nginx only in practice);
* front ``mtls`` (``front_url``) terminates TLS, asks for an optional client certificate,
  proxies to waitress and logs each request as one JSON line;
* front ``lm`` (``lm_front_url``) is the same, but fetches certificates through an inner
  nginx server that stamps ``Last-Modified`` on them and caches them for a short time, so
  nginx itself answers ``304`` to a matching ``If-Modified-Since`` (the server never does);
* ``caramel_tool`` administers (list, sign, reject, refresh).

With ``conditional=True`` (or after ``set_conditional(True)``) Caramel's app runs behind
the operators' conditional filter (``for-caramel-operators/``), wired with PasteDeploy's
``filter-with`` in the same INI the admin tools read, as an operator deploys it
(``filter_settings``: its section's settings, the max-age hint).
``database_url`` puts Caramel on another database than its SQLite file (the fleet's
PostgreSQL), and ``set_processes(n)`` runs n Caramel processes behind nginx's one upstream.

Caramel gets its own virtualenv, cached in ``<repo>/.cache/caramel-server-venv``: its
pins (pyOpenSSL 24.2.1, cryptography < 44) conflict with the client's, and a fresh one
costs a download. Every process is started in its own session and dies with us: on
leaving the context, on an exception or interrupt, at interpreter exit, and (through the
kernel's parent-death signal) even when the Python process running us is killed. The one
exception is a stack started with ``detached=True`` (``make demo-server``): its processes
outlive us, and ``tests/e2e/demo_server.py`` records their ids to stop them later.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from testbed.configs import Ports, caramel_ini, make_tls_server_certificate, nginx_conf
from testbed.processes import (
    INTERRUPTS,
    OWNER_FILE,
    PORT_ATTEMPTS,
    WORKDIR_PREFIX,
    HarnessError,
    PortTaken,
    Service,
    find_nginx,
    free_port,
    remove_stale_workdirs,
    serves_ca_over_http,
    start_service,
    tls_handshake_with_ca,
    wait_until_ready,
)
from testbed.records import AccessRecord, AdminRun, CsrRecord, parse_access_log, parse_csr_list
from testbed.server_venv import REPO_ROOT, SERVER_VENV, ensure_server_venv

__all__ = ["AccessRecord", "CaramelStack", "CsrRecord", "HarnessError"]

# The CA's subject as caramel_ca asks for it on stdin, in its prompt order: C, ST, L, O,
# OU (CN is fixed to "Caramel Signing Certificate"). ST is cut at 20 characters.
CA_SUBJECT_ANSWERS: tuple[tuple[str, str], ...] = (
    ("C", "SE"),
    ("ST", "Ostergotland"),
    ("L", "Linkoping"),
    ("O", "Caramel Embedded E2E"),
    ("OU", "Devices"),
)

# What an operator deploys next to Caramel: the conditional filter's module lives here.
OPERATORS_DIR = REPO_ROOT / "for-caramel-operators"

# How long front "lm" keeps a fetched certificate (and so its Last-Modified).
LM_CACHE_SECONDS = 30

# --------------------------------------------------------------------------------------
# The stack


class CaramelStack:
    """Caramel 1.9.6 under waitress behind two nginx fronts, as a context manager.

    Use::

        with CaramelStack() as stack:
            run_client([..., "--ca-cert", str(stack.ca_cert), stack.front_url, "dev-1"])

    Admin commands (``list_requests``, ``sign``, ``reject``, ``refresh``) raise
    ``HarnessError`` when caramel_tool reports a failure, including the ones it reports
    only in its output. ``admin_history`` keeps every admin command for reports.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        lm_cache_seconds: int = LM_CACHE_SECONDS,
        keep: bool = False,
        conditional: bool = False,
        ca_subject: tuple[tuple[str, str], ...] = CA_SUBJECT_ANSWERS,
        detached: bool = False,
        filter_settings: Mapping[str, str] | None = None,
        database_url: str | None = None,
    ) -> None:
        self._given_workdir = workdir
        self.filter_settings = dict(filter_settings or {})
        self.database_url = database_url
        # Detached: the servers outlive this process (make demo-server); see start_service.
        self.detached = detached
        self.conditional = conditional
        # caramel_ca's answers (C, ST, L, O, OU): a second CA differs in OU, say.
        self.ca_subject = ca_subject
        self._keep = keep
        self.lm_cache_seconds = lm_cache_seconds
        # Set by start(); removed by close() only if start() made it.
        self.directory = Path("/nonexistent/caramel-e2e-not-started")
        self._made_workdir: Path | None = None
        self.venv = SERVER_VENV
        self.ports = Ports(0, 0, 0, 0)
        self.caramel: Service | None = None
        # Further Caramel processes (set_processes), each on its own port.
        self.more_caramels: list[tuple[int, Service]] = []
        self.nginx: Service | None = None
        self.admin_history: list[AdminRun] = []
        self._signals: contextlib.ExitStack | None = None

    @classmethod
    def running_in(cls, directory: Path) -> CaramelStack:
        """A stack another process started in ``directory`` (make demo-server), for its
        admin commands; its servers are not this object's to stop."""
        stack = cls(workdir=directory, keep=True)
        stack.directory = directory
        return stack

    # ---- paths and addresses

    @property
    def ini(self) -> Path:
        """The Caramel configuration file (the argument of every caramel command)."""
        return self.directory / "caramel.ini"

    @property
    def ca_cert(self) -> Path:
        """The Caramel CA certificate: the only trust anchor of every client."""
        return self.directory / "ca" / "caramel.ca.cert"

    @property
    def ca_key(self) -> Path:
        """The CA's private key (tests forge certificates with it)."""
        return self.directory / "ca" / "caramel.ca.key"

    @property
    def access_log_path(self) -> Path:
        """nginx's JSON-lines access log, shared by all fronts."""
        return self.directory / "access.log"

    @property
    def front_url(self) -> str:
        """Front ``mtls``: TLS, optional client certificate, straight to Caramel."""
        return f"https://127.0.0.1:{self.ports.mtls}"

    @property
    def lm_front_url(self) -> str:
        """Front ``lm``: like ``mtls``, plus Last-Modified and 304 on certificates."""
        return f"https://127.0.0.1:{self.ports.lm}"

    def tool(self, name: str) -> Path:
        """A console script of the server venv."""
        return self.venv / "bin" / name

    def server_env(self) -> dict[str, str]:
        """The server's environment: Caramel also reads CARAMEL_* (CARAMEL_CA_CERT, say),
        the same names as the client's settings, so none of ours may leak into it."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CARAMEL_") and k not in {"PYTHONPATH", "PYTHONHOME"}
        }
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv)
        if self.conditional:
            # The operator copies the module next to Caramel; here it is found in place.
            env["PYTHONPATH"] = str(OPERATORS_DIR)
        return env

    # ---- lifecycle

    def __enter__(self) -> CaramelStack:
        self._signals = contextlib.ExitStack()
        self._signals.enter_context(INTERRUPTS.installed())
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Build everything and return once both fronts accept connections."""
        self.venv = ensure_server_venv()
        if self._given_workdir is not None:
            self._given_workdir.mkdir(parents=True, exist_ok=True)
            self.directory = self._given_workdir
        else:
            remove_stale_workdirs()
            self.directory = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
            self._made_workdir = self.directory
        (self.directory / OWNER_FILE).write_text(f"{os.getpid()}\n")
        self.ports = Ports(free_port(), free_port(), free_port(), free_port())
        self._write_ini()
        self._run_setup(["caramel_initialize_db", str(self.ini)], "caramel_initialize_db")
        self._make_ca()
        make_tls_server_certificate(self.ca_cert, self.ca_key, self.directory / "tls")
        for attempt in range(PORT_ATTEMPTS):
            try:
                self.start_caramel()
                break
            except PortTaken:
                if attempt == PORT_ATTEMPTS - 1:
                    raise
                self.ports = dataclasses.replace(self.ports, waitress=free_port())
                self._write_ini()
        for attempt in range(PORT_ATTEMPTS):
            try:
                self.start_nginx()
                break
            except PortTaken:
                if attempt == PORT_ATTEMPTS - 1:
                    raise
                self.ports = Ports(self.ports.waitress, free_port(), free_port(), free_port())

    def _ini_text(self, ports: Ports) -> str:
        return caramel_ini(
            self.directory,
            ports,
            self.conditional,
            filter_settings=self.filter_settings,
            database_url=self.database_url,
        )

    def _write_ini(self) -> None:
        """The INI of the first process, which the admin tools read too."""
        self.ini.write_text(self._ini_text(self.ports))

    def _run_setup(
        self, argv: list[str], what: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.tool(argv[0])), *argv[1:]]
        done = subprocess.run(
            argv,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            check=False,
            cwd=self.directory,
            env=self.server_env(),
            timeout=120,
        )
        if done.returncode != 0:
            raise HarnessError(f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done

    def _make_ca(self) -> None:
        """caramel_ca prompts for C, ST, L, O, OU on stdin and exits 0 even when it refuses
        (existing files, missing settings), so success is judged by its files."""
        answers = "".join(value + "\n" for _, value in self.ca_subject)
        done = self._run_setup(["caramel_ca", str(self.ini)], "caramel_ca", stdin=answers)
        if not (self.ca_cert.is_file() and self.ca_key.is_file()):
            raise HarnessError(f"caramel_ca made no CA:\n{done.stdout}{done.stderr}")
        self.ca_key.chmod(0o600)

    def start_caramel(self) -> None:
        """pserve (waitress) on its loopback port."""
        if self.caramel is not None and self.caramel.alive():
            return
        with INTERRUPTS.critical():
            self.caramel = start_service(
                "caramel (pserve)",
                [str(self.tool("pserve")), str(self.ini)],
                self.directory / "pserve.log",
                self.directory,
                self.server_env(),
                self.detached,
            )
        ca_pem = self.ca_cert.read_bytes()
        port = self.ports.waitress
        wait_until_ready(
            self.caramel, lambda: serves_ca_over_http(port, ca_pem), f"serving on {port}"
        )

    def start_nginx(self) -> None:
        """nginx in the foreground with its own prefix, pid, temp paths and logs."""
        if self.nginx is not None and self.nginx.alive():
            return
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.directory / "nginx-tmp" / sub).mkdir(parents=True, exist_ok=True)
        conf = self.directory / "nginx.conf"
        conf.write_text(
            nginx_conf(
                self.directory,
                self.ports,
                self.ca_cert,
                self.lm_cache_seconds,
                [port for port, _ in self.more_caramels],
            )
        )
        with INTERRUPTS.critical():
            self.nginx = start_service(
                "nginx",
                [
                    find_nginx(),
                    "-p",
                    str(self.directory),
                    "-c",
                    str(conf),
                    "-e",
                    str(self.directory / "nginx-error.log"),
                ],
                self.directory / "nginx-error.log",
                self.directory,
                self.server_env(),
                self.detached,
            )
        for port in (self.ports.mtls, self.ports.lm):
            wait_until_ready(
                self.nginx,
                lambda port=port: tls_handshake_with_ca(port, self.ca_cert),
                f"TLS on {port}",
            )

    def set_conditional(
        self, conditional: bool, filter_settings: Mapping[str, str] | None = None
    ) -> None:
        """Put the conditional filter in front of Caramel's app (with ``filter_settings``
        in its section), or take it away: the INI is rewritten and every pserve restarted
        (nginx and the database stay)."""
        settings = dict(filter_settings or {})
        if (
            (conditional, settings) == (self.conditional, self.filter_settings)
            and self.caramel is not None
            and self.caramel.alive()
        ):
            return
        more = [port for port, _ in self.more_caramels]
        self.stop_caramel()
        self.conditional = conditional
        self.filter_settings = settings
        self._write_ini()
        self.start_caramel()
        for port in more:
            self._start_more(port)

    @property
    def caramel_services(self) -> list[Service]:
        """Every Caramel process nginx sends requests to (the fleet reads their CPU)."""
        first = [] if self.caramel is None else [self.caramel]
        return first + [service for _, service in self.more_caramels]

    def set_processes(self, count: int) -> None:
        """Run ``count`` Caramel processes (the first one and count - 1 more, each on its
        own port, on the same database) behind the one upstream; nginx is restarted."""
        while len(self.more_caramels) > count - 1:
            _, service = self.more_caramels.pop()
            service.stop()
        while len(self.more_caramels) < count - 1:
            self._start_more(free_port())
        self.stop_nginx()
        self.start_nginx()

    def _start_more(self, port: int) -> None:
        """One more pserve: the same settings, its own port and INI."""
        number = len(self.more_caramels) + 2
        ini = self.directory / f"caramel-{number}.ini"
        ini.write_text(self._ini_text(dataclasses.replace(self.ports, waitress=port)))
        with INTERRUPTS.critical():
            service = start_service(
                f"caramel {number} (pserve)",
                [str(self.tool("pserve")), str(ini)],
                self.directory / f"pserve-{number}.log",
                self.directory,
                self.server_env(),
                self.detached,
            )
            self.more_caramels.append((port, service))
        ca_pem = self.ca_cert.read_bytes()
        wait_until_ready(service, lambda: serves_ca_over_http(port, ca_pem), f"serving on {port}")

    def stop_caramel(self) -> None:
        """Stop every waitress: nginx stays up and answers 502."""
        if self.caramel is not None:
            self.caramel.stop()
        while self.more_caramels:
            _, service = self.more_caramels.pop()
            service.stop()

    def stop_nginx(self) -> None:
        """Stop nginx: connections to the fronts are refused."""
        if self.nginx is not None:
            self.nginx.stop()

    def close(self) -> None:
        """Stop every process, then remove the working directory (unless kept).

        A second Ctrl-C or TERM meanwhile waits until this is done.
        """
        with INTERRUPTS.critical():
            try:
                self.stop_nginx()
                self.stop_caramel()
            finally:
                if self._signals is not None:
                    self._signals.close()
                    self._signals = None
                if not self._keep and self._made_workdir is not None:
                    shutil.rmtree(self._made_workdir, ignore_errors=True)
                    self._made_workdir = None

    # ---- administration

    def admin(self, *args: str) -> AdminRun:
        """Run ``caramel_tool INI ARGS`` and remember it; the caller judges the result."""
        argv = [str(self.tool("caramel_tool")), str(self.ini), *args]
        started = time.monotonic()
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            cwd=self.directory,
            env=self.server_env(),
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        run = AdminRun(argv, done.returncode, done.stdout, done.stderr, time.monotonic() - started)
        self.admin_history.append(run)
        return run

    def _admin_ok(self, *args: str) -> AdminRun:
        """caramel_tool logs errors to stderr, sometimes with status 0 (--refresh): any
        output on stderr is a failure."""
        done = self.admin(*args)
        if done.returncode != 0 or done.stderr.strip():
            raise HarnessError(
                f"caramel_tool {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}"
            )
        return done

    def list_requests(self) -> list[CsrRecord]:
        """The requests that are not rejected, signed ones first."""
        return parse_csr_list(self._admin_ok("--list").stdout)

    def request(self, sha256: str) -> CsrRecord | None:
        """The listed request with this CSR hash, if any."""
        return next((r for r in self.list_requests() if r.sha256 == sha256), None)

    def sign(self, csr_id: int) -> AdminRun:
        """``--sign ID``: ID is the number in the first column of --list, not a CN or hash.

        Two certificates for one CSR signed within the same second have the same
        notAfter, and the server picks the latest by notAfter: callers that sign again
        wait a second (see ``refresh``).
        """
        return self._admin_ok("--sign", str(csr_id))

    def reject(self, csr_id: int) -> AdminRun:
        """``--reject ID``: the server then answers 403 for it, and --list hides it."""
        return self._admin_ok("--reject", str(csr_id))

    def refresh(self, *extra: str) -> AdminRun:
        """``--refresh``: re-sign every signed request. It signs in worker threads and
        reports their failures only as log lines ("Future failed: ...") with status 0,
        which ``_admin_ok`` turns into an error."""
        return self._admin_ok("--refresh", *extra)

    # ---- what nginx saw

    def access_records(self) -> list[AccessRecord]:
        """Every request logged so far, in order."""
        try:
            text = self.access_log_path.read_text()
        except FileNotFoundError:
            return []
        # A line still being written has no newline yet: leave it for the next read.
        complete = text[: text.rfind("\n") + 1]
        return parse_access_log(complete)

    def log_mark(self, settle: float = 0.05) -> int:
        """A position in the access log: pass it to ``records_since``.

        nginx logs a request just after answering it, so the line of a request that has
        just been answered may still be coming: the mark is taken once the log has been
        quiet for ``settle`` seconds.
        """
        count = len(self.access_records())
        while True:
            time.sleep(settle)
            again = len(self.access_records())
            if again == count:
                return count
            count = again

    def records_since(
        self,
        mark: int,
        until: Callable[[list[AccessRecord]], bool] | None = None,
        timeout: float = 3.0,
    ) -> list[AccessRecord]:
        """Requests logged after ``mark``.

        nginx writes a line after it has sent the answer, so a client may exit before its
        request is logged: wait (briefly) until ``until`` holds, or until a short quiet
        period when it is not given.
        """
        deadline = time.monotonic() + timeout
        records = self.access_records()[mark:]
        while time.monotonic() < deadline:
            if until is not None and until(records):
                return records
            if until is None:
                time.sleep(0.2)
                again = self.access_records()[mark:]
                if again == records:
                    return records
                records = again
                continue
            time.sleep(0.05)
            records = self.access_records()[mark:]
        return records
