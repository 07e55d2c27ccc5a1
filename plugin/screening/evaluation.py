"""Evaluation on a labelled JSONL file: CareRoute beside two baselines, per source and language.

Metrics (labels and predictions are tiers none < concern < high < imminent):
- at-risk recall: items labelled high or imminent that are flagged high or above;
- imminent recall: items labelled imminent that are flagged imminent;
- any-risk recall: items labelled concern or above that are flagged at all;
- false-alarm rate: items labelled none that are flagged high or above;
- none-flag rate: items labelled none that are flagged at all.

Baselines: the naive keyword list typical helpdesk automations use (substring match → high), and
a sentiment threshold (VADER compound ≤ −0.75 → high, ≤ −0.4 → concern). VADER is a dev-only
dependency, imported lazily; without it that baseline is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from plugin.model import TIERS, tier_rank

NAIVE_KEYWORDS = (
    "suicide", "suicidal", "kill myself", "killing myself", "end my life", "take my own life",
    "want to die", "wanna die", "wish i was dead", "better off dead", "self harm", "self-harm",
    "cut myself", "cutting myself", "hurt myself", "overdose", "end it all", "no reason to live",
    "don't want to live", "not worth living", "can't go on", "goodbye forever",
    "ending it all", "my life is over",
)

Predictor = Callable[[str, str | None], str]


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    text: str
    tier: str
    source: str
    lang: str


@dataclass(frozen=True, slots=True)
class Metrics:
    n: int
    at_risk_recall: float | None
    imminent_recall: float | None
    any_risk_recall: float | None
    false_alarm_rate: float | None
    none_flag_rate: float | None


class LabelledFileError(ValueError):
    """A labelled file line that is not usable; the message names the line, never its text."""


def read_labelled(lines: Iterable[str]) -> list[Item]:
    items = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise LabelledFileError(f"line {number}: not valid JSON") from None
        if not (isinstance(record, dict) and isinstance(record.get("text"), str)
                and record.get("tier") in TIERS):
            raise LabelledFileError(f"line {number}: needs a string 'text' and a 'tier' in {TIERS}")
        items.append(Item(str(record.get("id", number)), record["text"], record["tier"],
                          str(record.get("source") or "unknown"), str(record.get("lang") or "und")))
    return items


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def metrics(pairs: list[tuple[str, str]]) -> Metrics:
    """Metrics for (label, prediction) pairs."""
    def count(label_ok: Callable[[str], bool], pred_ok: Callable[[str], bool]) -> tuple[int, int]:
        chosen = [pred for label, pred in pairs if label_ok(label)]
        return sum(1 for pred in chosen if pred_ok(pred)), len(chosen)

    at_risk = count(lambda t: tier_rank(t) >= 2, lambda p: tier_rank(p) >= 2)
    imminent = count(lambda t: t == "imminent", lambda p: p == "imminent")
    any_risk = count(lambda t: tier_rank(t) >= 1, lambda p: tier_rank(p) >= 1)
    false_alarm = count(lambda t: t == "none", lambda p: tier_rank(p) >= 2)
    none_flag = count(lambda t: t == "none", lambda p: tier_rank(p) >= 1)
    return Metrics(len(pairs), _rate(*at_risk), _rate(*imminent), _rate(*any_risk),
                   _rate(*false_alarm), _rate(*none_flag))


def naive_keyword_tier(text: str, locale: str | None = None) -> str:
    lowered = text.lower()
    return "high" if any(keyword in lowered for keyword in NAIVE_KEYWORDS) else "none"


def vader_predictor() -> Predictor | None:
    """The sentiment baseline, or None when vaderSentiment is not installed."""
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        return None
    analyzer = SentimentIntensityAnalyzer()

    def predict(text: str, locale: str | None = None) -> str:
        compound = analyzer.polarity_scores(text)["compound"]
        if compound <= -0.75:
            return "high"
        if compound <= -0.4:
            return "concern"
        return "none"

    return predict


def careroute_tier(text: str, locale: str | None = None) -> str:
    from plugin.screening import screen

    return screen(text, locale=locale).tier


def rules_only_tier(text: str, locale: str | None = None) -> str:
    """CareRoute's rules without the word model: shows what each part contributes."""
    from plugin.screening.engine import screen_by_rules

    return screen_by_rules(text, locale=locale).tier


@dataclass(frozen=True, slots=True)
class Row:
    group: str
    system: str
    metrics: Metrics


def evaluate(items: list[Item], systems: dict[str, Predictor]) -> list[Row]:
    """Rows for 'all', every source and every language, for every system."""
    predictions = {name: [predict(item.text, item.lang if item.lang != "und" else None) for item in items]
                   for name, predict in systems.items()}
    groups: dict[str, list[int]] = {"all": list(range(len(items)))}
    for index, item in enumerate(items):
        groups.setdefault(f"source={item.source}", []).append(index)
    for index, item in enumerate(items):
        groups.setdefault(f"lang={item.lang}", []).append(index)
    rows = []
    for group, indexes in groups.items():
        for name, predicted in predictions.items():
            pairs = [(items[i].tier, predicted[i]) for i in indexes]
            rows.append(Row(group, name, metrics(pairs)))
    return rows


def _cell(value: float | None) -> str:
    return "   -" if value is None else f"{value:5.3f}"


def format_table(rows: list[Row]) -> Iterator[str]:
    header = f"{'group':<34} {'system':<10} {'n':>4}  {'at-risk':>7} {'immin.':>7} {'any':>7} {'f.alarm':>7} {'none-flag':>9}"
    yield header
    yield "-" * len(header)
    previous = None
    for row in rows:
        if previous is not None and row.group != previous:
            yield ""
        previous = row.group
        m = row.metrics
        yield (f"{row.group[:34]:<34} {row.system:<10} {m.n:>4}  {_cell(m.at_risk_recall):>7} "
               f"{_cell(m.imminent_recall):>7} {_cell(m.any_risk_recall):>7} "
               f"{_cell(m.false_alarm_rate):>7} {_cell(m.none_flag_rate):>9}")
