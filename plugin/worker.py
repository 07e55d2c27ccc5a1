"""The worker: leases jobs and runs fetch → screen → plan → apply → audit (DESIGN.md steps 6–12).

Errors decide what happens to a job:
    RateLimitedError      → the tenant's budget is blocked for Retry-After; job deferred, attempt
                            not counted, crisis priority kept
    TransientVendorError  → a few quick tenacity retries in place, then queue backoff; dead letter
                            after max attempts
    TicketClosedError     → terminal: recorded, acked
    PermanentVendorError  → dead letter with the reason
    anything else         → counted attempt with backoff (a bug must not spin), then dead letter
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Iterable, TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from .audit import AuditLog
from .config import TenantConfig
from .errors import (PermanentVendorError, RateLimitedError, StoreUnavailableError,
                     TicketClosedError, TransientVendorError)
from .logging import bound, get_logger
from .metrics import Metrics
from .model import Assessment, Decision, Plan, Ticket, TicketRef, Tier
from .queue import Job, JobQueue, priority_for_tier
from .ratelimit import RateBudget
from .resources import resolve_country
from .wellbeing import CrisisLoad, rota_for
from .tenants import TenantDirectory
from .vendors import ClientContext, ClientFactory, TokenStore, VendorClient, client_factory

log = get_logger("careroute.worker")
T = TypeVar("T")

# Our default share of each vendor's per-minute API budget when a tenant sets none.
DEFAULT_REQUESTS_PER_MINUTE = {"zendesk": 160, "freshdesk": 80}


@dataclass(frozen=True)
class Pipeline:
    """The pure parts the worker runs; injectable so tests can swap one part."""

    screen: Callable[..., Assessment]
    plan: Callable[..., Plan]
    tier_for_tenant: Callable[[Assessment, TenantConfig], Tier]
    feedback_kind: Callable[[TicketRef, Ticket, TenantConfig], str | None]


def default_pipeline() -> Pipeline:
    from . import feedback, policy
    from .screening import screen

    return Pipeline(screen=screen, plan=policy.plan, tier_for_tenant=policy.tier_for_tenant,
                    feedback_kind=feedback.feedback_kind)


class VendorClients:
    """One client and one rate budget per tenant; a tenant's calls never use another's."""

    def __init__(self, *, token_store: TokenStore, metrics: Metrics | None = None,
                 timeout_seconds: float = 15.0,
                 factory_for: Callable[[str], ClientFactory] = client_factory) -> None:
        self.token_store = token_store
        self.metrics = metrics
        self.timeout_seconds = timeout_seconds
        self.factory_for = factory_for
        self._clients: dict[str, tuple[TenantConfig, VendorClient]] = {}
        self._budgets: dict[str, RateBudget] = {}

    def budget(self, tenant: TenantConfig) -> RateBudget:
        budget = self._budgets.get(tenant.id)
        per_minute = tenant.requests_per_minute or DEFAULT_REQUESTS_PER_MINUTE[tenant.vendor]
        if budget is None or budget.per_minute != per_minute:
            budget = RateBudget(per_minute, headroom=tenant.rate_headroom)
            self._budgets[tenant.id] = budget
        return budget

    def client(self, tenant: TenantConfig) -> VendorClient:
        cached = self._clients.get(tenant.id)
        if cached is not None and cached[0] is tenant:
            return cached[1]
        if cached is not None:  # the tenant's config changed: a fresh client
            asyncio.ensure_future(cached[1].aclose())
        context = ClientContext(
            budget=self.budget(tenant), token_store=self.token_store,
            timeout_seconds=self.timeout_seconds,
            on_call=self.metrics.vendor_call_recorder(tenant.vendor) if self.metrics else None)
        client = self.factory_for(tenant.vendor)(tenant, context)
        self._clients[tenant.id] = (tenant, client)
        return client

    def blocked_tenants(self) -> set[str]:
        return {tid for tid, budget in self._budgets.items() if budget.blocked_for() > 0}

    def next_unblock_in(self) -> float | None:
        """Seconds until the first blocked tenant may call its helpdesk again (None: none blocked)."""
        waits = [wait for budget in self._budgets.values() if (wait := budget.blocked_for()) > 0]
        return min(waits, default=None)

    async def aclose(self) -> None:
        for _, client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def _quick_retry_worthy(exc: BaseException) -> bool:
    return isinstance(exc, TransientVendorError) and not isinstance(exc, RateLimitedError)


def tenant_worker_limit(concurrency: int, share: float, tenant_count: int) -> int:
    """Most workers one tenant may hold at once.

    With more than one tenant, a share of the workers stays free for the others: a helpdesk that
    answers slowly (or not at all, up to the vendor timeout) would otherwise hold every worker,
    and a healthy tenant's crisis ticket would wait behind it. One tenant alone may use them all.
    """
    if tenant_count <= 1:
        return concurrency
    # The epsilon keeps 100 × 0.57 at 57 (the product is 56.99999…).
    return max(1, math.floor(concurrency * share + 1e-9))


class Worker:
    def __init__(self, *, queue: JobQueue, tenants: TenantDirectory, clients: VendorClients,
                 audit: AuditLog, pipeline: Pipeline, metrics: Metrics | None = None,
                 concurrency: int = 4, tenant_share: float = 0.75, quick_retries: int = 3,
                 idle_poll_seconds: float = 0.25, crisis_load: CrisisLoad | None = None) -> None:
        self.queue = queue
        self.tenants = tenants
        self.clients = clients
        self.audit = audit
        self.pipeline = pipeline
        self.metrics = metrics
        self.concurrency = concurrency
        self.tenant_share = tenant_share
        self.quick_retries = quick_retries
        self.idle_poll_seconds = idle_poll_seconds
        # Who received which crisis ticket from the wellbeing rota (tenants that enable it).
        self.crisis_load = crisis_load if crisis_load is not None else CrisisLoad(queue.store)
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: dict[str, Job] = {}
        self._held_by_tenant: Counter[str] = Counter()
        # Leases are decided one at a time, so two workers never both take a tenant's last slot.
        self._leasing = asyncio.Lock()
        self._stopping = False

    # ------------------------------------------------------------- running

    def start(self) -> None:
        self._stopping = False
        self._tasks = [asyncio.create_task(self._loop(), name=f"careroute-worker-{i}")
                       for i in range(self.concurrency)]

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop leasing; let in-flight jobs finish for `grace_seconds`, then hand them back."""
        self._stopping = True
        self.queue.ready.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_seconds)
        # Taken before cancelling: a cancelled worker's `finally` forgets its job.
        unfinished = list(self._inflight.values())
        if self._tasks:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for job in unfinished:
            try:
                await self.queue.release(job.id)
            except StoreUnavailableError:
                pass  # the lease expires and the job comes back on its own
        self._inflight.clear()
        self._tasks = []

    async def _loop(self) -> None:
        while not self._stopping:
            self.queue.ready.clear()
            skipped: set[str] = set()
            try:
                async with self._leasing:
                    skipped = self._tenants_to_skip()
                    job = await self.queue.lease(exclude_tenants=skipped)
                    if job is not None:
                        self._held_by_tenant[job.tenant_id] += 1
            except StoreUnavailableError:
                await asyncio.sleep(1.0)
                continue
            if job is None:
                await self._wait_for_work(skipped)
                continue
            self._inflight[job.id] = job
            try:
                await self.process(job)
            finally:
                self._inflight.pop(job.id, None)
                self._release_slot(job.tenant_id)

    def _release_slot(self, tenant_id: str) -> None:
        held = self._held_by_tenant[tenant_id]
        if held >= self.tenant_limit():
            # The tenant was at its limit: an idle worker may now take its next job.
            self.queue.ready.set()
        if held <= 1:
            del self._held_by_tenant[tenant_id]
        else:
            self._held_by_tenant[tenant_id] = held - 1

    def tenant_limit(self) -> int:
        enabled = sum(1 for tenant in self.tenants if tenant.enabled)
        return tenant_worker_limit(self.concurrency, self.tenant_share, enabled)

    def _tenants_to_skip(self) -> set[str]:
        limit = self.tenant_limit()
        at_limit = {tenant for tenant, held in self._held_by_tenant.items() if held >= limit}
        return self.clients.blocked_tenants() | at_limit

    async def _wait_for_work(self, skipped: Iterable[str] = ()) -> None:
        """Sleep until a job may be ready. Jobs of `skipped` tenants do not count (they would
        wake this worker at once, again and again): a tenant at its share of the workers sets
        `ready` when a slot frees, and a rate-limited one is waited for until its block ends."""
        timeout = self.idle_poll_seconds
        try:
            due = await self.queue.next_ready_in(exclude_tenants=skipped)
            if due is not None:
                timeout = min(timeout, max(0.005, due))
            unblocked = self.clients.next_unblock_in()
            if unblocked is not None:
                timeout = min(timeout, max(0.005, unblocked))
        except StoreUnavailableError:
            pass
        try:
            await asyncio.wait_for(self.queue.ready.wait(), timeout=timeout)
        except asyncio.TimeoutError:
            pass

    async def drain(self, timeout: float = 30.0) -> bool:
        """Process until nothing is queued or leased (tests, `replay`, demo). True if drained."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = await self.queue.counts()
            if counts["queued"] == 0 and counts["leased"] == 0:
                return True
            await asyncio.sleep(0.02)
        return False

    # ------------------------------------------------------------- one job

    async def _quick(self, call: Callable[[], Awaitable[T]]) -> T:
        async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.quick_retries),
                wait=wait_exponential(multiplier=0.05, max=0.5),
                retry=retry_if_exception(_quick_retry_worthy), reraise=True):
            with attempt:
                return await call()
        raise AssertionError("unreachable")  # pragma: no cover

    async def process(self, job: Job) -> str:
        """Run one job to an outcome; returns the queue state it ended in."""
        ref = job.ref
        with bound(tenant=ref.tenant_id, ticket=ref.ticket_id, delivery=ref.delivery_id,
                   job=job.id, vendor=ref.vendor):
            tenant = self.tenants.get(ref.tenant_id)
            if tenant is None or not tenant.enabled:
                await self.queue.dead_letter(job.id, "tenant not configured or disabled")
                log.warning("job_dead", reason="tenant not configured or disabled")
                return "dead"
            tier: Tier = "none"
            try:
                return await self._run(job, tenant)
            except RateLimitedError as exc:
                self.clients.budget(tenant).block(exc.retry_after)
                self._count_failure(ref.vendor, "rate_limited")
                log.info("job_deferred", reason=exc.reason, retry_after=exc.retry_after)
                return await self.queue.retry(job, reason=exc.reason, delay=exc.retry_after,
                                              count_attempt=False)
            except TicketClosedError as exc:
                await self._finish(job, tenant, None, tier, (), f"terminal:{exc.reason}", {})
                log.info("job_terminal", reason=exc.reason)
                return "done"
            except PermanentVendorError as exc:
                self._count_failure(ref.vendor, "permanent")
                await self.queue.dead_letter(job.id, exc.reason)
                log.warning("job_dead", reason=exc.reason, status=exc.status)
                return "dead"
            except TransientVendorError as exc:
                self._count_failure(ref.vendor, "transient")
                state = await self.queue.retry(job, reason=exc.reason)
                log.info("job_retry", reason=exc.reason, status=exc.status, state=state,
                         attempts=job.attempts)
                return state
            except StoreUnavailableError:
                log.error("job_store_unavailable")  # the lease expires; the job comes back
                return "leased"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — a bug: count it, back off, keep serving
                self._count_failure(ref.vendor, "internal")
                reason = f"internal error: {type(exc).__name__}"
                state = await self.queue.retry(job, reason=reason)
                log.error("job_failed", error_type=type(exc).__name__, state=state)
                return state

    async def _run(self, job: Job, tenant: TenantConfig) -> str:
        ref = job.ref
        client = self.clients.client(tenant)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        if ref.event == "feedback" and ref.tags:
            # The delivery carries the ticket's tags: feedback needs no API call.
            ticket = Ticket(vendor=ref.vendor, tenant_id=ref.tenant_id, ticket_id=ref.ticket_id,
                            text="", tags=ref.tags)
        else:
            ticket = await self._quick(lambda: client.fetch(ref))
        timings["fetch"] = _ms(started)

        if ref.event == "feedback":
            kind = self.pipeline.feedback_kind(ref, ticket, tenant)
            await self._finish(job, tenant, None, "none", (), f"feedback:{kind or 'none'}", timings)
            log.info("feedback_recorded", kind=kind)
            return "done"

        mark = time.perf_counter()
        locale = ticket.requester_locale or ref.hints.get("requester_locale")
        assessment = self.pipeline.screen(ticket.text, locale=locale)
        timings["screen"] = _ms(mark)
        if self.metrics is not None:
            self.metrics.screen_seconds.observe(timings["screen"] / 1000.0)
        tier = self.pipeline.tier_for_tenant(assessment, tenant)
        if tier != "none":
            # A retry of this job (rate limit, outage) must still go before ordinary ones. The
            # queue writes it with the job's next write (its plan, a retry), not a commit alone.
            await self.queue.note_priority(job.id, priority_for_tier(tier))

        rota = None
        if tier != "none" and tenant.wellbeing.enabled:
            rota = await self._quick(lambda: rota_for(tenant, tier, client, self.crisis_load,
                                                      time.time()))
        journal = self.queue.journal(job.id, known=job.done_steps)
        # If an earlier attempt of this very job already wrote some steps (say the tags with the
        # marker, then crashed before the note), plan against the ticket as it was before our
        # own writes, so the same plan comes out and `apply` finishes only the missing steps.
        started_plan = await journal.get("plan")
        own_tags = frozenset(started_plan.get("add_tags", ())) if started_plan else frozenset()

        def replan(fresh: Ticket) -> Plan:
            if started_plan:
                fresh = replace(fresh, tags=tuple(t for t in fresh.tags if t not in own_tags),
                                note_markers=fresh.note_markers - {job.id})
            extra = {"rota": rota} if rota is not None else {}
            return self.pipeline.plan(assessment, tenant, fresh, job_id=job.id, event=ref.event,
                                      **extra)

        plan = replan(ticket)
        actions: tuple[str, ...] = ()
        if plan.is_empty:
            outcome = "nothing_to_do" if tier == "none" else "already_handled"
        else:
            mark = time.perf_counter()
            if not started_plan:
                await journal.put("plan", {"tier": plan.tier, "add_tags": list(plan.add_tags)})
            actions = await self._quick(
                lambda: client.apply(ref, ticket, plan, replan=replan, journal=journal))
            timings["apply"] = _ms(mark)
            if "assign" in actions and plan.assignee_id is not None:
                await self.crisis_load.record(tenant.id, plan.assignee_id, job.id, time.time())
            outcome = "applied" if actions else "already_handled"
            if actions and self.metrics is not None:
                self.metrics.routed_seconds.labels(ref.vendor, tier).observe(
                    max(0.0, time.time() - job.received_at))
        timings["total"] = _ms(started)
        country = resolve_country(locale, ticket.requester_time_zone, tenant.default_country)
        await self._finish(job, tenant, assessment, tier, actions, outcome, timings, country)
        log.info("job_done", tier=tier, score=round(assessment.score, 3),
                 rules=list(assessment.rule_ids), actions=list(actions), outcome=outcome,
                 timings_ms=timings)
        return "done"

    async def _finish(self, job: Job, tenant: TenantConfig, assessment: Assessment | None,
                      tier: Tier, actions: tuple[str, ...], outcome: str,
                      timings: dict[str, float], country: str | None = None) -> None:
        """Ack the job and write its audit row, in one transaction."""
        ref = job.ref
        decision = Decision(
            tenant_id=tenant.id, vendor=ref.vendor, ticket_id=ref.ticket_id,
            delivery_id=ref.delivery_id, job_id=job.id, event=ref.event, tier=tier,
            score=assessment.score if assessment else 0.0,
            rule_ids=assessment.rule_ids if assessment else (),
            categories=assessment.categories if assessment else (),
            flags=tuple(sorted(assessment.flags)) if assessment else (),
            language=assessment.language if assessment else "und",
            actions=actions, outcome=outcome, received_at=job.received_at,
            decided_at=time.time(), timings_ms=timings, country=country)
        await self.queue.complete(job.id, decision, self.audit)
        if self.metrics is not None:
            self.metrics.decisions.labels(ref.vendor, tier, outcome.split(":")[0]).inc()

    def _count_failure(self, vendor: str, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.job_failures.labels(vendor, kind).inc()


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 3)


__all__: list[Any] = ["Worker", "VendorClients", "Pipeline", "default_pipeline"]
