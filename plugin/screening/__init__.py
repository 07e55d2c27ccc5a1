"""Pure, deterministic, offline crisis-signal screener.

`screen(text, *, locale=None) -> Assessment`. Rules are data (rules/*.toml, see rules/README.md),
loaded and compiled once at import.
"""

from typing import Any

__all__ = ["screen", "detect_language"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, not on import: `python -m plugin.screening.train` imports this package
    # and must run even while the word model it writes is missing or in an old format.
    if name in __all__:
        from plugin.screening import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'plugin.screening' has no attribute {name!r}")
