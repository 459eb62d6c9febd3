"""Processes that die with us, free ports, and waiting until a server answers."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

STARTUP_TIMEOUT = 30.0
# Ports are chosen free, then bound by another process a moment later: another program
# may take one in between. A start that finds its port taken is retried on new ports.
PORT_ATTEMPTS = 3
STOP_TIMEOUT = 10.0


class HarnessError(RuntimeError):
    """The stack could not be built or an admin command failed: not a client failure."""


# --------------------------------------------------------------------------------------
# Processes that cannot outlive us

_PR_SET_PDEATHSIG = 1
_LIVE: set[Service] = set()
_LIVE_LOCK = threading.Lock()


try:
    _PRCTL: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: no parent-death signal
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGTERM when our parent dies.

    This is the safeguard for a parent killed with SIGKILL, where no Python cleanup runs.
    The function was looked up before the fork: the child only makes the call.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass(eq=False)
class Service:
    """One long-running child process (and its process group), with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        """Whether the process has not exited yet."""
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The end of its log, for error messages."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """TERM the whole group, KILL it if it lingers, and reap the leader."""
        with INTERRUPTS.critical():
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=STOP_TIMEOUT)
            with _LIVE_LOCK:
                _LIVE.discard(self)


def start_service(
    name: str,
    argv: Sequence[str],
    log: Path,
    cwd: Path,
    env: dict[str, str],
    detached: bool = False,
) -> Service:
    """Start a child in its own session (so one killpg reaches all it forks).

    It dies with us, unless ``detached``: then it outlives this process (``make
    demo-server``), and whoever stops it finds it by its process id.
    """
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=None if detached else _die_with_parent,  # noqa: PLW1509 (one foreign call)
        )
    service = Service(name, process, log)
    if not detached:
        with _LIVE_LOCK:
            _LIVE.add(service)
    return service


@atexit.register
def _stop_leftovers() -> None:
    """Whatever a crashed caller did not stop is stopped when Python exits."""
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for service in leftovers:
        service.stop()


class _Interrupts:
    """TERM, HUP and INT unwind like Ctrl-C, except inside ``critical()`` sections.

    Python's default for TERM is to die at once, skipping every ``finally``, so the stack
    would outlive us. And an interrupt that lands between starting a process and
    recording it (or halfway through stopping one) would lose it: such sections defer
    the interrupt to their end.
    """

    signals = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

    def __init__(self) -> None:
        self.depth = 0
        self.pending: str | None = None

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.depth:
            self.pending = name
            return
        raise KeyboardInterrupt(f"signal {name}")

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """Run a block to its end; an interrupt meanwhile is raised after it."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if self.depth == 0 and self.pending is not None:
                name, self.pending = self.pending, None
                raise KeyboardInterrupt(f"signal {name}")

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle the signals while the block runs (main thread only: elsewhere Python
        cannot install handlers, and the defaults stay)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handler) for sig in self.signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


INTERRUPTS = _Interrupts()


WORKDIR_PREFIX = "caramel-e2e-"
OWNER_FILE = "owner.pid"


def remove_stale_workdirs() -> None:
    """Remove the working directories of runs that were killed outright (SIGKILL).

    Their processes died with them (parent-death signal); only the directory is left. A
    directory counts as stale when the process named in its owner file is gone.
    """
    for directory in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            owner = int((directory / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(directory, ignore_errors=True)
        except PermissionError:
            continue


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PortTaken(HarnessError):
    """Another process took a port between our choice and the service's bind."""


def wait_until_ready(
    service: Service, ready: Callable[[], bool], what: str, timeout: float = STARTUP_TIMEOUT
) -> None:
    """Return once ``ready()`` holds; fail early, with the log, if the service died.

    ``ready`` must prove that *our* process answers (a listener that another program
    put on the port would accept connections too): it checks content only we serve.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            tail = service.log_tail()
            error = PortTaken if "in use" in tail else HarnessError
            raise error(
                f"{service.name} exited with {service.process.returncode} before {what}:\n{tail}"
            )
        with contextlib.suppress(OSError, ssl.SSLError):
            if ready():
                return
        time.sleep(0.05)
    raise HarnessError(f"{service.name}: no {what} within {timeout} s:\n{service.log_tail()}")


def serves_ca_over_http(port: int, ca_pem: bytes) -> bool:
    """Caramel answers /root.crt with our CA: this waitress is ours."""
    with socket.create_connection(("127.0.0.1", port), 1) as sock:
        sock.sendall(b"GET /root.crt HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.startswith(b"HTTP/1.0 200 ") and answer.endswith(ca_pem)


def tls_handshake_with_ca(port: int, ca_cert: Path) -> bool:
    """A handshake that verifies against our CA: this nginx is ours, and has bound all its
    ports (nginx binds every listen socket before it accepts on any)."""
    context = ssl.create_default_context(cafile=str(ca_cert))
    with (
        socket.create_connection(("127.0.0.1", port), 1) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1"),
    ):
        return True


def find_nginx() -> str:
    """nginx lives in /usr/sbin, which a non-root PATH often lacks."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise HarnessError("nginx is not installed: run `make system-deps`")
    return found
