"""The documents cannot drift from the code: the README's option table is options.py's.

The README is read by people who have never seen Caramel, so it is short (at most 250
lines) and holds ONE table of the options. That table is checked here against the table the
command itself reads (``options.OPTIONS``, ``options.POSITIONALS``): every option and
argument present with its value word, none extra, each default the one options.py's help
states, and each environment variable one that ``options.parse`` really reads for that
option (tried, not compared with a list). And every relative link in README.md and docs/
must lead to a file of the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from caramel_embedded import options

pytestmark = pytest.mark.in_process

REPOSITORY = Path(__file__).resolve().parents[1]
README = REPOSITORY / "README.md"
DOCS = REPOSITORY / "docs"
MAX_README_LINES = 250

OPTION_TABLE_HEADER = re.compile(r"\|\s*option\s*\|\s*environment\s*\|\s*default\s*\|")
NAME = re.compile(r"(?<![\w-])(--?[a-z][a-z0-9-]*)")
HELP_DEFAULT = re.compile(r"\(default:? ([^;)=]+?)(?: =|;|\))")
LINK = re.compile(r"\]\(([^)\s]+)\)")

# A value for each option that takes one, different from its default: the environment
# variable the README names must give the same Settings as the option with this value.
SAMPLES = {
    "--client-id-from": "machine-id",
    "--file": "/srv/device/client.pem",
    "--ca-cert": "/etc/caramel/ca.pem",
    "--owner": "0:0",
    "--mode": "0640",
    "--key-bits": "4096",
    "--key-store": "tpm2",
    "--tpm": "swtpm:host=127.0.0.1,port=2321",
    "--timeout": "5",
    "--wait-limit": "60",
    "--wait-interval": "3",
    "--proxy": "http://127.0.0.1:3128",
    "--runtime-dir": "/run/caramel-test",
    "--hint-limit": "600",
}
BASE = ["127.0.0.1", "unit-0042"]


class Row:
    """One row of the README's option table: names, value word, environment, default."""

    def __init__(self, cells: list[str]) -> None:
        first = cells[0].replace("`", "")
        self.names = tuple(NAME.findall(first))
        rest = NAME.sub("", first).strip(" ,")  # "-v, --verbose" leaves ", "
        self.metavar = rest or None
        self.environment = cells[1].replace("`", "").strip()
        self.default = cells[2].replace("`", "").strip()


def option_rows(text: str) -> list[Row]:
    """The rows of the one table whose header is option | environment | default."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if OPTION_TABLE_HEADER.match(line)]
    assert len(starts) == 1, f"expected one option table in README.md, found {len(starts)}"
    rows = []
    for line in lines[starts[0] + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(Row([cell.strip() for cell in line.strip().strip("|").split("|")]))
    return rows


def readme_options() -> dict[tuple[str, ...], Row]:
    return {row.names: row for row in option_rows(README.read_text()) if row.names}


def readme_positionals() -> dict[str, Row]:
    rows = option_rows(README.read_text())
    return {row.metavar: row for row in rows if not row.names and row.metavar}


def test_the_readme_lists_every_option_and_no_other() -> None:
    documented = {names: row.metavar for names, row in readme_options().items()}
    actual = {names: metavar for names, metavar, _ in options.OPTIONS}
    assert documented == actual


def test_the_readme_lists_the_positional_arguments() -> None:
    assert list(readme_positionals()) == [name for name, _ in options.POSITIONALS]


@pytest.mark.parametrize("names", [names for names, _, _ in options.OPTIONS], ids=str)
def test_each_default_is_the_one_the_help_states(names: tuple[str, ...]) -> None:
    help_text = next(text for n, _, text in options.OPTIONS if n == names)
    stated = HELP_DEFAULT.search(help_text)
    row = readme_options().get(names)
    assert row is not None, f"{names} is not in README.md's option table"
    assert row.default == (stated.group(1).strip() if stated else ""), names


@pytest.mark.parametrize("names", [names for names, _, _ in options.OPTIONS], ids=str)
def test_each_environment_variable_is_read_for_its_option(names: tuple[str, ...]) -> None:
    row = readme_options()[names]
    metavar = next(m for n, m, _ in options.OPTIONS if n == names)
    option = names[-1]
    if metavar is None:  # a flag: only --wait has a variable (1 sets it)
        given, environment = [option], {row.environment: "1"} if row.environment else {}
    else:
        assert option in SAMPLES, f"give {option} a sample value in SAMPLES"
        given = [option, SAMPLES[option]]
        environment = {row.environment: SAMPLES[option]} if row.environment else {}
    if option in {"--version", "--help", "--print-client-id", "--print-ca"}:
        assert row.environment == "", option  # these print and exit: no variable
        return
    by_option = options.parse([*given, *BASE], {})
    if not row.environment:
        unnamed = f"CARAMEL_{option.lstrip('-').upper().replace('-', '_')}"
        value = SAMPLES.get(option, "1")
        assert options.parse(BASE, {unnamed: value}) != by_option, f"{unnamed} is read"
        return
    assert options.parse(BASE, environment) == by_option, (option, row.environment)
    assert options.parse(BASE, {}) != by_option, option


def test_the_positionals_environment_variables_are_read() -> None:
    rows = readme_positionals()
    server = options.parse([], {rows["SERVER"].environment: "127.0.0.1"})
    assert server == options.parse(["127.0.0.1"], {})
    client = options.parse(["127.0.0.1"], {rows["CLIENT_ID"].environment: "unit-0042"})
    assert client == options.parse(["127.0.0.1", "unit-0042"], {})


def test_the_readme_stays_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines, at most {MAX_README_LINES}"


def documents() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def test_there_is_a_docs_folder_with_the_readers_documents() -> None:
    assert len(documents()) > 1


def anchors(document: Path) -> set[str]:
    """The places a link can name in a Markdown file: its headings, as GitHub spells them."""
    headings = re.findall(r"^#+ (.+)$", document.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("document", documents(), ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file(document: Path) -> None:
    broken = []
    for target in LINK.findall(document.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        name, _, place = target.partition("#")
        path = (document.parent / name).resolve() if name else document
        leads_home = path.exists() and REPOSITORY in path.parents
        if not leads_home or (place and path.suffix == ".md" and place not in anchors(path)):
            broken.append(target)
    assert not broken, f"{document.name}: links to nothing in the repository: {broken}"
