"""Durable job queue on the SQLite store: dedupe, leases, retries, dead letters, step journal.

- `enqueue` is durable before it returns: the webhook answers 202 only after the commit.
  Enqueues that arrive while a commit runs share the next one (one fsync); `group_commit_ms`
  adds a wait before each commit to gather more (0 by default: at full load the commit in
  progress already gathers the next batch, and a wait would leave the core idle).
- A job is leased for `lease_seconds`; a crashed worker's lease expires and the job comes back.
  On start, `recover()` releases every lease (the data dir is locked to one process).
- `lease` serves the highest priority first (imminent > high > concern > unscreened > none)
  and, among equal priorities, the tenant served least recently; tenants waiting out a vendor
  Retry-After are skipped so they never hold a worker.
- Each job has a journal of steps already done (`JobJournal`), so a retried job repeats nothing.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
import sqlite3
import time
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterable, Mapping, NamedTuple

from .audit import AuditLog
from .model import Decision, TicketRef, tier_rank
from .store import Store, durable_transaction, transaction

# Priority of a job before it is screened; after screening it becomes the tier's rank + 1.
UNSCREENED_PRIORITY = 1


def priority_for_tier(tier: str) -> int:
    """none → 0, concern → 2, high → 3, imminent → 4 (unscreened jobs sit at 1)."""
    rank = tier_rank(tier)
    return 0 if rank == 0 else rank + 1


_REF_FIELDS = tuple(f.name for f in fields(TicketRef))
# Bound variables per look-up of known dedupe keys (SQLite allows 32,766; stay far below).
_KEYS_PER_LOOKUP = 500
# New jobs go in as one multi-row INSERT per chunk: sqlite3 lets go of the GIL around every
# statement step, and on a busy event loop each hand-back costs a thread switch, so one step per
# chunk instead of one per row keeps a batch's commit short.
_ROWS_PER_INSERT = 64


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert_jobs_sql(rows: int) -> str:
    values = ",".join(["(?,?,?,?,?,?,'queued',0,?,?)"] * rows)
    return ("INSERT INTO jobs (id, dedupe_key, tenant_id, vendor, ref, priority, state, attempts,"
            f" next_run_at, received_at) VALUES {values}")


# Seeded once from the OS: job ids need to be unique, not secret, and a syscall per id is
# a measurable share of an enqueue.
_job_id_random = random.Random(os.urandom(32))


def new_job_id() -> str:
    # Time-ordered and unique: sortable hex milliseconds + 48 random bits.
    return f"{int(time.time() * 1000):012x}{_job_id_random.getrandbits(48):012x}"


# The general form, for a ref the quick one below does not take.
_encode_ref = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode
# A JSON string literal for a str, quotes included, by the json module's own C escaper.
_quoted = json.encoder.encode_basestring_ascii


def ref_to_json(ref: TicketRef) -> str:
    """The ref as compact JSON with sorted keys: the form every stored job has.

    Written out field by field: one is encoded per webhook, on the store's thread, and the json
    module's encoder costs ~4× as much for a dict this small. A test holds this to the general
    encoder's output for any ref, and to TicketRef's list of fields."""
    comment_id, hints, tags = ref.comment_id, ref.hints, ref.tags
    if not (comment_id is None or type(comment_id) is str) or not all(type(value) is str for value in (
            ref.delivery_id, ref.event, ref.tenant_id, ref.ticket_id, ref.vendor)) or not all(
            type(key) is str and type(value) is str for key, value in hints.items()) or not all(
            type(tag) is str for tag in tags):
        return _encode_general(ref)
    hint_items = ",".join([f"{_quoted(key)}:{_quoted(value)}" for key, value in sorted(hints.items())])
    return (f'{{"comment_id":{"null" if comment_id is None else _quoted(comment_id)},'
            f'"delivery_id":{_quoted(ref.delivery_id)},"event":{_quoted(ref.event)},'
            f'"hints":{{{hint_items}}},"tags":[{",".join(map(_quoted, tags))}],'
            f'"tenant_id":{_quoted(ref.tenant_id)},"ticket_id":{_quoted(ref.ticket_id)},'
            f'"vendor":{_quoted(ref.vendor)}}}')


def _encode_general(ref: TicketRef) -> str:
    data = {name: getattr(ref, name) for name in _REF_FIELDS}
    data["hints"] = dict(ref.hints)
    data["tags"] = list(ref.tags)
    return _encode_ref(data)


def ref_from_json(raw: str) -> TicketRef:
    data = json.loads(raw)
    data["tags"] = tuple(data.get("tags", ()))
    return TicketRef(**data)


@dataclass(frozen=True)
class Job:
    id: str
    ref: TicketRef
    priority: int
    attempts: int
    received_at: float
    # Steps earlier attempts journalled, read in the lease's own transaction (None: not read).
    done_steps: Mapping[str, Any] | None = None

    @property
    def tenant_id(self) -> str:
        return self.ref.tenant_id


class EnqueueResult(NamedTuple):  # one per webhook: a named tuple costs a third of a dataclass
    job_id: str
    duplicate: bool


class JobQueue:
    def __init__(self, store: Store, *, lease_seconds: float = 60.0, max_attempts: int = 8,
                 retry_base_seconds: float = 2.0, retry_max_seconds: float = 600.0,
                 group_commit_ms: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.group_commit_seconds = group_commit_ms / 1000.0
        self.clock = clock
        self._pending: list[tuple[TicketRef, float, asyncio.Future[EnqueueResult]]] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._last_served: dict[str, float] = {}
        self._serve_counter = 0.0
        # Priorities of leased jobs noted by the worker, written with the job's next write.
        self._noted_priority: dict[str, int] = {}
        # Set whenever a job may have become ready (enqueue, retry, release).
        self.ready = asyncio.Event()

    # ------------------------------------------------------------- enqueue

    async def enqueue(self, ref: TicketRef, *, received_at: float | None = None) -> EnqueueResult:
        """Store a job for `ref` durably (or find its duplicate). Raises StoreUnavailableError."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[EnqueueResult] = loop.create_future()
        self._pending.append((ref, received_at or self.clock(), future))
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self._flush_soon())
        return await future

    async def _flush_soon(self) -> None:
        if self.group_commit_seconds > 0:
            await asyncio.sleep(self.group_commit_seconds)
        while self._pending:
            batch, self._pending = self._pending, []
            items = [(ref, received_at) for ref, received_at, _ in batch]
            try:
                results = await self.store.run(lambda conn: durable_transaction(
                    conn, lambda c: self._insert_batch(c, items)))
            except Exception as exc:  # noqa: BLE001 — every waiter must hear about it
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, _, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)
            self.ready.set()

    def _insert_batch(self, conn: sqlite3.Connection,
                      items: list[tuple[TicketRef, float]]) -> list[EnqueueResult]:
        """One look-up of the batch's keys, then one INSERT for the new jobs (a statement per row
        costs more than the row). A key seen twice in one batch is one job."""
        keys = [ref.dedupe_key for ref, _ in items]
        known: dict[str, str] = {}
        for start in range(0, len(keys), _KEYS_PER_LOOKUP):
            chunk = keys[start:start + _KEYS_PER_LOOKUP]
            known.update(conn.execute(
                f"SELECT dedupe_key, id FROM jobs WHERE dedupe_key IN ({','.join('?' * len(chunk))})",
                chunk))
        rows = []
        results = []
        for (ref, received_at), key in zip(items, keys):
            job_id = known.get(key)
            if job_id is not None:
                results.append(EnqueueResult(job_id, True))
                continue
            job_id = known[key] = new_job_id()
            rows.append((job_id, key, ref.tenant_id, ref.vendor, ref_to_json(ref),
                         UNSCREENED_PRIORITY, received_at, received_at))
            results.append(EnqueueResult(job_id, False))
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start:start + _ROWS_PER_INSERT]
            conn.execute(_insert_jobs_sql(len(chunk)), [value for row in chunk for value in row])
        return results

    # --------------------------------------------------------------- lease

    async def lease(self, *, exclude_tenants: Iterable[str] = ()) -> Job | None:
        """Lease the next job to run now, or None."""
        excluded = tuple(exclude_tenants)
        now = self.clock()
        job = await self.store.run(lambda conn: transaction(
            conn, lambda c: self._lease(c, now, excluded)))
        if job is not None:
            self._serve_counter += 1
            self._last_served[job.tenant_id] = self._serve_counter
        return job

    def _lease(self, conn: sqlite3.Connection, now: float, excluded: tuple[str, ...]) -> Job | None:
        ready = ("((state = 'queued' AND next_run_at <= ?) OR (state = 'leased' AND lease_until < ?))")
        rows = conn.execute(
            f"SELECT tenant_id, MAX(priority) FROM jobs WHERE {ready} GROUP BY tenant_id",
            (now, now)).fetchall()
        candidates = [(tenant, prio) for tenant, prio in rows if tenant not in excluded]
        if not candidates:
            return None
        # Highest priority first; among equals, the tenant served least recently.
        tenant, priority = max(candidates,
                               key=lambda c: (c[1], -self._last_served.get(c[0], 0.0)))
        row = conn.execute(
            f"SELECT id, ref, priority, attempts, received_at FROM jobs WHERE {ready}"
            " AND tenant_id = ? AND priority = ? ORDER BY next_run_at, received_at LIMIT 1",
            (now, now, tenant, priority)).fetchone()
        job_id, ref_json, prio, attempts, received_at = row
        conn.execute("UPDATE jobs SET state = 'leased', lease_until = ?, attempts = attempts + 1"
                     " WHERE id = ?", (now + self.lease_seconds, job_id))
        steps = {step: json.loads(data) for step, data in conn.execute(
            "SELECT step, data FROM journal WHERE job_id = ?", (job_id,))}
        return Job(job_id, ref_from_json(ref_json), prio, attempts + 1, received_at, steps)

    async def next_ready_in(self, *, exclude_tenants: Iterable[str] = ()) -> float | None:
        """Seconds until the earliest waiting job of a tenant not excluded is due (None: none)."""
        excluded = tuple(exclude_tenants)

        def query(conn: sqlite3.Connection) -> float | None:
            not_excluded = (f" AND tenant_id NOT IN ({','.join('?' * len(excluded))})"
                            if excluded else "")
            row = conn.execute("SELECT MIN(CASE WHEN state = 'queued' THEN next_run_at"
                               " ELSE lease_until END) FROM jobs WHERE state IN ('queued','leased')"
                               + not_excluded, excluded).fetchone()
            return row[0]

        earliest = await self.store.run(query)
        return None if earliest is None else max(0.0, earliest - self.clock())

    async def recover(self) -> int:
        """Release every lease: run at start, when no other process can hold one."""
        def release_all(conn: sqlite3.Connection) -> int:
            return conn.execute("UPDATE jobs SET state = 'queued', lease_until = NULL,"
                                " next_run_at = MIN(next_run_at, ?) WHERE state = 'leased'",
                                (self.clock(),)).rowcount

        count = await self.store.run(release_all)
        if count:
            self.ready.set()
        return count

    # ------------------------------------------------------------ outcomes

    async def ack(self, job_id: str) -> None:
        self._noted_priority.pop(job_id, None)
        await self.store.run(lambda conn: self._mark_done(conn, job_id))

    async def complete(self, job_id: str, decision: Decision, audit: AuditLog) -> None:
        """Write the job's audit row and mark it done, in one transaction."""
        self._noted_priority.pop(job_id, None)

        def finish(conn: sqlite3.Connection) -> None:
            audit.insert(conn, decision)
            self._mark_done(conn, job_id)

        await self.store.run(lambda conn: transaction(conn, finish))

    def _mark_done(self, conn: sqlite3.Connection, job_id: str) -> None:
        conn.execute("UPDATE jobs SET state = 'done', finished_at = ?, lease_until = NULL"
                     " WHERE id = ?", (self.clock(), job_id))

    async def release(self, job_id: str) -> None:
        """Give a leased job back untouched (graceful shutdown): its attempt does not count."""
        noted = self._noted_priority.pop(job_id, None)
        await self.store.run(lambda conn: conn.execute(
            "UPDATE jobs SET state = 'queued', lease_until = NULL, priority = COALESCE(?, priority),"
            " attempts = MAX(0, attempts - 1) WHERE id = ? AND state = 'leased'", (noted, job_id)))
        self.ready.set()

    def backoff(self, attempts: int) -> float:
        delay = min(self.retry_max_seconds, self.retry_base_seconds * (2 ** max(0, attempts - 1)))
        return delay * random.uniform(0.8, 1.2)

    async def retry(self, job: Job, *, reason: str, delay: float | None = None,
                    count_attempt: bool = True, priority: int | None = None) -> str:
        """Schedule the job again (→ 'queued'), or dead-letter it after max attempts (→ 'dead')."""
        now = self.clock()
        if count_attempt and job.attempts >= self.max_attempts:
            await self.dead_letter(job.id, reason)
            return "dead"
        wait = self.backoff(job.attempts) if delay is None else max(0.0, delay)
        undo = 0 if count_attempt else 1
        noted = self._noted_priority.pop(job.id, None)
        priority = priority if priority is not None else noted
        # None keeps the stored priority: the worker may have raised it (screened as a crisis)
        # after the lease, and a retry must not undo that.
        await self.store.run(lambda conn: conn.execute(
            "UPDATE jobs SET state = 'queued', lease_until = NULL, next_run_at = ?,"
            " attempts = MAX(0, attempts - ?), priority = COALESCE(?, priority), last_error = ?"
            " WHERE id = ?", (now + wait, undo, priority, reason[:200], job.id)))
        self.ready.set()
        return "queued"

    async def set_priority(self, job_id: str, priority: int) -> None:
        await self.store.run(lambda conn: conn.execute(
            "UPDATE jobs SET priority = ? WHERE id = ?", (priority, job_id)))

    async def note_priority(self, job_id: str, priority: int) -> None:
        """The priority of a job this process holds the lease of, written with the job's next
        write (its plan journal entry, a retry, its completion) instead of a commit of its own.
        Lost only if the process dies before that write: the job then comes back unscreened."""
        self._noted_priority[job_id] = priority

    async def dead_letter(self, job_id: str, reason: str) -> None:
        self._noted_priority.pop(job_id, None)
        now = self.clock()
        await self.store.run(lambda conn: conn.execute(
            "UPDATE jobs SET state = 'dead', finished_at = ?, lease_until = NULL, last_error = ?"
            " WHERE id = ?", (now, reason[:200], job_id)))

    async def requeue_dead(self, job_id: str | None = None) -> int:
        """Put dead letters back in the queue (all, or one) with fresh attempts."""
        now = self.clock()

        def requeue(conn: sqlite3.Connection) -> int:
            sql = ("UPDATE jobs SET state = 'queued', attempts = 0, next_run_at = ?, finished_at = NULL"
                   " WHERE state = 'dead'")
            args: tuple[Any, ...] = (now,)
            if job_id is not None:
                sql += " AND id = ?"
                args += (job_id,)
            return conn.execute(sql, args).rowcount

        count = await self.store.run(requeue)
        self.ready.set()
        return count

    # ---------------------------------------------------------- inspection

    async def counts(self) -> dict[str, int]:
        rows = await self.store.run(lambda conn: conn.execute(
            "SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
        counts = {"queued": 0, "leased": 0, "done": 0, "dead": 0}
        counts.update({state: n for state, n in rows})
        return counts

    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self.store.run(lambda conn: conn.execute(
            "SELECT id, tenant_id, vendor, ref, attempts, last_error, finished_at FROM jobs"
            " WHERE state = 'dead' ORDER BY finished_at DESC LIMIT ?", (limit,)).fetchall())
        return [{"job_id": r[0], "tenant_id": r[1], "vendor": r[2],
                 "ticket_id": json.loads(r[3])["ticket_id"], "attempts": r[4], "reason": r[5],
                 "at": r[6]} for r in rows]

    async def purge_finished(self, older_than_seconds: float) -> int:
        """Forget done jobs (and their journals) past the dedupe window."""
        cutoff = self.clock() - older_than_seconds

        # INDEXED BY: without statistics SQLite would walk every done job through jobs_ready.
        def purge(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM journal WHERE job_id IN (SELECT id FROM jobs INDEXED BY"
                         " jobs_done_at WHERE state = 'done' AND finished_at < ?)", (cutoff,))
            return conn.execute("DELETE FROM jobs INDEXED BY jobs_done_at"
                                " WHERE state = 'done' AND finished_at < ?", (cutoff,)).rowcount

        return await self.store.run(lambda conn: transaction(conn, purge))

    # -------------------------------------------------------------- journal

    def journal(self, job_id: str, *, known: Mapping[str, Any] | None = None) -> "JobJournal":
        """The job's journal. `known`: every step on disk as read at lease (`Job.done_steps`);
        the lease holds the job, so only this journal adds steps and reads need no query."""
        return JobJournal(self.store, job_id, self.clock, known, self._noted_priority)


class JobJournal:
    """The StepJournal of one job, on disk (plugin.vendors.StepJournal)."""

    def __init__(self, store: Store, job_id: str, clock: Callable[[], float],
                 known: Mapping[str, Any] | None = None,
                 noted_priority: dict[str, int] | None = None) -> None:
        self.store = store
        self.job_id = job_id
        self.clock = clock
        self._known = dict(known) if known is not None else None
        self._noted_priority = noted_priority if noted_priority is not None else {}

    async def get(self, step: str) -> Mapping[str, Any] | None:
        if self._known is not None:
            return self._known.get(step)
        row = await self.store.run(lambda conn: conn.execute(
            "SELECT data FROM journal WHERE job_id = ? AND step = ?",
            (self.job_id, step)).fetchone())
        return None if row is None else json.loads(row[0])

    async def put(self, step: str, data: Mapping[str, Any]) -> None:
        payload = json.dumps(dict(data), separators=(",", ":"), sort_keys=True)
        now = self.clock()
        priority = self._noted_priority.pop(self.job_id, None)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO journal (job_id, step, data, at) VALUES (?,?,?,?)",
                         (self.job_id, step, payload, now))
            if priority is not None:
                conn.execute("UPDATE jobs SET priority = ? WHERE id = ?", (priority, self.job_id))

        await self.store.run(lambda conn: transaction(conn, write))
        if self._known is not None:
            self._known[step] = json.loads(payload)
