"""The house's rules that import-linter cannot see, read from the package's source.

import-linter (`make lint`, contracts in pyproject.toml) checks who imports whom. These
check the rest, on the syntax tree and the tokens of every module of the package:

- every function and method fits on a screen (at most 60 lines, decorators included);
- only the command (``cli``) ends the process: no other module calls ``sys.exit``,
  ``os._exit``, ``os.abort``, ``exit`` or ``quit``, or makes a ``SystemExit`` (``__main__``
  calls ``cli.run()``, which does);
- no exit number in the words of any module but the face's (``cli``, ``options`` whose
  help names them, ``exits`` that holds them): the core and the shells speak in outcomes
  (installed, pending, posted, error), never in 0, 1, 69 or 127.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.in_process

PACKAGE = Path(__file__).resolve().parents[1] / "caramel_embedded"
MAX_LINES = 60
# The face: where exit numbers may be named.
FACE = {"cli.py", "options.py", "exits.py"}
_FSTRING_MIDDLE = getattr(tokenize, "FSTRING_MIDDLE", -1)
ENDS_THE_PROCESS = {"exit", "_exit", "abort", "quit", "SystemExit"}
# "exit 0", "exits with 1", "ends with 127", "status 69", "(69)", a bare 69 or 127: but not
# 127.0.0.1, a port or a size.
EXIT_NUMBER = re.compile(
    r"\b(?:exit|exits|exited|end|ends|ended|status|statuses|code)\b(?:\s+(?:with|of|is))?"
    r"\s+(?:0|1|69|120|127)(?!\w|[.,]\d)"
    r"|(?<![\w.:/-])(?:69|120|127)(?![\w:]|[.,]\d)"
)


def modules(package: Path = PACKAGE) -> list[Path]:
    return sorted(package.glob("*.py"))


def long_functions(package: Path = PACKAGE) -> list[str]:
    """``module:function (lines)`` for every function or method over MAX_LINES."""
    found = []
    for path in modules(package):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                assert node.end_lineno is not None
                lines = node.end_lineno - first + 1
                if lines > MAX_LINES:
                    found.append(f"{path.stem}:{node.name} ({lines} lines)")
    return found


def process_enders(package: Path = PACKAGE) -> list[str]:
    """``module:line name`` for every call of something that ends the process, outside
    ``cli``."""
    found = []
    for path in modules(package):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Raise) and not isinstance(node.exc, ast.Call):
                name = _name(node.exc)  # raise SystemExit, uncalled
            else:
                name = _called_name(node)
            if name not in ENDS_THE_PROCESS:
                continue
            found.append(f"{path.stem}:{getattr(node, 'lineno', 0)} {name}")
    return found


def exit_numbers_in_words(package: Path = PACKAGE) -> list[str]:
    """``module:line text`` for every comment or string outside the face that names an exit
    number."""
    found = []
    for path in modules(package):
        if path.name in FACE:
            continue
        for line, text in _words(path.read_text()):
            match = EXIT_NUMBER.search(text)
            if match:
                found.append(f"{path.stem}:{line} {match.group(0)!r}")
    return found


def _called_name(node: ast.AST) -> str | None:
    return _name(node.func) if isinstance(node, ast.Call) else None


def _name(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _words(source: str) -> Iterator[tuple[int, str]]:
    """Every comment and string literal (docstrings too), with the line it starts on."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.STRING):
            # A string's text runs over lines: one line of words, to match phrases across.
            yield token.start[0], " ".join(token.string.split())
        elif token.type == _FSTRING_MIDDLE:  # Python 3.12 on: an f-string's literal parts
            yield token.start[0], token.string


def test_no_function_over_a_screen() -> None:
    assert long_functions() == []


def test_only_the_command_ends_the_process() -> None:
    assert process_enders() == []


def test_no_exit_number_outside_the_face() -> None:
    assert exit_numbers_in_words() == []


# --- the checks can fail: each is shown a module that breaks its rule --------------------

BREAKING = {
    "long": "def long() -> None:\n" + "    pass\n" * MAX_LINES,
    "ender": "import sys\n\n\ndef stop() -> None:\n    sys.exit(3)\n",
    "raiser": "def stop() -> None:\n    raise SystemExit\n",
    "words": 'def wait() -> None:\n    """The request waits: exit 69."""\n',
    "comment": "WAITING = True  # ends with 1 when locked\n",
    "fstring": 'def line(n: int) -> str:\n    return f"{n} tries, then 127"\n',
}


@pytest.mark.parametrize(
    ("check", "module"),
    [
        (long_functions, "long"),
        (process_enders, "ender"),
        (process_enders, "raiser"),
        (exit_numbers_in_words, "words"),
        (exit_numbers_in_words, "comment"),
        (exit_numbers_in_words, "fstring"),
    ],
)
def test_each_check_finds_what_breaks_its_rule(tmp_path: Path, check: object, module: str) -> None:
    (tmp_path / f"{module}.py").write_text(BREAKING[module])
    assert callable(check)
    assert [found.split(":")[0] for found in check(tmp_path)] == [module]


def test_words_that_are_no_exit_numbers_pass(tmp_path: Path) -> None:
    (tmp_path / "fine.py").write_text(
        '"""Loopback is 127.0.0.1; 1 try; status=pending; a 1,270-byte body; port 69000."""\n'
        "LIMIT = 127  # a literal is no word: only comments and strings are read\n"
    )
    assert exit_numbers_in_words(tmp_path) == []
