"""``command_line`` and ``options``: the command's words, against the documented grammar.

The grammar (``command_line``'s docstring, the option table in ``options``): positionals;
an option of the table that takes a value, as ``--name VALUE`` (VALUE not an option) or
``--name=VALUE``; a flag, ``--name`` (never ``--name=``); one-letter flags alone or
together (``-vh``); ``--`` ends the options; names are never abbreviated; a lone ``-`` and
a negative number (``-1``, ``-.5``, ``-2.5``, as argparse reads one) are values; at most
two positionals; ``-h``/``--help`` ends the reading at once, whatever follows.

Contract, for any words: ``command_line.read`` finds the same positionals, values and
flags as the grammar, or raises ``UsageError`` exactly when the grammar says the line is
wrong; ``options.parse`` (with no environment) returns settings or raises ``UsageError``
or ``HelpShown``, nothing else.
"""

from __future__ import annotations

import contextlib
import io
import re

from caramel_embedded import command_line, options
from caramel_embedded.errors import HelpShown, UsageError
from fuzz.contract import agree, outcome

_NEGATIVE_NUMBER = re.compile(r"-\d+|-\d*\.\d+")
Reading = tuple[list[str], dict[str, str], set[str]] | None


def words_of(data: bytes) -> list[str]:
    """NUL-separated words, as the kernel hands argv to Python."""
    return data.decode("utf-8", "surrogateescape").split("\0") if data else []


def check(data: bytes) -> None:
    argv = words_of(data)
    read = outcome(
        lambda: command_line.read(argv, options.OPTIONS, len(options.POSITIONALS)), (UsageError,)
    )
    ours = None
    if isinstance(read, command_line.Words):
        ours = (read.positionals, read.values, read.flags)
    agree(repr(argv), ours, reference(argv))
    with contextlib.redirect_stdout(io.StringIO()):
        outcome(lambda: options.parse(argv, {}), (UsageError, HelpShown))


def _is_value(word: str) -> bool:
    return not word.startswith("-") or word == "-" or bool(_NEGATIVE_NUMBER.fullmatch(word))


def reference(argv: list[str]) -> Reading:  # noqa: PLR0912 - the grammar, in one place
    takes_value: dict[str, tuple[str, bool]] = {}
    for option in options.OPTIONS:
        key = option[0][-1].lstrip("-").replace("-", "_")
        for name in option[0]:
            takes_value[name] = (key, option[1] is not None)
    positionals: list[str] = []
    values: dict[str, str] = {}
    flags: set[str] = set()
    wrong = False
    index = 0
    while index < len(argv):
        word = argv[index]
        index += 1
        if word == "--":
            positionals += argv[index:]
            break
        if _is_value(word):
            positionals.append(word)
        elif word.startswith("--"):
            name, equals, value = word.partition("=")
            if name not in takes_value:
                wrong = True
            elif not takes_value[name][1]:
                if equals:
                    return None
                flags.add(takes_value[name][0])
            elif equals:
                values[takes_value[name][0]] = value
            elif index < len(argv) and _is_value(argv[index]):
                values[takes_value[name][0]] = argv[index]
                index += 1
            else:
                return None
        else:
            letters = [f"-{letter}" for letter in word[1:]]
            if all(letter in takes_value and not takes_value[letter][1] for letter in letters):
                flags.update(takes_value[letter][0] for letter in letters)
            else:
                wrong = True
        if "help" in flags:
            return positionals, values, flags
    if wrong or len(positionals) > len(options.POSITIONALS):
        return None
    return positionals, values, flags
