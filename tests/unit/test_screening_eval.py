"""Evaluation metrics and baselines on a tiny labelled file written for this test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugin.screening import evaluation
from plugin.screening.evaluation import Item, Metrics, metrics

LABELLED = [
    {"id": "a", "text": "My parcel never arrived, please resend it.", "tier": "none", "source": "shop", "lang": "en"},
    {"id": "b", "text": "This update is killing me, the app crashes constantly.", "tier": "none", "source": "shop", "lang": "en"},
    {"id": "c", "text": "I can't cope anymore with these debts.", "tier": "concern", "source": "bank", "lang": "en"},
    {"id": "d", "text": "Sometimes I wish I was dead. Can you pause the loan?", "tier": "high", "source": "bank", "lang": "en"},
    {"id": "e", "text": "I want to kill myself tonight, cancel my direct debit.", "tier": "imminent", "source": "bank", "lang": "en"},
    {"id": "f", "text": "Mi hijo dice que se quiere suicidar. ¿Pueden bloquear su cuenta?", "tier": "high", "source": "shop", "lang": "es"},
]


def write_labelled(tmp_path: Path) -> Path:
    path = tmp_path / "labelled.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in LABELLED) + "\n", encoding="utf-8")
    return path


def test_metrics_count_what_they_say() -> None:
    pairs = [
        ("none", "none"), ("none", "high"), ("none", "concern"), ("none", "none"),
        ("concern", "none"), ("concern", "concern"),
        ("high", "high"), ("high", "concern"),
        ("imminent", "imminent"), ("imminent", "high"),
    ]
    m = metrics(pairs)
    assert m.n == 10
    assert m.at_risk_recall == pytest.approx(3 / 4)     # high+imminent flagged >= high
    assert m.imminent_recall == pytest.approx(1 / 2)    # imminent flagged imminent
    assert m.any_risk_recall == pytest.approx(5 / 6)    # >= concern flagged at all
    assert m.false_alarm_rate == pytest.approx(1 / 4)   # none flagged >= high
    assert m.none_flag_rate == pytest.approx(2 / 4)     # none flagged at all


def test_metrics_without_a_class_are_none_not_zero() -> None:
    assert metrics([("none", "none")]) == Metrics(1, None, None, None, 0.0, 0.0)


def test_naive_keywords_are_a_substring_match() -> None:
    assert evaluation.naive_keyword_tier("I feel SUICIDAL today") == "high"
    assert evaluation.naive_keyword_tier("the suicide doors are rusty") == "high"  # its known weakness
    assert evaluation.naive_keyword_tier("where is my parcel") == "none"
    assert 20 <= len(evaluation.NAIVE_KEYWORDS) <= 30


def test_vader_baseline_thresholds() -> None:
    predict = evaluation.vader_predictor()
    if predict is None:
        pytest.skip("vaderSentiment is a dev dependency and is not installed here")
    assert predict("Thank you, great service, everything arrived perfectly!") == "none"
    assert predict("I hate this, it is horrible, awful, the worst, I am miserable and devastated") == "high"


def test_evaluate_groups_by_source_and_language(tmp_path: Path) -> None:
    items = evaluation.read_labelled(write_labelled(tmp_path).read_text(encoding="utf-8").splitlines())
    assert [i.id for i in items] == ["a", "b", "c", "d", "e", "f"]
    rows = evaluation.evaluate(items, {"careroute": evaluation.careroute_tier,
                                       "keywords": evaluation.naive_keyword_tier})
    by_key = {(row.group, row.system): row.metrics for row in rows}
    assert set(g for g, _ in by_key) == {"all", "source=shop", "source=bank", "lang=en", "lang=es"}
    assert by_key[("all", "careroute")].n == 6
    assert by_key[("source=bank", "careroute")].at_risk_recall == 1.0
    assert by_key[("source=bank", "careroute")].imminent_recall == 1.0
    assert by_key[("all", "careroute")].false_alarm_rate == 0.0
    assert by_key[("lang=es", "careroute")].at_risk_recall == 1.0
    assert by_key[("lang=es", "keywords")].at_risk_recall == 0.0
    table = list(evaluation.format_table(rows))
    assert table[0].split()[:3] == ["group", "system", "n"]
    assert any(line.startswith("source=bank") and "careroute" in line for line in table)


@pytest.mark.parametrize("line, problem", [
    ("not json", "not valid JSON"),
    ('{"text": "hello"}', "tier"),
    ('{"text": 5, "tier": "none"}', "string 'text'"),
    ('{"text": "x", "tier": "severe"}', "tier"),
])
def test_bad_labelled_lines_name_the_line_not_the_text(line: str, problem: str) -> None:
    with pytest.raises(evaluation.LabelledFileError) as raised:
        evaluation.read_labelled(['{"text": "fine", "tier": "none"}', line])
    assert "line 2" in str(raised.value) and problem in str(raised.value)
    assert "hello" not in str(raised.value)


def test_items_default_source_and_language() -> None:
    (item,) = evaluation.read_labelled(['{"text": "x", "tier": "none"}'])
    assert item == Item("1", "x", "none", "unknown", "und")
