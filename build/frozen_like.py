"""Start the package in a plain interpreter as the frozen forms start.

Both frozen forms run build/caramel_startup.py's hook (the idna codec's ASCII fast path)
and carry build/standins/urllib3/http2 in the real module's place (no
``importlib.metadata``). Whatever judges the package's imports on behalf of the binary
must see the same start: tests/test_lean_path.py and ``make trim-report``
(build/unused_modules.py) call install() before they import the client.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path

BUILD = Path(__file__).resolve().parent
STAND_INS = {"urllib3.http2": BUILD / "standins" / "urllib3" / "http2" / "__init__.py"}


class StandInFinder:
    """The stand-ins of build/standins in place of the real modules (packages keep their
    real directory, so their other submodules import as usual)."""

    @classmethod
    def find_spec(cls, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        source = STAND_INS.get(name)
        if source is None:
            return None
        parent, _, leaf = name.rpartition(".")
        parent_spec = importlib.util.find_spec(parent)
        assert parent_spec is not None
        assert parent_spec.submodule_search_locations is not None
        real = Path(parent_spec.submodule_search_locations[0]) / leaf
        return importlib.util.spec_from_file_location(
            name, source, submodule_search_locations=[str(real)]
        )


def install() -> None:
    """The frozen forms' start-up, in this interpreter."""
    sys.path.insert(0, str(BUILD))
    try:
        import caramel_startup
    finally:
        sys.path.remove(str(BUILD))
    caramel_startup.install({})
    sys.meta_path.insert(0, StandInFinder)
