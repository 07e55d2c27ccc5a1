"""benchmarks/rule_costs.py: the per-rule cost report the README points to after adding rules."""

from __future__ import annotations

from benchmarks.rule_costs import rule_costs
from plugin.screening import rulebook


def test_a_rule_whose_example_is_in_the_tickets_is_reported_with_its_strings() -> None:
    english = rulebook.load_language_file("en.toml", dict(rulebook.rule_files())["en.toml"])
    rule = next(r for r in english.rules if r.id == "en.passive.want_to_die")
    ticket = f"Hi, about my order. {rule.match_examples[0]} Thanks."
    report = rule_costs([ticket, "Where is my parcel? Order 1123."])
    rows = {row.rule: row for row in report}
    assert rows[rule.id].runs == 1
    assert rows[rule.id].microseconds_per_ticket > 0
    assert rows[rule.id].strings  # the prefilter strings that let it run
    assert all(row.runs >= 1 for row in rows.values())
    costs = [row.microseconds_per_ticket for row in report]
    assert costs == sorted(costs, reverse=True)  # costliest first
