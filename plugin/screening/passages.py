"""The word model's second look, one passage at a time.

A helpdesk ticket often carries its one risk sentence among order numbers, refunds and
greetings. The whole-text word model (learned.py) weighs every word of the ticket, so that
sentence is diluted (and must be: long forum posts about the topic would otherwise outscore
short tickets from people at risk). Here each passage — two consecutive sentences — is read on
its own by a passage model: a logistic regression over the same word and word-pair features,
trained (`python -m plugin.screening.train_passages`) with every passage of a "none" or
"concern" training ticket as a negative and each at-risk ticket's most telling passage as a
positive. A passage raises a ticket to high only when the passage model AND the whole-text
model, reading that same passage, both find risk at their own thresholds: two models trained
differently must agree on one place in the text, which the evidence then highlights.

Only tickets the whole-text model already finds somewhat worrying are read passage by passage
(`GATE`): about 0.2 % of ordinary tickets, so screening speed does not change.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Container, Sequence

from plugin.screening.learned import (SHORT_TEXT_THRESHOLD, SHORT_TEXT_WORDS, WordModel, features,
                                      length_scale, shared_floats, word_pairs, words_of)

PASSAGES_PATH = Path(__file__).parent / "rules" / "passages.json"
SENTENCE_BREAK = re.compile(r"[.!?\n]+")
_HAS_WORD = re.compile(r"[^\W_]")  # a letter or digit
PASSAGE_SENTENCES = 2
# Whole-text at-risk probability below which no passage is read.
GATE = 0.1


@dataclass(frozen=True)
class PassageModel:
    bias: float
    threshold: float
    weights: dict[str, float]
    trained_on: int
    training_digest: str = ""

    @classmethod
    def load(cls, path: Path = PASSAGES_PATH) -> "PassageModel":
        data = json.loads(path.read_text(encoding="utf-8"), parse_float=shared_floats())
        if data.get("version") != 1:
            raise ValueError(f"{path.name}: unknown format; run python -m plugin.screening.train_passages")
        return cls(bias=float(data["bias"]), threshold=float(data["threshold"]),
                   weights=dict(zip(data["features"], data["weights"])),
                   trained_on=int(data["trained_on"]),
                   training_digest=str(data.get("training_digest", "")))

    def probability(self, features: set[str] | frozenset[str]) -> float:
        weights = self.weights
        # fsum: exact, so the result does not follow the set's (hash-seeded) iteration order.
        return _sigmoid(self.bias + math.fsum(weights[f] for f in features if f in weights))


@dataclass(frozen=True)
class Passage:
    start: int          # canonical offsets
    end: int
    probability: float  # the passage model's
    word_model: float   # the whole-text model's, reading only this passage


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def sentence_spans(canonical: str) -> list[tuple[int, int]]:
    """(start, end) of every sentence with a letter or digit in it."""
    spans = []
    start = 0
    for brk in SENTENCE_BREAK.finditer(canonical):
        if _HAS_WORD.search(canonical, start, brk.start()):
            spans.append((start, brk.start()))
        start = brk.end()
    if _HAS_WORD.search(canonical, start):
        spans.append((start, len(canonical)))
    return spans


def passage_spans(canonical: str, size: int = PASSAGE_SENTENCES) -> list[tuple[int, int]]:
    """Every run of `size` consecutive sentences; the whole text when it has fewer."""
    sentences = sentence_spans(canonical)
    if len(sentences) <= size:
        return [(sentences[0][0], sentences[-1][1])] if sentences else []
    return [(sentences[i][0], sentences[i + size - 1][1])
            for i in range(len(sentences) - size + 1)]


def passage_features(text: str) -> tuple[frozenset[str], int]:
    """The features both models read in one passage, and its word count."""
    words = words_of(text)
    return frozenset(chain(words, word_pairs(words))), len(words)


def word_model_probability(model: WordModel, features: frozenset[str], word_count: int) -> float:
    """The whole-text model's at-risk probability for a text with these features."""
    total = model.head_sums(model.known(features))[0]
    return _sigmoid(model.at_risk.bias + length_scale(word_count) * total)


def strongest_passage(passage_model: PassageModel, word_model: WordModel, canonical: str,
                      disowned: Sequence[tuple[int, int]] = ()) -> Passage | None:
    """The passage both models read as risk, the passage model's surest; None if there is none.

    A ticket of one passage was already read whole by the word model: nothing to add. A short
    passage must satisfy the word model's short-text bar, as a short ticket must ("I have
    everything ready, tonight I'll do it" is about a router as often as not). A passage holding a
    statement the rules read as negated, hypothetical or past (`disowned` spans: "I'm not
    suicidal, just furious") is not read: the writer has said what its words mean.
    """
    spans = passage_spans(canonical)
    if len(spans) < 2:
        return None
    best: Passage | None = None
    for start, end in spans:
        if any(a < end and start < b for a, b in disowned):
            continue
        features, word_count = passage_features(canonical[start:end])
        probability = passage_model.probability(features)
        if probability < passage_model.threshold or (best and probability <= best.probability):
            continue
        second = word_model_probability(word_model, features, word_count)
        bar = word_model.at_risk.threshold
        if word_count < SHORT_TEXT_WORDS:
            bar = max(bar, SHORT_TEXT_THRESHOLD)
        if second >= bar:
            best = Passage(start, end, probability, second)
    return best


def evidence(passage_model: PassageModel, canonical: str, passage: Passage, count: int = 3,
             stopwords: Container[str] = frozenset()) -> list[tuple[int, int, float]]:
    """The passage's `count` heaviest phrases for the passage model: (start, end, weight) in
    canonical offsets. Features that touch or are only a space apart ("wont be", "be here") are
    joined into one phrase whose weight is their sum; a feature made of `stopwords` alone ("to",
    "i") is never quoted on its own. The note quotes these few words, not the whole passage."""
    weights = passage_model.weights
    offset = passage.start
    spans: dict[str, tuple[int, int]] = {}
    for feature, start, end in features(canonical[passage.start:passage.end]):
        if weights.get(feature, 0.0) > 0.0 and not all(w in stopwords for w in feature.split()):
            spans.setdefault(feature, (offset + start, offset + end))
    heaviest = sorted(spans, key=lambda f: (-weights[f], spans[f]))[:count * 2]
    phrases: list[list] = []  # [start, end, weight]
    for feature in sorted(heaviest, key=spans.__getitem__):
        start, end = spans[feature]
        if phrases and not canonical[phrases[-1][1]:start].strip():
            phrases[-1][1] = max(phrases[-1][1], end)
            phrases[-1][2] += weights[feature]
        else:
            phrases.append([start, end, weights[feature]])
    phrases.sort(key=lambda p: -p[2])
    return [(start, end, round(weight, 4)) for start, end, weight in sorted(phrases[:count])]
