"""``make demo``: the whole certificate lifecycle against a local, real Caramel server.

Runs ``python -m tests.e2e.demo`` from the repository root. It starts Caramel 1.9.6 behind
nginx on loopback ports (building the server's venv the first time), then walks one
device through the same steps as the e2e suite, printing for each the commands it ran,
their exit statuses and what changed in the combined file. It stops everything it
started before it exits, and exits non-zero when a step does not go as the contract says.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from testbed import pki
from testbed.command import client_command
from testbed.harness import CaramelStack, HarnessError
from tests.e2e.lifecycle import STEPS, Lifecycle, StepFailed

CLIENT_ID = "demo-device-01"


def say(text: str = "") -> None:
    """Print at once: the demo is watched as it runs."""
    print(text, flush=True)


def main() -> int:
    """Walk the lifecycle; 0 when every step went as expected."""
    started = time.monotonic()
    say("caramel-embedded demo: one device against a real Caramel server")
    say(f"client command: {' '.join(client_command())}")
    try:
        with CaramelStack() as stack, tempfile.TemporaryDirectory(prefix="demo-") as work:
            say(f"Caramel 1.9.6 (waitress) behind nginx, working directory {stack.directory}")
            say(f"  CA:    {pki.load_ca(stack.ca_cert).subject.rfc4514_string()}")
            say(f"  front: {stack.front_url} (TLS, optional client certificate)")
            say(
                f"  front: {stack.lm_front_url} (the same, plus Last-Modified and 304, "
                f"certificates cached {stack.lm_cache_seconds} s)"
            )
            lifecycle = Lifecycle(stack, Path(work), CLIENT_ID, verbose=True)
            say(f"  device {CLIENT_ID}, combined file {lifecycle.file}")
            failed = []
            for name in STEPS:
                say()
                try:
                    report = lifecycle.run_step(name)
                except StepFailed as failure:
                    failed.append(name)
                    if lifecycle.report is not None and lifecycle.report.name == name:
                        report = lifecycle.report
                        say(f"[{report.number}/{len(STEPS)}] {report.title}")
                    say(f"STEP FAILED: {failure}")
                    if lifecycle.failed_step is not None:
                        break
                    say("(the device still holds its certificate: the walk goes on)")
                    continue
                say(report.render())
            if failed:
                say()
                say(f"FAILED: {', '.join(failed)}")
                return 1
    except HarnessError as error:
        say(f"could not run the Caramel server: {error}")
        return 2
    except KeyboardInterrupt:
        say("interrupted; everything started was stopped")
        return 130
    say()
    say(f"all {len(STEPS)} steps went as expected ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
