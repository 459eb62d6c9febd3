"""Reading a command line by a table of options: what argparse did, without its cost.

argparse cost about 2 ms of every cold start (its import, gettext's, and building a parser
of twenty arguments), a sixth of what the client adds to a frozen Python on the unchanged
path. What the command needs is small: positionals, options that take one value
(``--file PATH`` or ``--file=PATH``), flags, ``--`` to end the options, and one-letter flags
(``-v``, ``-h``, also together as ``-vh``). Nothing is abbreviated. The table and the
meaning of the values (numbers, paths, the environment behind each) are ``options``'s.

Every problem is a ``UsageError`` whose text says what was wrong. ``-h``/``--help`` stops
the reading at once, as argparse did, so that ``--help`` prints the help whatever follows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from caramel_embedded.errors import UsageError

# (names, the value's name or None for a flag, help). The last name, without its dashes
# and with "_" for "-", is the key the value or the flag is read under (``ca_cert``).
Option = tuple[tuple[str, ...], str | None, str]
HELP = "help"  # the key of the option that asks for the help


class Words:
    """A command line, read: the positionals in order, each option's last value, and the
    flags that were given, by key."""

    __slots__ = ("flags", "positionals", "values")

    def __init__(self) -> None:
        self.positionals: list[str] = []
        self.values: dict[str, str] = {}
        self.flags: set[str] = set()


def key_of(option: Option) -> str:
    return option[0][-1].lstrip("-").replace("-", "_")


def read(argv: Sequence[str], table: Sequence[Option], positionals: int) -> Words:
    """The words of ``argv``; ``UsageError`` for an unknown option, a missing value, a
    value given to a flag, or more than ``positionals`` positionals."""
    by_name = {name: option for option in table for name in option[0]}
    words = Words()
    unrecognized: list[str] = []
    rest = iter(argv)
    for word in rest:
        if word == "--":
            words.positionals.extend(rest)
            break
        if not _is_option(word):
            words.positionals.append(word)
        elif word.startswith("--"):
            name, has_value, value = word.partition("=")
            option = by_name.get(name)
            if option is None:
                unrecognized.append(word)
            elif option[1] is None:
                if has_value:
                    raise UsageError(f"{name} takes no value (given {value!r})")
                words.flags.add(key_of(option))
            else:
                words.values[key_of(option)] = value if has_value else _value_after(name, rest)
        elif all(
            f"-{letter}" in by_name and by_name[f"-{letter}"][1] is None for letter in word[1:]
        ):
            words.flags.update(key_of(by_name[f"-{letter}"]) for letter in word[1:])
        else:
            unrecognized.append(word)
        if HELP in words.flags:
            return words
    unrecognized.extend(words.positionals[positionals:])
    if unrecognized:
        raise UsageError(f"unrecognized arguments: {' '.join(unrecognized)}")
    return words


def _is_option(word: str) -> bool:
    """A lone dash and negative numbers are values, as argparse read them."""
    return word.startswith("-") and word != "-" and not _is_number(word)


def _is_number(word: str) -> bool:
    """A negative number as argparse has one: ``-`` then digits, or digits, a dot, digits
    (``-1``, ``-.5``, ``-2.5``; not ``-4.``, ``-inf`` or ``-1e3``, which ``float`` took: found
    by fuzzing). No regular expression: one compile less at every start."""
    whole, dot, fraction = word[1:].partition(".")
    if dot:
        return (not whole or whole.isdecimal()) and fraction.isdecimal()
    return whole.isdecimal()


def _value_after(name: str, rest: Iterator[str]) -> str:
    value = next(rest, None)
    if value is None or _is_option(value):
        raise UsageError(f"{name} expects a value")
    return value


def help_text(
    usage: str,
    description: str,
    positionals: Sequence[tuple[str, str]],
    table: Sequence[Option],
    epilog: str,
    *,
    width: int = 88,
) -> str:
    """The --help text: usage, description, every positional and option, the epilog."""
    import textwrap  # for --help only

    column = 24

    def entry(label: str, text: str) -> list[str]:
        lines = textwrap.wrap(text, width - column)
        if len(label) + 4 > column:
            return [f"  {label}", *(" " * column + line for line in lines)]
        return [
            f"  {label}".ljust(column) + lines[0],
            *(" " * column + line for line in lines[1:]),
        ]

    out = [f"usage: {usage}", "", *textwrap.wrap(description, width), "", "positional arguments:"]
    for label, text in positionals:
        out += entry(label, text)
    out += ["", "options:"]
    for names, metavar, text in table:
        out += entry(", ".join(names) + (f" {metavar}" if metavar is not None else ""), text)
    out += ["", *textwrap.wrap(epilog, width)]
    return "\n".join(out) + "\n"
