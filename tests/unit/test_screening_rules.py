"""Every rules file present (rules/*.toml, any language): format, embedded examples, cases.

A clinician reviews the rule files; these tests make sure that what the files claim is true:
each rule fires on its `match` examples and not on its `no_match` examples, each whole-text
`[[cases]]` entry gets its tier, and the prefilter never hides a rule from a text it matches.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections import Counter
from importlib import resources

import pytest

from plugin.screening import compiled, rulebook, screen
from plugin.screening.engine import BOOK
from plugin.screening.normalise import normalise
from plugin.screening.patterns import PatternError, compile_pattern, expand, required_literals, analysis_regex

FILES = rulebook.rule_files()
LANGUAGES = {name: rulebook.load_language_file(name, text) for name, text in FILES}
RULES = [rule for lang in LANGUAGES.values() for rule in lang.rules]
CASES = [case for lang in LANGUAGES.values() for case in lang.cases]


def fires(rule: rulebook.Rule, text: str) -> bool:
    """The rule matches the canonical text somewhere no look-alike of its language covers."""
    canonical = normalise(text)
    lookalikes = BOOK.cue("lookalikes", [rule.language])
    spans = [m.span() for m in lookalikes.finditer(canonical)] if lookalikes else []
    for match in rule.regex.finditer(canonical):
        if not any(s < match.end() and match.start() < e for s, e in spans):
            return True
    return False


def test_rule_files_exist_and_english_is_among_them() -> None:
    names = [name for name, _ in FILES]
    assert "en.toml" in names
    assert all(re.fullmatch(r"[a-z]{2}\.toml", name) for name in names)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_compiles_and_fires_on_its_examples(rule: rulebook.Rule) -> None:
    assert rule.regex.pattern
    for example in rule.match_examples:
        assert fires(rule, example), f"{rule.id} should match {example!r}"
    for example in rule.no_match_examples:
        assert not fires(rule, example), f"{rule.id} should not match {example!r}"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_prefilter_lets_every_matching_example_through(rule: rulebook.Rule) -> None:
    for example in rule.match_examples:
        candidates = {r.id for r in BOOK.candidate_rules(normalise(example))}
        assert rule.id in candidates, f"{rule.id} hidden from {example!r}"


def _rules_behind(literals: list[str]) -> set[int]:
    return {index for literal in literals for index in BOOK.rules_by_literal[literal]}


def test_the_ascii_finder_lets_through_every_rule_the_word_boundary_form_does() -> None:
    # The fast form may let more through (punctuation read as a space, so a longer literal),
    # never fewer: a rule it missed would be hidden from the text.
    texts = [example for rule in RULES for example in (*rule.match_examples, *rule.no_match_examples)]
    texts += [case.text for case in CASES]
    checked = 0
    for text in texts:
        for wrapped in (text, f"({text}).", f"x,{text}!\n-{text}", f"{text}5{text}"):
            canonical = normalise(wrapped)
            if not canonical.isascii():
                continue
            fast = BOOK.ascii_finder.findall(" " + canonical.translate(BOOK.ascii_separators))
            reference = BOOK.literal_finder.findall(canonical.replace("\n", " "))
            assert _rules_behind(reference) <= _rules_behind(fast), wrapped
            checked += 1
    assert checked > 1000


def test_non_ascii_text_takes_the_word_boundary_form() -> None:
    # "¿" is outside the translate table; a word start after it must still be found.
    text = normalise("¡ojalá me muriera!")
    assert not text.isascii()
    fast = BOOK.ascii_finder.findall(" " + text.translate(BOOK.ascii_separators))
    assert "ojala me muriera" not in fast  # why the fast form must not read this text
    assert "es.passive.querer_morir" in {r.id for r in BOOK.candidate_rules(text)}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.language}:{c.text[:30]}")
def test_whole_text_cases_get_their_tier(case: rulebook.Case) -> None:
    assessment = screen(case.text, locale=case.language)
    assert assessment.tier == case.tier, [s.rule for s in assessment.signals]
    assert case.flags <= assessment.flags


def test_scope_cues_of_every_file_compile() -> None:
    for lang in LANGUAGES.values():
        for key, cues in lang.scope.items():
            for cue in cues:
                compile_pattern(cue, lang.macros)


def test_rule_ids_are_unique_and_categories_documented() -> None:
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))
    readme = resources.files("plugin.screening").joinpath("rules/README.md").read_text(encoding="utf-8")
    for category in rulebook.CATEGORIES:
        assert f"`{category}`" in readme
    for key in rulebook.SCOPE_KEYS:
        assert f"`{key}`" in readme


def test_the_shipped_literal_cache_covers_every_rule() -> None:
    """rules/literals.json keeps the import fast; regenerate it with
    `python -m plugin.screening.reindex` after editing a rules file."""
    cache = rulebook.read_literal_cache()
    stale = [rule.id for rule in RULES if cache.get(rule.id, {}).get("key") != rulebook.rule_key(rule)]
    assert not stale, f"stale prefilter cache for {stale[:10]}: run python -m plugin.screening.reindex"


def test_the_shipped_compiled_cache_covers_every_rule() -> None:
    """rules/compiled.json holds the compiled form of every rule (start-up < 0.5 s); regenerate
    it with `python -m plugin.screening.reindex` after editing a rules file."""
    if not compiled.loaded():
        pytest.skip("rules/compiled.json was written by another Python version (it is then ignored)")
    stale = [rule.id for rule in RULES if not compiled.is_cached(rule.regex.pattern)]
    assert not stale, f"stale compiled cache for {stale[:10]}: run python -m plugin.screening.reindex"


def test_a_cached_pattern_behaves_like_re_compile(tmp_path) -> None:
    sources = [(r"(?<!\w)(?:kil(?:[\W_]+)myself|(?P<who>she|he) (?=[ ]x))(?!\w)", 0),
               (r"^[ \t]*(?:on .{1,160}wrote:)", re.MULTILINE | re.DOTALL),
               ("\U0001f62d+|caf[e\u00e9]", 0)]
    path = str(tmp_path / "compiled.json")
    compiled.write_cache(sources, path)
    entries, blob, _texts = compiled.read_cache(path)
    texts = ["I want to kil myself", "she  x and he x", "  on monday bob wrote:\nhi", "\U0001f62d\U0001f62d cafe"]
    for source, flags in sources:
        cached = compiled.pattern_from(entries[(source, flags)], blob, source)
        plain = re.compile(source, flags)
        assert (cached.pattern, cached.flags, cached.groups, cached.groupindex) == (
            plain.pattern, plain.flags, plain.groups, plain.groupindex)
        for text in texts:
            assert [m.span() for m in cached.finditer(text)] == [m.span() for m in plain.finditer(text)]


def test_a_cache_from_another_python_is_ignored(tmp_path) -> None:
    path = tmp_path / "compiled.json"
    compiled.write_cache([("abc", 0)], str(path))
    wrapper = json.loads(path.read_text())
    header, _, blob = zlib.decompress(base64.b64decode(wrapper["payload"])).partition(b"\n")
    foreign = json.loads(header)
    foreign["stamp"] = "2.7|0|2|65535"
    payload = zlib.compress(json.dumps(foreign).encode() + b"\n" + blob)
    path.write_text(json.dumps({"payload": base64.b64encode(payload).decode()}))
    assert compiled.read_cache(str(path)) is None
    path.write_bytes(b"not a cache")
    assert compiled.read_cache(str(path)) is None


# ------------------------------------------------------------------ the format itself

MINIMAL = {
    "language": {"code": "xx", "name": "Test", "stopwords": ["the"]},
    "scope": {"negators": ["not"]},
    "rules": [{
        "id": "xx.test.rule", "category": "distress", "weight": 0.4, "pattern": "so tired",
        "match": ["so tired"], "no_match": ["awake"],
    }],
}


def with_changes(**changes: object) -> dict:
    data = {key: (dict(value) if isinstance(value, dict) else [dict(v) for v in value])
            for key, value in MINIMAL.items()}
    for key, value in changes.items():
        if key.startswith("rule_"):
            data["rules"][0][key[5:]] = value
        else:
            data[key] = value
    return data


def test_a_minimal_file_parses() -> None:
    parsed = rulebook.parse_language(with_changes(), "xx.toml")
    assert parsed.code == "xx" and parsed.rules[0].category == "distress"


@pytest.mark.parametrize("changes, message", [
    ({"rule_category": "sadness"}, "category"),
    ({"rule_weight": 1.5}, "weight"),
    ({"rule_person": "second"}, "person"),
    ({"rule_id": "en.wrong.prefix"}, "id must start"),
    ({"rule_match": []}, "match"),
    ({"rule_colour": "red"}, "unknown keys"),
    ({"scope": {"negatorz": ["not"]}}, "unknown [scope] keys"),
    ({"extra": {}}, "unknown top-level"),
])
def test_format_errors_name_the_problem(changes: dict, message: str) -> None:
    with pytest.raises(rulebook.RulebookError, match=re.escape(message)):
        rulebook.parse_language(with_changes(**changes), "xx.toml")


def test_file_name_must_match_the_language_code() -> None:
    text = '[language]\ncode = "xx"\nname = "X"\nstopwords = ["a"]\n[scope]\n[[rules]]\nid = "xx.a.b"\n' \
           'category = "distress"\nweight = 0.4\npattern = "tired"\nmatch = ["tired"]\nno_match = ["x"]\n'
    assert rulebook.load_language_file("xx.toml", text).code == "xx"
    with pytest.raises(rulebook.RulebookError, match="does not match the file name"):
        rulebook.load_language_file("yy.toml", text)


def test_a_broken_pattern_is_reported_with_its_rule_id() -> None:
    parsed = rulebook.parse_language(with_changes(rule_pattern="(unclosed"), "xx.toml")
    with pytest.raises(rulebook.RulebookError, match="xx.test.rule"):
        parsed.rules[0].regex  # noqa: B018


# ------------------------------------------------------------------ pattern syntax

def test_pattern_letters_are_folded_like_the_text() -> None:
    regex = compile_pattern("I'm so tired, ça suffit", {})
    assert regex.search(normalise("IM   SOOO TIRED,  ca suffit"))
    assert regex.search(normalise("i’m so tired,,, ça suffit"))
    assert not regex.search(normalise("im so tired. ca suffit"))


def test_macros_gaps_and_lookbehinds_expand() -> None:
    macros = {"rel": "(my|our) (son|daughter)"}
    assert compile_pattern("{rel} is sad", macros).search("our daughter is sad")
    assert compile_pattern("want {gap} to die", {}).search("want so badly to die")
    assert not compile_pattern("want {gap:1} to die", {}).search("want so very badly to die")
    assert compile_pattern("(?<!no )quiero morir", {}).search("ya quiero morir")
    assert not compile_pattern("(?<!no )quiero morir", {}).search("no quiero morir")
    with pytest.raises(PatternError):
        expand("{unknown}", {})


def test_required_literals_are_contained_in_every_match() -> None:
    regex = analysis_regex("(want|wish) to (die|disappear)", {})
    literals = required_literals(regex)
    assert literals
    for text in ("want to die", "wish to disappear"):
        assert any(literal in normalise(text) for literal in literals)


def test_the_screeners_rulebook_keeps_no_examples_but_the_same_rules() -> None:
    # engine.BOOK drops the examples and cases after validating them (memory); everything the
    # screener runs — ids, patterns, weights, scope — is the full rulebook's.
    full = rulebook.load()
    assert [r.id for r in BOOK.rules] == [r.id for r in full.rules]
    assert [(r.pattern, r.weight, r.category, r.person) for r in BOOK.rules] == [
        (r.pattern, r.weight, r.category, r.person) for r in full.rules]
    assert all(not r.match_examples and not r.no_match_examples for r in BOOK.rules)
    assert all(not lang.cases for lang in BOOK.languages.values())
    assert sum(len(lang.cases) for lang in full.languages.values()) > 400
    assert {c: lang.scope for c, lang in BOOK.languages.items()} == {
        c: lang.scope for c, lang in full.languages.items()}


def test_the_cached_parsed_form_of_every_rules_file_is_what_tomllib_reads() -> None:
    # rules/compiled.json keeps each rules file parsed (JSON), keyed by the file's exact text, so
    # a start-up skips tomllib; an edited file misses the cache and is read from its TOML.
    import json
    import tomllib

    cache = compiled.read_cache(compiled.cache_path())
    if cache is None:
        pytest.skip("rules/compiled.json was written by another Python version (it is then ignored)")
    texts = cache[2]
    for name, text in FILES:
        cached = texts.get("toml:" + rulebook.digest(text))
        assert cached is not None, f"{name}: run python -m plugin.screening.reindex"
        assert json.loads(cached) == tomllib.loads(text), name
    edited = FILES[0][1] + "\n# an edit after the last reindex\n"
    assert "toml:" + rulebook.digest(edited) not in texts
    def fields(rules):
        return [(r.id, r.pattern, r.weight, r.category, r.person, r.match_examples,
                 r.no_match_examples) for r in rules]

    assert fields(rulebook.load_language_file(FILES[0][0], edited).rules) == \
        fields(rulebook.load_language_file(*FILES[0]).rules)
