"""Restarts and storage trouble, with the real service in-process and a Zendesk emulator.

Proves:
- restart with a full queue: jobs queued (and retrying while the vendor was down) survive a
  stop and are all finished by the next process, each flagged ticket written exactly once;
- full disk: simulated with SQLite `PRAGMA max_page_count` on the service's own store
  connection (the database cannot grow, so inserts fail with SQLITE_FULL). Every delivery that
  was answered 202 is stored, every delivery that was not stored got 503 + Retry-After (never a
  202), and the same deliveries are accepted as new once space is back;
- SQLite busy/locked: another connection holding the write lock past the busy timeout → 503 and
  nothing stored; a lock shorter than the busy timeout → the webhook waits and gets 202; a lock
  while jobs are in flight (their acks fail) → the jobs come back after the lease and nothing is
  written twice;
- clock skew on Zendesk signatures: ±4 minutes accepted, ±6 minutes refused (401).
  (Freshdesk deliveries carry no timestamp.)
Logs are captured at debug level throughout; the canary ticket text never appears in them.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sqlite3
import time
from datetime import datetime, timedelta, timezone

from integration_support import (
    create_zendesk_tickets,
    in_process_service,
    sandbox_app,
    sandbox_get,
    sandbox_put,
    serving,
    tenant_config,
    texts_of,
    zendesk_delivery,
    zendesk_tenant_table,
)
from plugin import logging as cr_logging
from plugin.sandbox.zendesk_hooks import signature

SECRET = "storage-secret-6a1f93"
CANARY = "CANARY-d04e quiet orchard"


@contextlib.contextmanager
def debug_logs():
    stream = io.StringIO()
    cr_logging.configure(level="debug", fmt="json", stream=stream)
    try:
        yield stream
    finally:
        cr_logging.configure(level="info", fmt="json")
    assert CANARY.split()[0] not in stream.getvalue()


async def _post_all(running, ids, **kwargs) -> list:
    return await asyncio.gather(*(running.post("/webhooks/zendesk/acme", *zendesk_delivery(
        SECRET, t, invocation=f"inv-{t}", **kwargs)) for t in ids))


def _stored_tickets(db_path) -> set[str]:
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        return {row[0] for row in conn.execute("SELECT json_extract(ref, '$.ticket_id') FROM jobs")}


async def test_restart_with_a_full_queue_finishes_every_job_once(tmp_path):
    async with serving({"zd": sandbox_app("zendesk")}) as urls:
        url = urls["zd"]
        tenant = tenant_config(zendesk_tenant_table("acme", url, SECRET))
        texts = [(k, loc, f"{text} {CANARY}") for k, loc, text in
                 texts_of("ordinary", "ideation", "imminent", "third_party")] * 3
        ids = await create_zendesk_tickets(url, texts)
        with debug_logs():
            await sandbox_put(url, "/_sandbox/faults", {"error_rate": 1.0})  # the vendor is down
            async with in_process_service(tmp_path / "data", [tenant]) as first:
                assert {r.status_code for r in await _post_all(first, ids)} == {202}
                await asyncio.sleep(0.8)  # the workers try, fail and back off
                counts = await first.service.queue.counts()
            assert counts["done"] == 0 and counts["queued"] + counts["leased"] == len(ids)
            await sandbox_put(url, "/_sandbox/faults", {"error_rate": 0.0})
            async with in_process_service(tmp_path / "data", [tenant]) as second:
                assert await second.service.worker.drain(30)
                assert await second.service.queue.counts() == {
                    "queued": 0, "leased": 0, "done": len(ids), "dead": 0}
        state = await sandbox_get(url, "/_integration/state")
        flagged = [state[str(t)] for (kind, _, _), t in zip(texts, ids) if kind != "ordinary"]
        assert all(len(t["notes"]) == 1 and all(t["notes"]) for t in flagged)
        calm = [state[str(t)] for (kind, _, _), t in zip(texts, ids) if kind == "ordinary"]
        assert all(t["notes"] == [] and t["tags"] == [] for t in calm)


async def test_full_disk_never_answers_202_for_a_job_it_did_not_store(tmp_path):
    tenant = tenant_config(zendesk_tenant_table("acme", "http://127.0.0.1:9", SECRET))
    with debug_logs() as logs:
        async with in_process_service(tmp_path / "data", [tenant], run_worker=False) as running:
            store = running.service.store
            pages = await store.run(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
            await store.run(lambda c: c.execute(f"PRAGMA max_page_count = {pages + 2}"))
            statuses: dict[int, int] = {}
            for chunk in range(20):  # chunks of 10 concurrent deliveries share a group commit
                ids = list(range(1000 + chunk * 10, 1010 + chunk * 10))
                for ticket, reply in zip(ids, await _post_all(running, ids)):
                    statuses[ticket] = reply.status_code
                    if reply.status_code == 503:
                        assert reply.headers["Retry-After"] == "5"
                        assert reply.json() == {"error": "temporarily unavailable"}
            accepted = {str(t) for t, s in statuses.items() if s == 202}
            refused = sorted(t for t, s in statuses.items() if s == 503)
            assert set(statuses.values()) == {202, 503}, "the disk did fill up"
            assert len(refused) > 50
            assert _stored_tickets(running.service.store.path) == accepted

            await store.run(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
            again = await _post_all(running, refused)
            assert [r.json() for r in again] == [{"accepted": True, "duplicate": False}] * len(refused)
            assert len(_stored_tickets(running.service.store.path)) == len(statuses)
    assert "webhook_not_stored" in logs.getvalue()


async def test_locked_database_waits_briefly_then_refuses_and_jobs_recover(tmp_path):
    async with serving({"zd": sandbox_app("zendesk")}) as urls:
        url = urls["zd"]
        tenant = tenant_config(zendesk_tenant_table("acme", url, SECRET))
        ids = await create_zendesk_tickets(url, texts_of("ideation") * 4)
        with debug_logs() as logs:
            async with in_process_service(tmp_path / "data", [tenant], lease_seconds=1.0,
                                          run_worker=False) as running:
                store = running.service.store
                await store.run(lambda c: c.execute("PRAGMA busy_timeout = 300"))
                other = sqlite3.connect(store.path, isolation_level=None, timeout=0)
                # 1. A lock shorter than the busy timeout: the webhook waits, then 202.
                other.execute("BEGIN IMMEDIATE")
                pending = asyncio.ensure_future(_post_all(running, ids[:2]))
                await asyncio.sleep(0.1)
                other.execute("COMMIT")
                assert [r.status_code for r in await pending] == [202, 202]
                # 2. A lock longer than the busy timeout: 503, nothing stored.
                other.execute("BEGIN IMMEDIATE")
                refused = await _post_all(running, ids[2:6])
                other.execute("COMMIT")
                assert [r.status_code for r in refused] == [503] * 4
                assert _stored_tickets(store.path) == {str(t) for t in ids[:2]}
                assert {r.status_code for r in await _post_all(running, ids[2:])} == {202}
                # 3. Locked while jobs are in flight: updates land, acks fail, leases expire.
                await sandbox_put(url, "/_sandbox/faults", {"latency_ms": [150, 250]})
                running.service.worker.start()
                await asyncio.sleep(0.2)
                other.execute("BEGIN IMMEDIATE")
                await asyncio.sleep(1.0)
                other.execute("COMMIT")
                other.close()
                await sandbox_put(url, "/_sandbox/faults", {"latency_ms": [0, 0]})
                assert await running.service.worker.drain(30)
                assert (await running.service.queue.counts())["dead"] == 0
        assert "job_store_unavailable" in logs.getvalue(), "a job lost its store mid-flight"
        state = await sandbox_get(url, "/_integration/state")
        assert all(len(state[str(t)]["notes"]) == 1 for t in ids), "nothing written twice"


async def test_clock_skew_within_five_minutes_is_tolerated(tmp_path):
    tenant = tenant_config(zendesk_tenant_table("acme", "http://127.0.0.1:9", SECRET))
    async with in_process_service(tmp_path / "data", [tenant], run_worker=False) as running:
        now = time.time()
        cases = {-240: 202, 240: 202, -360: 401, 360: 401}
        for offset, expected in cases.items():
            body, headers = zendesk_delivery(SECRET, 7000 + offset, at=now + offset)
            reply = await running.post("/webhooks/zendesk/acme", body, headers)
            assert reply.status_code == expected, offset
        # The same instant written with a UTC offset instead of Z is the same instant.
        stamp = (datetime.now(timezone(timedelta(hours=2)))).isoformat(timespec="seconds")
        body = b'{"ticket_id": "7999"}'
        reply = await running.post("/webhooks/zendesk/acme", body, {
            "Content-Type": "application/json", "X-Zendesk-Webhook-Signature-Timestamp": stamp,
            "X-Zendesk-Webhook-Signature": signature(SECRET, stamp, body)})
        assert reply.status_code == 202
