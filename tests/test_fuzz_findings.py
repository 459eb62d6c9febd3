"""Every input that ``make fuzz`` found breaking a parser's contract, kept as a regression.

tests/fuzz_findings/TARGET/NAME holds the input as the fuzzer wrote it (``by-hand-*``: one
written here for a fault of the same kind seen while fixing a finding); the test runs the
fuzz target's own check on it (fuzz/targets/TARGET.py states the contract), without
atheris. A new finding goes into the folder of its target under a name that says what
was wrong, with the fix in the parser.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz import targets

pytestmark = pytest.mark.in_process

FINDINGS = Path(__file__).with_name("fuzz_findings")
INPUTS = sorted(path for path in FINDINGS.glob("*/*") if path.is_file())


def test_every_finding_is_under_a_target() -> None:
    assert INPUTS, "no findings kept"
    assert {path.parent.name for path in INPUTS} <= set(targets.NAMES)


@pytest.mark.parametrize("path", INPUTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_the_parser_keeps_its_contract_on_a_found_input(path: Path) -> None:
    targets.load(path.parent.name)(path.read_bytes())
