"""Per-job records in the DynamoDB jobs table: the step journal and dead-letter marks.

Items (hash key `pk`, all expiring through the table's TTL attribute `expires_at`):
    journal#<job id>#<step>   data = the step's JSON (ids and action names, never ticket text)
    dead#<job id>             why a job was dead-lettered (a reason CareRoute wrote)
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable, Mapping

from .settings import JOBS_RETENTION_SECONDS, AwsClients, AwsSettings, aws_call


class DynamoStepJournal:
    """plugin.vendors.StepJournal of one job. Reads are strongly consistent: a retry on another
    container must see the steps the last attempt wrote."""

    def __init__(self, settings: AwsSettings, clients: AwsClients, job_id: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clients = clients
        self.job_id = job_id
        self.clock = clock

    def _pk(self, step: str) -> str:
        return f"journal#{self.job_id}#{step}"

    async def get(self, step: str) -> Mapping[str, Any] | None:
        response = await asyncio.to_thread(aws_call, "journal read", lambda: (
            self.clients.dynamodb.get_item(TableName=self.settings.jobs_table,
                                           Key={"pk": {"S": self._pk(step)}}, ConsistentRead=True)))
        item = response.get("Item")
        return None if item is None else json.loads(item["data"]["S"])

    async def put(self, step: str, data: Mapping[str, Any]) -> None:
        now = self.clock()
        item = {"pk": {"S": self._pk(step)}, "job_id": {"S": self.job_id}, "step": {"S": step},
                "data": {"S": json.dumps(dict(data), separators=(",", ":"), sort_keys=True)},
                "at": {"N": repr(now)}, "expires_at": {"N": str(int(now + JOBS_RETENTION_SECONDS))}}
        await asyncio.to_thread(aws_call, "journal write", lambda: self.clients.dynamodb.put_item(
            TableName=self.settings.jobs_table, Item=item))


def mark_dead(settings: AwsSettings, clients: AwsClients, *, job_id: str, tenant_id: str,
              ticket_id: str, reason: str, attempts: int, now: float) -> None:
    """Record why a job was dead-lettered (the DLQ message carries the same reason)."""
    item = {"pk": {"S": f"dead#{job_id}"}, "job_id": {"S": job_id},
            "tenant_id": {"S": tenant_id}, "ticket_id": {"S": ticket_id},
            "reason": {"S": reason[:200]}, "attempts": {"N": str(attempts)},
            "at": {"N": repr(now)}, "expires_at": {"N": str(int(now + JOBS_RETENTION_SECONDS))}}
    aws_call("dead-letter mark", lambda: clients.dynamodb.put_item(
        TableName=settings.jobs_table, Item=item))
