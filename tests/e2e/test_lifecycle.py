"""The whole certificate lifecycle of one device against the real Caramel server.

The steps are ``tests.e2e.lifecycle.STEPS``, the same walk ``make demo`` shows; each is
its own test so a report names the step that broke. The steps after a broken one are
skipped (they would only fail for the same reason), except after a step that leaves the
device holding its certificate (``SOFT_STEPS``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.harness import CaramelStack
from tests.e2e.lifecycle import STEPS, Lifecycle

pytestmark = [pytest.mark.e2e, pytest.mark.arm, pytest.mark.compressed_too]

CLIENT_ID = "e2e-device-01"
# The steps in which the administrator signs the device's request.
SIGNING_STEPS = ("signed", "refresh")


@pytest.fixture(scope="module")
def lifecycle(stack: CaramelStack, tmp_path_factory: pytest.TempPathFactory) -> Lifecycle:
    """One device walked through the steps in order, sharing its state between tests."""
    workdir: Path = tmp_path_factory.mktemp("device")
    return Lifecycle(stack, workdir, CLIENT_ID)


@pytest.mark.parametrize("step", STEPS)
def test_lifecycle_step(lifecycle: Lifecycle, step: str) -> None:
    """Exit status, combined file and the server's side of one step, as SPEC says."""
    if lifecycle.failed_step is not None:
        pytest.skip(f"step {lifecycle.failed_step!r} failed before this one")
    report = lifecycle.run_step(step)
    if step in SIGNING_STEPS:
        # What the demo shows of the server's record after a signature: the certificate.
        listed = [line for line in report.server if line.startswith("caramel_tool --list:")]
        assert listed, report.server
        assert "not signed" not in listed[-1], report.server
