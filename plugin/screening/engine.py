"""screen(): ticket text → Assessment. Pure, deterministic, offline.

Pipeline: HTML → plain text; quoted lines blanked; canonical form; quoted history and signature
cut off; language guessed; rules whose required strings occur are run; scope modifiers; score;
then the word model (learned.py) may raise the tier when the wording as a whole reads as risk.
Offsets are only mapped back to the original text when something matched (the rare case), so
ordinary tickets take the short path.
"""

from __future__ import annotations

import re
from collections import Counter

from plugin.model import Assessment, Signal, tier_rank
from plugin.screening import canonical as canonical_form
from plugin.screening import learned, passages, rulebook, scope, scoring
from plugin.screening.canonical import cut as _cut, screened_part as _screened_part
from plugin.screening.normalise import normalise, normalise_mapped

BOOK = rulebook.load(keep_examples=False)
MODEL = learned.WordModel.load()
PASSAGES = passages.PassageModel.load()
# Where in its tier's band a model-raised score lands: higher the surer the model is.
MODEL_BAND = 0.10
MODEL_CATEGORY = "model_wording"
_SCOPED_OUT = frozenset({"negated", "hypothetical", "historical"})
_MIN_LANGUAGE_HITS = 2
_MIXED_SHARE = 0.4
# A sentence is in a language when that language has at least _MIN_LANGUAGE_HITS of its
# stopwords and more than _SENTENCE_LEAD times any other's ("in", "a", "no" are in several lists).
_SENTENCE_LEAD = 2
_SENTENCE_SPLIT = re.compile(r"[.,!?;:\n]+")


def _stopword_hits(canonical: str, book: rulebook.Rulebook) -> dict[str, int]:
    """Per language, how many of the text's words are its stopwords (languages with none left
    out). Words next to punctuation are not counted: function words rarely are, and it is faster.
    Each stopword carries its languages as fields of one integer (Rulebook.stopword_packed), so
    one C-level sum counts them all; `_stopword_hits_by_word` is the plain form (a test compares
    the two)."""
    packed = book.stopword_packed
    total = sum(filter(None, map(packed.get, canonical.split())))  # no word's value is 0
    hits: dict[str, int] = {}
    if total:
        mask = (1 << rulebook.STOPWORD_FIELD_BITS) - 1
        for shift, code in book.stopword_fields:
            count = (total >> shift) & mask
            if count:
                hits[code] = count
    return hits


def _stopword_hits_by_word(canonical: str, book: rulebook.Rulebook) -> dict[str, int]:
    """`_stopword_hits`, word by word (the reference)."""
    index = book.stopword_index
    hits: dict[str, int] = {}
    for word, count in Counter(filter(index.__contains__, canonical.split())).items():
        for code in index[word]:
            hits[code] = hits.get(code, 0) + count
    return hits


def _locale_language(locale: str | None, book: rulebook.Rulebook) -> str:
    code = (locale or "").replace("_", "-").split("-")[0].lower()
    return code if code in book.languages else ""


def _pick_language(hits: dict[str, int], hinted: str) -> str:
    if not hits:
        return hinted or "und"
    best = max(sorted(hits), key=lambda code: hits[code])
    if hinted and hits.get(hinted, 0) * 1.5 >= hits[best]:
        return hinted
    if hits[best] < _MIN_LANGUAGE_HITS:
        return hinted or "und"
    return best


def detect_language(canonical: str, locale: str | None = None, book: rulebook.Rulebook = BOOK) -> str:
    """ISO 639-1 code of the language with most stopword hits, the locale's when unclear, or "und"."""
    return _pick_language(_stopword_hits(canonical, book), _locale_language(locale, book))


def languages_to_run(hits: dict[str, int], hinted: str, book: rulebook.Rulebook) -> tuple[str, ...]:
    """The languages whose rules and cues apply: the locale's, English (support slang travels),
    and every language with a fair share of the text's stopwords (mixed tickets); all of them
    when the text gives no clue."""
    best = max(hits.values(), default=0)
    if best < _MIN_LANGUAGE_HITS:
        return tuple(sorted(book.languages))
    chosen = {code for code, count in hits.items() if count >= _MIXED_SHARE * best}
    chosen.add("en")
    if hinted:
        chosen.add(hinted)
    return tuple(sorted(chosen & set(book.languages)))


def sentence_languages(canonical: str, book: rulebook.Rulebook) -> set[str]:
    """Languages that clearly lead at least one sentence or comma-separated part: a crisis
    sentence in another language inside a long English ticket ("… Je veux plus vivre. Please
    cancel…") has too few stopwords to count for the whole text, but is plainly French alone."""
    found = set()
    for sentence in _SENTENCE_SPLIT.split(canonical):
        hits = _stopword_hits(sentence, book)
        if not hits:
            continue
        best = max(sorted(hits), key=lambda code: hits[code])
        runner_up = max((count for code, count in hits.items() if code != best), default=0)
        if hits[best] >= _MIN_LANGUAGE_HITS and hits[best] > _SENTENCE_LEAD * runner_up:
            found.add(best)
    return found


def _span_in_original(text: str, plain: str, plain_origin: list[int] | None,
                      canonical_origin: list[int], start: int, end: int) -> tuple[int, int]:
    plain_start = canonical_origin[start]
    plain_end = canonical_origin[end]
    # Deleted characters between the match and the next kept one (collapsed letters, spaces)
    # belong to the match only when they are not whitespace.
    while plain_end > plain_start + 1 and plain[plain_end - 1].isspace():
        plain_end -= 1
    if plain_origin is None:
        return plain_start, plain_end
    raw_start = plain_origin[plain_start]
    last = plain_origin[plain_end - 1]
    raw_end = last + 1
    if text.startswith("&", last):
        semicolon = text.find(";", last)
        raw_end = semicolon + 1 if semicolon != -1 else last + 1
    return raw_start, raw_end


def canonical_text(text: str, book: rulebook.Rulebook = BOOK) -> str:
    """The customer's new words in canonical form: what rules and the word model read."""
    return canonical_form.canonical_text(text, book)


_HIGH_RANK = tier_rank("high")


def screen(text: str, *, locale: str | None = None) -> Assessment:
    """Screen one ticket text for risk signals: the rules, then the word model's second opinion,
    which can raise the tier but never lower it. See rules/README.md for what the rules mean."""
    book = BOOK
    if not text or text.isspace():
        return Assessment(tier="none", score=0.0, language=_locale_language(locale, book) or "und")
    plain, plain_origin = _screened_part(text)
    canonical = _cut(normalise(plain), book)
    by_rules, scoped_out = _screen_by_rules(text, plain, plain_origin, canonical, locale, book)
    if tier_rank(by_rules.tier) >= _HIGH_RANK:
        # The models can only raise a tier, and where the rules read an explicit statement as
        # high or imminent they do not overrule its acuity (below): nothing left for them to do.
        return by_rules
    read = _blank(canonical, scoped_out)
    view = learned.opinion(MODEL, read)
    if view.raises_to != "none" or view.at_risk >= passages.GATE:
        # A phrase the rules know as a look-alike ("I won't be here next week because I'm on
        # holiday", "disparaître sous ma couette tout le week-end") is no evidence for the models
        # either: blanked like a scoped-out statement. Only when the models are in play.
        lookalike = book.cue("lookalikes", (by_rules.language,))
        spans = [m.span() for m in lookalike.finditer(read)] if lookalike else []
        if spans:
            scoped_out = [*scoped_out, *spans]
            read = _blank(canonical, scoped_out)
            view = learned.opinion(MODEL, read)
    asked = view.raises_to
    if (asked != "none" or view.at_risk >= passages.GATE or by_rules.tier == "concern") \
            and _reports_content(read, book):
        # A takedown request describes someone else's content: the models would weigh the
        # content, not the writer (rules/README.md, content_reports).
        return by_rules
    if asked == "imminent" and tier_rank(by_rules.tier) >= tier_rank("high"):
        # The rules read an explicit statement and judged its acuity (C-SSRS combinations,
        # "last month" capping an attempt at high): the word model does not overrule that.
        return by_rules
    if asked == "none":
        if tier_rank(by_rules.tier) >= tier_rank("high"):
            return by_rules
        if view.at_risk < passages.GATE and by_rules.tier != "concern":
            # Nothing in the ticket worried either reader (the rules' concern is a reason to
            # look however long, and so diluted, the ticket is).
            return by_rules
        # The whole ticket did not read as risk; one passage of it may (passages.py).
        passage = passages.strongest_passage(PASSAGES, MODEL, read, scoped_out)
        if passage is None:
            return by_rules
        return _raised_by_passage(by_rules, view, passage, read, text, plain, plain_origin)
    if tier_rank(by_rules.tier) >= tier_rank(asked):
        return by_rules
    return _raised_by_model(by_rules, view, text, plain, plain_origin)


def _reports_content(canonical: str, book: rulebook.Rulebook) -> bool:
    cue = book.cue("content_reports")
    return cue is not None and cue.search(canonical) is not None


def screen_by_rules(text: str, *, locale: str | None = None) -> Assessment:
    """The rules' assessment alone, without the word model (evaluation, tests)."""
    book = BOOK
    if not text or text.isspace():
        return Assessment(tier="none", score=0.0, language=_locale_language(locale, book) or "und")
    plain, plain_origin = _screened_part(text)
    canonical = _cut(normalise(plain), book)
    return _screen_by_rules(text, plain, plain_origin, canonical, locale, book)[0]


def _blank(canonical: str, spans: list[tuple[int, int]]) -> str:
    """`canonical` with `spans` replaced by spaces: statements the rules read as negated,
    hypothetical or past ("I'm not going to hurt myself over a parcel") are no evidence for the
    word model, which cannot tell a negation from the statement it negates."""
    if not spans:
        return canonical
    chars = list(canonical)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _margin(probability: float, threshold: float) -> float:
    return min(1.0, max(0.0, (probability - threshold) / max(1e-9, 1.0 - threshold)))


def _raised_by_model(by_rules: Assessment, view: learned.Opinion, text: str, plain: str,
                     plain_origin: list[int] | None) -> Assessment:
    """`by_rules` lifted to the tier the word model asks for, its evidence added as signals."""
    if view.raises_to == "imminent":
        lifted = scoring.IMMINENT + MODEL_BAND * _margin(view.imminent, MODEL.imminent.threshold)
    else:
        lifted = scoring.HIGH + MODEL_BAND * _margin(view.at_risk, MODEL.at_risk.threshold)
    score = round(max(by_rules.score, lifted), 4)
    flags = set(by_rules.flags)
    if view.third_party >= MODEL.third_party.threshold:
        flags.add("third_party")
    _, canonical_origin = normalise_mapped(plain)
    evidence = []
    for feature, start, end, weight in view.evidence:
        raw_start, raw_end = _span_in_original(text, plain, plain_origin, canonical_origin,
                                               start, end)
        evidence.append(Signal(rule=f"model.{view.raises_to}", category=MODEL_CATEGORY,
                               language=by_rules.language, start=raw_start, end=raw_end,
                               weight=round(weight, 4),
                               flags=frozenset(flags & {"third_party"})))
    signals = tuple(sorted((*by_rules.signals, *evidence), key=lambda s: (s.start, s.rule)))
    return Assessment(tier=scoring.tier_of(score), score=score, signals=signals,
                      flags=frozenset(flags), language=by_rules.language)


def _raised_by_passage(by_rules: Assessment, view: learned.Opinion, passage: passages.Passage,
                       read: str, text: str, plain: str, plain_origin: list[int] | None) -> Assessment:
    """`by_rules` lifted to high (imminent when the whole-text imminent head says so) because
    one passage reads as risk to both models; its heaviest phrases become the signals."""
    imminent = view.imminent >= MODEL.imminent.threshold
    base = scoring.IMMINENT if imminent else scoring.HIGH
    lifted = base + MODEL_BAND * _margin(passage.probability, PASSAGES.threshold)
    score = round(max(by_rules.score, lifted), 4)
    flags = set(by_rules.flags)
    someone_else = passages.passage_features(read[passage.start:passage.end])[0]
    if learned._sigmoid(MODEL.third_party.logit(MODEL.known(someone_else),
                                                1.0)) >= MODEL.third_party.threshold:
        flags.add("third_party")
    _, canonical_origin = normalise_mapped(plain)
    rule = f"model.passage.{'imminent' if imminent else 'high'}"
    evidence = []
    for start, end, weight in passages.evidence(PASSAGES, read, passage,
                                                stopwords=BOOK.stopword_index):
        raw_start, raw_end = _span_in_original(text, plain, plain_origin, canonical_origin,
                                               start, end)
        evidence.append(Signal(rule=rule, category=MODEL_CATEGORY, language=by_rules.language,
                               start=raw_start, end=raw_end, weight=weight,
                               flags=frozenset(flags & {"third_party"})))
    signals = tuple(sorted((*by_rules.signals, *evidence), key=lambda s: (s.start, s.rule)))
    return Assessment(tier=scoring.tier_of(score), score=score, signals=signals,
                      flags=frozenset(flags), language=by_rules.language)


def _screen_by_rules(text: str, plain: str, plain_origin: list[int] | None, canonical: str,
                     locale: str | None, book: rulebook.Rulebook
                     ) -> tuple[Assessment, list[tuple[int, int]]]:
    """The rules' assessment, and the canonical spans they read as negated, hypothetical or past."""
    hits = _stopword_hits(canonical, book)
    hinted = _locale_language(locale, book)
    language = _pick_language(hits, hinted)
    active = languages_to_run(hits, hinted, book)
    every_candidate = book.candidate_rules(canonical)
    candidates = [rule for rule in every_candidate if rule.language in active]
    matches = [
        (rule, m.start(), m.end())
        for rule in candidates if not rule.supporting
        for m in rule.regex.finditer(canonical)
    ]
    # Another language's statements can count only when a sentence is in that language, which
    # takes at least _MIN_LANGUAGE_HITS of its stopwords: a cheap test before running its rules.
    foreign = [
        (rule, m.start(), m.end())
        for rule in every_candidate
        if rule.language not in active and not rule.supporting
        and hits.get(rule.language, 0) >= _MIN_LANGUAGE_HITS
        for m in rule.regex.finditer(canonical)
    ]
    if foreign:
        # Rare: another language's statement matched. It counts if a sentence is in that language.
        extra = sentence_languages(canonical, book) - set(active)
        if extra:
            active = tuple(sorted(set(active) | extra))
            candidates = [rule for rule in every_candidate if rule.language in active]
            matches += [match for match in foreign if match[0].language in extra]
    if not matches:
        # Circumstance words alone (a time, a medication name, a cancellation) never count.
        return Assessment(tier="none", score=0.0, language=language), []
    matches += [
        (rule, m.start(), m.end())
        for rule in candidates if rule.supporting
        for m in rule.regex.finditer(canonical)
    ]

    findings = scope.apply(book, canonical, matches, active, language)
    scoped_out = [(f.start, f.end) for f in findings if f.flags & _SCOPED_OUT]
    if not findings:
        return Assessment(tier="none", score=0.0, language=language), scoped_out
    value = scoring.score(findings)
    _, canonical_origin = normalise_mapped(plain)
    signals = []
    for finding in sorted(findings, key=lambda f: (f.start, f.rule.id)):
        start, end = _span_in_original(text, plain, plain_origin, canonical_origin, finding.start, finding.end)
        signals.append(Signal(
            rule=finding.rule.id,
            category=finding.category,
            language=finding.rule.language,
            start=start,
            end=end,
            weight=finding.weight,
            flags=finding.flags,
        ))
    flags = frozenset().union(*(f.flags for f in findings))
    return Assessment(tier=scoring.tier_of(value), score=value, signals=tuple(signals),
                      flags=flags, language=language), scoped_out
