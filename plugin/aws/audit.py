"""Decision records in DynamoDB: one item per job (tenant_id, job_id), the same fields as the
SQLite `decisions` table. A `Decision` cannot carry ticket text (plugin.model).

Writing the same job twice (a batch re-delivered after a crash) overwrites one item: the key
is the job id, so a retry never doubles an audit row.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict

from ..model import Decision
from .settings import AUDIT_RETENTION_SECONDS, AwsClients, AwsSettings, aws_call


def decision_item(decision: Decision) -> dict[str, dict[str, str]]:
    row = asdict(decision)
    item = {
        "tenant_id": {"S": row["tenant_id"]}, "job_id": {"S": row["job_id"]},
        "vendor": {"S": row["vendor"]}, "ticket_id": {"S": row["ticket_id"]},
        "delivery_id": {"S": row["delivery_id"]}, "event": {"S": row["event"]},
        "tier": {"S": row["tier"]}, "score": {"N": repr(float(row["score"]))},
        "rule_ids": {"S": json.dumps(list(row["rule_ids"]))},
        "categories": {"S": json.dumps(list(row["categories"]))},
        "flags": {"S": json.dumps(list(row["flags"]))}, "language": {"S": row["language"]},
        "actions": {"S": json.dumps(list(row["actions"]))}, "outcome": {"S": row["outcome"]},
        "received_at": {"N": repr(float(row["received_at"]))},
        "decided_at": {"N": repr(float(row["decided_at"]))},
        "timings_ms": {"S": json.dumps(dict(row["timings_ms"]), sort_keys=True)},
        "expires_at": {"N": str(int(row["decided_at"] + AUDIT_RETENTION_SECONDS))},
    }
    if row["country"]:
        item["country"] = {"S": row["country"]}
    return item


class DynamoAuditLog:
    """The `audit.record(decision)` the Worker calls, on the DynamoDB audit table."""

    def __init__(self, settings: AwsSettings, clients: AwsClients) -> None:
        self.settings = settings
        self.clients = clients

    async def record(self, decision: Decision) -> None:
        item = decision_item(decision)
        await asyncio.to_thread(aws_call, "audit write", lambda: self.clients.dynamodb.put_item(
            TableName=self.settings.audit_table, Item=item))
