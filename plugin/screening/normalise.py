"""Text normalisation for matching: one canonical form for text and for rule patterns.

The canonical form is lower case, without accents or apostrophes, with look-alike characters
inside words turned into letters (``k!ll mys3lf``), spaced-out letters joined, runs of the same
character collapsed (``sooo`` → ``so``) and whitespace squeezed.

Matching happens on the canonical form, but the agent must see the customer's own words, so
`normalise_mapped` also returns, for every canonical character, its index in the input.
`normalise` is the fast path (no map) used when nothing matched; both run the same steps, so
they always produce the same string.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Callable

from plugin.screening.compiled import compile_source

# Characters that become a different single character: accents, fullwidth forms, typographic
# quotes and dashes, non-breaking spaces. Length-preserving, so it needs no offset map.
_SPECIAL_SINGLE = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u02bc": "'", "\u00b4": "'",
    "`": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\u2212": "-",
    "\u00a0": " ", "\u2007": " ", "\u202f": " ", "\u2009": " ", "\u200a": " ", "\u3000": " ",
    "\u2026": ".", "\u00f8": "o", "\u0142": "l", "\u0111": "d", "\u0131": "i", "\u00f0": "d",
}
# Characters that expand to two (ligatures) or vanish (zero-width, soft hyphen, apostrophe).
_EXPANSIONS = {
    "\u00df": "ss", "\u00e6": "ae", "\u0153": "oe", "\u0133": "ij", "\ufb01": "fi",
    "\ufb02": "fl", "\ufb00": "ff", "\u00fe": "th",
    "'": "", "\u200b": "", "\u200c": "", "\u200d": "", "\u2060": "", "\ufeff": "", "\u00ad": "",
}


def _build_fold_table() -> dict[int, str]:
    table: dict[int, str] = {}
    ranges = [(0x00C0, 0x0250), (0x1E00, 0x1F00), (0xFF01, 0xFF5F)]
    for first, last in ranges:
        for code in range(first, last):
            char = chr(code)
            decomposed = unicodedata.normalize("NFKD", char)
            base = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
            if len(base) == 1 and base != char:
                table[code] = base
    for char, plain in _SPECIAL_SINGLE.items():
        table[ord(char)] = plain
    for char in _EXPANSIONS:
        table.pop(ord(char), None)
    return table


_FOLD_TABLE = _build_fold_table()

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t",
                       "@": "a", "$": "s", "!": "i", "|": "i"})
# Digits right after a letter, or symbols between two letters, stand for letters.
# (Each alternative starts with its character class so `re` can skip ahead quickly.)
_LEET_AFTER_LETTER = re.compile(r"[013457@$!|](?<=[a-z][013457@$!|])")
_LEET_RE = compile_source(r"[013457](?<=[a-z][013457])[013457]*|[@$!|](?<=[a-z][@$!|])[@$!|]*(?=[a-z])")

Replacement = tuple[str, tuple[int, ...]]  # new text, and for each new char its index in the match
Step = tuple[re.Pattern[str], Callable[[re.Match[str]], Replacement]]


def _expand(match: re.Match[str]) -> Replacement:
    new = _EXPANSIONS[match.group()]
    return new, (0,) * len(new)


def _join_spaced_letters(match: re.Match[str]) -> Replacement:
    text = match.group()
    positions = tuple(i for i, c in enumerate(text) if c.isalpha())
    return "".join(text[i] for i in positions), positions


def _newline(match: re.Match[str]) -> Replacement:
    return "\n", (match.group().index("\n"),)


def _space(match: re.Match[str]) -> Replacement:
    return " ", (0,)


def _first_char(match: re.Match[str]) -> Replacement:
    return match.group()[0], (0,)


_STEPS: tuple[Step, ...] = (
    (re.compile("[" + "".join(re.escape(c) for c in _EXPANSIONS) + "]"), _expand),
    (re.compile(r"(?<!\w)(?:[a-z][ .\-_*]){3,}[a-z](?!\w)"), _join_spaced_letters),
    (re.compile(r"[-_.*~/+](?<=[^\W\d_][-_.*~/+])[-_.*~/+]*(?=[^\W\d_])"), _space),
    # compile_source: `re` finds no start set for these two; see compiled.regex_code.
    (compile_source(r"[ \t\r\f\v]*\n\s*"), _newline),
    (compile_source(r"[\t\r\f\v][ \t\r\f\v]*| [ \t\r\f\v]+"), _space),
    # The lookahead finds a doubled character before anything is captured: about a third
    # faster than "(\D)\1+" alone, which captures at every position of the text.
    (re.compile(r"(?=(\D)\1)(\D)\2+"), _first_char),
)


def _fold(text: str) -> str:
    lowered = text.lower()
    if len(lowered) != len(text):  # a few characters (e.g. "İ") lengthen when lowered
        lowered = "".join(c.lower()[0] for c in text)
    if lowered.isascii():
        folded = lowered.replace("`", "'") if "`" in lowered else lowered
    else:
        folded = lowered.translate(_FOLD_TABLE)
    if not _has_leet(folded):
        return folded
    return _LEET_RE.sub(lambda m: m.group().translate(_LEET), folded)


def _has_leet(text: str) -> bool:
    """Cheap check for `_LEET_RE`: is any of its characters right after a letter?"""
    return _LEET_AFTER_LETTER.search(text) is not None


# Cheap tests that tell whether a step can change anything at all.
_MAY_BE_SPACED = re.compile(r"[ .\-_*][a-z][ .\-_*][a-z][ .\-_*]")  # the reference for:
# `_may_be_spaced`: separators become " ", letters "a", other ASCII "x" (other characters stay,
# and are none of the three), so the pattern is the plain string " a a ".
_SPACED_SHAPE = str.maketrans({code: " " if chr(code) in " .-_*" else "a" if "a" <= chr(code) <= "z"
                               else "x" for code in range(128)})
# Whitespace next to a line break: "\n\s|[ \t\r\f\v]\n" as a search from each line break (a
# literal first character lets `re` jump from one to the next); only ever asked whether it is found.
_UNTIDY_LINE_BREAK = re.compile(r"\n(?:(?=\s)|(?<=[ \t\r\f\v]\n))")
_EXPANDABLE = re.compile("[" + "".join(re.escape(c) for c in _EXPANSIONS) + "]")


# Both tests on ASCII text in one translate (see `normalise`): letters "a", look-alike digits and
# symbols "1" (`_has_leet` is "a1"), separators " " (`_may_be_spaced` is " a a "), the
# apostrophe and the backquote "'" (removed from the text and the shape alike), others "x".
_ASCII_SHAPE = str.maketrans({
    code: "a" if "a" <= chr(code) <= "z" else "1" if chr(code) in "013457@$!|"
    else " " if chr(code) in " .-_*" else "'" if chr(code) in "'`" else "x"
    for code in range(128)})


def _may_be_spaced(text: str) -> bool:
    """Whether `_MAY_BE_SPACED` occurs in `text` (the spaced-letters step may have work)."""
    return " a a " in text.translate(_SPACED_SHAPE)


def _untidy_line_break(text: str) -> bool:
    """Whether the line-break step has work: whitespace next to a line break."""
    return _UNTIDY_LINE_BREAK.search(text) is not None


def _odd_whitespace(text: str) -> bool:
    return "  " in text or "\t" in text or "\r" in text or "\f" in text or "\v" in text


def normalise(text: str) -> str:
    """The canonical form of `text` (see module docstring).

    Same result as `normalise_mapped(text)[0]`, computed with cheap tests that skip the steps
    which cannot change an ordinary ticket (the tests check the two agree).
    """
    expansions, spaced, joined, newline, space, _collapse = _STEPS
    lowered = text.lower()
    shape = lowered.translate(_ASCII_SHAPE) if lowered.isascii() and len(lowered) == len(text) else ""
    if shape and "a1" not in shape:
        # ASCII without look-alikes, the usual ticket: `_fold` would give `lowered` with "`" as
        # "'", and the apostrophe is the only ASCII character that expands (to nothing).
        if "'" in shape:
            text = lowered.replace("`", "").replace("'", "")
            shape = shape.replace("'", "")
        else:
            text = lowered
        may_be_spaced = " a a " in shape
    else:
        text = _fold(text)
        if text.isascii():
            text = text.replace("'", "")
        elif _EXPANDABLE.search(text) is not None:
            text = expansions[0].sub(lambda m: expansions[1](m)[0], text)
        may_be_spaced = _may_be_spaced(text)
    if may_be_spaced:
        text = spaced[0].sub(lambda m: spaced[1](m)[0], text)
    text = joined[0].sub(" ", text)
    if "\n" in text and _untidy_line_break(text):
        text = newline[0].sub("\n", text)
    if _odd_whitespace(text):
        text = space[0].sub(" ", text)
    return _collapse_runs(text)


def _first_of_run(match: re.Match[str]) -> str:
    return match.group(2)


# For _collapse_runs: bytes.translate tables that turn a byte into a keep mask (0xFF) or not (0).
_NONZERO_KEEP = bytes([0] + [0xFF] * 255)
_DIGIT_KEEP = bytes(0xFF if chr(code).isdecimal() else 0 for code in range(256))


def _collapse_runs(text: str) -> str:
    """The last step of `normalise` (runs of one non-digit character become one, "sooo" → "so"),
    the same as `_STEPS[-1]` (the reference; a test compares them), about three times faster
    on ASCII text: the regex tries a match at every position, here a handful of C-level passes
    over the bytes do the work. A character goes when it repeats the one before it and is not
    a digit; as a big integer, `whole ^ (whole >> 8)` has a zero byte exactly there."""
    if not text.isascii() or "\0" in text:
        collapse = _STEPS[-1]
        return collapse[0].sub(_first_of_run, text)
    data = text.encode("ascii")
    size = len(data)
    whole = int.from_bytes(data, "big")
    changes = (whole ^ (whole >> 8)).to_bytes(size, "big")  # byte i: data[i] ^ data[i - 1]
    if 0 not in changes:
        return text
    keep = (int.from_bytes(changes.translate(_NONZERO_KEEP), "big")
            | int.from_bytes(data.translate(_DIGIT_KEEP), "big"))
    # Dropped characters become NUL bytes (the text has none) and go in one replace.
    return (whole & keep).to_bytes(size, "big").replace(b"\0", b"").decode("ascii")


def normalise_mapped(text: str) -> tuple[str, list[int]]:
    """The canonical form and, per canonical character, its index in `text`.

    The map has one extra final entry, `len(text)`, so `origin[end]` is valid for a match that
    ends at the end of the canonical text.
    """
    current = _fold(text)
    origin = list(range(len(text) + 1))
    for regex, replace in _STEPS:
        if regex.search(current) is None:
            continue
        pieces: list[str] = []
        new_origin: list[int] = []
        last = 0
        for match in regex.finditer(current):
            start, end = match.span()
            pieces.append(current[last:start])
            new_origin.extend(origin[last:start])
            new, positions = replace(match)
            pieces.append(new)
            new_origin.extend([origin[start + p] for p in positions])
            last = end
        pieces.append(current[last:])
        new_origin.extend(origin[last:])
        current = "".join(pieces)
        origin = new_origin
    return current, origin


def fold_literal(text: str) -> str:
    """Fold a literal written by a rule author: like `normalise`, without the look-alike step
    (authors write letters) and without joining spaced letters."""
    lowered = text.lower().translate(_FOLD_TABLE)
    for regex, replace in (_STEPS[0], _STEPS[-1]):
        lowered = regex.sub(lambda m: replace(m)[0], lowered)
    return lowered
