"""The wellbeing rota's ledger on DynamoDB (the `CrisisLoad` of plugin/wellbeing.py for AWS).

One item per tenant and agent in the jobs table:
    pk = rota#<tenant id>#<agent id>    assignments = {job id: unix time}   expires_at (TTL)
A job is recorded at most once (`if_not_exists` on its key), so a retried job counts once, as
the SQLite ledger's primary key ensures. The item expires a week after the agent's last crisis
ticket; the rota then sees an agent with no recent load, which is what such an agent has.
"""

from __future__ import annotations

import asyncio
from typing import Any, Sequence

from ..errors import StoreUnavailableError
from ..wellbeing import MemberLoad, Rota, WellbeingSettings
from .settings import AwsClients, AwsSettings, aws_call, error_code

CONDITION_FAILED = "ConditionalCheckFailedException"
LEDGER_RETENTION_SECONDS = 7 * 86400
_BATCH_GET_LIMIT = 100


class DynamoCrisisLoad:
    """`rota(tenant_id, member_ids, settings, now)` and `record(tenant_id, agent_id, job_id, at)`."""

    def __init__(self, settings: AwsSettings, clients: AwsClients) -> None:
        self.settings = settings
        self.clients = clients

    @staticmethod
    def _pk(tenant_id: str, agent_id: int) -> str:
        return f"rota#{tenant_id}#{int(agent_id)}"

    async def rota(self, tenant_id: str, member_ids: Sequence[int], settings: WellbeingSettings,
                   now: float) -> Rota:
        members = list(dict.fromkeys(int(m) for m in member_ids))
        items = await asyncio.to_thread(self._read, tenant_id, members)
        since = now - settings.shift_hours * 3600
        loads = []
        for agent in members:
            times = [float(v["N"]) for v in
                     items.get(self._pk(tenant_id, agent), {}).get("assignments", {})
                     .get("M", {}).values()]
            loads.append(MemberLoad(agent, sum(1 for t in times if t >= since),
                                    max(times) if times else None))
        return Rota(tuple(loads), settings.max_per_shift)

    def _read(self, tenant_id: str, members: list[int]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        table = self.settings.jobs_table
        for start in range(0, len(members), _BATCH_GET_LIMIT):
            keys = [{"pk": {"S": self._pk(tenant_id, agent)}}
                    for agent in members[start:start + _BATCH_GET_LIMIT]]
            request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
            for _ in range(5):  # unprocessed keys come back under load; ask again
                response = aws_call("rota read", lambda: self.clients.dynamodb.batch_get_item(
                    RequestItems=request))
                for item in response.get("Responses", {}).get(table, []):
                    found[item["pk"]["S"]] = item
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
        return found

    async def record(self, tenant_id: str, agent_id: int, job_id: str, at: float) -> None:
        await asyncio.to_thread(self._record, tenant_id, agent_id, job_id, at)

    def _record(self, tenant_id: str, agent_id: int, job_id: str, at: float) -> None:
        key = {"pk": {"S": self._pk(tenant_id, agent_id)}}
        expires = {"N": str(int(at + LEDGER_RETENTION_SECONDS))}
        dynamodb = self.clients.dynamodb
        for _ in range(2):
            try:
                dynamodb.update_item(
                    TableName=self.settings.jobs_table, Key=key,
                    UpdateExpression="SET assignments.#job = if_not_exists(assignments.#job, :at),"
                                     " expires_at = :exp",
                    ConditionExpression="attribute_exists(assignments)",
                    ExpressionAttributeNames={"#job": job_id},
                    ExpressionAttributeValues={":at": {"N": repr(at)}, ":exp": expires})
                return
            except Exception as exc:  # noqa: BLE001
                if error_code(exc) != CONDITION_FAILED:
                    raise StoreUnavailableError(
                        f"rota write failed ({type(exc).__name__})") from None
            # The agent's first crisis ticket: create the map (unless a concurrent call did).
            try:
                dynamodb.update_item(
                    TableName=self.settings.jobs_table, Key=key,
                    UpdateExpression="SET assignments = :first, expires_at = :exp",
                    ConditionExpression="attribute_not_exists(assignments)",
                    ExpressionAttributeValues={":first": {"M": {job_id: {"N": repr(at)}}},
                                               ":exp": expires})
                return
            except Exception as exc:  # noqa: BLE001
                if error_code(exc) != CONDITION_FAILED:
                    raise StoreUnavailableError(
                        f"rota write failed ({type(exc).__name__})") from None

