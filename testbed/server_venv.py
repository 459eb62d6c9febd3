"""The Caramel server's own virtualenv, pinned and cached between runs."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from testbed.processes import HarnessError

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVER_VENV = REPO_ROOT / ".cache" / "caramel-server-venv"

# The server's whole dependency set, pinned exactly so that every machine runs the same
# server. caramel 1.9.6 itself only asks for pyOpenSSL>=22 and cryptography>=38, but it
# uses OpenSSL.crypto.X509Extension, which pyOpenSSL removed after 24.2.1, and that
# pyOpenSSL needs cryptography < 44. pyramid imports pkg_resources, hence setuptools.
# psycopg2-binary: the PostgreSQL driver of `make fleet DB=postgresql`. SQLAlchemy 1.4 (what
# Caramel works with) has no dialect for psycopg 3, and the binary wheel carries its own
# libpq, so neither a compiler nor libpq-dev is needed; SQLite runs never import it.
SERVER_REQUIREMENTS: tuple[str, ...] = (
    "caramel==1.9.6",
    "pyOpenSSL==24.2.1",
    "cryptography==43.0.3",
    "cffi==2.1.1",
    "pycparser==3.12",
    "SQLAlchemy==1.4.54",
    "greenlet==3.5.6",
    "pyramid==2.1",
    "pyramid_tm==2.6",
    "transaction==5.1",
    "zope.sqlalchemy==4.1",
    "zope.interface==8.7",
    "zope.deprecation==6.0",
    "waitress==3.0.2",
    "WebOb==1.8.11",
    "hupper==1.12.1",
    "plaster==1.1.2",
    "plaster-pastedeploy==1.0.1",
    "PasteDeploy==3.1.0",
    "translationstring==1.4",
    "venusian==3.1.1",
    "python-dateutil==4.0.0",
    "tzdata==2026.6",
    "packaging==26.4",
    "setuptools==65.5.0",
    "psycopg2-binary==2.9.13",
)


# --------------------------------------------------------------------------------------
# The server's virtualenv


def _requirements_key() -> str:
    """What the cached venv must have been made from to be reused."""
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    text = "\n".join((base, sys.version, *SERVER_REQUIREMENTS))
    return hashlib.sha256(text.encode()).hexdigest()


def _progress(message: str) -> None:
    """Slow, one-time work says what it does: a silent minute looks like a hang."""
    print(f"[caramel e2e] {message}", file=sys.stderr, flush=True)


def ensure_server_venv(venv: Path = SERVER_VENV) -> Path:
    """The cached server venv, made (or remade, when the pins changed) under a lock.

    The lock keeps two concurrent runs from building the same directory at once.
    """
    stamp = venv / ".caramel-e2e-requirements"
    key = _requirements_key()
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / (venv.name + ".lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == key:
            return venv
        started = time.monotonic()
        _progress(f"creating the Caramel server venv in {venv} (once; it is cached)")
        shutil.rmtree(venv, ignore_errors=True)
        _checked([sys.executable, "-m", "venv", str(venv)], "python -m venv")
        requirements = venv / "requirements.txt"
        requirements.write_text("\n".join(SERVER_REQUIREMENTS) + "\n")
        _checked(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--requirement",
                str(requirements),
            ],
            "pip install of the server requirements",
        )
        # X509Extension is what newer pyOpenSSL lacks: prove the import works now, not
        # halfway through a test.
        _checked(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import caramel, caramel.models, OpenSSL.crypto; OpenSSL.crypto.X509Extension",
            ],
            "importing caramel in the server venv",
        )
        stamp.write_text(key)
        _progress(f"server venv ready in {time.monotonic() - started:.0f} s")
        return venv


def _checked(argv: Sequence[str], what: str) -> None:
    """Run a setup command; its output matters only when it fails."""
    done = subprocess.run(
        argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        raise HarnessError(f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
