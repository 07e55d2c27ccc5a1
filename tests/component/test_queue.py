"""The durable queue on a real SQLite file: dedupe, group commit, leases, retries, priority, fairness."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3

import pytest

from plugin.errors import ConfigError, StoreUnavailableError
from plugin.model import TicketRef
from plugin.queue import JobQueue, priority_for_tier
from plugin.store import Store


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ref(ticket: str, tenant: str = "acme", **kw) -> TicketRef:
    return TicketRef(vendor="zendesk", tenant_id=tenant, ticket_id=ticket,
                     delivery_id=kw.pop("delivery", f"d-{ticket}"), **kw)


@pytest.fixture
async def store(tmp_path):
    s = await Store(tmp_path / "q.sqlite3").open()
    yield s
    await s.close()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def queue(store, clock):
    return JobQueue(store, lease_seconds=30, max_attempts=3, retry_base_seconds=2,
                    group_commit_ms=5, clock=clock)


async def test_duplicate_delivery_makes_no_second_job(queue):
    first = await queue.enqueue(ref("1"))
    again = await queue.enqueue(ref("1", delivery="other-invocation"))
    assert not first.duplicate and again.duplicate
    assert again.job_id == first.job_id
    assert (await queue.counts())["queued"] == 1


async def test_follow_up_comment_is_its_own_job_but_deduped_per_comment(queue):
    await queue.enqueue(ref("1"))
    a = await queue.enqueue(ref("1", event="comment", comment_id="c9"))
    b = await queue.enqueue(ref("1", event="comment", comment_id="c9", delivery="retry"))
    assert not a.duplicate and b.duplicate
    assert (await queue.counts())["queued"] == 2


def count_round_trips(store: Store) -> list[int]:
    """Make `store` count its round trips to the store thread: the returned list's one item."""
    calls = [0]
    original = store.run

    async def counting(fn, **kw):
        calls[0] += 1
        return await original(fn, **kw)

    store.run = counting
    return calls


async def test_concurrent_enqueues_share_one_commit(queue, store):
    calls = count_round_trips(store)
    results = await asyncio.gather(*(queue.enqueue(ref(str(i))) for i in range(50)))
    assert len({r.job_id for r in results}) == 50
    assert calls[0] <= 2, f"50 concurrent webhooks took {calls[0]} store round trips"


async def test_without_a_window_enqueues_during_a_commit_share_the_next_one(store):
    # group_commit_ms=0 (the default): no wait before a commit, yet webhooks arriving while one
    # commit runs go into the next together, not one commit each.
    queue = JobQueue(store)
    calls = count_round_trips(store)
    first = asyncio.ensure_future(queue.enqueue(ref("first")))
    await asyncio.sleep(0)  # its commit is under way
    rest = await asyncio.gather(*(queue.enqueue(ref(str(i))) for i in range(100)))
    await first
    assert len({r.job_id for r in rest}) == 100
    assert calls[0] <= 3, f"101 webhooks took {calls[0]} commits"


async def test_a_large_batch_with_repeats_stores_each_ticket_once(store):
    # More rows than one INSERT chunk and more keys than one look-up, with repeats inside the
    # batch and keys already stored: one job per ticket, every repeat told it is a duplicate.
    queue = JobQueue(store)
    stored = await queue.enqueue(ref("7"))
    tickets = [str(i) for i in range(1200)] + ["5", "7", "1199"]
    results = await asyncio.gather(*(queue.enqueue(ref(t, delivery=f"again-{n}"))
                                     for n, t in enumerate(tickets)))
    by_ticket: dict[str, set[str]] = {}
    for ticket, result in zip(tickets, results):
        by_ticket.setdefault(ticket, set()).add(result.job_id)
    assert all(len(ids) == 1 for ids in by_ticket.values())
    assert by_ticket["7"] == {stored.job_id}
    fresh = [r for r in results if not r.duplicate]
    assert len(fresh) == 1199  # 0…1199 without "7"
    assert (await queue.counts())["queued"] == 1200
    rows = await store.run(lambda c: c.execute("SELECT dedupe_key, ref FROM jobs").fetchall())
    assert len({key for key, _ in rows}) == 1200


async def test_an_older_store_loses_the_full_finished_index(tmp_path):
    # Stores made before the partial index had (state, finished_at) on every job.
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, dedupe_key TEXT NOT NULL UNIQUE,"
                     " tenant_id TEXT NOT NULL, vendor TEXT NOT NULL, ref TEXT NOT NULL,"
                     " priority INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL"
                     " DEFAULT 0, next_run_at REAL NOT NULL, lease_until REAL, received_at REAL"
                     " NOT NULL, finished_at REAL, last_error TEXT)")
        conn.execute("CREATE INDEX jobs_finished ON jobs (state, finished_at)")
    store = await Store(path).open()
    names = await store.run(lambda c: {row[0] for row in c.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index'")})
    await store.close()
    assert "jobs_finished" not in names and "jobs_done_at" in names


async def test_enqueued_job_is_on_disk_when_enqueue_returns(queue, tmp_path):
    result = await queue.enqueue(ref("42"))
    # A separate connection (as after a crash) sees the committed row.
    with sqlite3.connect(tmp_path / "q.sqlite3") as conn:
        row = conn.execute("SELECT state FROM jobs WHERE id = ?", (result.job_id,)).fetchone()
    assert row == ("queued",)


async def test_expired_lease_comes_back(queue, clock):
    await queue.enqueue(ref("1"))
    job = await queue.lease()
    assert job is not None and job.attempts == 1
    assert await queue.lease() is None  # leased: not offered twice
    clock.now += 31  # the worker died; its lease expires
    again = await queue.lease()
    assert again is not None and again.id == job.id and again.attempts == 2


async def test_recover_releases_leases_at_start(queue):
    await queue.enqueue(ref("1"))
    assert await queue.lease() is not None
    assert await queue.recover() == 1
    assert (await queue.lease()) is not None


async def test_ack_finishes_a_job(queue):
    await queue.enqueue(ref("1"))
    job = await queue.lease()
    await queue.ack(job.id)
    assert await queue.counts() == {"queued": 0, "leased": 0, "done": 1, "dead": 0}
    assert await queue.lease() is None


async def test_retry_waits_for_backoff_then_dead_letters(queue, clock):
    await queue.enqueue(ref("1"))
    for attempt in (1, 2):
        job = await queue.lease()
        assert job.attempts == attempt
        assert await queue.retry(job, reason="vendor 503") == "queued"
        assert await queue.lease() is None  # not before its next run time
        clock.now += queue.retry_max_seconds + 1
    job = await queue.lease()
    assert await queue.retry(job, reason="vendor 503") == "dead"
    dead = await queue.dead_letters()
    assert dead[0]["ticket_id"] == "1" and dead[0]["reason"] == "vendor 503"
    assert await queue.requeue_dead() == 1
    assert (await queue.lease()).attempts == 1


async def test_rate_limit_deferral_does_not_use_up_attempts(queue, clock):
    await queue.enqueue(ref("1"))
    for _ in range(10):
        job = await queue.lease()
        assert job.attempts == 1
        await queue.retry(job, reason="rate limited", delay=5, count_attempt=False)
        clock.now += 5
    assert (await queue.counts())["dead"] == 0


async def test_higher_priority_is_served_first(queue):
    for i in range(5):
        await queue.enqueue(ref(f"ordinary-{i}"))
    crisis = await queue.enqueue(ref("crisis"))
    await queue.set_priority(crisis.job_id, priority_for_tier("imminent"))
    assert (await queue.lease()).ref.ticket_id == "crisis"


async def test_tenants_are_served_in_turn(queue):
    for i in range(6):
        await queue.enqueue(ref(f"a{i}", tenant="busy"))
    await queue.enqueue(ref("b0", tenant="quiet"))
    first = await queue.lease()
    second = await queue.lease()
    assert {first.tenant_id, second.tenant_id} == {"busy", "quiet"}


async def test_excluded_tenant_is_skipped(queue):
    await queue.enqueue(ref("a", tenant="blocked"))
    await queue.enqueue(ref("b", tenant="fine"))
    job = await queue.lease(exclude_tenants={"blocked"})
    assert job.tenant_id == "fine"
    assert await queue.lease(exclude_tenants={"blocked"}) is None


async def test_journal_survives_reopen(tmp_path, clock):
    store = await Store(tmp_path / "j.sqlite3").open()
    q = JobQueue(store, clock=clock)
    result = await q.enqueue(ref("1"))
    await q.journal(result.job_id).put("ticket", {"tags": ["a"]})
    await store.close()
    store = await Store(tmp_path / "j.sqlite3").open()
    q = JobQueue(store, clock=clock)
    assert await q.journal(result.job_id).get("ticket") == {"tags": ["a"]}
    assert await q.journal(result.job_id).get("note") is None
    await store.close()


async def test_lease_reads_the_journal_so_a_retry_sees_its_earlier_steps(queue, clock):
    result = await queue.enqueue(ref("1"))
    first = await queue.lease()
    assert first.done_steps == {}
    journal = queue.journal(first.id, known=first.done_steps)
    await journal.put("update", {"actions": ["tag"]})
    assert await journal.get("update") == {"actions": ["tag"]}  # write-through snapshot
    await queue.retry(first, reason="vendor 503", delay=0)
    second = await queue.lease()
    assert second.id == result.job_id
    assert second.done_steps == {"update": {"actions": ["tag"]}}
    assert await queue.journal(second.id, known=second.done_steps).get("update") == {
        "actions": ["tag"]}


async def test_complete_commits_the_audit_row_and_the_ack_together(queue, store, clock):
    from plugin.audit import AuditLog
    from plugin.model import Decision

    result = await queue.enqueue(ref("7"))
    job = await queue.lease()
    decision = Decision(tenant_id="acme", vendor="zendesk", ticket_id="7", delivery_id="d-7",
                        job_id=job.id, event="created", tier="high", score=0.7, rule_ids=("r",),
                        categories=("passive_ideation",), flags=(), language="en",
                        actions=("tag",), outcome="applied", received_at=clock(),
                        decided_at=clock(), timings_ms={})
    audit = AuditLog(store)
    await queue.complete(job.id, decision, audit)
    assert (await queue.counts())["done"] == 1
    assert (await audit.latest_for_ticket("acme", "7"))["tier"] == "high"

    # A failing audit insert rolls the ack back: the job stays leased and comes back.
    await queue.enqueue(ref("8"))
    other = await queue.lease()
    broken = dataclasses.replace(decision, job_id=other.id, ticket_id="8",
                                 tier=None)  # NOT NULL column: the insert fails
    with pytest.raises(sqlite3.IntegrityError):
        await queue.complete(other.id, broken, audit)
    counts = await queue.counts()
    assert counts["done"] == 1 and counts["leased"] == 1
    assert result.job_id != other.id


async def test_purge_finds_old_jobs_through_the_partial_index(queue, store, monkeypatch):
    plans: list[str] = []
    original = store.run

    async def explaining(fn, **kw):
        def wrapped(conn):
            conn.set_trace_callback(lambda sql: plans.extend(
                str(row) for row in conn.execute("EXPLAIN QUERY PLAN " + sql)
            ) if sql.startswith("DELETE") else None)
            try:
                return fn(conn)
            finally:
                conn.set_trace_callback(None)
        return await original(wrapped, **kw)

    monkeypatch.setattr(store, "run", explaining)
    await queue.purge_finished(3600)
    assert len(plans) >= 2 and all("jobs_done_at" in plan for plan in plans if "SEARCH jobs" in plan)
    assert any("jobs_done_at" in plan for plan in plans)


async def test_purge_keeps_recent_done_jobs_for_dedupe(queue, clock):
    await queue.enqueue(ref("1"))
    await queue.ack((await queue.lease()).id)
    assert await queue.purge_finished(3600) == 0
    assert (await queue.enqueue(ref("1"))).duplicate
    clock.now += 3601
    assert await queue.purge_finished(3600) == 1
    assert not (await queue.enqueue(ref("1"))).duplicate


async def test_store_failure_reaches_every_waiter_as_unavailable(queue, store):
    async def broken(fn, **kw):
        raise StoreUnavailableError("store unavailable")

    original = store.run
    store.run = broken
    results = await asyncio.gather(*(queue.enqueue(ref(str(i))) for i in range(3)),
                                   return_exceptions=True)
    store.run = original
    assert all(isinstance(r, StoreUnavailableError) for r in results)


async def test_full_disk_becomes_store_unavailable(tmp_path):
    store = await Store(tmp_path / "full.sqlite3").open()
    await store.run(lambda c: c.execute("PRAGMA max_page_count = 8"))
    q = JobQueue(store, group_commit_ms=0)
    with pytest.raises(StoreUnavailableError):
        for i in range(500):
            await q.enqueue(ref(str(i), hints={"brand_id": "x" * 60}))
    await store.close()


async def test_data_dir_is_locked_to_one_process(tmp_path):
    first = await Store(tmp_path / "a.sqlite3").open(exclusive=True)
    with pytest.raises(ConfigError):
        await Store(tmp_path / "a.sqlite3").open(exclusive=True)
    await first.close()
    again = await Store(tmp_path / "a.sqlite3").open(exclusive=True)
    await again.close()


async def test_retry_keeps_a_priority_raised_after_the_lease(queue, clock):
    await queue.enqueue(ref("crisis"))
    job = await queue.lease()
    await queue.set_priority(job.id, priority_for_tier("imminent"))  # the worker screened it
    clock.now += 1
    for i in range(3):  # meanwhile an ordinary backlog arrives
        await queue.enqueue(ref(f"ordinary-{i}"))
    await queue.retry(job, reason="vendor 503", delay=1)  # the vendor failed; try again soon
    clock.now += 1
    # Due later than the backlog, but a crisis: it still goes first.
    assert (await queue.lease()).ref.ticket_id == "crisis"


async def test_a_noted_priority_is_written_with_the_jobs_next_write(queue, store, clock):
    async def stored_priority(job_id: str) -> int:
        return (await store.run(lambda conn: conn.execute(
            "SELECT priority FROM jobs WHERE id = ?", (job_id,)).fetchone()))[0]

    await queue.enqueue(ref("crisis"))
    job = await queue.lease()
    await queue.note_priority(job.id, priority_for_tier("imminent"))
    assert await stored_priority(job.id) == 1  # no commit of its own
    await queue.journal(job.id, known=job.done_steps).put("plan", {"tier": "imminent"})
    assert await stored_priority(job.id) == priority_for_tier("imminent")

    await queue.enqueue(ref("high"))
    other = await queue.lease()
    await queue.note_priority(other.id, priority_for_tier("high"))
    await queue.retry(other, reason="vendor 503", delay=0)  # a retry carries it too
    assert await stored_priority(other.id) == priority_for_tier("high")


async def test_enqueue_commits_are_fsynced_and_bookkeeping_is_not(queue, store):
    seen = []
    original = queue._insert_batch

    def probe(conn, items):
        seen.append(conn.execute("PRAGMA synchronous").fetchone()[0])
        return original(conn, items)

    queue._insert_batch = probe
    await queue.enqueue(ref("1"))
    after = await store.run(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0])
    assert seen == [2] and after == 1  # FULL while a webhook's job commits, NORMAL otherwise
