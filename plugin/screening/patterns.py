"""Rule patterns: from the author's spelling to a compiled regex over the canonical text.

A pattern is a Python regex written in ordinary spelling (see rules/README.md). The compiler
folds its literal letters like `normalise` folds text, collapses doubled letters, turns spaces
into "any separator", expands `{macro}` / `{gap}` / `{gap:N}`, and anchors it at word edges.

`required_literals` finds strings one of which every match must contain; the engine searches
for all of them at once and runs only the rules whose strings occur (most tickets: none).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Mapping

from plugin.screening.compiled import compile_regex, recording, remember_text, take_derived_text
from plugin.screening.normalise import fold_literal

SEPARATOR = r"(?:[\W_]+)"
_WORD = r"[^\W_]+"
_MACRO_NAME = re.compile(r"\{([a-z_][a-z0-9_]*)(?::(\d+))?\}")
_QUANTIFIER_BRACES = re.compile(r"\{\d*(?:,\d*)?\}")
_MAX_DEPTH = 4
# A rule's umlaut matches the folded letter and the two-letter ASCII spelling.
_UMLAUT_SPELLINGS = {u: f"(?:{base}|{base}e)" for u, base in
                     (("ä", "a"), ("ö", "o"), ("ü", "u"), ("Ä", "a"), ("Ö", "o"), ("Ü", "u"))}
# Part of the start-up cache key of expanded patterns: bump when `expand` changes its output.
_EXPANSION_VERSION = "2"


class PatternError(ValueError):
    """A pattern that cannot be compiled; the message names the problem, never ticket text."""


_expanded_macros: dict[tuple[str, str, tuple[tuple[str, str], ...]], str] = {}


def _expand_macro(name: str, macros: Mapping[str, str], depth: int, separator: str) -> str:
    # Macros are used by many rules (and by each other): expand each one once per language.
    key = (name, separator, tuple(sorted(macros.items())))
    found = _expanded_macros.get(key)
    if found is None:
        found = _expanded_macros[key] = expand(macros[name], macros, depth + 1, separator=separator)
    return found


def expand(source: str, macros: Mapping[str, str], _depth: int = 0, *, separator: str = SEPARATOR) -> str:
    """Author's pattern → regex source over the canonical text (without word-edge anchors).

    `separator` is what a space becomes; the prefilter analysis uses a plain " ".
    """
    if _depth > _MAX_DEPTH:
        raise PatternError("macros nest too deeply")
    out: list[str] = []
    last_literal: str | None = None
    groups: list[bool] = []  # per open group: is it a look-behind (fixed width: a space is " ")
    i = 0
    n = len(source)
    while i < n:
        char = source[i]
        if char == "\\":
            out.append(source[i : i + 2])
            last_literal = None
            i += 2
            continue
        if char == "{":
            macro = _MACRO_NAME.match(source, i)
            if macro:
                name, count = macro.group(1), macro.group(2)
                if name == "gap":
                    words = int(count) if count else 3
                    if words > 8:
                        raise PatternError("{gap:N} allows at most 8 words")
                    out.append(f"(?:{_WORD}{separator}){{0,{words}}}")
                    # The gap's words carry their own separators: the space after it is absorbed.
                    end = macro.end()
                    while end < n and source[end] == " ":
                        end += 1
                    last_literal = None
                    i = end
                    continue
                elif name in macros and count is None:
                    out.append("(?:" + _expand_macro(name, macros, _depth, separator) + ")")
                else:
                    raise PatternError(f"unknown macro {{{name}}}")
                last_literal = None
                i = macro.end()
                continue
            braces = _QUANTIFIER_BRACES.match(source, i)
            if braces is None:
                raise PatternError("a '{' that is neither a macro nor a repeat count")
            out.append(braces.group())
            last_literal = None
            i = braces.end()
            continue
        if char == "(" and source.startswith("(?", i):
            j = i + 2
            if source.startswith("P<", j):
                j = source.index(">", j) + 1
            elif source.startswith(("<=", "<!"), j):
                j += 2
            else:
                j += 1
            groups.append(source[i + 2] == "<" and source[i + 3] in "=!")
            out.append(source[i:j])
            last_literal = None
            i = j
            continue
        if char == "[":
            j = i + 1
            if j < n and source[j] == "^":
                j += 1
            if j < n and source[j] == "]":
                j += 1
            while j < n and source[j] != "]":
                j += 2 if source[j] == "\\" else 1
            body = source[i : j + 1]
            out.append("".join(c if len(fold_literal(c)) != 1 else fold_literal(c) for c in body))
            last_literal = None
            i = j + 1
            continue
        if char.isspace():
            while i < n and source[i].isspace():
                i += 1
            out.append(" " if any(groups) else separator)
            last_literal = None
            continue
        if char == "(":
            groups.append(False)
        elif char == ")" and groups:
            groups.pop()
        if char in "()|.^$*+?]":
            out.append(char)
            last_literal = None
            i += 1
            continue
        if char in _UMLAUT_SPELLINGS and not any(groups):
            # German written without umlauts spells ä as "ae": both spellings meet the pattern
            # (the text keeps its own letters, so offsets stay exact). Not in a lookbehind,
            # which needs a fixed width.
            out.append(_UMLAUT_SPELLINGS[char])
            last_literal = None
            i += 1
            continue
        folded = fold_literal(char)
        i += 1
        next_is_quantifier = i < n and source[i] in "?*+{"
        for piece in folded:
            if piece == last_literal and not piece.isdigit() and not next_is_quantifier:
                continue
            out.append(re.escape(piece))
            last_literal = piece
    return "".join(out)


def _expanded(sources: list[str], macros: Mapping[str, str]) -> list[str]:
    """`expand` of each source; the start-up cache keeps the results (expanding in Python
    costs more than compiling from the cache). A cached result is handed out once and then
    forgotten: each rule compiles once per process, and keeping all of them cost ~1 MB."""
    # The key is the digest of json.dumps([sources, macros], sort_keys=True), written out so a
    # language's macros (the same mapping for all its ~150 rules) are serialised once.
    document = "[" + json.dumps(sources) + ", " + _macros_json(macros) + "]"
    key = f"expand:{_EXPANSION_VERSION}:" + hashlib.sha256(document.encode("utf-8")).hexdigest()
    cached = take_derived_text(key)
    bodies = json.loads(cached) if cached is not None else [expand(s, macros) for s in sources]
    if recording():
        remember_text(key, json.dumps(bodies))
    return bodies


_MACROS_JSON: dict[int, tuple[Mapping[str, str], str]] = {}


def _macros_json(macros: Mapping[str, str]) -> str:
    # Keyed by identity; the entry holds the mapping itself, so its id cannot be reused.
    found = _MACROS_JSON.get(id(macros))
    if found is None or found[0] is not macros:
        found = _MACROS_JSON[id(macros)] = (macros, json.dumps(dict(macros), sort_keys=True))
    return found[1]


def compile_pattern(source: str, macros: Mapping[str, str], *, anchored: bool = True) -> re.Pattern[str]:
    body = _expanded([source], macros)[0]
    if anchored:
        body = rf"(?<!\w)(?:{body})(?!\w)"
    try:
        return compile_regex(body)
    except re.error as exc:
        raise PatternError(f"invalid regex: {exc.msg}") from None


def compile_alternatives(sources: list[str], macros: Mapping[str, str], *, anchored: bool = True,
                         flags: int = 0) -> re.Pattern[str] | None:
    """One regex matching any of `sources` (None when the list is empty)."""
    if not sources:
        return None
    bodies = _expanded(sources, macros)
    body = "|".join(f"(?:{b})" for b in bodies)
    if anchored:
        body = rf"(?<!\w)(?:{body})(?!\w)"
    try:
        return compile_regex(body, flags)
    except re.error as exc:
        raise PatternError(f"invalid regex: {exc.msg}") from None


# ------------------------------------------------------------------ required literals

# Largest exact string set the prefilter analysis keeps. Larger sets give long, selective literals
# for rules built from many spellings (censored words), but every literal grows the finder's
# trie and its memory (measured with 741 rules: 24 → 53 MB, 32 → 56 MB, 64 → 59.5 MB).
_MAX_EXACT = 32
_MAX_RUN = 48  # parsed elements (mostly single characters) per candidate string


def _cost(literals: frozenset[str], frequent: frozenset[str]) -> float:
    """Expected hits of a set of strings in ordinary text (lower is better)."""
    def one(text: str) -> float:
        core = text.strip()
        if all(word in frequent for word in core.split()):
            return 4.0 + 1.0 / max(len(core), 1)
        if len(core) <= 3 and any(word.startswith(core) for word in frequent):
            # The finder matches at word starts, so "qu" is found wherever "que" is.
            return 4.0 + 1.0 / max(len(core), 1)
        if len(core) <= 3:
            return 5.0 - len(core)
        return 8.0 / len(core) ** 2
    # fsum: exact, so the total (and the choice between near-equal sets) does not depend on the
    # set's iteration order, which changes with the hash seed.
    return math.fsum(one(s) for s in literals)


def _exact_element(op: object, arg: object, memo: dict[int, frozenset[str] | None]) -> frozenset[str] | None:
    """The finite set of strings one parsed element matches, or None."""
    if op is sre.LITERAL:
        return frozenset({chr(arg)})  # type: ignore[arg-type]
    if op is sre.SUBPATTERN:
        return _exact(arg[-1], memo)  # type: ignore[index]
    if op is sre.BRANCH:
        alternatives = [_exact(alt, memo) for alt in arg[1]]  # type: ignore[index]
        if any(a is None for a in alternatives):
            return None
        union = frozenset().union(*alternatives)  # type: ignore[arg-type]
        return union if len(union) <= _MAX_EXACT else None
    if op is sre.MAX_REPEAT and arg[0] == 0 and arg[1] == 1:  # type: ignore[index]
        inner = _exact(arg[2], memo)  # type: ignore[index]
        return None if inner is None else inner | {""}
    if op is sre.IN and all(kind is sre.LITERAL for kind, _ in arg):  # type: ignore[union-attr]
        return frozenset(chr(v) for _, v in arg)  # type: ignore[union-attr]
    if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
        return frozenset({""})
    return None


def _product(a: frozenset[str], b: frozenset[str]) -> frozenset[str] | None:
    if len(a) * len(b) > _MAX_EXACT:
        return None
    return frozenset(x + y for x in a for y in b)


def _exact(items: object, memo: dict[int, frozenset[str] | None]) -> frozenset[str] | None:
    """The finite set of strings a parsed sequence matches, or None (unbounded, class, too many)."""
    key = id(items)
    if key in memo:
        return memo[key]
    result: frozenset[str] | None = frozenset({""})
    for op, arg in items:  # type: ignore[attr-defined]
        options = _exact_element(op, arg, memo)
        result = None if options is None else _product(result, options)  # type: ignore[arg-type]
        if result is None:
            break
    memo[key] = result
    return result


def _searchable(literal: str) -> bool:
    """Long enough to be worth looking for (an emoji on its own is)."""
    core = literal.strip()
    return len(core) >= 2 or (len(core) == 1 and not core.isascii())


def _best(candidates: list[frozenset[str] | None], frequent: frozenset[str]) -> frozenset[str] | None:
    usable = [c for c in candidates if c and all(_searchable(s) for s in c)]
    if not usable:
        return None
    return min(usable, key=lambda c: (_cost(c, frequent), sorted(c)))


def _literals(items: object, frequent: frozenset[str], memo: dict[int, frozenset[str] | None],
              word_start: bool = True) -> frozenset[str] | None:
    """A set of strings one of which every match of the sequence contains, each string starting
    where a word starts (the finder only looks at word starts, which keeps it fast)."""
    candidates: list[frozenset[str] | None] = []
    run: list[frozenset[str]] = []
    run_starts: list[bool] = []  # per element of the run: does a word start right before it?

    def close_run() -> None:
        # Every contiguous part of a run of exact elements that begins at a word start is a
        # candidate: a long part is selective, a shorter one avoids an optional piece or too
        # many combinations.
        for first in range(len(run)):
            if not run_starts[first]:
                continue
            combined: frozenset[str] | None = frozenset({""})
            for last in range(first, min(len(run), first + _MAX_RUN)):
                combined = _product(combined, run[last])  # type: ignore[arg-type]
                if combined is None:
                    break
                candidates.append(combined)
        run.clear()
        run_starts.clear()

    boundary = word_start
    for op, arg in items:  # type: ignore[attr-defined]
        exact = _exact_element(op, arg, memo)
        if exact is not None:
            run.append(exact)
            run_starts.append(boundary)
            boundary = all(s.endswith(" ") if s else boundary for s in exact)
            continue
        close_run()
        if op is sre.SUBPATTERN:
            candidates.append(_literals(arg[-1], frequent, memo, boundary))  # type: ignore[index]
        elif op is sre.BRANCH:
            alternatives = [_literals(alt, frequent, memo, boundary) for alt in arg[1]]  # type: ignore[index]
            if all(alternatives):
                candidates.append(frozenset().union(*alternatives))  # type: ignore[arg-type]
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None)):
            low, _high, item = arg  # type: ignore[misc]
            if low >= 1:
                candidates.append(_literals(item, frequent, memo, boundary))
        # After an element that ends with a space (e.g. an optional "(\w+ )?"), a word starts.
        boundary = boundary and _ends_with_space([(op, arg)])
    close_run()
    return _best(candidates, frequent)


def _ends_with_space(items: object) -> bool:
    """Whether every match of the parsed sequence ends with a space."""
    elements = list(items)  # type: ignore[call-overload]
    if not elements:
        return False
    op, arg = elements[-1]
    if op is sre.LITERAL:
        return arg == 32
    if op is sre.SUBPATTERN:
        return _ends_with_space(arg[-1])  # type: ignore[index]
    if op is sre.BRANCH:
        return all(_ends_with_space(alt) for alt in arg[1])  # type: ignore[index]
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        return _ends_with_space(arg[2])  # type: ignore[index]
    return False


def analysis_regex(source: str, macros: Mapping[str, str]) -> re.Pattern[str]:
    """The pattern with every space a single literal space: what the prefilter analyses."""
    return re.compile(expand(source, macros, separator=" "))


def required_literals(regex: re.Pattern[str], frequent: frozenset[str] = frozenset()) -> frozenset[str] | None:
    """Strings of which every match contains at least one, or None if no useful set exists.

    Among the possible sets it picks the one least likely to occur in ordinary text: long
    strings, few of them, none of them a `frequent` word.
    """
    found = _literals(sre_parse.parse(regex.pattern, regex.flags), frequent, {})
    return found or None


def literal_trie(words: list[str]) -> str:
    """A regex source matching any of `words`, factored as a trie (fast in `re`)."""
    trie: dict[str, dict] = {}
    for word in sorted(set(words)):
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def render(node: dict[str, dict]) -> str:
        ends = "" in node
        branches = [re.escape(c) + render(child) for c, child in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            body = f"(?:{body})?"
        return body

    return render(trie)
