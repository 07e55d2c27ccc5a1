"""The word model: a second opinion that reads wording the rules do not list.

Rules catch phrasings; people in crisis find new ones ("make sure the cat goes to my sister,
I won't be here for the renewal"). Three logistic regressions over the ticket's words and word
pairs — "at risk" (high or imminent), "imminent", and, among at-risk texts, "someone else is at
risk" — were trained on labelled helpdesk tickets in the seven languages (`plugin/screening/training/`, `python -m
plugin.screening.train`). Their weights are data in `rules/learned.json`: no library, no download,
the same answer every time.

The model can only raise a tier, never lower what a rule found, and it says why: the word
pairs that weighed most become the assessment's signals, with their spans in the text.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from itertools import chain, islice, repeat
from typing import Callable, Iterable, Iterator, KeysView, Mapping

MODEL_PATH = Path(__file__).parent / "rules" / "learned.json"
# Letters only: `normalise` already folded accents (ñ → n, ß → ss) and digits or symbols that
# stood for letters ("k!ll" → "kill"); order numbers and prices carry no meaning here. Words
# in other scripts are skipped: the seven languages' vocabulary has none.
_WORD = re.compile(r"[a-z_]+")
# Negation marking (Das & Chen 2001): up to NEGATION_REACH words after a negator, to the next
# punctuation, become "not_word". "je ne veux pas mourir" then carries "not_mourir", not
# "mourir"; "I don't want to live" carries "not_live", which training learned as risk.
NEGATORS = (
    "not no never nothing nobody dont doesnt didnt wont cant cannot isnt arent wasnt werent "
    "havent hasnt wouldnt couldnt shouldnt "  # en (apostrophes are gone in canonical text)
    "nunca jamas ni tampoco nada nadie "       # es (+ "no")
    "nao nem "                                  # pt (+ "nunca", "jamais")
    "ne pas jamais aucun aucune rien personne "  # fr
    "non mai nessun nessuno niente "            # it
    "nicht kein keine keinen keiner nie niemals nichts niemand "  # de
    "niet geen noit nimer niets niemand"        # nl ("nooit"/"nimmer" after collapsing runs)
).split()
NEGATION_REACH = 5
_NEGATION_SCOPE = re.compile(
    r"(?<![a-z_])(?:" + "|".join(sorted(set(NEGATORS), key=len, reverse=True)) + r")(?![a-z_])"
    r"((?:[^a-z_.,;:!?\n]+[a-z_]+){0,%d})" % NEGATION_REACH)
# Features are plain strings: "word", "not_word" and "word word".


def features(canonical: str) -> Iterator[tuple[str, int, int]]:
    """(feature, start, end) for every word and adjacent word pair, spans in `canonical`."""
    tokens: list[tuple[str, int, int]] = []
    for match in _WORD.finditer(canonical):
        tokens.append((match.group(), match.start(), match.end()))
    scopes = [(m.start(1), m.end(1)) for m in _NEGATION_SCOPE.finditer(canonical)]
    for index, (word, start, end) in enumerate(tokens):
        if any(a <= start and end <= b for a, b in scopes):
            tokens[index] = ("not_" + word, start, end)
    previous: tuple[str, int, int] | None = None
    for word, start, end in tokens:
        yield word, start, end
        if previous is not None:
            yield f"{previous[0]} {word}", previous[1], end
        previous = (word, start, end)


# The fast path of `words_of` for ASCII text (nearly every ticket once accents are folded):
# one C-level translate turns letters into themselves, scope-ending punctuation into line
# breaks and everything else into spaces, so clauses and words come from str.split.
_CLAUSE_BREAK = ".,;:!?\n"
_ASCII_WORDS = str.maketrans({
    code: chr(code) if chr(code) in "abcdefghijklmnopqrstuvwxyz_"
    else "\n" if chr(code) in _CLAUSE_BREAK else " "
    for code in range(128)
})
_NEGATOR_SET = frozenset(NEGATORS)


def words_of(canonical: str) -> list[str]:
    """The words features are made of (negation marked): the fast form of `features`.

    Same result as the regex form below (`_words_by_regex`, the reference; a test compares
    them), about three times faster on ASCII text."""
    if not canonical.isascii():
        return _words_by_regex(canonical)
    words: list[str] = []
    for clause in canonical.translate(_ASCII_WORDS).split("\n"):
        tokens = clause.split()
        if _NEGATOR_SET.isdisjoint(tokens):
            words += tokens
            continue
        reach = 0
        for token in tokens:
            if reach:
                words.append("not_" + token)
                reach -= 1
            else:
                words.append(token)
                if token in _NEGATOR_SET:
                    reach = NEGATION_REACH
    return words


def _words_by_regex(canonical: str) -> list[str]:
    """`words_of` for any text: words are runs of [a-z_], scopes come from _NEGATION_SCOPE."""
    words: list[str] = []
    findall = _WORD.findall
    done = 0
    for scope in _NEGATION_SCOPE.finditer(canonical):
        start, end = scope.span(1)
        words += findall(canonical, done, start)
        words += ["not_" + word for word in findall(canonical, start, end)]
        done = end
    words += findall(canonical, done)
    return words


def word_pairs(words: list[str]) -> Iterator[str]:
    return map(" ".join, zip(words, islice(words, 1, None)))


# Long texts carry more words, so more chances to add weight: beyond REFERENCE_WORDS each
# feature counts 1/sqrt(length share), in training as here. Without this, long forum posts
# about the topic outscored short tickets from people at risk.
REFERENCE_WORDS = 60


# A one-line message gives the model few words to weigh, and a look-alike shares most of them
# with a crisis message ("After I send this I'm going to bed"). Below SHORT_TEXT_WORDS words it
# must be surer; short explicit statements are the rules' strength anyway.
SHORT_TEXT_WORDS = 25
SHORT_TEXT_THRESHOLD = 0.92


def length_scale(word_count: int) -> float:
    return 1.0 / math.sqrt(max(1.0, word_count / REFERENCE_WORDS))


@dataclass(frozen=True)
class Head:
    """One logistic regression: P(label | text) = sigmoid(bias + Σ weight of present features)."""

    bias: float
    threshold: float
    weights: Mapping[str, float]  # a feature missing here weighs 0.0

    def logit(self, known: Iterable[str], scale: float) -> float:
        """`known`: the text's features in the model's vocabulary."""
        weights = self.weights
        if isinstance(weights, PackedWeights):
            return self.bias + scale * weights.total(known)
        # fsum: exact, so the result does not follow the set's (hash-seeded) iteration order.
        return self.bias + scale * math.fsum(map(weights.get, known, repeat(0.0)))


def shared_floats() -> Callable[[str], float]:
    """A `parse_float` for json.loads that returns one float object per distinct number: the
    model files hold ~140,000 weights but only ~9,000 distinct values (4 decimals), and a float
    object per weight cost the screener ~3 MB of its memory budget."""
    seen: dict[str, float] = {}

    def parse(text: str) -> float:
        value = seen.get(text)
        if value is None:
            value = seen[text] = float(text)
        return value

    return parse


# Weights are stored with 4 decimals, so 10,000 × weight is an integer. A feature's three
# weights share one Python int: at risk in the low _FIELD_BITS (two's complement), imminent
# above it, third party above that. A sum of packed values is the packed sum as long as each
# head's total stays within ±2**39 (weights are a few units, a text has at most a few thousand
# features). One int instead of a float per head: memory (60,000 features) and one C-level sum.
_UNITS = 10_000
_FIELD_BITS = 40
_FIELD = 1 << _FIELD_BITS
_HALF = 1 << (_FIELD_BITS - 1)


HEADS = ("at_risk", "imminent", "third_party")  # the packed fields, low to high


def pack(at_risk: float, imminent: float, third_party: float = 0.0) -> int:
    return (round(at_risk * _UNITS) + (round(imminent * _UNITS) << _FIELD_BITS)
            + (round(third_party * _UNITS) << (2 * _FIELD_BITS)))


def unpack(total: int) -> tuple[float, float, float]:
    at_risk = ((total + _HALF) % _FIELD) - _HALF
    total = (total - at_risk) >> _FIELD_BITS
    imminent = ((total + _HALF) % _FIELD) - _HALF
    third_party = (total - imminent) >> _FIELD_BITS
    return at_risk / _UNITS, imminent / _UNITS, third_party / _UNITS


class PackedWeights(Mapping[str, float]):
    """One head's weights read out of `WordModel.both`: no head keeps a dictionary of its own
    (three dicts and a vocabulary set were ~5 MB of the screener's 60 MB budget). Only
    explanations, the third-party head (read when a tier is raised) and training read it
    feature by feature."""

    __slots__ = ("_both", "_field")

    def __init__(self, both: dict[str, int], field_index: int) -> None:
        self._both = both
        self._field = field_index  # 0: at risk, 1: imminent, 2: third party

    def __getitem__(self, feature: str) -> float:
        return unpack(self._both[feature])[self._field]

    def get(self, feature: str, default: float | None = None) -> float | None:  # type: ignore[override]
        packed = self._both.get(feature)
        return default if packed is None else unpack(packed)[self._field]

    def __contains__(self, feature: object) -> bool:
        return feature in self._both

    def total(self, features: Iterable[str]) -> float:
        """Σ this head's weights of `features` (missing ones weigh 0): one C-level integer sum
        of packed values, exact in any order."""
        return unpack(sum(map(self._both.get, features, repeat(0))))[self._field]

    def __iter__(self) -> Iterator[str]:
        return iter(self._both)

    def __len__(self) -> int:
        return len(self._both)


@dataclass(frozen=True)
class WordModel:
    at_risk: Head
    imminent: Head
    third_party: Head  # among at-risk texts: is the person at risk someone else?
    trained_on: int
    training_digest: str = ""
    # Both heads that run on every ticket, packed per feature into one integer (see `pack`):
    # one lookup and one C-level sum serve both (a third of the model's time went to dictionary
    # lookups), and integer sums are exact, so the result does not depend on the order in which
    # a set of features is iterated (it follows the process's hash seed). Its keys are the
    # model's vocabulary.
    both: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.both:  # built from heads with plain weight dicts (hand-made models in tests)
            heads = (self.at_risk.weights, self.imminent.weights, self.third_party.weights)
            self.both.update((f, pack(*(head.get(f, 0.0) for head in heads)))
                             for f in chain(*heads))

    @property
    def vocabulary(self) -> KeysView[str]:
        return self.both.keys()

    def known(self, features: Iterable[str]) -> set[str]:
        """The distinct features of `features` that the model has weights for."""
        # A set operation on the dict's keys: as fast as a frozenset's intersection,
        # without keeping a second copy of the vocabulary.
        return self.both.keys() & features

    def head_sums(self, known: Iterable[str]) -> tuple[float, float]:
        """Σ at-risk weights and Σ imminent weights of `known` (features in the vocabulary)."""
        at_risk, imminent, _ = unpack(sum(map(self.both.__getitem__, known)))
        return at_risk, imminent

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> "WordModel":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path.name}: not valid JSON ({exc.msg}, line {exc.lineno}); "
                             "run python -m plugin.screening.train") from None
        if not isinstance(data, dict) or data.get("version") != 3 or not all(
                isinstance(data.get(key), want) for key, want in
                (("features", list), ("packed", list), ("heads", dict))):
            raise ValueError(f"{path.name}: unknown model format; run python -m plugin.screening.train")
        heads = data["heads"]
        if len(data["packed"]) != len(data["features"]):
            raise ValueError(f"{path.name}: {len(data['features'])} features but "
                             f"{len(data['packed'])} weights; run python -m plugin.screening.train")
        # Written packed (see `pack` and train.py), in the order of HEADS.
        both = dict(zip(data["features"], data["packed"]))

        def head(name: str, weights: Mapping[str, float]) -> Head:
            return Head(bias=float(heads[name]["bias"]), threshold=float(heads[name]["threshold"]),
                        weights=weights)

        return cls(at_risk=head("at_risk", PackedWeights(both, 0)),
                   imminent=head("imminent", PackedWeights(both, 1)),
                   third_party=head("third_party", PackedWeights(both, 2)),
                   trained_on=int(data["trained_on"]),
                   training_digest=str(data.get("training_digest", "")), both=both)


@dataclass(frozen=True)
class Opinion:
    """What the word model thinks of one text."""

    at_risk: float      # probability, 0..1
    imminent: float     # probability, 0..1
    third_party: float  # probability that the person at risk is not the writer, 0..1
    raises_to: str      # "none", "high" or "imminent": the least tier the model asks for
    # The phrases that weighed most for "at risk": ("phrase", start, end, weight), in text order;
    # canonical offsets. Filled only when the model raises the tier (the rare case).
    evidence: tuple[tuple[str, int, int, float], ...] = ()


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def opinion(model: WordModel, canonical: str, *, evidence: int = 3) -> Opinion:
    """The model's view of `canonical` (the normalised, history-cut ticket text)."""
    words = words_of(canonical)
    known = model.known(chain(words, word_pairs(words)))
    scale = length_scale(len(words))
    risk_sum, imminent_sum = model.head_sums(known)
    at_risk = _sigmoid(model.at_risk.bias + scale * risk_sum)
    imminent = _sigmoid(model.imminent.bias + scale * imminent_sum)
    threshold = model.at_risk.threshold
    if len(words) < SHORT_TEXT_WORDS:
        threshold = max(threshold, SHORT_TEXT_THRESHOLD)
    if at_risk < threshold:
        return Opinion(at_risk=at_risk, imminent=imminent, third_party=0.0, raises_to="none")
    third_party = _sigmoid(model.third_party.logit(known, scale))
    raises_to = "imminent" if imminent >= model.imminent.threshold else "high"
    spans: dict[str, tuple[int, int]] = {}
    for feature, start, end in features(canonical):
        spans.setdefault(feature, (start, end))
    return Opinion(at_risk=at_risk, imminent=imminent, third_party=third_party,
                   raises_to=raises_to, evidence=_evidence(model, spans, evidence))


def _evidence(model: WordModel, spans: dict[str, tuple[int, int]],
              count: int) -> tuple[tuple[str, int, int, float], ...]:
    """The `count` heaviest phrases for "at risk": the heaviest features, with overlapping
    ones ("wont be", "be here") joined into one phrase whose weight is their sum."""
    # The at-risk weight is the packed value's low field (see `pack`), read inline: this runs
    # over every feature of every raised ticket.
    both = model.both
    weighted = []
    for feature in spans:
        packed = both.get(feature)
        if packed is not None:
            at_risk = ((packed + _HALF) % _FIELD) - _HALF
            if at_risk > 0:
                weighted.append((at_risk / _UNITS, feature))
    heaviest = sorted(weighted, reverse=True)[:count * 2]
    phrases: list[list] = []  # [start, end, weight]
    for weight, feature in sorted(heaviest, key=lambda wf: spans[wf[1]]):
        start, end = spans[feature]
        if phrases and start <= phrases[-1][1]:
            phrases[-1][1] = max(phrases[-1][1], end)
            phrases[-1][2] += weight
        else:
            phrases.append([start, end, weight])
    phrases.sort(key=lambda p: -p[2])
    return tuple(("phrase", start, end, round(weight, 4))
                 for start, end, weight in sorted(phrases[:count]))
