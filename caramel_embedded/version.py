"""The release's version: one line, imported by whoever names it (a leaf, nothing above)."""

from __future__ import annotations

__version__ = "0.2.0"
