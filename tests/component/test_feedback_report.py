"""Precision per tier and rule from decisions written through the real AuditLog on SQLite."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

from plugin.audit import AuditLog
from plugin.cli import build_parser
from plugin.feedback_report import load_report, register, summarise, to_csv, to_json
from plugin.model import Decision
from plugin.store import Store

T0 = time.time() - 3600


def decision(ticket: str, *, tenant: str = "acme", event: str = "created", tier: str = "none",
             outcome: str = "applied", rules: tuple[str, ...] = (), at: float = 0.0) -> Decision:
    return Decision(tenant_id=tenant, vendor="zendesk", ticket_id=ticket, delivery_id=f"d-{ticket}-{at}",
                    job_id=f"j-{ticket}-{event}-{at}", event=event, tier=tier,  # type: ignore[arg-type]
                    score=0.5, rule_ids=rules, categories=(), flags=(), language="en", actions=(),
                    outcome=outcome, received_at=T0 + at - 1, decided_at=T0 + at)


def feedback(ticket: str, kind: str, *, at: float, tenant: str = "acme") -> Decision:
    return decision(ticket, tenant=tenant, event="feedback", outcome=f"feedback:{kind}", at=at)


@pytest.fixture
async def audit(tmp_path):
    store = Store(tmp_path / "careroute.sqlite3")
    await store.open()
    yield AuditLog(store)
    await store.close()


async def record_all(audit: AuditLog, decisions: list[Decision]) -> None:
    for item in decisions:
        await audit.record(item)


async def test_false_positive_after_a_flag_lowers_precision_of_its_tier_and_rules(audit):
    await record_all(audit, [
        decision("1", tier="high", rules=("en.a", "en.b"), at=1),
        feedback("1", "false_positive", at=5),
        decision("2", tier="high", rules=("en.a",), at=2),
        decision("3", tier="imminent", rules=("en.c",), at=3),
        decision("4", tier="concern", rules=("en.b",), outcome="already_handled", at=4),
    ])
    [report] = await load_report(audit.store, "acme")
    tiers = {t.key: t for t in report.tiers}
    assert (tiers["high"].flagged, tiers["high"].false_positives) == (2, 1)
    assert tiers["high"].precision == pytest.approx(0.5)
    assert tiers["imminent"].precision == 1.0
    assert tiers["concern"].flagged == 0 and tiers["concern"].precision is None
    rules = {r.key: r for r in report.rules}
    assert (rules["en.a"].flagged, rules["en.a"].false_positives) == (2, 1)
    assert (rules["en.b"].flagged, rules["en.b"].false_positives) == (1, 1)
    assert report.rules[0].key == "en.b"  # the least precise rule leads
    assert report.feedback_rate == pytest.approx(1 / 3)


async def test_feedback_before_the_flag_and_other_tenants_do_not_count(audit):
    await record_all(audit, [
        feedback("1", "false_positive", at=1),
        decision("1", tier="high", rules=("en.a",), at=2),
        decision("1", tier="high", rules=("en.a",), tenant="other", at=2),
        feedback("1", "false_positive", tenant="other", at=3),
    ])
    [report] = await load_report(audit.store, "acme")
    assert report.tiers[1].key == "high" and report.tiers[1].false_positives == 0
    reports = await load_report(audit.store)
    assert [r.tenant_id for r in reports] == ["acme", "other"]
    assert reports[1].false_positives == 1


async def test_a_ticket_counts_once_under_its_highest_tier(audit):
    await record_all(audit, [
        decision("9", tier="concern", rules=("en.low",), at=1),
        decision("9", event="comment", tier="imminent", rules=("en.high",), at=2),
        feedback("9", "false_positive", at=3),
    ])
    [report] = await load_report(audit.store, "acme")
    counts = {t.key: (t.flagged, t.false_positives) for t in report.tiers}
    assert counts == {"concern": (0, 0), "high": (0, 0), "imminent": (1, 1)}
    assert [r.key for r in report.rules] == ["en.high"]


async def test_missed_counts_only_on_unflagged_tickets(audit):
    await record_all(audit, [
        decision("5", tier="none", outcome="nothing_to_do", at=1),
        feedback("5", "missed", at=2),
        decision("6", tier="high", rules=("en.a",), at=1),
        feedback("6", "missed", at=2),
        feedback("7", "missed", at=2),
    ])
    [report] = await load_report(audit.store, "acme")
    assert report.misses == 2
    assert report.missed_ticket_ids == ("5", "7")


def test_csv_and_json_carry_the_same_numbers():
    report = summarise([
        {"ticket_id": "1", "event": "created", "tier": "high", "outcome": "applied",
         "rule_ids": ["en.a"], "decided_at": 1.0},
        {"ticket_id": "1", "event": "feedback", "tier": "none",
         "outcome": "feedback:false_positive", "rule_ids": [], "decided_at": 2.0},
        {"ticket_id": "2", "event": "created", "tier": "high", "outcome": "applied",
         "rule_ids": ["en.a"], "decided_at": 1.0},
    ], tenant_id="acme")
    rows = list(csv.DictReader(io.StringIO(to_csv([report]))))
    high = next(r for r in rows if r["kind"] == "tier" and r["key"] == "high")
    assert (high["flagged"], high["false_positives"], high["precision"]) == ("2", "1", "0.5000")
    data = json.loads(to_json([report]))["tenants"][0]
    assert data["tiers"][1] == {"key": "high", "flagged": 2, "false_positives": 1,
                                "precision": 0.5}
    assert data["rules"][0]["key"] == "en.a"


async def test_export_command_reads_the_data_dir(audit, tmp_path, capsys):
    await record_all(audit, [decision("1", tier="imminent", rules=("en.x",), at=1),
                             feedback("1", "false_positive", at=2)])
    parser = build_parser()
    if "feedback" not in parser._subparsers._group_actions[0].choices:  # lead may not wire it yet
        register(parser._subparsers._group_actions[0])
    args = parser.parse_args(["feedback", "export", "--tenant", "acme", "--format", "json",
                              "--data-dir", str(tmp_path)])
    await audit.store.close()  # the command opens the database itself
    import asyncio
    await asyncio.to_thread(args.func, args)
    data = json.loads(capsys.readouterr().out)
    assert data["tenants"][0]["tiers"][2] == {"key": "imminent", "flagged": 1,
                                              "false_positives": 1, "precision": 0.0}


async def test_tag_changes_that_say_nothing_are_not_feedback(audit):
    from plugin.feedback_report import load_activity
    await record_all(audit, [decision("1", tier="high", rules=("en.a",), at=1),
                             feedback("1", "none", at=2), feedback("1", "false_positive", at=3)])
    [report] = await load_report(audit.store, "acme")
    assert report.feedback_decisions == 1 and report.feedback_rate == 1.0
    activity = await load_activity(audit.store, "acme", since=0)
    assert (activity.flagged, activity.feedback) == (1, 1)
    assert activity.median_routed_seconds == pytest.approx(1.0)
