"""A throwaway PostgreSQL cluster for Caramel (``make fleet DB=postgresql``).

Debian's ``postgresql`` server binaries, a cluster made by ``initdb`` in a temporary
directory, listening on a Unix socket in that directory only (no TCP port at all), with
``trust`` authentication for that socket: nothing outside this machine, and nothing of the
machine's own PostgreSQL service, is touched. The server refuses to run as root, so under
root it runs as Debian's ``postgres`` user, which then owns the directory. It dies with us
(the parent-death signal, set after the change of user, which would clear it) and the
directory is removed when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from testbed.processes import INTERRUPTS, HarnessError, _die_with_parent

# Debian's layout: one directory per major version; the newest is used.
DEBIAN_BINARIES = "/usr/lib/postgresql"
DATABASE = "caramel"
ROLE = "caramel"
SERVER_USER = "postgres"
READY_TIMEOUT = 60.0


def server_binaries(root: Path = Path(DEBIAN_BINARIES)) -> Path:
    """The ``bin`` directory of the newest PostgreSQL that Debian's package installed."""
    found = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise HarnessError("PostgreSQL's server is not installed: run `make fleet-deps`")
    return found[-1]


class PostgresCluster:
    """One cluster, one database (``caramel``) owned by one role (``caramel``).

    ``url`` is what Caramel's ``sqlalchemy.url`` takes (the psycopg2 driver, which
    SQLAlchemy 1.4, Caramel's pin, supports).
    """

    def __init__(self) -> None:
        self.bin = server_binaries()
        self.directory = Path("/nonexistent/caramel-pg-not-started")
        self.process: subprocess.Popen[bytes] | None = None
        self._user: str | None = SERVER_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{ROLE}@/{DATABASE}?host={self.directory}"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "postgres.log"

    def __enter__(self) -> PostgresCluster:
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

    def _as_server(self, argv: Sequence[str], log: Path | None = None) -> subprocess.Popen[bytes]:
        """Start a server binary as the server's user (root may not run them)."""
        with contextlib.ExitStack() as files:
            out = files.enter_context(log.open("ab")) if log else subprocess.DEVNULL
            return subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                cwd=self.directory,
                user=self._user,
                group=None if self._user is None else pwd.getpwnam(self._user).pw_gid,
                extra_groups=None if self._user is None else [],
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (one foreign call)
            )

    def _log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])

    def _checked(self, argv: Sequence[str], what: str) -> str:
        process = self._as_server(argv, self.log)
        if process.wait(timeout=120) != 0:
            raise HarnessError(f"{what} failed ({process.returncode}):\n{self._log_tail()}")
        return what

    def start(self) -> None:
        """initdb, the server on its socket, the role's database; return once it answers."""
        self.directory = Path(tempfile.mkdtemp(prefix="caramel-pg-"))
        self.log.touch()
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
            os.chown(self.log, entry.pw_uid, -1)
        self._checked(
            [
                str(self.bin / "initdb"),
                "--pgdata",
                str(self.data),
                "--username",
                ROLE,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-instructions",
            ],
            "initdb",
        )
        with INTERRUPTS.critical():
            self.process = self._as_server(
                [
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.data),
                    "-k",
                    str(self.directory),
                    "-c",
                    "listen_addresses=",
                    "-c",
                    "max_connections=100",
                ],
                self.log,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while self.query("SELECT 1") != "1":
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise HarnessError(f"PostgreSQL did not start:\n{self._log_tail()}")
            time.sleep(0.2)
        self._checked(
            [str(self.bin / "createdb"), "-h", str(self.directory), "-U", ROLE, DATABASE],
            "createdb",
        )

    def query(self, sql: str, database: str = "postgres") -> str | None:
        """One value (or lines of them) from psql, or None when the server does not answer."""
        done = subprocess.run(
            [
                str(self.bin / "psql"),
                "-h",
                str(self.directory),
                "-U",
                ROLE,
                "-d",
                database,
                "-Atc",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        return done.stdout.strip() if done.returncode == 0 else None

    def table_size(self, table: str) -> tuple[int, int]:
        """Rows and bytes of one of Caramel's tables: its rows' pages and its indexes'.

        Only the main forks: the free-space and visibility maps that autovacuum adds (tens
        of kB at once, whatever the table's size) would read as growth per row.
        """
        answer = self.query(
            f"SELECT count(*), pg_relation_size('{table}') + coalesce((SELECT "
            "sum(pg_relation_size(indexrelid)) FROM pg_index WHERE indrelid = "
            f"'{table}'::regclass), 0) FROM {table}",
            DATABASE,
        )
        if not answer:
            raise HarnessError(f"PostgreSQL: no size for table {table}")
        rows, size = answer.split("|")
        return int(rows), int(size)

    def close(self) -> None:
        """A fast shutdown (clients cut off), then the directory goes."""
        with INTERRUPTS.critical():
            if self.process is not None and self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGINT)
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=10)
            if self.directory.is_dir():
                shutil.rmtree(self.directory, ignore_errors=True)
