"""Start-up cache of compiled regexes: rules/compiled.json.

Compiling several hundred rule patterns with `re` costs most of a second of pure-Python parsing,
at every process start (a worker, a Lambda cold start). `re` compiles a pattern in two steps: a
pure-Python parser and code generator that produce a list of integers, then the C constructor
`_sre.compile` that builds the pattern object from that list. The cache keeps the integer lists
of the patterns compiled while indexing the rules, each zlib-compressed on its own (held that
way in memory, expanded only when a pattern is first used), so a start only runs the cheap C step.

The cache is only an accelerator, never a source of truth:
- it is keyed by the exact regex source and flags, so an entry can only produce the pattern
  `re.compile` would have produced for that source (with one addition that changes no result,
  see `regex_code`: a filter on the characters a match can start with);
- the integer format belongs to one CPython version, so the file records the minor version
  and the `_sre` magic number and code size, and is ignored entirely when they differ;
- a source without an entry (a rule edited since the last `python -m plugin.screening.reindex`)
  is compiled at run time, by `re`'s parser and code generator (`compile_source`).
"""

from __future__ import annotations

import array
import base64
import json
import re
import sys
import zlib
from pathlib import Path
from typing import Iterable

import _sre  # the C half of `re`, see the module docstring
from re import _compiler, _constants, _parser  # type: ignore[attr-defined]

CACHE_NAME = "compiled.json"  # package data is rules/*.json; the payload inside is compressed
_TYPECODE = {2: "H", 4: "I"}.get(_sre.CODESIZE, "I")
Key = tuple[str, int]
# (final flags, code offset, code length, groups, group index, index group, source) per
# (source, flags); the source is the key's own string object (see `compile_regex`)
_entries: dict[Key, "Entry"] = {}
_code_blob = b""
_text_cache: dict[str, str] = {}  # named derived sources (e.g. the prefilter trie) by content key
_recorded: set[Key] | None = None
_recorded_texts: dict[str, str] = {}


def _stamp() -> str:
    # The code format is fixed per minor version by `_sre.MAGIC` (changed with any opcode).
    major, minor = sys.version_info[:2]
    # "z1": each pattern's code is zlib-compressed on its own (older files are ignored).
    return f"{major}.{minor}|{_sre.MAGIC}|{_sre.CODESIZE}|{sys.maxunicode}|z1"


def cache_path() -> str:
    return str(Path(__file__).parent / "rules" / CACHE_NAME)


Entry = tuple[int, int, int, int, dict[str, int], tuple[str | None, ...], str]


def read_cache(path: str) -> tuple[dict[Key, Entry], bytes, dict[str, str]] | None:
    """The entries, code blob and derived texts of a cache file; None when the file is missing,
    unreadable or written by another Python version."""
    try:
        with open(path, "rb") as handle:
            wrapper = json.loads(handle.read())
        data = zlib.decompress(base64.b64decode(wrapper["payload"]))
        newline = data.find(b"\n")
        header = json.loads(data[:newline])
    except (OSError, zlib.error, ValueError, KeyError, TypeError):
        return None
    if not isinstance(header, dict) or header.get("stamp") != _stamp():
        return None
    entries: dict[Key, Entry] = {}
    for source, flags, final, offset, length, groups, groupindex, indexgroup in header["patterns"]:
        entries[(source, flags)] = (final, offset, length, groups, groupindex, tuple(indexgroup),
                                    source)
    return entries, data[newline + 1:], dict(header.get("texts", {}))


def pattern_from(entry: Entry, blob: bytes, source: str) -> re.Pattern[str]:
    """Build the pattern object from its cached code (the C half of `re.compile`)."""
    final, offset, length, groups, groupindex, indexgroup, _ = entry
    code = array.array(_TYPECODE)
    # Each entry is compressed on its own, so the process keeps ~1/6 of the code in memory and
    # only a pattern actually used is ever expanded.
    code.frombytes(zlib.decompress(blob[offset:offset + length]))
    return _sre.compile(source, final, code.tolist(), groups, groupindex, indexgroup)


class _NoFilter(Exception):
    """A pattern element whose first characters `_first_chars` does not work out."""


_REPEATS = (_constants.MAX_REPEAT, _constants.MIN_REPEAT, _constants.POSSESSIVE_REPEAT)
_ZERO_WIDTH = (_constants.ASSERT, _constants.ASSERT_NOT, _constants.AT)
_CASE_FLAGS = _constants.SRE_FLAG_IGNORECASE | _constants.SRE_FLAG_LOCALE
_NARROW_CATEGORIES = (_constants.CATEGORY_DIGIT, _constants.CATEGORY_SPACE)
_UNDERSCORE = ord("_")


def _is_not_after_word(element: tuple) -> bool:
    r"""Whether a parsed element is `(?<!\w)`."""
    c = _constants
    op, av = element
    if op is not c.ASSERT_NOT or av[0] != -1:
        return False
    inner = list(av[1])
    return inner == [(c.IN, [(c.CATEGORY, c.CATEGORY_WORD)])]


def _first_chars(items: Iterable, out: list) -> bool:
    """Add to `out` (charset items) every character a match of the parsed sequence `items` can
    start with; return whether the sequence can match the empty string. Look-arounds and
    anchors consume nothing, so they are skipped (the set is then a superset, never too small).
    Raises _NoFilter for anything else than literals, sets, groups, branches and repeats."""
    c = _constants
    for op, av in items:
        if op is c.LITERAL:
            out.append((c.LITERAL, av))
            return False
        if op is c.IN:
            if any(item_op is c.NEGATE for item_op, _ in av):
                raise _NoFilter
            out.extend(av)
            return False
        if op is c.BRANCH:
            nullable = False
            for alternative in av[1]:
                nullable |= _first_chars(alternative, out)
            if nullable:
                continue
            return False
        if op is c.SUBPATTERN:
            _group, add_flags, _del_flags, sub = av
            if add_flags & _CASE_FLAGS:
                raise _NoFilter
            if _first_chars(sub, out):
                continue
            return False
        if op in _REPEATS:
            least, _most, item = av
            if _first_chars(item, out) or least == 0:
                continue
            return False
        if op is c.ATOMIC_GROUP:
            if _first_chars(av, out):
                continue
            return False
        if op in _ZERO_WIDTH:
            continue
        raise _NoFilter
    return True


def _is_word_item(op: object, av: object) -> bool:
    r"""Whether every character of the charset item is a word character (`\w`, str patterns)."""
    c = _constants
    if op is c.LITERAL:
        return chr(av).isalnum() or av == _UNDERSCORE  # type: ignore[arg-type]
    if op is c.RANGE:
        low, high = av  # type: ignore[misc]
        return all(chr(code).isalnum() or code == _UNDERSCORE for code in range(low, high + 1))
    return op is c.CATEGORY and av in (c.CATEGORY_DIGIT, c.CATEGORY_WORD)


def regex_code(parsed: _parser.SubPattern, flags: int) -> list[int]:
    r"""The code `re` generates for `parsed`, with two changes that change no match:

    - where `re` finds no prefix or character set that a match must start with, the info block
      gets the set of characters any match can start with, worked out through look-arounds and
      optional parts;
    - a leading `(?<!\w)` becomes `\b` when every match starts with a word character (there
      the two agree: no word character before it), a test of two characters instead of a
      look-behind, which runs a nested match.

    Every rule pattern starts with `(?<!\w)`: `re` then finds no start set and runs the whole
    matcher at every position of the text. With the set in the info block, the search skips in
    C to the next position where a match can start and runs the same program from there, so
    the matches are the same (the set is a superset of the possible first characters; tests
    compare every cached pattern with `re.compile` on real tickets, and random patterns)."""
    c = _constants
    flags = parsed.state.flags | flags
    if flags & _CASE_FLAGS:
        return _compiler._code(parsed, flags)
    items: list = []
    try:
        nullable = _first_chars(parsed.data, items)
    except _NoFilter:
        nullable, items = True, []
    if (not nullable and flags & c.SRE_FLAG_UNICODE and parsed.data
            and _is_not_after_word(parsed.data[0])
            and all(_is_word_item(op, av) for op, av in items)):
        parsed.data[0] = (c.AT, c.AT_BOUNDARY)
    code = _compiler._code(parsed, flags)
    # code[:5] = INFO, skip, mask (prefix / charset found), minimum width, maximum width
    if code[0] != c.INFO or code[2] or not code[3] or nullable:
        return code
    if any(op is c.CATEGORY and av not in _NARROW_CATEGORIES for op, av in items):
        return code  # e.g. \w: nearly every character passes, and the test costs more than it saves
    charset, hascased = _compiler._optimize_charset(items)
    if hascased:
        return code
    info = [c.INFO, 0, c.SRE_INFO_CHARSET, code[3], code[4]]
    _compiler._compile_charset(charset, flags, info)
    info[1] = len(info) - 1
    return info + code[code[1] + 1:]


def compile_source(source: str, flags: int = 0) -> re.Pattern[str]:
    """`re.compile(source, flags)`, with the start filter of `regex_code` (and without `re`'s
    own cache: every pattern here is compiled once)."""
    parsed = _parser.parse(source, flags)
    groupindex = dict(parsed.state.groupdict)
    indexgroup = [None] * parsed.state.groups
    for name, index in groupindex.items():
        indexgroup[index] = name
    return _sre.compile(source, flags | parsed.state.flags, regex_code(parsed, flags),
                        parsed.state.groups - 1, groupindex, tuple(indexgroup))


def _load() -> None:
    global _code_blob
    found = read_cache(cache_path())
    if found is not None:
        entries, _code_blob, texts = found
        _entries.update(entries)
        _text_cache.update(texts)


def compile_regex(source: str, flags: int = 0) -> re.Pattern[str]:
    """`re.compile(source, flags)`, from the cache when it holds this exact source."""
    if _recorded is not None:
        _recorded.add((source, flags))
    entry = _entries.get((source, flags))
    if entry is None:
        return compile_source(source, flags)
    # The pattern keeps the cache's copy of its source, which stays loaded anyway; the caller's
    # equal string can then be freed (~2 MB of regex sources would otherwise exist twice).
    return pattern_from(entry, _code_blob, entry[6])


def loaded() -> bool:
    """Whether a cache file for this Python was read at import."""
    return bool(_entries)


def is_cached(source: str, flags: int = 0) -> bool:
    return (source, flags) in _entries


def derived_text(key: str) -> str | None:
    """A cached derived source (see `remember_text`), or None."""
    return _text_cache.get(key)


def take_derived_text(key: str) -> str | None:
    """`derived_text`, then forgotten: for a large source read once at start (a rules file's
    parsed form), so it does not stay in memory."""
    return _text_cache.pop(key, None)


def remember_text(key: str, text: str) -> None:
    """Keep a derived source for the next cache file (only while recording)."""
    if _recorded is not None:
        _recorded_texts[key] = text


def start_recording() -> None:
    """From now on, note every source compiled (used by reindex to build the cache)."""
    global _recorded
    _recorded = set()


def recording() -> bool:
    """Whether sources are being noted for a new cache file (`start_recording`)."""
    return _recorded is not None


def recorded() -> set[Key]:
    return set(_recorded or ())


def write_cache(keys: Iterable[Key], path: str | None = None) -> str:
    """Compile `keys` with `re`'s own parser and code generator (plus `regex_code`'s start
    filter) and write the cache file."""
    patterns = []
    blob = bytearray()
    for source, flags in sorted(keys):
        parsed = _parser.parse(source, flags)
        code = zlib.compress(array.array(_TYPECODE, regex_code(parsed, flags)).tobytes(), 9)
        groupindex = dict(parsed.state.groupdict)
        indexgroup = [None] * parsed.state.groups
        for name, index in groupindex.items():
            indexgroup[index] = name
        patterns.append([source, flags, flags | parsed.state.flags, len(blob), len(code),
                         parsed.state.groups - 1, groupindex, indexgroup])
        blob += code
    header = {"stamp": _stamp(), "about": "Generated by `python -m plugin.screening.reindex`; "
              "an accelerator only (see plugin/screening/compiled.py).",
              "patterns": patterns, "texts": dict(sorted(_recorded_texts.items()))}
    target = path or cache_path()
    document = json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    payload = base64.b64encode(zlib.compress(document + b"\n" + bytes(blob), 9)).decode("ascii")
    with open(target, "w", encoding="ascii") as out:
        json.dump({"about": header["about"], "stamp": header["stamp"], "payload": payload}, out)
        out.write("\n")
    return target


_load()
