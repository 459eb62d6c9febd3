"""The whole certificate lifecycle against the real Caramel server, in tpm2 mode.

The same steps as tests/e2e/test_lifecycle.py (``tests.e2e.lifecycle.STEPS``), the key made
and kept in a swtpm of the module's own; in tpm2 mode the client shows no client
certificate (docs/tpm.md), and the step that hands the file to curl leaves curl out (it
would need the TPM's provider). The frozen forms carry no TPM support yet: the package
pass only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import swtpm
from testbed.harness import CaramelStack
from tests.e2e.lifecycle import STEPS, Lifecycle

pytestmark = [pytest.mark.e2e, pytest.mark.in_process]

CLIENT_ID = "e2e-tpm-device-01"


@pytest.fixture(scope="module")
def tpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[swtpm.SoftwareTPM]:
    with swtpm.running(tmp_path_factory.mktemp("tpm")) as running:
        yield running


@pytest.fixture(scope="module")
def lifecycle(
    stack: CaramelStack, tpm: swtpm.SoftwareTPM, tmp_path_factory: pytest.TempPathFactory
) -> Lifecycle:
    workdir: Path = tmp_path_factory.mktemp("tpm-device")
    return Lifecycle(stack, workdir, CLIENT_ID, tpm=tpm.tcti)


@pytest.mark.parametrize("step", STEPS)
def test_tpm_lifecycle_step(lifecycle: Lifecycle, tpm: swtpm.SoftwareTPM, step: str) -> None:
    if lifecycle.failed_step is not None:
        pytest.skip(f"step {lifecycle.failed_step!r} failed before this one")
    lifecycle.run_step(step)
    assert swtpm.transient_handles(tpm) == []  # nothing left loaded in the TPM
    content = lifecycle.file.read_bytes()
    assert b"BEGIN TSS2 PRIVATE KEY" in content
    assert b"BEGIN PRIVATE KEY" not in content
