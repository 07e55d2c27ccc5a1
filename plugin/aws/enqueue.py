"""The receive side on AWS: claim the dedupe key in DynamoDB, then send the job to SQS.

A claim is one item `dedupe#<TicketRef.dedupe_key>` in the jobs table, written with a conditional
put (the key must not exist, or must have expired: TTL deletion is lazy). It moves
`pending → sent` once SendMessage succeeded. The 202 goes out only after the message is in SQS.

A crash between claim and send leaves a pending claim; the vendor's retry repairs it:
- SendMessage failed and we know it: the claim is marked resendable at once, and receive
  answers 503 + Retry-After (Zendesk retries a 503 whose Retry-After is under 60 s).
- The invocation died (timeout, out of memory): the claim stays pending with its claim time.
  A duplicate that finds a pending claim older than `resend_after_seconds` (the receive
  function's timeout, so its first owner is surely gone) takes it over with a conditional
  update and re-sends the same job id; a younger pending claim answers 503 (the vendor retries
  and by then the first request has sent it).
The message body is the job id and the TicketRef as `plugin.queue.ref_to_json` writes it: ids,
hints and tags, never ticket text.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable

from ..errors import StoreUnavailableError
from ..logging import get_logger
from ..model import TicketRef
from ..queue import UNSCREENED_PRIORITY, EnqueueResult, new_job_id, ref_to_json
from .settings import JOBS_RETENTION_SECONDS, AwsClients, AwsSettings, aws_call, error_code

log = get_logger("careroute.aws.enqueue")

MESSAGE_VERSION = 1
CONDITION_FAILED = "ConditionalCheckFailedException"
# Message attributes of a job message (Lambda passes them to the worker).
PRIOR_ATTEMPTS = "prior_attempts"
PRIORITY = "priority"


def job_message(job_id: str, ref_json: str, received_at: float) -> str:
    """The SQS body of a job: version, job id, receipt time and the TicketRef JSON string."""
    return json.dumps({"v": MESSAGE_VERSION, "job_id": job_id, "received_at": received_at,
                       "ref": ref_json}, separators=(",", ":"), sort_keys=True)


def message_attributes(*, prior_attempts: int = 0,
                       priority: int = UNSCREENED_PRIORITY) -> dict[str, Any]:
    return {PRIOR_ATTEMPTS: {"DataType": "Number", "StringValue": str(prior_attempts)},
            PRIORITY: {"DataType": "Number", "StringValue": str(priority)}}


def dedupe_pk(ref: TicketRef) -> str:
    return f"dedupe#{ref.dedupe_key}"


class SqsEnqueuer:
    """`plugin.ingest.Enqueue` for AWS: `await enqueuer(ref, received_at) -> EnqueueResult`."""

    def __init__(self, settings: AwsSettings, clients: AwsClients, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clients = clients
        self.clock = clock

    async def __call__(self, ref: TicketRef, received_at: float) -> EnqueueResult:
        return await asyncio.to_thread(self.enqueue, ref, received_at)

    def enqueue(self, ref: TicketRef, received_at: float) -> EnqueueResult:
        pk = dedupe_pk(ref)
        for _ in range(2):  # a second pass only if an expired claim vanished under us
            now = self.clock()
            job_id = new_job_id()
            ref_json = ref_to_json(ref)
            if self._claim(pk, job_id, ref_json, received_at, now):
                self._send(pk, job_id, ref_json, received_at)
                return EnqueueResult(job_id, False)
            existing = self._read_claim(pk)
            if existing is not None:
                return self._existing(pk, existing, now)
        raise StoreUnavailableError("dedupe claim kept changing")

    # ------------------------------------------------------------- steps

    def _claim(self, pk: str, job_id: str, ref_json: str, received_at: float, now: float) -> bool:
        item = {"pk": {"S": pk}, "state": {"S": "pending"}, "job_id": {"S": job_id},
                "ref": {"S": ref_json}, "received_at": {"N": repr(received_at)},
                "claimed_at": {"N": repr(now)},
                "expires_at": {"N": str(int(now + JOBS_RETENTION_SECONDS))}}
        try:
            self.clients.dynamodb.put_item(
                TableName=self.settings.jobs_table, Item=item,
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": str(int(now))}})
            return True
        except Exception as exc:  # noqa: BLE001
            if error_code(exc) == CONDITION_FAILED:
                return False
            raise StoreUnavailableError(f"dedupe claim failed ({type(exc).__name__})") from None

    def _read_claim(self, pk: str) -> dict[str, Any] | None:
        response = aws_call("dedupe read", lambda: self.clients.dynamodb.get_item(
            TableName=self.settings.jobs_table, Key={"pk": {"S": pk}}, ConsistentRead=True))
        return response.get("Item")

    def _existing(self, pk: str, item: dict[str, Any], now: float) -> EnqueueResult:
        job_id = item["job_id"]["S"]
        if item["state"]["S"] == "sent":
            return EnqueueResult(job_id, True)
        claimed_at = item["claimed_at"]["N"]
        if now - float(claimed_at) < self.settings.resend_after_seconds:
            # Another request holds the claim and is sending right now: not durable yet, so
            # no 202; the vendor retries and then finds it sent.
            raise StoreUnavailableError("job is being stored by another request")
        try:
            self.clients.dynamodb.update_item(
                TableName=self.settings.jobs_table, Key={"pk": {"S": pk}},
                UpdateExpression="SET claimed_at = :now",
                ConditionExpression="#state = :pending AND claimed_at = :seen",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":now": {"N": repr(now)}, ":pending": {"S": "pending"},
                                           ":seen": {"N": claimed_at}})
        except Exception as exc:  # noqa: BLE001
            if error_code(exc) == CONDITION_FAILED:
                raise StoreUnavailableError("job is being stored by another request") from None
            raise StoreUnavailableError(f"dedupe takeover failed ({type(exc).__name__})") from None
        log.warning("dedupe_claim_resent", job=job_id)
        self._send(pk, job_id, item["ref"]["S"], float(item["received_at"]["N"]))
        return EnqueueResult(job_id, False)

    def _send(self, pk: str, job_id: str, ref_json: str, received_at: float) -> None:
        try:
            self.clients.sqs.send_message(
                QueueUrl=self.settings.queue_url,
                MessageBody=job_message(job_id, ref_json, received_at),
                MessageAttributes=message_attributes())
        except Exception as exc:  # noqa: BLE001
            self._make_resendable(pk, job_id)
            raise StoreUnavailableError(f"queue send failed ({type(exc).__name__})") from None
        try:
            self.clients.dynamodb.update_item(
                TableName=self.settings.jobs_table, Key={"pk": {"S": pk}},
                UpdateExpression="SET #state = :sent, sent_at = :now",
                ConditionExpression="job_id = :job",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":sent": {"S": "sent"}, ":job": {"S": job_id},
                                           ":now": {"N": repr(self.clock())}})
        except Exception as exc:  # noqa: BLE001 — the job is in SQS: the 202 stands
            # A later duplicate may re-send the same job id; the worker's journal and marker
            # make a second run of one job id write nothing twice.
            log.warning("dedupe_mark_sent_failed", job=job_id, error_type=type(exc).__name__)

    def _make_resendable(self, pk: str, job_id: str) -> None:
        try:
            self.clients.dynamodb.update_item(
                TableName=self.settings.jobs_table, Key={"pk": {"S": pk}},
                UpdateExpression="SET claimed_at = :zero",
                ConditionExpression="job_id = :job AND #state = :pending",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":zero": {"N": "0"}, ":job": {"S": job_id},
                                           ":pending": {"S": "pending"}})
        except Exception as exc:  # noqa: BLE001 — the claim ages into resendable on its own
            log.warning("dedupe_release_failed", job=job_id, error_type=type(exc).__name__)
