"""How often CareRoute was right, from the agents' own feedback (decisions table only, no text).

Counting rules (per tenant, per ticket):
- A flagged ticket is one with a screening decision at tier concern or above whose outcome was
  `applied`. It counts once, under its highest such tier and the rules of that decision.
- It is a false positive when a feedback decision for the same ticket, decided after the first
  flagged decision, has outcome `feedback:false_positive` (tier tag removed, or
  `{prefix}_not_crisis` added).
- A miss is a ticket with a `feedback:missed` decision and no flagged decision.

Precision = (flagged - false positives) / flagged; None when nothing was flagged.

    summarise(rows, *, tenant_id=None) -> FeedbackReport                      (pure)
    await load_report(store, tenant_id=None, since=None) -> list[FeedbackReport]
    await load_activity(store, tenant_id, since) -> Activity   (feedback rate, time to routed)
    `careroute feedback export [--tenant ID] [--format csv|json] [--data-dir D]`
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sqlite3
import statistics
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .model import ACTION_TIERS, tier_rank
from .store import Store

FALSE_POSITIVE = "feedback:false_positive"
MISSED = "feedback:missed"
NO_FEEDBACK = "feedback:none"  # a tag change that said nothing about CareRoute: not feedback


@dataclass(frozen=True)
class Precision:
    key: str  # a tier or a rule id
    flagged: int
    false_positives: int

    @property
    def precision(self) -> float | None:
        if self.flagged == 0:  # only tiers can have none flagged; rules appear once flagged
            return None
        return (self.flagged - self.false_positives) / self.flagged

    def as_dict(self) -> dict[str, Any]:
        precision = self.precision
        return {**asdict(self),
                "precision": None if precision is None else round(precision, 4)}


@dataclass(frozen=True)
class FeedbackReport:
    tenant_id: str | None
    tiers: tuple[Precision, ...]
    rules: tuple[Precision, ...]
    misses: int
    flagged_tickets: int
    feedback_decisions: int
    missed_ticket_ids: tuple[str, ...] = field(default=())

    @property
    def false_positives(self) -> int:
        return sum(t.false_positives for t in self.tiers)

    @property
    def feedback_rate(self) -> float | None:
        """Feedback decisions per flagged decision (how much agents talk back)."""
        if self.flagged_tickets == 0:
            return None
        return self.feedback_decisions / self.flagged_tickets

    def as_dict(self) -> dict[str, Any]:
        rate = self.feedback_rate
        return {"tenant_id": self.tenant_id, "flagged_tickets": self.flagged_tickets,
                "false_positives": self.false_positives, "misses": self.misses,
                "feedback_decisions": self.feedback_decisions,
                "feedback_rate": None if rate is None else round(rate, 4),
                "tiers": [t.as_dict() for t in self.tiers],
                "rules": [r.as_dict() for r in self.rules],
                "missed_ticket_ids": list(self.missed_ticket_ids)}


# ------------------------------------------------------------------ pure counting


def _flagged(row: Mapping[str, Any]) -> bool:
    return (row["event"] != "feedback" and row["outcome"] == "applied"
            and row["tier"] in ACTION_TIERS)


def summarise(rows: Iterable[Mapping[str, Any]], *, tenant_id: str | None = None) -> FeedbackReport:
    """Count precision per tier and rule from decision rows of ONE tenant (any order)."""
    by_ticket: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    feedback_decisions = 0
    for row in rows:
        by_ticket[str(row["ticket_id"])].append(row)
        if row["event"] == "feedback" and row["outcome"] != NO_FEEDBACK:
            feedback_decisions += 1

    tier_flagged: dict[str, int] = dict.fromkeys(ACTION_TIERS, 0)
    tier_fp: dict[str, int] = dict.fromkeys(ACTION_TIERS, 0)
    rule_flagged: dict[str, int] = defaultdict(int)
    rule_fp: dict[str, int] = defaultdict(int)
    missed: list[str] = []
    flagged_tickets = 0
    for ticket_id, decisions in by_ticket.items():
        flagged = [d for d in decisions if _flagged(d)]
        feedback = [d for d in decisions if d["event"] == "feedback"]
        if not flagged:
            if any(d["outcome"] == MISSED for d in feedback):
                missed.append(ticket_id)
            continue
        flagged_tickets += 1
        first_flag_at = min(d["decided_at"] for d in flagged)
        worst = max(flagged, key=lambda d: (tier_rank(d["tier"]), -d["decided_at"]))
        wrong = any(d["outcome"] == FALSE_POSITIVE and d["decided_at"] >= first_flag_at
                    for d in feedback)
        tier_flagged[worst["tier"]] += 1
        tier_fp[worst["tier"]] += int(wrong)
        for rule in dict.fromkeys(worst["rule_ids"]):
            rule_flagged[rule] += 1
            rule_fp[rule] += int(wrong)

    tiers = tuple(Precision(t, tier_flagged[t], tier_fp[t]) for t in ACTION_TIERS)
    # Least precise rules first (then the busiest): that is where an admin or clinician looks.
    rules = tuple(sorted((Precision(r, rule_flagged[r], rule_fp[r]) for r in rule_flagged),
                         key=lambda p: (p.precision, -p.flagged, p.key)))
    return FeedbackReport(tenant_id=tenant_id, tiers=tiers, rules=rules, misses=len(missed),
                          flagged_tickets=flagged_tickets, feedback_decisions=feedback_decisions,
                          missed_ticket_ids=tuple(sorted(missed)))


# ------------------------------------------------------------------ reading the store

_COLUMNS = ("tenant_id", "ticket_id", "event", "tier", "outcome", "rule_ids", "decided_at")


def _select(tenant_id: str | None, since: float | None):
    def query(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM decisions WHERE 1=1"
        params: list[Any] = []
        if tenant_id is not None:
            sql += " AND tenant_id = ?"
            params.append(tenant_id)
        if since is not None:
            sql += " AND decided_at >= ?"
            params.append(since)
        rows = conn.execute(sql + " ORDER BY id", params).fetchall()
        return [{**dict(zip(_COLUMNS, row)), "rule_ids": json.loads(row[5])} for row in rows]

    return query


async def load_report(store: Store, tenant_id: str | None = None,
                      since: float | None = None) -> list[FeedbackReport]:
    """One report per tenant found (only `tenant_id`'s when given), sorted by tenant id."""
    rows = await store.run(_select(tenant_id, since))
    by_tenant: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_tenant[row["tenant_id"]].append(row)
    if tenant_id is not None and tenant_id not in by_tenant:
        by_tenant[tenant_id] = []
    return [summarise(by_tenant[t], tenant_id=t) for t in sorted(by_tenant)]


@dataclass(frozen=True)
class Activity:
    """One tenant's decisions since a time: flagged, feedback, webhook → routed durations."""

    flagged: int
    feedback: int
    routed_seconds: tuple[float, ...]

    @property
    def feedback_rate(self) -> float | None:
        return self.feedback / self.flagged if self.flagged else None

    @property
    def median_routed_seconds(self) -> float | None:
        return statistics.median(self.routed_seconds) if self.routed_seconds else None


async def load_activity(store: Store, tenant_id: str, since: float) -> Activity:
    def query(conn: sqlite3.Connection) -> Activity:
        flagged, feedback = conn.execute(
            "SELECT SUM(event != 'feedback' AND outcome = 'applied'"
            " AND tier IN ('concern','high','imminent')),"
            " SUM(event = 'feedback' AND outcome != 'feedback:none')"
            " FROM decisions WHERE tenant_id = ? AND decided_at >= ?", (tenant_id, since)).fetchone()
        # Routed = a screening whose writes were applied: decided_at - received_at (the webhook).
        routed = tuple(row[0] for row in conn.execute(
            "SELECT decided_at - received_at FROM decisions WHERE tenant_id = ?"
            " AND decided_at >= ? AND outcome = 'applied' AND event != 'feedback'",
            (tenant_id, since)))
        return Activity(int(flagged or 0), int(feedback or 0), routed)

    return await store.run(query)


# ------------------------------------------------------------------ output

CSV_HEADER = ("tenant_id", "kind", "key", "flagged", "false_positives", "precision")


def to_csv(reports: Iterable[FeedbackReport]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for report in reports:
        for kind, items in (("tier", report.tiers), ("rule", report.rules)):
            for item in items:
                precision = item.precision
                writer.writerow((report.tenant_id, kind, item.key, item.flagged,
                                 item.false_positives,
                                 "" if precision is None else f"{precision:.4f}"))
        writer.writerow((report.tenant_id, "missed", "", "", "", report.misses))
    return out.getvalue()


def to_json(reports: Iterable[FeedbackReport]) -> str:
    return json.dumps({"tenants": [r.as_dict() for r in reports]}, indent=2)


async def _export(data_dir: Path, tenant_id: str | None) -> list[FeedbackReport]:
    store = Store(Path(data_dir) / "careroute.sqlite3")
    await store.open()
    try:
        return await load_report(store, tenant_id)
    finally:
        await store.close()


def cmd_feedback_export(args: argparse.Namespace) -> int:
    from .errors import ConfigError

    data_dir = Path(args.data_dir) if args.data_dir else _default_data_dir()
    if not (data_dir / "careroute.sqlite3").exists():
        raise ConfigError(f"no CareRoute database in {data_dir} (pass --data-dir)")
    reports = asyncio.run(_export(data_dir, args.tenant))
    sys.stdout.write(to_csv(reports) if args.format == "csv" else to_json(reports) + "\n")
    return 0


def _default_data_dir() -> Path:
    from .config import ServiceSettings

    return Path(ServiceSettings().data_dir)


def register(subparsers: Any) -> None:
    feedback = subparsers.add_parser("feedback", help="agent feedback: precision per tier and rule")
    actions = feedback.add_subparsers(dest="feedback_command", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="precision per tier and rule, and misses")
    export.add_argument("--tenant", help="only this tenant (default: every tenant)")
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.add_argument("--data-dir", dest="data_dir", type=Path,
                        help="the service's data directory (default: CAREROUTE_DATA_DIR or ./data)")
    export.set_defaults(func=cmd_feedback_export)
