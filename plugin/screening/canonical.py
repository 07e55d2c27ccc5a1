"""The customer's new words in canonical form: what the rules and the word model read.

HTML → plain text (with a map back to the original), quoted lines blanked, canonical form, and
quoted history or a signature cut off. Kept apart from the engine so training can use it
without loading the word model it is about to write.
"""

from __future__ import annotations

from plugin.screening.incoming import blank_quoted_lines, html_to_text, looks_like_html
from plugin.screening.normalise import normalise
from plugin.screening.rulebook import Rulebook


def screened_part(text: str) -> tuple[str, list[int] | None]:
    """Plain text to screen (same length as its map) and the map to `text` (None = identity)."""
    if looks_like_html(text):
        plain, origin = html_to_text(text)
    else:
        plain, origin = text, None
    return blank_quoted_lines(plain), origin


def cut(canonical: str, book: Rulebook) -> str:
    """`canonical` without quoted history and signature (the book's cues, at line starts)."""
    if book.history_cut is None:
        return canonical
    # Cues start at a line start: try only those positions (few) instead of scanning.
    start = 0
    while start != -1:
        found = book.history_cut.match(canonical, start)
        if found is not None:
            return canonical[: found.start()]
        start = canonical.find("\n", start)
        if start != -1:
            start += 1
    return canonical


def canonical_text(text: str, book: Rulebook) -> str:
    return cut(normalise(screened_part(text)[0]), book)
