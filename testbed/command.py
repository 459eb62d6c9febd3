"""The command under test, shared by the package suite and the real-server suite.

``CARAMEL_EMBEDDED_CMD`` (a shell-quoted command line) selects it, so the same suites run
against the installed package, a frozen one-file binary or a one-dir bundle. Without it the
tests run ``python -m caramel_embedded`` with the interpreter that runs pytest.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence

ENV_VAR = "CARAMEL_EMBEDDED_CMD"


def client_command() -> list[str]:
    """The argv prefix that starts caramel-embedded."""
    configured = os.environ.get(ENV_VAR, "").strip()
    if configured:
        return shlex.split(configured)
    return [sys.executable, "-m", "caramel_embedded"]


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for one invocation: ours, minus every CARAMEL_* setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARAMEL_")}
    if extra:
        env.update(extra)
    return env


def start(
    command: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    stdout: int | None = subprocess.PIPE,
    stderr: int | None = subprocess.PIPE,
    new_session: bool = False,
) -> subprocess.Popen[str]:
    """Start a process as every test starts one: our environment without CARAMEL_*, no
    standard input, text output. ``new_session``: its own process group, so that a frozen
    one-file binary's launcher and child can be signalled (or killed) together."""
    return subprocess.Popen(
        list(command),
        env=clean_environment(env),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        text=True,
        start_new_session=new_session,
    )


def start_client(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    stdout: int | None = subprocess.PIPE,
    stderr: int | None = subprocess.PIPE,
    new_session: bool = False,
) -> subprocess.Popen[str]:
    """Start one invocation of the command under test; the caller waits for it."""
    return start(
        [*client_command(), *args], env, stdout=stdout, stderr=stderr, new_session=new_session
    )


def run_client(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    *,
    wrapper: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run one invocation to its end and return its status and output. ``wrapper``: a
    command that runs it (``setpriv`` to run it as another user, for instance)."""
    return subprocess.run(
        [*wrapper, *client_command(), *args],
        env=clean_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
