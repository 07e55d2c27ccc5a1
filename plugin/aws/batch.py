"""The worker side on AWS: one SQS batch → `Worker.process(job)` per record → batchItemFailures.

`SqsBatchQueue` gives the Worker the queue methods it calls (`ack`, `retry`, `dead_letter`,
`set_priority`, `journal`) for the records of one batch. What each does to the SQS message:

    ack                      the record succeeds: Lambda deletes the message
    retry (counted)          ChangeMessageVisibility to the back-off, record in batchItemFailures;
                             SQS's redrive moves the message to the DLQ after maxReceiveCount
                             receives (the reason is kept in a `dead#<job>` item beforehand)
    retry (not counted)      rate limits, a tenant waiting out Retry-After, a batch out of time:
                             a copy is sent with DelaySeconds (≤ 900) and the record succeeds, so
                             the wait does not use up the message's receives
    dead_letter              sent to the DLQ explicitly (reason as a message attribute, plus a
                             `dead#<job>` item) and the record succeeds; if that send fails the
                             record fails and redrive moves it later
    set_priority             kept for this batch: it shortens crisis back-offs and travels on
                             re-sent copies (SQS standard queues have no priorities)

A record whose body cannot be read (or whose run raises) fails alone: its id goes in
batchItemFailures and redrive takes it to the DLQ after maxReceiveCount receives, while the other
records succeed. Attempts = the `prior_attempts` message attribute (receives spent by earlier
copies) + SQS's ApproximateReceiveCount.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from ..errors import PayloadError
from ..logging import bound, get_logger
from ..model import Decision, TicketRef
from ..queue import UNSCREENED_PRIORITY, Job, priority_for_tier, ref_from_json
from ..worker import Pipeline, VendorClients, Worker
from .enqueue import MESSAGE_VERSION, PRIOR_ATTEMPTS, PRIORITY, message_attributes
from .journal import DynamoStepJournal, mark_dead
from .settings import AwsClients, AwsSettings, aws_call
from .wellbeing import DynamoCrisisLoad

log = get_logger("careroute.aws.worker")

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_DELAY_SECONDS = 900  # SQS DelaySeconds limit
MAX_VISIBILITY_SECONDS = 43200  # 12 h
# Don't start a job with less time than this left in the invocation; re-send it instead.
MIN_SECONDS_PER_JOB = 10.0
CRISIS_PRIORITY = priority_for_tier("high")


@dataclass(frozen=True)
class ReceivedJob:
    job: Job
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    prior_attempts: int


def _number_attribute(attributes: Mapping[str, Any], name: str, default: int) -> int:
    value = (attributes.get(name) or {}).get("stringValue")
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def job_from_record(record: Mapping[str, Any]) -> ReceivedJob:
    """An SQS record (as Lambda passes it) → the job it carries. PayloadError if unreadable."""
    try:
        body = record["body"]
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("v") != MESSAGE_VERSION:
            raise ValueError("unknown message version")
        job_id = data["job_id"]
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise ValueError("bad job id")
        ref: TicketRef = ref_from_json(data["ref"])
        received_at = float(data["received_at"])
        receive_count = int((record.get("attributes") or {}).get("ApproximateReceiveCount", "1"))
    except (KeyError, TypeError, ValueError):
        raise PayloadError("unreadable job message") from None
    attributes = record.get("messageAttributes") or {}
    prior = max(0, _number_attribute(attributes, PRIOR_ATTEMPTS, 0))
    priority = _number_attribute(attributes, PRIORITY, UNSCREENED_PRIORITY)
    job = Job(id=job_id, ref=ref, priority=priority, attempts=prior + receive_count,
              received_at=received_at)
    return ReceivedJob(job, str(record.get("messageId", "")), str(record.get("receiptHandle", "")),
                       body, receive_count, prior)


class SqsBatchQueue:
    """The `queue` Worker.process talks to, for the records of one SQS batch."""

    def __init__(self, settings: AwsSettings, clients: AwsClients,
                 received: Mapping[str, ReceivedJob], *, retry_base_seconds: float = 2.0,
                 retry_max_seconds: float = 600.0, crisis_retry_max_seconds: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clients = clients
        self.received = received
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.crisis_retry_max_seconds = crisis_retry_max_seconds
        self.clock = clock
        self._settled: set[str] = set()
        self._failed: set[str] = set()
        self._priority: dict[str, int] = {}

    # ---------------------------------------------------------- outcomes

    def succeeded(self, job_id: str) -> bool:
        return job_id in self._settled and job_id not in self._failed

    def fail(self, job_id: str) -> None:
        self._failed.add(job_id)

    def priority_of(self, job: Job) -> int:
        return self._priority.get(job.id, job.priority)

    def backoff(self, attempts: int, priority: int) -> float:
        cap = self.retry_max_seconds
        if priority >= CRISIS_PRIORITY:
            cap = min(cap, self.crisis_retry_max_seconds)
        delay = min(cap, self.retry_base_seconds * (2 ** max(0, attempts - 1)))
        return delay * random.uniform(0.8, 1.2)

    # ------------------------------------------------- what the Worker calls

    async def ack(self, job_id: str) -> None:
        self._settled.add(job_id)

    async def complete(self, job_id: str, decision: Decision, audit: Any) -> None:
        """The audit item (DynamoAuditLog: keyed by job id, so a retry rewrites it), then ack."""
        await audit.record(decision)
        await self.ack(job_id)

    async def set_priority(self, job_id: str, priority: int) -> None:
        self._priority[job_id] = priority

    async def note_priority(self, job_id: str, priority: int) -> None:
        # Already kept in memory and sent with the message's next visibility change or re-send.
        self._priority[job_id] = priority

    def journal(self, job_id: str, *, known: Mapping[str, Any] | None = None) -> DynamoStepJournal:
        # Jobs built from SQS records carry no snapshot (done_steps None): always read DynamoDB.
        return DynamoStepJournal(self.settings, self.clients, job_id, self.clock)

    async def retry(self, job: Job, *, reason: str, delay: float | None = None,
                    count_attempt: bool = True, priority: int | None = None) -> str:
        if priority is not None:
            self._priority[job.id] = priority
        if not count_attempt:
            return await asyncio.to_thread(self._defer, job, max(0.0, delay or 0.0), reason)
        if job.attempts >= self.settings.max_attempts:
            await self.dead_letter(job.id, f"retries exhausted: {reason}")
            return "dead"
        wait = self.backoff(job.attempts, self.priority_of(job)) if delay is None else delay
        return await asyncio.to_thread(self._back_off, job, wait, reason)

    async def dead_letter(self, job_id: str, reason: str) -> None:
        await asyncio.to_thread(self._dead_letter, job_id, reason)

    # ------------------------------------------------------------ SQS calls

    def _back_off(self, job: Job, wait: float, reason: str) -> str:
        received = self.received[job.id]
        self._failed.add(job.id)
        seconds = int(min(MAX_VISIBILITY_SECONDS - 60, max(0.0, round(wait))))
        try:
            aws_call("visibility change", lambda: self.clients.sqs.change_message_visibility(
                QueueUrl=self.settings.queue_url, ReceiptHandle=received.receipt_handle,
                VisibilityTimeout=seconds))
        except Exception as exc:  # noqa: BLE001 — it comes back after the queue's timeout
            log.warning("job_backoff_not_set", error_type=type(exc).__name__)
        if received.receive_count >= self.settings.max_receive_count:
            # Redrive moves it to the DLQ at its next receive; say why while we know.
            self._mark_dead(job, f"retries exhausted: {reason}")
            return "dead"
        return "queued"

    def _defer(self, job: Job, delay: float, reason: str) -> str:
        received = self.received[job.id]
        attributes = message_attributes(prior_attempts=max(0, job.attempts - 1),
                                        priority=self.priority_of(job))
        try:
            aws_call("deferred send", lambda: self.clients.sqs.send_message(
                QueueUrl=self.settings.queue_url, MessageBody=received.body,
                DelaySeconds=int(min(MAX_DELAY_SECONDS, math.ceil(delay))),
                MessageAttributes=attributes))
        except Exception as exc:  # noqa: BLE001 — keep the original, spend a receive
            log.warning("job_defer_failed", error_type=type(exc).__name__)
            return self._back_off(job, delay, reason)
        self._settled.add(job.id)
        log.info("job_deferred_resent", reason=reason, delay=round(delay, 1))
        return "queued"

    def _dead_letter(self, job_id: str, reason: str) -> None:
        received = self.received[job_id]
        attributes = {"reason": {"DataType": "String", "StringValue": reason[:200]},
                      "job_id": {"DataType": "String", "StringValue": job_id},
                      "attempts": {"DataType": "Number",
                                   "StringValue": str(received.job.attempts)}}
        try:
            aws_call("dead-letter send", lambda: self.clients.sqs.send_message(
                QueueUrl=self.settings.dlq_url, MessageBody=received.body,
                MessageAttributes=attributes))
        except Exception as exc:  # noqa: BLE001 — redrive will move it after its receives
            log.error("job_dead_letter_failed", error_type=type(exc).__name__)
            self._failed.add(job_id)
            return
        self._settled.add(job_id)
        self._mark_dead(received.job, reason)

    def _mark_dead(self, job: Job, reason: str) -> None:
        try:
            mark_dead(self.settings, self.clients, job_id=job.id, tenant_id=job.ref.tenant_id,
                      ticket_id=job.ref.ticket_id, reason=reason, attempts=job.attempts,
                      now=self.clock())
        except Exception as exc:  # noqa: BLE001 — the DLQ message carries the job either way
            log.warning("job_dead_mark_failed", error_type=type(exc).__name__)


@dataclass
class BatchRunner:
    """Runs SQS batches with the real Worker; one per Lambda container."""

    settings: AwsSettings
    clients: AwsClients
    tenants: Any  # DynamoTenantDirectory: get(tenant_id) -> TenantConfig | None
    vendor_clients: VendorClients
    audit: Any  # DynamoAuditLog: async record(decision)
    pipeline: Pipeline
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 600.0

    async def run(self, records: Iterable[Mapping[str, Any]],
                  seconds_left: Callable[[], float]) -> dict[str, list[dict[str, str]]]:
        failures: list[str] = []
        received: dict[str, ReceivedJob] = {}
        for record in records:
            try:
                item = job_from_record(record)
            except PayloadError:
                log.error("job_message_unreadable", message=str(record.get("messageId", ""))[:80])
                failures.append(str(record.get("messageId", "")))
                continue
            if item.job.id in received:
                # Two copies of one job in one batch (a re-send): the first one carries it.
                log.info("job_copy_skipped", job=item.job.id)
                continue
            received[item.job.id] = item

        queue = SqsBatchQueue(self.settings, self.clients, received,
                              retry_base_seconds=self.retry_base_seconds,
                              retry_max_seconds=self.retry_max_seconds)
        # The Worker only calls retry/ack/dead_letter/set_priority/journal on its queue.
        worker = Worker(queue=queue, tenants=self.tenants,  # type: ignore[arg-type]
                        clients=self.vendor_clients, audit=self.audit, pipeline=self.pipeline,
                        metrics=None,
                        crisis_load=DynamoCrisisLoad(self.settings, self.clients))  # type: ignore[arg-type]
        by_tenant: dict[str, list[ReceivedJob]] = {}
        for item in received.values():
            by_tenant.setdefault(item.job.tenant_id, []).append(item)
        # Tenants run side by side; within one tenant, crisis first and one at a time, so one
        # tenant's rate budget never stalls another's jobs.
        await asyncio.gather(*(self._run_tenant(worker, queue, items, seconds_left)
                               for items in by_tenant.values()))
        failures.extend(item.message_id for job_id, item in received.items()
                        if not queue.succeeded(job_id))
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}

    async def _run_tenant(self, worker: Worker, queue: SqsBatchQueue, items: list[ReceivedJob],
                          seconds_left: Callable[[], float]) -> None:
        for item in sorted(items, key=lambda i: -i.job.priority):
            job = item.job
            with bound(tenant=job.tenant_id, job=job.id, ticket=job.ref.ticket_id):
                try:
                    left = seconds_left()
                    if left < MIN_SECONDS_PER_JOB:
                        await queue.retry(job, reason="batch out of time", delay=0.0,
                                          count_attempt=False)
                        continue
                    tenant = self.tenants.get(job.tenant_id)
                    blocked = (self.vendor_clients.budget(tenant).blocked_for()
                               if tenant is not None and tenant.enabled else 0.0)
                    if blocked > 0:
                        await queue.retry(job, reason="tenant waiting out a rate limit",
                                          delay=blocked, count_attempt=False)
                        continue
                    await asyncio.wait_for(worker.process(job),
                                           timeout=left - MIN_SECONDS_PER_JOB / 2)
                except asyncio.TimeoutError:
                    log.error("job_timed_out")
                    queue.fail(job.id)
                except Exception as exc:  # noqa: BLE001 — this record fails, the others go on
                    log.error("job_crashed", error_type=type(exc).__name__)
                    queue.fail(job.id)
