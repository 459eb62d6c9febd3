"""caramel-embedded(1) is written from the option table, and shows what --help shows.

The page in the tree (firmware-integration/caramel-embedded.1, which `make install`, the
recipes and the Debian package install) must be what build/manpage.py writes today: a
changed option without `make man` fails here. And `man` must show every entry that the
command under test prints for --help, in the same words (the package, or the frozen
binary in the binary pass).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from caramel_embedded import options
from testbed.command import run_client
from tests.script_module import load

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "firmware-integration" / "caramel-embedded.1"


def manpage() -> ModuleType:
    return load(REPO / "build" / "manpage.py", "manpage")


def words(text: str) -> str:
    """Text with its layout folded away: one space between words, no hyphenation."""
    return " ".join(text.split())


def rendered(page: Path) -> str:
    """The page as `man` shows it, plain text, wide enough that no option name wraps."""
    if shutil.which("groff") is None:
        pytest.fail("groff is missing: make test installs it (groff-base)")
    result = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-rLL=200n", "-P", "-cbou", str(page)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # -ww: every roff warning is a defect here
    return result.stdout.replace("\u2010", "-").replace("\u2212", "-")


def help_entries(help_text: str) -> dict[str, str]:
    """The options part of --help: each entry's label and its text, layout folded."""
    options_part = help_text.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]
    entries: dict[str, str] = {}
    label = ""
    for line in options_part.splitlines():
        match = re.match(r"  (-\S+(?:, -\S+)?(?: \S+)?)(?:\s{2,}(.*))?$", line)
        if match:
            label = match.group(1)
            entries[label] = match.group(2) or ""
        else:
            entries[label] += " " + line.strip()
    return {name: words(text) for name, text in entries.items()}


def test_the_page_in_the_tree_is_the_one_the_table_writes() -> None:
    assert PAGE.read_text() == manpage().render(), "run `make man` and commit the page"


def test_man_shows_every_entry_of_help_in_the_same_words() -> None:
    result = run_client(["--help"])
    assert result.returncode == 0, result.stderr
    entries = help_entries(result.stdout)
    assert len(entries) == len(options.OPTIONS)
    page = words(rendered(PAGE))
    for label, text in entries.items():
        assert f"{label} {text}" in page, f"man page differs from --help at {label}"
    assert words(options.DESCRIPTION) in page
    help_options = set(re.findall(r"(?<![\w-])--?[a-z][a-z-]*", " ".join(entries)))
    page_options = set(re.findall(r"^\s{7}(-[^\s,]+)", rendered(PAGE), re.MULTILINE))
    assert page_options <= help_options


def test_a_changed_option_is_caught(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The comparison can fail: a page written from another table differs from --help."""
    script = manpage()
    timeout = help_entries(options.help_text())["--timeout SECONDS"]
    changed = tuple(
        (names, value, "another meaning" if names == ("--timeout",) else meaning)
        for names, value, meaning in options.OPTIONS
    )
    monkeypatch.setattr(script.options, "OPTIONS", changed)
    stale = tmp_path / "caramel-embedded.1"
    stale.write_text(script.render())
    assert stale.read_text() != PAGE.read_text()
    assert f"--timeout SECONDS {timeout}" not in words(rendered(stale))


def test_the_script_writes_the_page_where_asked(tmp_path: Path) -> None:
    target = tmp_path / "page.1"
    subprocess.run([sys.executable, str(REPO / "build" / "manpage.py"), str(target)], check=True)
    assert target.read_text() == PAGE.read_text()
