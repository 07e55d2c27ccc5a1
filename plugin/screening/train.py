"""Train the word model (`rules/learned.json`) from labelled tickets. A development tool.

    python -m plugin.screening.train            # retrain, write rules/learned.json, print CV figures
    python -m plugin.screening.train --check    # exit 1 if learned.json differs from a retrain

Training data: every `*.jsonl` in `plugin/screening/training/` ({"text", "tier", "locale"}):
waves 1-7 (helpdesk tickets), wave 8 (session 7: long ordinary first-person texts, forum posts and
tickets about wills, layoffs, insurance and moves, 85 % none and 15 % concern, 80 % of each
language; the other 20 % are `benchmarks/data/ordinary_long_heldout.jsonl`, never trained on) and
wave 9 (session 7: short look-alikes that carry arrangement and finality words with a plain reason,
"I'm moving to Canada, transfer my account to my brother, I won't need it from tomorrow");
plus the helpdesk sets in `benchmarks/data/` that have already been measured and read: the
early 210-ticket set and blind sets 2-20. Session 7 chose wave 8 on sets 17 and 18 before they
joined (with sets 2-16: at-risk 0.971 / 0.964 without it, 0.957 / 0.971 with it; dev false
alarms 0.087 -> 0.061, dev at-risk 0.704 -> 0.646; held-out ordinary long texts flagged 0.074 ->
0.015; MAX_FALSE_ALARM 0.005 instead of 0.003 gave dev 0.668 / 0.081 and 0.030 on the ordinary
texts). Wave 9 came after wave 8 made greeted German emigration tickets read as imminent. Never
the development set (../shared/eval) or a blind set not yet measured and read (set 21 and
later): those measure, they do not teach.

Method: logistic regression, one per head, on binary word and word-pair features seen in at
least two tickets; AdaGrad with L2, a fixed seed and a fixed order, so the same data gives the
same bytes. A third head tells, among at-risk tickets, whether the person at risk is someone
the writer writes about. Thresholds come from 5-fold cross-validation: the lowest at-risk threshold that
flags at most MAX_FALSE_ALARM (0.3 %) of the "none" tickets of held-out folds, and the lowest imminent threshold
that raises at most 5 % of held-out "high" tickets to imminent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
from collections import Counter
from itertools import chain
from pathlib import Path
from typing import Iterator, Sequence

from plugin.screening import rulebook
from plugin.screening.canonical import canonical_text as _canonical_text
from plugin.screening.learned import (HEADS, MODEL_PATH, REFERENCE_WORDS, length_scale, pack,
                                      word_pairs, words_of)

ROOT = Path(__file__).resolve().parents[2]
TRAINING_FILES = (sorted((Path(__file__).parent / "training").glob("*.jsonl"))
                  + [ROOT / "benchmarks" / "data" / "helpdesk_blind_210.jsonl"]
                  # Blind sets 2-20: measured, then read, so now training data. Listed by
                  # number, never globbed: set 21 and later measure.
                  + [ROOT / "benchmarks" / "data" / f"helpdesk_blind{n}_280.jsonl"
                     for n in range(2, 21)])
MIN_DOCUMENTS = 2
EPOCHS = 10
LEARNING_RATE = 0.05
L2 = 1e-3
PRUNE_BELOW = 0.15
FOLDS = 5
# Share of held-out "none" training tickets the at-risk threshold may flag. Those tickets are
# written to be hard look-alikes. With waves 1-7 and blind sets 2-12 (pass 6), 0.5 % read
# set 13 at 0.829 word-only (0.3 %: 0.814, neither flagged a "none" ticket) but raised the dev
# set's false alarms 0.077 -> 0.100 (0.3 %: 0.090, recall 0.628 -> 0.681): 0.3 % keeps most of
# the helpdesk gain for a smaller dev cost.
MAX_FALSE_ALARM = 0.003
MAX_HIGH_RAISED = 0.02
SEED = 20261122

_BOOKS: list[rulebook.Rulebook] = []


def _book() -> rulebook.Rulebook:
    if not _BOOKS:
        _BOOKS.append(rulebook.load())
    return _BOOKS[0]


Example = tuple[frozenset[str], str, bool, int]  # (features, tier, someone else?, words)


def read_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) for every non-empty line of a training file; a line that is not
    a JSON object with a known tier and a text string stops training with its file and line."""
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            text, tier = record["text"], record["tier"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path.name}:{line_number}: not a JSON object with text and tier"
                             ) from None
        if tier not in ("none", "concern", "high", "imminent") or not isinstance(text, str):
            raise ValueError(f"{path.name}:{line_number}: unknown tier or text not a string")
        yield line_number, record


def load_examples(paths: Sequence[Path] = TRAINING_FILES) -> list[Example]:
    examples = []
    for path in paths:
        for _, record in read_records(path):
            words = words_of(_canonical_text(record["text"], _book()))
            examples.append((frozenset(chain(words, word_pairs(words))), record["tier"],
                             bool(record.get("third_party")), len(words)))
    return examples


def vocabulary(examples: Sequence[Example]) -> set[str]:
    counts = Counter(f for example in examples for f in example[0])
    return {f for f, n in counts.items() if n >= MIN_DOCUMENTS}


def fit(examples: Sequence[Example], labels: Sequence[int], vocab: set[str]) -> tuple[float, dict[str, float]]:
    """L2 logistic regression by AdaGrad over sparse binary features."""
    weights: dict[str, float] = {}
    squares: dict[str, float] = {}
    bias, bias_square = 0.0, 0.0
    order = list(range(len(examples)))
    rng = random.Random(SEED)
    for _ in range(EPOCHS):
        rng.shuffle(order)
        for i in order:
            present = [f for f in examples[i][0] if f in vocab]
            value = length_scale(examples[i][3])
            z = bias + value * sum(weights.get(f, 0.0) for f in present)
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
            error = p - labels[i]
            bias_square += error * error
            bias -= LEARNING_RATE * error / math.sqrt(bias_square + 1e-9)
            for f in present:
                w = weights.get(f, 0.0)
                gradient = error * value + L2 * w
                squares[f] = squares.get(f, 0.0) + gradient * gradient
                weights[f] = w - LEARNING_RATE * gradient / math.sqrt(squares[f] + 1e-9)
    return bias, weights


def _probability(bias: float, weights: dict[str, float], example: Example) -> float:
    z = bias + length_scale(example[3]) * sum(weights.get(f, 0.0) for f in example[0])
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def _lowest_threshold(scores: Sequence[float], share: float) -> float:
    """The smallest threshold that flags at most `share` of `scores` (flag: score ≥ threshold)."""
    ordered = sorted(scores, reverse=True)
    allowed = int(share * len(ordered))
    if allowed >= len(ordered):
        return 0.5
    return min(0.99, max(0.5, ordered[allowed] + 1e-6))


def cross_validate(examples: Sequence[Example]) -> tuple[list[float], list[float]]:
    """Held-out (at-risk, imminent) probabilities for every example."""
    at_risk = [0.0] * len(examples)
    imminent = [0.0] * len(examples)
    for fold in range(FOLDS):
        train = [i for i in range(len(examples)) if i % FOLDS != fold]
        held = [i for i in range(len(examples)) if i % FOLDS == fold]
        part = [examples[i] for i in train]
        vocab = vocabulary(part)
        risk_model = fit(part, [int(e[1] in ("high", "imminent")) for e in part], vocab)
        imminent_model = fit(part, [int(e[1] == "imminent") for e in part], vocab)
        for i in held:
            at_risk[i] = _probability(*risk_model, examples[i])
            imminent[i] = _probability(*imminent_model, examples[i])
    return at_risk, imminent


def train(examples: Sequence[Example]) -> tuple[dict, dict[str, float]]:
    at_risk_cv, imminent_cv = cross_validate(examples)
    tiers = [e[1] for e in examples]
    risk_threshold = _lowest_threshold([p for p, t in zip(at_risk_cv, tiers) if t == "none"],
                                       MAX_FALSE_ALARM)
    imminent_threshold = _lowest_threshold(
        [p for p, t in zip(imminent_cv, tiers) if t == "high"], MAX_HIGH_RAISED)

    def recall(tier_set: set[str], flagged) -> float:
        chosen = [i for i, t in enumerate(tiers) if t in tier_set]
        return sum(1 for i in chosen if flagged(i)) / max(1, len(chosen))

    figures = {
        "at_risk_recall": recall({"high", "imminent"}, lambda i: at_risk_cv[i] >= risk_threshold),
        "imminent_recall": recall({"imminent"}, lambda i: at_risk_cv[i] >= risk_threshold
                                  and imminent_cv[i] >= imminent_threshold),
        "false_alarm": recall({"none"}, lambda i: at_risk_cv[i] >= risk_threshold),
        "concern_flagged_high": recall({"concern"}, lambda i: at_risk_cv[i] >= risk_threshold),
    }
    vocab = vocabulary(examples)
    heads = {}
    # The third-party head learns only among at-risk tickets: whose risk it is, not whether.
    at_risk_examples = [e for e in examples if e[1] in ("high", "imminent")]
    for name, chosen, labels, threshold in (
            ("at_risk", examples, [int(t in ("high", "imminent")) for t in tiers], risk_threshold),
            ("imminent", examples, [int(t == "imminent") for t in tiers], imminent_threshold),
            ("third_party", at_risk_examples, [int(e[2]) for e in at_risk_examples], 0.5)):
        bias, weights = fit(chosen, labels, vocab)
        heads[name] = {"bias": round(bias, 4), "threshold": round(threshold, 4),
                       "weights": weights}
    # A feature that matters to any head is kept in every head. Weights are stored as the
    # screener holds them: one packed integer per feature (`learned.pack`: each head's weight
    # to 4 decimals) in a column beside one sorted feature list, so loading is two C-level
    # JSON lists and a zip, with no per-weight parsing or packing.
    features = sorted({f for head in heads.values() for f, w in head["weights"].items()
                       if abs(w) >= PRUNE_BELOW})
    weights = {name: head.pop("weights") for name, head in heads.items()}
    packed = [pack(*(round(weights[name].get(f, 0.0), 4) for name in HEADS)) for f in features]
    model = {"version": 3, "trained_on": len(examples), "features": features, "packed": packed,
             "heads": heads, "training_digest": training_digest()}
    return model, figures


def training_digest(paths: Sequence[Path] = TRAINING_FILES) -> str:
    """SHA-256 of the training files and the settings: a test compares it with learned.json's,
    so an edited training file without a retrain fails fast (retraining takes a minute)."""
    digest = hashlib.sha256()
    settings = (MIN_DOCUMENTS, EPOCHS, LEARNING_RATE, L2, PRUNE_BELOW, FOLDS, MAX_FALSE_ALARM,
                MAX_HIGH_RAISED, SEED, REFERENCE_WORDS)
    digest.update(repr(settings).encode())
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def render(model: dict) -> str:
    return json.dumps(model, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if learned.json is stale")
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args(argv)
    model, figures = train(load_examples())
    text = render(model)
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python -m plugin.screening.train", file=sys.stderr)
            return 1
        print("learned.json matches its training data")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"trained on {model['trained_on']} tickets; {FOLDS}-fold held-out figures:")
    for name, value in figures.items():
        print(f"  {name:22s} {value:.3f}")
    for name, head in model["heads"].items():
        print(f"  head {name}: threshold {head['threshold']}, {len(model['features'])} weights")
    return 0


if __name__ == "__main__":
    sys.exit(main())
