"""Decision records: one row per finished job. Ids, tiers, rule ids, actions, timings — no text.

The `Decision` type cannot carry text (plugin.model); this module only stores and summarises it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict
from typing import Any

from .model import Decision
from .store import Store


class AuditLog:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(self, decision: Decision) -> None:
        await self.store.run(lambda conn: self.insert(conn, decision))

    @staticmethod
    def insert(conn: sqlite3.Connection, decision: Decision) -> None:
        """Insert one decision row on `conn`: `JobQueue.complete` commits it with the job's ack."""
        row = asdict(decision)
        conn.execute(
            "INSERT INTO decisions (tenant_id, vendor, ticket_id, delivery_id, job_id, event, tier,"
            " score, rule_ids, categories, flags, language, actions, outcome, received_at,"
            " decided_at, timings, country) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (
                row["tenant_id"], row["vendor"], row["ticket_id"], row["delivery_id"],
                row["job_id"], row["event"], row["tier"], float(row["score"]),
                json.dumps(list(row["rule_ids"])), json.dumps(list(row["categories"])),
                json.dumps(list(row["flags"])), row["language"], json.dumps(list(row["actions"])),
                row["outcome"], row["received_at"], row["decided_at"],
                json.dumps(dict(row["timings_ms"])), row["country"]))

    async def latest_for_ticket(self, tenant_id: str, ticket_id: str) -> dict[str, Any] | None:
        """The most severe screening of a ticket (a later message can only escalate)."""
        def query(conn: sqlite3.Connection) -> dict[str, Any] | None:
            conn.row_factory = sqlite3.Row
            try:
                rows = conn.execute(
                    "SELECT * FROM decisions WHERE tenant_id = ? AND ticket_id = ?"
                    " AND event != 'feedback' ORDER BY decided_at", (tenant_id, ticket_id)
                ).fetchall()
            finally:
                conn.row_factory = None
            if not rows:
                return None
            order = {"none": 0, "concern": 1, "high": 2, "imminent": 3}
            best = max(rows, key=lambda r: (order.get(r["tier"], 0), r["decided_at"]))
            return _row_to_dict(best)

        return await self.store.run(query)

    async def recent(self, tenant_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        def query(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            conn.row_factory = sqlite3.Row
            try:
                if tenant_id is None:
                    rows = conn.execute("SELECT * FROM decisions ORDER BY id DESC LIMIT ?",
                                        (limit,)).fetchall()
                else:
                    rows = conn.execute("SELECT * FROM decisions WHERE tenant_id = ?"
                                        " ORDER BY id DESC LIMIT ?", (tenant_id, limit)).fetchall()
            finally:
                conn.row_factory = None
            return [_row_to_dict(r) for r in rows]

        return await self.store.run(query)

    async def tier_counts(self, tenant_id: str, since: float | None = None) -> dict[str, int]:
        since = time.time() - 7 * 86400 if since is None else since
        rows = await self.store.run(lambda conn: conn.execute(
            "SELECT tier, COUNT(*) FROM decisions WHERE tenant_id = ? AND decided_at >= ?"
            " AND event != 'feedback' GROUP BY tier", (tenant_id, since)).fetchall())
        counts = {"none": 0, "concern": 0, "high": 0, "imminent": 0}
        counts.update({tier: n for tier, n in rows})
        return counts


def _row_to_dict(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    for key in ("rule_ids", "categories", "flags", "actions"):
        data[key] = json.loads(data[key])
    data["timings_ms"] = json.loads(data.pop("timings"))
    return data
