"""Every fast path of the screener against its reference: each test fails if the two diverge.

- compiled.regex_code: the start filter and `\\b` for a leading `(?<!\\w)` (every cached pattern
  and random patterns, against `re.compile`);
- normalise: the collapse of repeated characters, and the cheap tests that skip steps;
- rulebook: the Aho-Corasick form of the ASCII prefilter, against the regex form;
- engine: stopword counts as packed integers, against counting word by word.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.screening import synthetic_tickets
from plugin.screening import compiled, engine, incoming, normalise as norm, rulebook
from plugin.screening.engine import BOOK, canonical_text
from plugin.screening.normalise import normalise

from tests.unit.test_screening_languages import LANGUAGES, load_cases

FILES = rulebook.rule_files()
RULES = [rule for name, text in FILES for rule in rulebook.load_language_file(name, text).rules]


def _case_texts() -> list[str]:
    return [case["text"] for language in LANGUAGES for case in load_cases(language)]


def _matches(pattern: re.Pattern[str], text: str) -> list:
    return [(m.span(), m.groups()) for m in pattern.finditer(text)]


# ------------------------------------------------------------------ compiled.regex_code

def _canonical_corpus() -> list[str]:
    texts = [canonical_text(t) for t in synthetic_tickets(12)]
    texts += [normalise(case["text"]) for language in LANGUAGES for case in load_cases(language)[:4]]
    texts += ["", " ", "a", "_x", "x_", "é", "😭 x", "numb number numb.", "12 1x x1", "\n\nkill\n"]
    return texts


def test_every_cached_pattern_finds_what_re_compile_finds() -> None:
    """Each rule on its own examples and on common texts; every other cached pattern (cues,
    prefilter, history cut) on the common texts."""
    if not compiled.loaded():
        pytest.skip("rules/compiled.json was written by another Python version (it is then ignored)")
    common = _canonical_corpus()
    own: dict[tuple[str, int], list[str]] = {}
    for rule in RULES:
        examples = [normalise(t) for t in (*rule.match_examples, *rule.no_match_examples)]
        own.setdefault((rule.regex.pattern, 0), []).extend(examples)
    assert len(own) > 0.9 * len(RULES) and all(key in compiled._entries for key in own)
    for source, flags in sorted(compiled._entries):
        cached = compiled.compile_regex(source, flags)
        reference = re.compile(source, flags)
        assert (cached.pattern, cached.flags, cached.groups, cached.groupindex) == (
            reference.pattern, reference.flags, reference.groups, reference.groupindex)
        for text in common + own.get((source, flags), []):
            assert _matches(cached, text) == _matches(reference, text), (source[:120], text[:80])


def test_the_start_filter_and_word_boundary_apply_to_rule_patterns() -> None:
    from re import _parser

    source = r"(?<!\w)(?:depres\w*|(fel|so) numb|ab?c)(?!\w)"
    code = compiled.regex_code(_parser.parse(source), 0)
    plain = re.compile(source)
    assert code[2] == compiled._constants.SRE_INFO_CHARSET  # the start set was added
    assert compiled._constants.AT in code[:code[1] + 4]  # `\b` stands where `(?<!\w)` stood
    fast = compiled.compile_source(source)
    for text in ["depression", "I feel so numb.", "ac abc _ac xabc", "numb", "so numbx so numb"]:
        assert _matches(fast, text) == _matches(plain, text)
    # A first character that is not a word character keeps the look-behind (`\b` would differ).
    code = compiled.regex_code(_parser.parse(r"(?<!\w)(?:-x|x)"), 0)
    assert compiled._constants.ASSERT_NOT in code


def test_the_other_screening_regexes_compiled_with_a_start_filter_find_the_same() -> None:
    pairs = [
        (norm._LEET_RE, r"[013457](?<=[a-z][013457])[013457]*|[@$!|](?<=[a-z][@$!|])[@$!|]*(?=[a-z])", 0),
        (norm._STEPS[3][0], r"[ \t\r\f\v]*\n\s*", 0),
        (norm._STEPS[4][0], r"[\t\r\f\v][ \t\r\f\v]*| [ \t\r\f\v]+", 0),
        (incoming._QUOTED_LINE, r"(?m)^[ \t]*(?:>|&gt;).*$", 0),
    ]
    texts = ["k1ll m3 n0w 2024 a@b c$$d x!", "a \t\n  b\n\n c \r\n", " x  y\t\tz\f\v",
             "hi\n> quoted\n  &gt; more\nnot > this\n>", ""] + _case_texts()[:200]
    for fast, source, flags in pairs:
        assert fast.pattern == source
        reference = re.compile(source, flags)
        for text in texts:
            assert _matches(fast, text) == _matches(reference, text), (source, text)


_ATOMS = st.sampled_from([
    "a", "b", "ab", "x", "_", "1", " ", "-", "é", "[ab]", "[a-c]", "[^a]", r"\w", r"\W", r"\d",
    r"\s", ".", r"\b", r"\B", "^", "$", r"(?<!\w)", r"(?<=a)", r"(?<!b )", r"(?=b)", r"(?!\w)",
])


def _patterns() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.lists(inner, min_size=1, max_size=4).map("".join),
            st.lists(inner, min_size=2, max_size=4).map(lambda parts: "(?:" + "|".join(parts) + ")"),
            st.lists(inner, min_size=1, max_size=3).map(lambda parts: "(" + "|".join(parts) + ")"),
            st.tuples(inner, st.sampled_from(["?", "*", "+", "{0,2}", "{1,3}", "??", "+?"])).map(
                lambda p: "(?:" + p[0] + ")" + p[1]),
        )
    return st.recursive(_ATOMS, extend, max_leaves=8)


@settings(max_examples=500, deadline=None)
@given(_patterns(), st.booleans(), st.lists(st.text(alphabet="ab x_1-é\n", max_size=12), max_size=4))
def test_random_patterns_compile_to_the_same_matches(body: str, anchored: bool, texts: list[str]) -> None:
    source = rf"(?<!\w)(?:{body})(?!\w)" if anchored else body
    try:
        reference = re.compile(source)
    except re.error:
        return
    fast = compiled.compile_source(source)
    for text in texts + ["ab ab", "xab_ab-1 b", " a\nb é"]:
        assert _matches(fast, text) == _matches(reference, text), (source, text)


# ------------------------------------------------------------------ normalise

_NORMALISE_TEXT = st.text(alphabet=st.sampled_from(list("aab ooo11 22.!-\n\t\x00éÉ😭'xyz")), max_size=80)


@settings(max_examples=400, deadline=None)
@given(_NORMALISE_TEXT)
def test_the_collapse_of_repeated_characters_matches_its_regex(text: str) -> None:
    reference = norm._STEPS[-1][0].sub(norm._first_of_run, text)
    assert norm._collapse_runs(text) == reference


def test_the_collapse_keeps_digit_runs_and_a_text_with_nul_characters() -> None:
    assert norm._collapse_runs("sooo 1100 byee!!") == "so 1100 bye!"
    assert norm._collapse_runs("aa\x00\x00bb") == "a\x00b"
    assert norm._collapse_runs("") == ""


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab z.-_* \n\t\r\x0b\x0c\xa0é1")), max_size=40))
def test_the_cheap_step_tests_match_their_regexes(text: str) -> None:
    assert norm._may_be_spaced(text) == (norm._MAY_BE_SPACED.search(text) is not None)
    untidy = re.compile(r"\n\s|[ \t\r\f\v]\n")
    assert norm._untidy_line_break(text) == (untidy.search(text) is not None)


_SHAPE_PIECES = st.sampled_from(["a", "b", "z", "K", "A", " ", ".", "-", "_", "*", "~", "/", "+", "'", "`",
                                 "|", "@", "$", "!", "0", "1", "3", "7", "ab", "k1", "\n", "\t",
                                 "\u212a", "\u0130", "é"])


@settings(max_examples=800, deadline=None)
@given(st.lists(_SHAPE_PIECES, max_size=30).map("".join))
def test_the_ascii_shape_path_of_normalise_matches_the_mapped_form(text: str) -> None:
    # normalise() reads ASCII text through one translate (_ASCII_SHAPE); normalise_mapped runs
    # every step's regex.
    assert normalise(text) == norm.normalise_mapped(text)[0]


@pytest.mark.parametrize("text", ["k*i*l*l m*e", "K.I.L.L m-y-s-e-l-f", "a_b_c_d", "I`m s o s a d",
                                  "don't k i l l", "h1 th3re m@te", "x*y*z*w 7", "k|ll", "a$$b", "d!e",
                                  "5ui\u0130cide", "\u212aill"])
def test_spaced_letters_and_look_alikes_take_the_right_path(text: str) -> None:
    assert normalise(text) == norm.normalise_mapped(text)[0]


def test_normalise_of_the_case_texts_is_unchanged_by_the_fast_steps() -> None:
    for text in _case_texts():
        assert normalise(text) == norm.normalise_mapped(text)[0]


# ------------------------------------------------------------------ the ASCII prefilter

REGEX_BOOK = dataclasses.replace(BOOK, ascii_automaton=None)


def _literal_rules(book: rulebook.Rulebook, text: str) -> list[str]:
    return [rule.id for rule in book.candidate_rules(text)]


def test_the_automaton_is_in_use() -> None:
    assert BOOK.ascii_automaton is not None, "pyahocorasick is a dependency (pyproject.toml)"
    assert BOOK.ascii_leads, "literals with '&', '+' or ',' inside exist"


def test_the_automaton_finds_the_rules_the_regex_finder_finds() -> None:
    texts = [example for rule in RULES for example in (*rule.match_examples, *rule.no_match_examples)]
    texts += _case_texts() + synthetic_tickets(200)
    checked = 0
    for text in texts:
        canonical = normalise(text)
        for wrapped in (canonical, f"x,{canonical}&+{canonical}", canonical.replace(" ", ",")):
            if wrapped.isascii():
                assert _literal_rules(BOOK, wrapped) == _literal_rules(REGEX_BOOK, wrapped), wrapped
                checked += 1
    assert checked > 5000


_LITERALS = sorted(BOOK.rules_by_literal)
_PIECES = st.one_of(st.sampled_from(_LITERALS), st.sampled_from([" ", ",", "&", "+", "-", ".", "a", "x1", "\n"]))


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=12).map("".join))
def test_the_automaton_agrees_with_the_regex_finder_on_glued_literals(text: str) -> None:
    assert _literal_rules(BOOK, text) == _literal_rules(REGEX_BOOK, text)


# ------------------------------------------------------------------ stopword counts

_WORDS = sorted(BOOK.stopword_index)[:200] + ["hello", "x", "ok,", "the.", "\n", "\t", "\xa0", "\x1c", "é"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), max_size=40).map(" ".join))
def test_packed_stopword_counts_match_counting_word_by_word(text: str) -> None:
    assert engine._stopword_hits(text, BOOK) == engine._stopword_hits_by_word(text, BOOK)


def test_stopword_counts_of_the_case_texts() -> None:
    for text in _case_texts():
        canonical = canonical_text(text)
        assert engine._stopword_hits(canonical, BOOK) == engine._stopword_hits_by_word(canonical, BOOK)
    many = " ".join(["the", "de", "la"] * 5000)
    assert engine._stopword_hits(many, BOOK) == engine._stopword_hits_by_word(many, BOOK)


def test_each_prefilter_string_carries_the_rules_of_every_string_that_is_its_prefix() -> None:
    # build() computes this closure in one sorted pass; here it is recomputed the plain way.
    found = BOOK.rules_by_literal
    own: dict[str, set[int]] = {}
    cache = rulebook.read_literal_cache()
    for index, rule in enumerate(BOOK.rules):
        for literal in cache[rule.id]["literals"] or ():
            own.setdefault(literal, set()).add(index)
    assert set(found) == set(own)
    for literal in own:
        expected = set().union(*(own.get(literal[:n], set()) for n in range(1, len(literal) + 1)))
        assert found[literal] == tuple(sorted(expected)), literal


def test_every_rule_expansion_comes_from_the_start_up_cache() -> None:
    # The expansion cache key is written out by hand (patterns._expanded); a key that drifted
    # from the one reindex recorded would leave every expansion unused (slow start, same result).
    BOOK.compile_all()
    assert not [key for key in compiled._text_cache if key.startswith("expand:")]
