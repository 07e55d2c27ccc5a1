"""Load the per-language rule files (package data) and compile them once.

The format is documented in rules/README.md. Validation is strict: an unknown key, a missing
key, a bad category or a pattern that does not compile stops the import with a message that
names the file and the rule.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from plugin.model import FLAGS, TIERS
from plugin.screening.compiled import compile_regex, derived_text, remember_text, take_derived_text
from plugin.screening.normalise import normalise
from plugin.screening.patterns import (
    PatternError,
    analysis_regex,
    compile_alternatives,
    compile_pattern,
    literal_trie,
    required_literals,
)

try:  # the ASCII prefilter's fast form (see _ascii_automaton); without it the regex form runs
    import ahocorasick
except ImportError:  # pragma: no cover - a declared dependency
    ahocorasick = None

CATEGORIES = (
    "distress", "hopelessness", "burden_isolation", "bereavement", "history",
    "passive_ideation", "active_ideation", "self_harm", "third_party",
    "plan_method_means", "timing", "preparation_final_arrangements", "farewell",
    "attempt_in_progress",
)
SCOPE_KEYS = (
    "negators", "reassurance", "past", "recovered", "recent", "hypothetical", "first_person",
    "third_party", "clause_breaks", "contrast", "quote_headers", "signatures", "lookalikes",
    "content_reports", "purpose_negations",
)
PERSONS = ("auto", "first", "third")
# `role`: what a rule's match does in combinations beyond its category (see README "Roles").
ROLES = ("", "intent")
_TOP_KEYS = {"language", "macros", "scope", "rules", "cases"}
_LANGUAGE_KEYS = {"code", "name", "stopwords"}
_RULE_KEYS = {"id", "category", "weight", "pattern", "person", "role", "note", "match", "no_match"}
_RULE_REQUIRED = {"id", "category", "weight", "pattern", "match", "no_match"}
_CASE_KEYS = {"text", "tier", "flags"}
LITERAL_CACHE = "literals.json"
# Circumstances (a time, a medication name, a cancellation): evidence only next to other evidence.
CIRCUMSTANCES = frozenset({"timing", "plan_method_means", "preparation_final_arrangements"})
SUPPORTING_BELOW = 0.35
MEANS_AT_HAND = 0.30  # plan_method_means at or above this is means at hand, not just a word
# Bits per language in Rulebook.stopword_packed: room for 2**48 - 1 stopwords per text, more
# than any text that fits in memory has words.
STOPWORD_FIELD_BITS = 48


class RulebookError(ValueError):
    """A rules file that does not follow rules/README.md."""


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    id: str
    category: str
    weight: float
    pattern: str
    person: str
    language: str
    macros: Mapping[str, str] = field(repr=False)
    match_examples: tuple[str, ...] = ()
    no_match_examples: tuple[str, ...] = ()
    role: str = ""
    _compiled: dict[str, re.Pattern[str]] = field(default_factory=dict, repr=False)

    # Never counts alone: only run once another rule has matched the text. A stated intent
    # ("I'm going to do it") runs on its own: next to means at hand or a time frame it is the
    # only other evidence a ticket may have. Means alone never run: pharmacy tickets ("my
    # tablets are ready, I'll collect them tonight") are full of them. Set from the fields
    # (read on every candidate of every ticket, so not a property).
    supporting: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "supporting", self.category in CIRCUMSTANCES
                           and self.weight < SUPPORTING_BELOW and self.role != "intent")

    @property
    def regex(self) -> re.Pattern[str]:
        """The compiled pattern. Compiled on first use: most rules never run on most texts,
        and compiling all of them at import would cost more than the whole import budget."""
        compiled = self._compiled.get("regex")
        if compiled is None:
            try:
                compiled = compile_pattern(self.pattern, self.macros)
            except PatternError as exc:
                raise RulebookError(f"rule {self.id}: {exc}") from None
            self._compiled["regex"] = compiled
        return compiled


@dataclass(frozen=True, slots=True)
class Case:
    language: str
    text: str
    tier: str
    flags: frozenset[str]


@dataclass(frozen=True, slots=True)
class LanguageRules:
    code: str
    name: str
    stopwords: frozenset[str]
    rules: tuple[Rule, ...]
    scope: Mapping[str, tuple[str, ...]]
    macros: Mapping[str, str]
    cases: tuple[Case, ...]


@dataclass(slots=True)
class Rulebook:
    """All languages, plus the combined regexes the engine runs on every text."""

    languages: dict[str, LanguageRules]
    rules: tuple[Rule, ...]
    # The `\b` form of the literal finder, for text that is not ASCII (rare): compiled on first
    # use, since the trie regex costs a few MB and most processes never see such a ticket.
    literal_finder_source: str | None
    rules_by_literal: dict[str, tuple[int, ...]]
    symbol_literals: tuple[str, ...]
    unfiltered_rules: tuple[int, ...]
    history_cut: re.Pattern[str] | None
    stopword_index: dict[str, tuple[str, ...]]
    # stopword_index as one integer per word: a field of STOPWORD_FIELD_BITS bits per language
    # (at the shift given in stopword_fields), 1 where the word is one of its stopwords; the
    # sum over a text's words then holds every language's count (see engine._stopword_hits).
    stopword_packed: dict[str, int] = field(default_factory=dict)
    stopword_fields: tuple[tuple[int, str], ...] = ()
    # The finder's forms for ASCII text: see _ascii_finder (a regex, compiled on first use: the
    # reference, and the fallback without pyahocorasick) and _ascii_automaton (what runs).
    ascii_finder_source: str | None = None
    ascii_separators: dict[int, str] = field(default_factory=dict)
    ascii_automaton: Any = None
    ascii_leads: tuple[str, ...] = ()
    _cues: dict[tuple[str, tuple[str, ...]], re.Pattern[str] | None] = field(default_factory=dict)
    _literal_finder: re.Pattern[str] | None = None
    _ascii_finder: re.Pattern[str] | None = None
    _frequent: dict[tuple[str, ...], frozenset[str]] = field(default_factory=dict)

    @property
    def literal_finder(self) -> re.Pattern[str] | None:
        if self.literal_finder_source is None:
            return None
        if self._literal_finder is None:
            self._literal_finder = compile_regex(self.literal_finder_source)
        return self._literal_finder

    @property
    def ascii_finder(self) -> re.Pattern[str] | None:
        if self.ascii_finder_source is None:
            return None
        if self._ascii_finder is None:
            self._ascii_finder = compile_regex(self.ascii_finder_source)
        return self._ascii_finder

    def candidate_rules(self, text: str, languages: Iterable[str] | None = None) -> list[Rule]:
        """Rules (of `languages`, default all) whose required strings occur in `text`, plus the
        few that have none."""
        indexes = set(self.unfiltered_rules)
        automaton = self.ascii_automaton
        if automaton is not None and text.isascii():
            # Same strings as the regex form below (see _ascii_automaton; a test compares them).
            spaced = " " + text.translate(self.ascii_separators)
            for lead in self.ascii_leads:
                if lead in spaced:
                    spaced = spaced.replace(lead, lead + " ")
            for _end, rules in automaton.iter(spaced):
                indexes.update(rules)
            found_literals = []
        elif self.ascii_finder_source is not None and text.isascii():
            found_literals = self.ascii_finder.findall(" " + text.translate(self.ascii_separators))
        elif self.literal_finder_source is not None:
            # Prefilter strings are written with plain spaces; a phrase may wrap onto a new line.
            found_literals = self.literal_finder.findall(text.replace("\n", " "))
        else:
            found_literals = []
        for found in found_literals:
            indexes.update(self.rules_by_literal[found])
        for symbol in self.symbol_literals:
            if symbol in text:
                indexes.update(self.rules_by_literal[symbol])
        wanted = None if languages is None else frozenset(languages)
        return [self.rules[i] for i in sorted(indexes) if wanted is None or self.rules[i].language in wanted]

    def cue(self, key: str, languages: Iterable[str] | None = None) -> re.Pattern[str] | None:
        """The scope cues `key` of `languages` (default all) as one regex, compiled on first use.

        Cues only apply in their own languages: a laughter marker of one language must not
        soften a sentence written in another."""
        codes = tuple(sorted(self.languages if languages is None else set(languages) & set(self.languages)))
        cache_key = (key, codes)
        if cache_key not in self._cues:
            chosen = {code: self.languages[code] for code in codes}
            if key == "subject":
                self._cues[cache_key] = _subject_cues(chosen)
            else:
                self._cues[cache_key] = _combined_cues(chosen, key)
        return self._cues[cache_key]

    def frequent_words(self, languages: Iterable[str]) -> frozenset[str]:
        """The stopwords of `languages` (cached per set of languages)."""
        codes = tuple(sorted(set(languages) & set(self.languages)))
        found = self._frequent.get(codes)
        if found is None:
            found = self._frequent[codes] = frequent_words({c: self.languages[c] for c in codes})
        return found

    def compile_all(self) -> None:
        """Compile every rule and cue now (tests, benchmarks, and a warm-up at service start)."""
        for rule in self.rules:
            rule.regex  # noqa: B018 - compiles and caches
        for key in SCOPE_KEYS:
            if key not in ("first_person", "third_party", "quote_headers", "signatures"):
                self.cue(key)
        self.cue("subject")


def _fail(source: str, message: str) -> RulebookError:
    return RulebookError(f"{source}: {message}")


def _string_list(value: Any, source: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(source, f"{key} must be a list of non-empty strings")
    return tuple(value)


def parse_language(data: Mapping[str, Any], source: str) -> LanguageRules:
    """Validate and compile one parsed rules file."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _fail(source, f"unknown top-level keys {sorted(unknown)}")
    language = data.get("language")
    if not isinstance(language, dict) or set(language) != _LANGUAGE_KEYS:
        raise _fail(source, f"[language] must have exactly the keys {sorted(_LANGUAGE_KEYS)}")
    code = language["code"]
    if not (isinstance(code, str) and re.fullmatch(r"[a-z]{2}", code)):
        raise _fail(source, "[language] code must be an ISO 639-1 code")
    stopwords = frozenset(normalise(w) for w in _string_list(language["stopwords"], source, "stopwords"))

    macros = data.get("macros", {})
    if not isinstance(macros, dict) or not all(isinstance(v, str) for v in macros.values()):
        raise _fail(source, "[macros] must map names to strings")

    scope_data = data.get("scope")
    if not isinstance(scope_data, dict):
        raise _fail(source, "[scope] table is required")
    unknown = set(scope_data) - set(SCOPE_KEYS)
    if unknown:
        raise _fail(source, f"unknown [scope] keys {sorted(unknown)}")
    scope = {key: _string_list(scope_data.get(key, []), source, f"scope.{key}") for key in SCOPE_KEYS}

    rules = []
    for index, entry in enumerate(data.get("rules", [])):
        rules.append(_parse_rule(entry, f"{source} rule #{index + 1}", code, macros))
    if not rules:
        raise _fail(source, "no [[rules]]")

    cases = []
    for index, entry in enumerate(data.get("cases", [])):
        where = f"{source} case #{index + 1}"
        if not isinstance(entry, dict) or not {"text", "tier"} <= set(entry) <= _CASE_KEYS:
            raise _fail(where, "a case has text, tier and optionally flags")
        if entry["tier"] not in TIERS:
            raise _fail(where, f"tier must be one of {TIERS}")
        flags = frozenset(_string_list(entry.get("flags", []), where, "flags")) if entry.get("flags") else frozenset()
        if not flags <= set(FLAGS):
            raise _fail(where, f"flags must be among {FLAGS}")
        cases.append(Case(code, entry["text"], entry["tier"], flags))

    return LanguageRules(code, str(language["name"]), stopwords, tuple(rules), scope, dict(macros), tuple(cases))


def _parse_rule(entry: Any, where: str, code: str, macros: Mapping[str, str]) -> Rule:
    if not isinstance(entry, dict):
        raise _fail(where, "a rule is a table")
    missing = _RULE_REQUIRED - set(entry)
    unknown = set(entry) - _RULE_KEYS
    if missing or unknown:
        raise _fail(where, f"missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    rule_id = entry["id"]
    where = f"{where} ({rule_id})"
    if not (isinstance(rule_id, str) and rule_id.startswith(code + ".")):
        raise _fail(where, f"id must start with '{code}.'")
    if entry["category"] not in CATEGORIES:
        raise _fail(where, f"category must be one of {CATEGORIES}")
    weight = entry["weight"]
    if not isinstance(weight, (int, float)) or not 0 < weight <= 1:
        raise _fail(where, "weight must be a number in (0, 1]")
    person = entry.get("person", "auto")
    if person not in PERSONS:
        raise _fail(where, f"person must be one of {PERSONS}")
    role = entry.get("role", "")
    if role not in ROLES or (role == "intent" and entry["category"] != "plan_method_means"):
        raise _fail(where, "role must be \"intent\" (on a plan_method_means rule) or absent")
    if not isinstance(entry["pattern"], str) or not entry["pattern"].strip():
        raise _fail(where, "pattern must be a non-empty string")
    match = _string_list(entry["match"], where, "match")
    no_match = _string_list(entry["no_match"], where, "no_match")
    if not match or not no_match:
        raise _fail(where, "match and no_match each need at least one example")
    return Rule(rule_id, entry["category"], float(weight), entry["pattern"], person, code, macros, match, no_match, role)


def _combined_cues(languages: Mapping[str, LanguageRules], key: str, flags: int = 0,
                   anchored: bool = True) -> re.Pattern[str] | None:
    bodies = []
    for lang in languages.values():
        compiled = compile_alternatives(list(lang.scope[key]), lang.macros, anchored=False)
        if compiled is not None:
            bodies.append(compiled.pattern)
    if not bodies:
        return None
    body = "|".join(f"(?:{b})" for b in bodies)
    if anchored:
        body = rf"(?<!\w)(?:{body})(?!\w)"
    return compile_regex(body, flags)


def _subject_cues(languages: Mapping[str, LanguageRules]) -> re.Pattern[str] | None:
    """Subject words: third-party alternatives first, so "my son" wins over "my"."""
    parts = []
    for key, group in (("third_party", "third"), ("first_person", "first")):
        combined = _combined_cues(languages, key, anchored=False)
        if combined is not None:
            parts.append(f"(?P<{group}>{combined.pattern})")
    return compile_regex(rf"(?<!\w)(?:{'|'.join(parts)})(?!\w)") if parts else None


def frequent_words(languages: Mapping[str, LanguageRules]) -> frozenset[str]:
    return frozenset().union(*(lang.stopwords for lang in languages.values()))


def rule_key(rule: Rule) -> str:
    """What the prefilter strings of a rule depend on: its pattern and its language's macros."""
    return digest(rule.pattern + "\0" + json.dumps(dict(rule.macros), sort_keys=True))


def analyse_rule(rule: Rule, frequent: frozenset[str]) -> list[str] | None:
    """The strings the prefilter looks for (None: the rule always runs)."""
    literals = required_literals(analysis_regex(rule.pattern, rule.macros), frequent)
    return sorted(literals) if literals is not None else None


def build(languages: Mapping[str, LanguageRules],
          literals: Mapping[str, list[str] | None] | None = None) -> Rulebook:
    """Index all languages. `literals` (per rule id) comes from the cache; other rules are analysed."""
    rules: list[Rule] = []
    seen: set[str] = set()
    for lang in languages.values():
        for rule in lang.rules:
            if rule.id in seen:
                raise RulebookError(f"rule id {rule.id} is used twice")
            seen.add(rule.id)
            rules.append(rule)

    known = dict(literals or {})
    frequent = frequent_words(languages)
    for rule in rules:
        if rule.id not in known:
            known[rule.id] = analyse_rule(rule, frequent)

    literal_rules: dict[str, set[int]] = {}
    unfiltered = []
    for index, rule in enumerate(rules):
        rule_literals = known[rule.id]
        if not rule_literals:
            unfiltered.append(index)
            continue
        for literal in rule_literals:
            literal_rules.setdefault(literal, set()).add(index)
    # The finder returns the longest literal at each position; a rule whose literal is a prefix
    # of the found one must run too. In sorted order a string's prefixes come before it, and
    # every string between a prefix and it shares that prefix: a stack of the current chain of
    # prefixes gives each string its prefixes' rules in one pass.
    # ~14,500 strings share ~2,700 distinct rule lists: one tuple object per distinct list.
    rules_by_literal = {}
    distinct: dict[tuple[int, ...], tuple[int, ...]] = {}
    chain: list[tuple[str, frozenset[int]]] = []
    for found in sorted(literal_rules):
        while chain and not found.startswith(chain[-1][0]):
            chain.pop()
        ids = literal_rules[found].union(chain[-1][1]) if chain else frozenset(literal_rules[found])
        chain.append((found, ids))
        indexes = tuple(sorted(ids))
        rules_by_literal[found] = distinct.setdefault(indexes, indexes)
    # Every prefilter string starts where a word starts (or is the space before a word), so the
    # finder only tries word boundaries; the few that start with a symbol (an emoji) are looked
    # up one by one.
    worded = [lit for lit in literal_rules if lit[0].isspace() or lit[0].isalnum() or lit[0] == "_"]
    symbols = tuple(sorted(set(literal_rules) - set(worded)))
    finder_source = rf"\b(?=({_trie_source(worded)}))" if worded else None
    ascii_finder_source, ascii_separators, ascii_leads = _ascii_finder(worded) if worded else (None, {}, ())
    automaton = _ascii_automaton(worded, rules_by_literal, ascii_leads) if worded else None

    cut_sources = []
    for key in ("quote_headers", "signatures"):
        combined = _combined_cues(languages, key, anchored=False)
        if combined is not None:
            cut_sources.append(combined.pattern)
    history_cut = None
    if cut_sources:
        history_cut = compile_regex(r"^[ \t]*(?:" + "|".join(f"(?:{s})" for s in cut_sources) + r")",
                                    re.MULTILINE | re.DOTALL)
    stopword_index: dict[str, list[str]] = {}
    for lang in languages.values():
        for word in sorted(lang.stopwords):
            stopword_index.setdefault(word, []).append(lang.code)
    fields = tuple((position * STOPWORD_FIELD_BITS, code) for position, code in enumerate(sorted(languages)))
    shift_of = {code: shift for shift, code in fields}
    stopword_packed = {word: sum(1 << shift_of[code] for code in codes) for word, codes in stopword_index.items()}
    return Rulebook(
        languages=dict(languages),
        rules=tuple(rules),
        literal_finder_source=finder_source,
        rules_by_literal=rules_by_literal,
        symbol_literals=symbols,
        unfiltered_rules=tuple(unfiltered),
        history_cut=history_cut,
        stopword_index={w: tuple(codes) for w, codes in stopword_index.items()},
        stopword_packed=stopword_packed,
        stopword_fields=fields,
        ascii_finder_source=ascii_finder_source,
        ascii_separators=ascii_separators,
        ascii_automaton=automaton,
        ascii_leads=ascii_leads,
    )


def _ascii_finder(worded: list[str]) -> tuple[str, dict[int, str], tuple[str, ...]]:
    """The literal finder's form for ASCII text (its source), the translate table it reads
    through, and the ASCII characters other than the space after which it looks for strings.

    `\b(?=(…))` is tried at every position of the text, because a leading assertion stops the
    regex engine from skipping ahead. Here every ASCII character that is neither a word
    character nor used inside a literal becomes a space, the text gets a leading space, and
    the finder starts with the separator class: the engine then jumps from separator to
    separator (word starts) in C. Every literal starts with a word character, so it finds every
    string the \b form finds, and a few more where punctuation stands where a literal has a
    space ("called." for "caled "): harmless for a prefilter, the rule's own regex decides."""
    inner = sorted(c for c in set("".join(worded)) if not (c.isalnum() or c == "_"))
    separators = {code: " " for code in range(128)
                  if not (chr(code).isalnum() or chr(code) == "_" or chr(code) in inner)}
    lead = "[" + re.escape(" " + "".join(c for c in inner if c != " ")) + "]"
    leads = tuple(c for c in inner if c != " " and c.isascii())
    return rf"{lead}(?=({_trie_source(worded)}))", separators, leads


def _ascii_automaton(worded: list[str], rules_by_literal: Mapping[str, tuple[int, ...]],
                     leads: tuple[str, ...]) -> Any:
    """The ASCII finder as an Aho-Corasick automaton (pyahocorasick): the same rules, in one
    pass of C over the text, about three times faster than the regex trie (None without the
    library: the regex form then runs).

    The regex form finds, after each separator (a space, or a character in `leads`), the
    longest string that starts there; the rules behind it include those of every string that is
    a prefix of it. The automaton finds every string that occurs anywhere, so each string's key
    is its text with a space in front, and in both the text and the keys a space follows every
    character in `leads` ("a&e" → "a& e"): the space in front of a key is then a separator,
    and the rest is the string, character for character (one character of the text or key per
    character of the string, and the inserted spaces only after lead characters). At each
    separator the automaton reports every string that starts there — the longest one and each
    of its prefixes that is a string too — whose rules together are the longest one's."""
    if ahocorasick is None:
        return None
    automaton = ahocorasick.Automaton()
    for literal in worded:
        key = literal
        for lead in leads:
            key = key.replace(lead, lead + " ")
        automaton.add_word(" " + key, rules_by_literal[literal])
    automaton.make_automaton()
    return automaton


def _trie_source(words: list[str]) -> str:
    """The prefilter's trie regex for `words` (rendering it is slow: cached by content)."""
    key = "trie:" + digest("\n".join(sorted(set(words))))
    source = derived_text(key)
    if source is None:
        source = literal_trie(words)
    remember_text(key, source)
    return source


def load_language_file(name: str, text: str) -> LanguageRules:
    # tomllib is pure Python: a third of the rulebook's start-up went to reading ~1 MB of TOML.
    # rules/compiled.json keeps each file's parsed form as JSON, keyed by the file's exact text
    # (so an edited file is read from its TOML), and validation below runs either way.
    key = "toml:" + digest(text)
    cached = take_derived_text(key)
    if cached is not None:
        data = json.loads(cached)
    else:
        # Imported only here: the screener's own start reads the cached form (and tomllib
        # would cost 0.6 MB of its memory budget).
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RulebookError(f"{name}: not valid TOML ({exc})") from None
    remember_text(key, cached if cached is not None else json.dumps(data, ensure_ascii=False))
    parsed = parse_language(data, name)
    if f"{parsed.code}.toml" != name:
        raise RulebookError(f"{name}: [language] code {parsed.code!r} does not match the file name")
    return parsed


def rules_folder() -> Path:
    # A plain path, not importlib.resources: the package is always installed as files, and
    # importing importlib.resources (zipfile, tempfile, shutil…) cost 2 MB of the screener's
    # 60 MB memory budget.
    return Path(__file__).parent / "rules"


def rule_files() -> list[tuple[str, str]]:
    """(file name, text) of every rules/*.toml shipped in the package, in name order."""
    found = []
    for entry in rules_folder().iterdir():
        if entry.name.endswith(".toml"):
            found.append((entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_literal_cache() -> dict[str, Any]:
    """rules/literals.json: per rule id, {"key": rule_key, "literals": [...] | null}."""
    entry = rules_folder().joinpath(LITERAL_CACHE)
    try:
        data = json.loads(entry.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    rules = data.get("rules", {}) if isinstance(data, dict) else {}
    return rules if isinstance(rules, dict) else {}


def load(*, keep_examples: bool = True) -> Rulebook:
    """Read, validate and index every rules file. Prefilter strings come from rules/literals.json
    for every rule whose pattern is unchanged (see plugin/screening/reindex.py); others are analysed.

    `keep_examples=False` (the screener's own rulebook) drops each rule's match / no_match
    examples and each file's cases once they are validated: ~6,000 texts the screener never
    reads, ~1 MB of its 60 MB budget. Tests and tools read them from `load_language_file`."""
    languages = {}
    for name, text in rule_files():
        parsed = load_language_file(name, text)
        if not keep_examples:
            parsed = dataclasses.replace(parsed, cases=(), rules=tuple(
                dataclasses.replace(rule, match_examples=(), no_match_examples=())
                for rule in parsed.rules))
        languages[parsed.code] = parsed
    if "en" not in languages:
        raise RulebookError("rules/en.toml is missing")
    cache = read_literal_cache()
    literals: dict[str, list[str] | None] = {}
    for lang in languages.values():
        for rule in lang.rules:
            cached = cache.get(rule.id)
            if isinstance(cached, dict) and cached.get("key") == rule_key(rule):
                literals[rule.id] = cached.get("literals")
    return build(languages, literals)
