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
NEGATION_WORDS = 3
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
    """Sentence and clause boundaries of one canonical text, computed once."""

    def __init__(self, text: str, book: Rulebook, languages: tuple[str, ...]) -> None:
        self.text = text
        self.sentence_ends = [m.start() for m in _SENTENCE_END.finditer(text)]
        breaks = book.cue("clause_breaks", languages)
        self.clause_breaks = [m.end() for m in breaks.finditer(text)] if breaks else []

    def sentence(self, start: int, end: int) -> tuple[int, int]:
        i = bisect.bisect_left(self.sentence_ends, start)
        first = self.sentence_ends[i - 1] + 1 if i > 0 else 0
        j = bisect.bisect_left(self.sentence_ends, end)
        last = self.sentence_ends[j] if j < len(self.sentence_ends) else len(self.text)
        return first, last

    def clause_start(self, start: int, sentence_start: int) -> int:
        i = bisect.bisect_right(self.clause_breaks, start)
        last_break = self.clause_breaks[i - 1] if i > 0 else 0
        return max(sentence_start, last_break)


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


def _negation_window(text: str, start: int, end: int) -> int:
    """Start of the last NEGATION_WORDS words before `end` (not before `start`)."""
    words = [m.start() for m in _WORD.finditer(text, start, end)]
    return words[-NEGATION_WORDS] if len(words) >= NEGATION_WORDS else start


def apply(book: Rulebook, text: str, matches: list[tuple[Rule, int, int]],
          languages: tuple[str, ...]) -> list[Finding]:
    """Findings for the rule matches of one canonical text (look-alikes removed), with the
    scope cues of `languages`."""

    def cue(key: str) -> re.Pattern[str] | None:
        return book.cue(key, languages)

    lookalike = cue("lookalikes")
    lookalike_spans = [m.span() for m in lookalike.finditer(text)] if lookalike else []
    spans = _Text(text, book, languages)
    findings = []
    for rule, start, end in matches:
        if _overlaps(lookalike_spans, start, end):
            continue
        sentence_start, sentence_end = spans.sentence(start, end)
        clause_start = spans.clause_start(start, sentence_start)
        flags: set[str] = set()
        weight = rule.weight

        subject_before = _last_subject(book, languages, text, clause_start, start)
        subject = _last_subject(book, languages, text, clause_start, end)
        if rule.category in PERSON_NEUTRAL:
            pass
        elif rule.person == "third" or (
            rule.person == "auto" and subject is not None and subject.lastgroup == "third"
        ):
            flags.add("third_party")

        window_start = subject_before.end() if subject_before is not None else clause_start
        window_start = max(window_start, _negation_window(text, clause_start, start))
        if rule.category != "timing" and _search(cue("negators"), text, window_start, start):
            flags.add("negated")
            weight = 0.0
        if _search(cue("hypothetical"), text, sentence_start, sentence_end):
            flags.add("hypothetical")
            weight = 0.0
        if weight and _search(cue("reassurance"), text, sentence_start, sentence_end):
            flags.add("negated")
            weight = min(weight, REASSURED_CAP)
        if weight:
            recent = _search(cue("recent"), text, sentence_start, sentence_end)
            past = _search(cue("past"), text, sentence_start, sentence_end) or _search(
                cue("recovered"), text, sentence_start, sentence_end)
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


def _share_cancellation(findings: list[Finding]) -> list[Finding]:
    """Words that are negated or hypothetical for one rule are so for every rule matching them
    ("I'm not suicidal" must not still count as a bare mention of suicide)."""
    cancelled = [f for f in findings if f.weight == 0 and f.flags & {"negated", "hypothetical"}]
    if not cancelled:
        return findings
    shared = []
    for finding in findings:
        covering = [c for c in cancelled if (c.start <= finding.start and finding.end <= c.end)
                    or (finding.start <= c.start and c.end <= finding.end)]
        if finding.weight > 0 and covering:
            flags = finding.flags | (covering[0].flags & {"negated", "hypothetical"})
            finding = Finding(finding.rule, finding.start, finding.end, 0.0, flags, finding.phrase)
        shared.append(finding)
    return shared

