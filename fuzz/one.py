"""One target under atheris: ``python -m fuzz.one TARGET [libFuzzer options] [CORPUS...]``.

The client's package is instrumented for coverage as it is imported, so nothing may import
it before ``instrument_imports`` (this module imports only atheris and the target list).
"""

from __future__ import annotations

import sys

import atheris

from fuzz import targets


def main() -> None:
    name, libfuzzer_arguments = sys.argv[1], sys.argv[2:]
    with atheris.instrument_imports(include=["caramel_embedded"]):
        check = targets.load(name)
    atheris.Setup([sys.argv[0], *libfuzzer_arguments], check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
