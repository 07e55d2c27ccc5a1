"""Scope of a match: look-alike, negation, reassurance, past, hypothetical, whose words.

Each rule match becomes a `Finding`: the rule, its span in the canonical text, the weight after
the modifiers of rules/README.md ("Scope"), and the flags that applied.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from plugin.screening.rulebook import Rule, Rulebook

_SENTENCE_END = re.compile(r"[.!?;\n]")
_WORD = re.compile(r"[^\W_]+")
# Emoji and pictographs end a clause: "still no refund 😭 I don't know what to do" is two.
_EMOJI = re.compile("[\u2600-\u27bf\U0001f000-\U0001faff]+")
NEGATION_WORDS = 3
# Words that open a reported clause ("she wrote that …") in the supported languages.
_COMPLEMENTISER = re.compile(r"(?<!\w)(?:that|que|dass|che|dat)(?!\w)")
# A comma starts a new clause for negation only before at least this many words, and with a
# subject among the first _SUBJECT_REACH of them (or a complete negated predicate before it).
_NEW_CLAUSE_WORDS = 3
_SUBJECT_REACH = 2
_COMPLETE_PREDICATE_WORDS = 2  # "no quiero nada," — a verb and its object after the negator
# Caps, on the score scale (bands: concern ≥ 0.35, high ≥ 0.60, imminent ≥ 0.85).
REASSURED_CAP = 0.40
HISTORICAL_CAP = 0.38
HISTORICAL_MOOD_CAP = 0.20
RECENT_BEHAVIOUR_CAP = 0.80
THIRD_PARTY_MOOD_FACTOR = 0.7
MOOD = frozenset({"distress", "hopelessness", "burden_isolation"})
# Evidence that is about circumstances, not about a person's state: never a third-party report.
PERSON_NEUTRAL = frozenset({"timing", "plan_method_means", "preparation_final_arrangements",
                            "bereavement", "history"})


@dataclass(frozen=True, slots=True)
class Finding:
    rule: Rule
    start: int  # canonical text offsets
    end: int
    weight: float  # after modifiers; 0 = cancelled
    flags: frozenset[str]
    phrase: str  # the canonical matched text

    @property
    def category(self) -> str:
        return self.rule.category


class _Text:
    """Sentence boundaries of one canonical text, and its clause boundaries per set of
    languages (each language's clause-break words end clauses only for its own rules)."""

    def __init__(self, text: str, book: Rulebook) -> None:
        self.text = text
        self.book = book
        self.sentence_ends = [m.start() for m in _SENTENCE_END.finditer(text)]
        self.emoji_ends = [m.end() for m in _EMOJI.finditer(text)]
        self._clause_breaks: dict[tuple[str, ...], list[int]] = {}
        self._contrasts: dict[tuple[str, ...], list[tuple[int, int]]] = {}

    def sentence(self, start: int, end: int) -> tuple[int, int]:
        i = bisect.bisect_left(self.sentence_ends, start)
        first = self.sentence_ends[i - 1] + 1 if i > 0 else 0
        j = bisect.bisect_left(self.sentence_ends, end)
        last = self.sentence_ends[j] if j < len(self.sentence_ends) else len(self.text)
        return first, last

    def _breaks(self, languages: tuple[str, ...]) -> list[int]:
        breaks = self._clause_breaks.get(languages)
        if breaks is None:
            found = []
            # A contrast word ("but", "pero", "aber") also ends a clause.
            for key in ("clause_breaks", "contrast"):
                cue = self.book.cue(key, languages)
                found += [m.end() for m in cue.finditer(self.text)] if cue else []
            breaks = self._clause_breaks[languages] = sorted(set(found + self.emoji_ends))
        return breaks

    def side_of_contrast(self, start: int, end: int, sentence_start: int, sentence_end: int,
                         languages: tuple[str, ...]) -> tuple[int, int]:
        """The part of the sentence between the contrast words around [start, end): what is said
        before "but" (a reassurance, a recovery, a negation) does not cover what comes after."""
        contrasts = self._contrasts.get(languages)
        if contrasts is None:
            cue = self.book.cue("contrast", languages)
            contrasts = self._contrasts[languages] = [m.span() for m in cue.finditer(self.text)] if cue else []
        low, high = sentence_start, sentence_end
        for c_start, c_end in contrasts:
            if c_end <= start:
                low = max(low, c_end)
            elif c_start >= end:
                high = min(high, c_start)
                break
        return low, high

    def clause_start(self, start: int, sentence_start: int, languages: tuple[str, ...]) -> int:
        breaks = self._breaks(languages)
        i = bisect.bisect_right(breaks, start)
        last_break = breaks[i - 1] if i > 0 else 0
        return max(sentence_start, last_break)

    def clause_end(self, end: int, sentence_end: int, languages: tuple[str, ...]) -> int:
        breaks = self._breaks(languages)
        i = bisect.bisect_right(breaks, end)
        # A break position is the end of the break word; the clause ends where that word starts,
        # which is at most the word's length earlier: the sentence end bounds it anyway.
        return min(sentence_end, breaks[i]) if i < len(breaks) else sentence_end


def _overlaps(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s < end and start < e for s, e in spans)


def _search(regex: re.Pattern[str] | None, text: str, start: int, end: int) -> bool:
    return regex is not None and regex.search(text, start, end) is not None


def _last_subject(book: Rulebook, languages: tuple[str, ...], text: str, start: int,
                  end: int) -> re.Match[str] | None:
    subjects = book.cue("subject", languages)
    if subjects is None:
        return None
    last = None
    for match in subjects.finditer(text, start, end):
        last = match
    return last


_STATEMENT_BREAK = re.compile(r"[,;:]| - ")


def _own_statement_after_cue(hypothetical: re.Pattern[str], text: str, side_start: int,
                             side_end: int, start: int, subject: re.Match[str] | None,
                             someone_else: bool) -> bool:
    """Whether the writer speaks for themself after a fiction or framing cue: "Depuis que j'ai vu
    ce film, je pense à me tuer", "No es una novela, quiero morirme". The cue then frames an
    earlier clause, not the statement: past the cue a comma (or ; : -) starts a new statement,
    no cue stands in it, and it is the writer's own. "What if I…", "in my novel I die" and
    "dans mon roman, le héros se tue" stay hypothetical."""
    if someone_else:
        return False
    cue_end = None
    for found in hypothetical.finditer(text, side_start, start):
        cue_end = found.end()
    if cue_end is None:
        return False  # the cue comes after the match: it frames the statement itself
    statement_start = None
    for found in _STATEMENT_BREAK.finditer(text, cue_end, start):
        statement_start = found.end()
    if statement_start is None or hypothetical.search(text, statement_start, side_end):
        return False
    # Outside quotation marks ("the line « j'ai envie de mourir » shows late" is a lyric), the
    # statement's subject is the writer's "I" — or, where the language drops the pronoun
    # ("…, pienso en matarme"), the statement opens with the match itself, at most one word
    # before it, or a verb and its particle ("…, penso di uccidermi"): "il testo dice 'voglio
    # morire'" has a subject of its own, and "…, expresan ideas suicidas" is about others.
    lead = text[statement_start:start]
    if '"' in lead:
        return False
    if subject is not None and subject.start() >= statement_start:
        return subject.lastgroup == "first"
    words = lead.split()
    return len(words) <= 1 or (len(words) == 2 and words[1] in _VERB_PARTICLES)


# What links a verb of thinking or wanting to what is thought ("penso di", "pienso en", "penso
# em", "denke an"): the only second word a pronoun-dropping statement's lead may have.
_VERB_PARTICLES = frozenset("di de en em a ad in an om aan zu".split())


def _reported_by_third_party(book: Rulebook, languages: tuple[str, ...], text: str,
                             sentence_start: int, end: int) -> bool:
    """Whether the match is what a third person said or wrote: the sentence's first subject is a
    third party and a complementiser with no subject of its own follows it before the match.
    "minha filha me escreveu que acabou de…": "me" is the object, the daughter is the subject."""
    subjects = book.cue("subject", languages)
    if subjects is None:
        return False
    first = subjects.search(text, sentence_start, end)
    if first is None or first.lastgroup != "third":
        return False
    complementiser = None
    for complementiser in _COMPLEMENTISER.finditer(text, first.end(), end):
        pass
    if complementiser is None:
        return False
    return subjects.search(text, complementiser.end(), end) is None


def _negation_window(text: str, start: int, end: int) -> int:
    """Start of the last NEGATION_WORDS words before `end` (not before `start`)."""
    words = [m.start() for m in _WORD.finditer(text, start, end)]
    return words[-NEGATION_WORDS] if len(words) >= NEGATION_WORDS else start


def cue_languages(rule_language: str, primary: str, active: tuple[str, ...]) -> tuple[str, ...]:
    """Whose scope cues judge a match: the rule's own language, and the text's main language
    (an English slang rule in a Spanish ticket is negated by Spanish words). Never the other
    languages that merely run on the text: English "no" is Portuguese "on the"."""
    chosen = {rule_language}
    if primary in active:
        chosen.add(primary)
    return tuple(sorted(chosen))


def apply(book: Rulebook, text: str, matches: list[tuple[Rule, int, int]],
          languages: tuple[str, ...], primary: str = "und") -> list[Finding]:
    """Findings for the rule matches of one canonical text (look-alikes removed). `languages`
    are the languages that run on the text, `primary` the detected one (see `cue_languages`)."""
    lookalike = book.cue("lookalikes", languages)
    lookalike_spans = [m.span() for m in lookalike.finditer(text)] if lookalike else []
    spans = _Text(text, book)
    findings = []
    for rule, start, end in matches:
        if _overlaps(lookalike_spans, start, end):
            continue
        own = cue_languages(rule.language, primary, languages)

        def cue(key: str) -> re.Pattern[str] | None:
            return book.cue(key, own)

        sentence_start, sentence_end = spans.sentence(start, end)
        clause_start = spans.clause_start(start, sentence_start, own)
        flags: set[str] = set()
        weight = rule.weight

        # Whose words: the nearest subject in the sentence ("my son is sad and wants to die").
        subject_before = _last_subject(book, own, text, sentence_start, start)
        subject = _last_subject(book, own, text, sentence_start, end)
        if rule.category in PERSON_NEUTRAL:
            pass
        elif rule.person == "third" or (
            rule.person == "auto" and subject is not None and subject.lastgroup == "third"
        ) or (rule.person == "auto"
              and _reported_by_third_party(book, own, text, sentence_start, end)):
            flags.add("third_party")

        # A negation reaches the match only from inside its clause, after the last subject,
        # and at most NEGATION_WORDS words back.
        window_start = subject_before.end() if subject_before is not None else clause_start
        window_start = max(window_start, clause_start, _negation_window(text, clause_start, start))
        if rule.category != "timing" and _negates(book, own, text, window_start, start, end):
            flags.add("negated")
            weight = 0.0
        # Sentence-wide cues stop at a contrast word: "I'm fine really, but I wish I were dead".
        side_start, side_end = spans.side_of_contrast(start, end, sentence_start, sentence_end, own)
        hypothetical = cue("hypothetical")
        if _search(hypothetical, text, side_start, side_end) and not _own_statement_after_cue(
                hypothetical, text, side_start, side_end, start, subject_before,
                "third_party" in flags):
            flags.add("hypothetical")
            weight = 0.0
        if weight and _search(cue("reassurance"), text, side_start, side_end):
            flags.add("negated")
            weight = min(weight, REASSURED_CAP)
        if weight:
            # A past time frame dates only its own clause ("two years ago I planned it, and I'm
            # planning it tonight"); a recovery statement covers the sentence.
            clause_end = spans.clause_end(end, sentence_end, own)
            recent = _search(cue("recent"), text, clause_start, clause_end)
            past = _search(cue("past"), text, clause_start, clause_end) or _search(
                cue("recovered"), text, side_start, side_end)
            if past and not recent:
                flags.add("historical")
                weight = min(weight, HISTORICAL_MOOD_CAP if rule.category in MOOD else HISTORICAL_CAP)
            elif recent and rule.category == "attempt_in_progress":
                # "I took an overdose last week": recent behaviour, not happening now → high.
                weight = min(weight, RECENT_BEHAVIOUR_CAP)
        if "third_party" in flags and rule.category in MOOD:
            weight *= THIRD_PARTY_MOOD_FACTOR
        findings.append(Finding(rule, start, end, round(weight, 4), frozenset(flags), text[start:end]))
    return _share_cancellation(findings)


def _negates(book: Rulebook, languages: tuple[str, ...], text: str, window_start: int, start: int,
             end: int) -> bool:
    """Whether a negator in [window_start, start) reaches the match [start, end).

    A match that starts with its own subject begins a new statement when a content word stands
    between the negator and it: "keine Erstattung ich weiß nicht mehr weiter" (the negator is
    about the refund), unlike "no es que me quiera…" (only function words in between)."""
    negators = book.cue("negators", languages)
    if negators is None:
        return False
    last = None
    for last in negators.finditer(text, window_start, start):
        pass
    if last is None:
        return False
    purpose = book.cue("purpose_negations", languages)
    if purpose is not None and any(found.start() <= last.start() < found.end()
                                   for found in purpose.finditer(text, max(0, last.start() - 40),
                                                                 end + 40)):
        # "para no pensar en matarme": the writer fends the thought off; it is there.
        return False
    if _new_clause_after_comma(book, languages, text, last.end(), start, end):
        return False
    subjects = book.cue("subject", languages)
    if subjects is None or subjects.match(text, start) is None:
        return True
    frequent = book.frequent_words(languages)
    between = _WORD.findall(text, last.end(), start)
    return all(word in frequent for word in between)


def _new_clause_after_comma(book: Rulebook, languages: tuple[str, ...], text: str,
                            negator_end: int, start: int, end: int) -> bool:
    """Whether a comma or semicolon between a negator and the match starts a new statement the
    negator does not reach: "brauche ich nicht, für mich gibt es kein nächstes Jahr" (a subject
    right after the comma), "ya no quiero nada, nadie se daría cuenta…" (the negated predicate is
    complete before the comma: a content word or two words). A short aside stays covered:
    "I'm not, you know, suicidal"."""
    gap = text[negator_end:start]
    comma = max(gap.rfind(","), gap.rfind(";"))
    if comma == -1:
        return False
    after = negator_end + comma + 1
    words_after = list(_WORD.finditer(text, after, end))
    if len(words_after) < _NEW_CLAUSE_WORDS:
        return False
    subjects = book.cue("subject", languages)
    opening = words_after[_SUBJECT_REACH - 1].end()
    if subjects is not None and subjects.search(text, after, opening) is not None:
        return True
    frequent = book.frequent_words(languages)
    first_comma = negator_end + min(i for i in (gap.find(","), gap.find(";")) if i != -1)
    negated_words = _WORD.findall(text, negator_end, first_comma)
    return (len(negated_words) >= _COMPLETE_PREDICATE_WORDS
            or any(word not in frequent for word in negated_words))


def _share_cancellation(findings: list[Finding]) -> list[Finding]:
    """Words that are negated or hypothetical for one rule are so for every rule matching them
    ("I'm not suicidal" must not still count as a bare mention of suicide)."""
    cancelled = [f for f in findings if f.weight == 0 and f.flags & {"negated", "hypothetical"}]
    if not cancelled:
        return findings
    shared = []
    for finding in findings:
        # A cancelled circumstance ("not going to do it myself") cancels only what lies inside
        # it, never a longer statement that happens to contain its words.
        covering = [c for c in cancelled if (c.start <= finding.start and finding.end <= c.end)
                    or (finding.start <= c.start and c.end <= finding.end
                        and c.category not in PERSON_NEUTRAL)]
        if finding.weight > 0 and covering:
            flags = finding.flags | (covering[0].flags & {"negated", "hypothetical"})
            finding = Finding(finding.rule, finding.start, finding.end, 0.0, flags, finding.phrase)
        shared.append(finding)
    return shared

