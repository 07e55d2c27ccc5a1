"""Pure, deterministic, offline crisis-signal screener.

`screen(text, *, locale=None) -> Assessment`. Rules are data (rules/*.toml, see rules/README.md),
loaded and compiled once at import.
"""

from plugin.screening.engine import detect_language, screen

__all__ = ["screen", "detect_language"]
