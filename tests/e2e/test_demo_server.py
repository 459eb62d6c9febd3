"""``make demo-server`` as a newcomer uses it: start, run the printed command, sign, run
it again, stop; the servers outlive the command that started them, and stop leaves nothing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.command import clean_environment
from testbed.server_venv import REPO_ROOT
from tests.e2e.demo_server import running_ours

pytestmark = pytest.mark.e2e


def demo_server(action: str, state: Path) -> subprocess.CompletedProcess[str]:
    """``python -m tests.e2e.demo_server ACTION``; its output must end when it does."""
    return subprocess.run(
        [sys.executable, "-m", "tests.e2e.demo_server", action, "--state", str(state)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def printed_client_command(output: str) -> str:
    """The client's command line that ``start`` printed, as a person would copy it."""
    lines = [line.strip() for line in output.splitlines() if line.rstrip().endswith('"exit $?"')]
    assert len(lines) == 1, output
    return lines[0]


def run_printed(command: str) -> str:
    """Run a printed command line in a shell from the repository root, as a person would."""
    done = subprocess.run(
        ["sh", "-c", command],
        cwd=REPO_ROOT,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.stdout.strip()


def test_a_kept_server_signs_on_demand_and_stops_clean(tmp_path: Path) -> None:
    state = tmp_path / "demo-server"
    pids: dict[str, int] = {}
    started = demo_server("start", state)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        pids = json.loads((state / "state.json").read_text())["pids"]
        # The command has ended; the servers it started run on, detached.
        assert all(running_ours(pid, state / "server") for pid in pids.values()), pids
        url = re.search(r"server URL: (\S+)", started.stdout)
        assert url is not None, started.stdout
        command = printed_client_command(started.stdout)
        assert url.group(1) in command

        assert run_printed(command) == "exit 69"
        again = demo_server("start", state)
        assert "already running" in again.stdout
        assert printed_client_command(again.stdout) == command
        signed = demo_server("sign", state)
        assert signed.returncode == 0, signed.stdout + signed.stderr
        assert "--sign 1" in signed.stdout
        assert run_printed(command) == "exit 0"
        assert demo_server("sign", state).returncode == 1  # nothing waits now
    finally:
        stopped = demo_server("stop", state)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not any(running_ours(pid, state / "server") for pid in pids.values())
    assert not state.exists()
    assert "no demo server is running" in demo_server("stop", state).stdout
