"""``txframe serve-map`` moved to the package :mod:`txframe.mapserver`; this module
keeps the old entry point."""

from __future__ import annotations

from .mapserver import main

__all__ = ["main"]
