"""The command line's reader (caramel_embedded/command_line.py), by table of cases.

It replaced argparse on every start; these cases pin what argparse did for the command
(values in both spellings, ``--``, ``-vh``, negative numbers as values, the last value
winning, ``--help`` stopping the reading) and the one line each mistake gets.
"""

from __future__ import annotations

import pytest

from caramel_embedded import command_line, options
from caramel_embedded.errors import HelpShown, UsageError

pytestmark = pytest.mark.in_process


def read(*argv: str) -> command_line.Words:
    return command_line.read(argv, options.OPTIONS, len(options.POSITIONALS))


@pytest.mark.parametrize(
    ("argv", "positionals", "values", "flags"),
    [
        pytest.param(["h", "id"], ["h", "id"], {}, set(), id="two-positionals"),
        pytest.param(["--file", "f", "h"], ["h"], {"file": "f"}, set(), id="value-after"),
        pytest.param(["--file=f", "h"], ["h"], {"file": "f"}, set(), id="value-joined"),
        pytest.param(["--file=", "h"], ["h"], {"file": ""}, set(), id="empty-value"),
        pytest.param(["--mode=a=b"], [], {"mode": "a=b"}, set(), id="equals-in-value"),
        pytest.param(["h", "--timeout", "5", "id"], ["h", "id"], {"timeout": "5"}, set(),
                     id="options-between-positionals"),
        pytest.param(["--file", "a", "--file", "b"], [], {"file": "b"}, set(), id="last-wins"),
        pytest.param(["--timeout", "-1"], [], {"timeout": "-1"}, set(), id="negative-value"),
        pytest.param(["--file", "-"], [], {"file": "-"}, set(), id="dash-value"),
        pytest.param(["-v", "--syslog"], [], {}, {"verbose", "syslog"}, id="flags"),
        pytest.param(["--verbose"], [], {}, {"verbose"}, id="long-flag"),
        pytest.param(["--", "-h", "--x"], ["-h", "--x"], {}, set(), id="double-dash"),
        pytest.param(["--status", "--wait"], [], {}, {"status", "wait"}, id="two-flags"),
        pytest.param(["--print-client-id"], [], {}, {"print_client_id"}, id="key-of-dashes"),
    ],
)  # fmt: skip
def test_reads(
    argv: list[str], positionals: list[str], values: dict[str, str], flags: set[str]
) -> None:
    words = read(*argv)
    assert (words.positionals, words.values, words.flags) == (positionals, values, flags)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--bogus"], "unrecognized arguments: --bogus", id="unknown-long"),
        pytest.param(["-x"], "unrecognized arguments: -x", id="unknown-short"),
        pytest.param(["-vx"], "unrecognized arguments: -vx", id="unknown-in-cluster"),
        pytest.param(["h", "a", "b", "c"], "unrecognized arguments: b c", id="extra"),
        pytest.param(["--ca"], "unrecognized arguments: --ca", id="no-abbreviation"),
        pytest.param(["--timeout"], "--timeout expects a value", id="value-missing"),
        pytest.param(["--file", "--status"], "--file expects a value", id="option-as-value"),
        pytest.param(["--wait=1"], "--wait takes no value", id="flag-with-value"),
    ],
)
def test_mistakes(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        read(*argv)


def test_help_stops_the_reading() -> None:
    """As with argparse: --help prints the help whatever follows, even a mistake."""
    assert read("-vh", "--bogus").flags == {"verbose", "help"}
    assert read("--help", "--timeout").flags == {"help"}
    assert read("--bogus", "--help", "h", "a", "b").flags == {"help"}


def test_usage_errors_point_to_help() -> None:
    with pytest.raises(UsageError, match=r"^--timeout expects a value \(see --help\)$"):
        options.parse(["h", "--timeout"], {})


def test_help_names_every_option_with_its_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(HelpShown):
        options.parse(["--help"], {})
    text = capsys.readouterr().out
    assert text.startswith("usage: caramel-embedded [OPTIONS] SERVER [CLIENT_ID]\n")
    for names, metavar, _help in options.OPTIONS:
        label = ", ".join(names) + (f" {metavar}" if metavar else "")
        assert f"  {label}" in text
    assert max(map(len, text.splitlines())) <= 88
    assert "CARAMEL_SERVER" in text
