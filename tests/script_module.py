"""A file of the tree that is not a module of the package (build/*.py, the operators'
filter), loaded by its path as its own module: one loader for the tests that run such a
script's functions in process."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load(path: Path, name: str) -> ModuleType:
    """The module of ``path``, registered under ``name`` (dataclasses look their module up
    in ``sys.modules``, and the filter is imported by its name when deployed)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
