"""Train the passage model (`rules/passages.json`, see passages.py). A development tool.

    python -m plugin.screening.train_passages            # retrain, write passages.json, print CV figures
    python -m plugin.screening.train_passages --check    # exit 1 if passages.json is stale

Data: the word model's training tickets (train.TRAINING_FILES) and, for this model only,
`training/passage_negatives/` — ordinary tickets and posts dense in the words that look like risk
out of context (timing, money and arrangements, leaving, giving things away, "everything is
ready"), written because a passage model trained without them misread a bank transfer or a court
date as risk. Never the development set or a blind set written for measurement
(train.TRAINING_FILES holds the early 210-ticket helpdesk set and blind sets 2-20, which became
training data once they had been measured and read). Every passage of a "none" or "concern" ticket is a negative: none of them may read as risk.
An at-risk ticket says so somewhere, but the label does not say where, so its positive is the
passage the current model finds most telling (multiple-instance learning): first by the
whole-text model's weights, then once more by the passage model's own. Logistic regression by
AdaGrad with L2 (train.fit), fixed seed and order: the same data gives the same bytes.
Threshold from 5-fold cross-validation: the lowest that flags at most MAX_FALSE_ALARM of the
held-out "none" tickets through their most worrying passage.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

from plugin.screening import train
from plugin.screening.learned import MODEL_PATH, WordModel
from plugin.screening.passages import (PASSAGE_SENTENCES, PASSAGES_PATH, SENTENCE_BREAK,
                                       passage_features, passage_spans)

MAX_FALSE_ALARM = 0.01
MIL_ROUNDS = 2
# Features seen in fewer passages are left out: a rarer word pair is seldom decisive, and the
# model must fit in the screener's memory budget beside the rules and the word model.
MIN_PASSAGES = 4
NEGATIVE_FILES = tuple(sorted((Path(train.__file__).parent / "training" / "passage_negatives")
                              .glob("*.jsonl")))
TRAINING_FILES = tuple(train.TRAINING_FILES) + NEGATIVE_FILES

Passages = list[tuple[frozenset[str], int]]
Ticket = tuple[str, Passages, bool]  # (tier, passages, one of the passage negatives?)


def load_tickets(paths: Sequence[Path] = TRAINING_FILES) -> list[Ticket]:
    tickets = []
    for path in paths:
        negative = path in NEGATIVE_FILES
        for line_number, record in train.read_records(path):
            if negative and record["tier"] != "none":
                raise ValueError(f"{path.name}:{line_number}: a passage negative must be tier none")
            canonical = train._canonical_text(record["text"], train._book())
            tickets.append((record["tier"], [passage_features(canonical[start:end])
                                             for start, end in passage_spans(canonical)],
                            negative))
    return tickets


def _at_risk(tier: str) -> bool:
    return tier in ("high", "imminent")


def _examples(tickets: Sequence[Ticket], telling) -> tuple[list[train.Example], list[int]]:
    examples: list[train.Example] = []
    labels: list[int] = []
    for tier, passages, _ in tickets:
        if not passages:
            continue
        chosen = [max(passages, key=lambda p: telling(p[0]))] if _at_risk(tier) else passages
        for features, words in chosen:
            # Word count 0: passages are short, their features count in full (length_scale 1).
            examples.append((features, tier, False, 0))
            labels.append(int(_at_risk(tier)))
    return examples, labels


def vocabulary(examples: Sequence[train.Example]) -> set[str]:
    counts = Counter(f for example in examples for f in example[0])
    return {f for f, n in counts.items() if n >= MIN_PASSAGES}


def fit(tickets: Sequence[Ticket], word_model: WordModel) -> tuple[float, dict[str, float]]:
    weights = word_model.at_risk.weights
    telling = lambda features: sum(weights.get(f, 0.0) for f in features)  # noqa: E731
    bias, fitted = 0.0, {}
    for _ in range(MIL_ROUNDS):
        examples, labels = _examples(tickets, telling)
        bias, fitted = train.fit(examples, labels, vocabulary(examples))
        weights = fitted
    return bias, fitted


def _ticket_probability(model: tuple[float, dict[str, float]], passages: Passages) -> float:
    bias, weights = model
    if not passages:
        return 0.0
    best = max(sum(weights.get(f, 0.0) for f in features) for features, _ in passages)
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, bias + best))))


def train_model(tickets: Sequence[Ticket], word_model: WordModel) -> tuple[dict, dict[str, float]]:
    held_out = [0.0] * len(tickets)
    for fold in range(train.FOLDS):
        part = [t for i, t in enumerate(tickets) if i % train.FOLDS != fold]
        model = fit(part, word_model)
        for i in range(fold, len(tickets), train.FOLDS):
            held_out[i] = _ticket_probability(model, tickets[i][1])
    threshold = train._lowest_threshold(
        [p for p, (tier, _, _) in zip(held_out, tickets) if tier == "none"], MAX_FALSE_ALARM)

    def share(wanted) -> float:
        chosen = [p for p, (tier, _, extra) in zip(held_out, tickets) if wanted(tier, extra)]
        return sum(p >= threshold for p in chosen) / max(1, len(chosen))

    figures = {"at_risk_recall": share(lambda t, _: _at_risk(t)),
               "false_alarm": share(lambda t, _: t == "none"),
               "look_alikes_flagged": share(lambda t, extra: t == "none" and not extra),
               "passage_negatives_flagged": share(lambda t, extra: extra),
               "concern_flagged": share(lambda t, _: t == "concern")}
    bias, weights = fit(tickets, word_model)
    features = sorted(f for f, w in weights.items() if abs(w) >= train.PRUNE_BELOW)
    model = {"version": 1, "trained_on": len(tickets), "bias": round(bias, 4),
             "threshold": round(threshold, 4), "features": features,
             "weights": [round(weights[f], 4) for f in features],
             "training_digest": training_digest(word_model)}
    return model, figures


def training_digest(word_model: WordModel, paths: Sequence[Path] = TRAINING_FILES) -> str:
    """The training data, the settings and the word model it starts from: a test compares it
    with passages.json's, so a change without a retrain fails fast."""
    digest = hashlib.sha256()
    settings = (MAX_FALSE_ALARM, MIL_ROUNDS, MIN_PASSAGES, PASSAGE_SENTENCES,
                SENTENCE_BREAK.pattern, train.EPOCHS,
                train.LEARNING_RATE, train.L2, train.PRUNE_BELOW, train.FOLDS, train.SEED,
                word_model.training_digest)
    digest.update(repr(settings).encode())
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if passages.json is stale")
    parser.add_argument("--out", type=Path, default=PASSAGES_PATH)
    args = parser.parse_args(argv)
    word_model = WordModel.load(MODEL_PATH)
    model, figures = train_model(load_tickets(), word_model)
    text = train.render(model)
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python -m plugin.screening.train_passages",
                  file=sys.stderr)
            return 1
        print("passages.json matches its training data")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"trained on {model['trained_on']} tickets; {train.FOLDS}-fold held-out figures "
          f"(a ticket counts through its most worrying passage):")
    for name, value in figures.items():
        print(f"  {name:22s} {value:.3f}")
    print(f"  threshold {model['threshold']}, {len(model['features'])} weights")
    return 0


if __name__ == "__main__":
    sys.exit(main())
