"""Crash: 1,000 signed webhooks at full speed while the service is `kill -9`ed twice.

The service (`python -m plugin.cli serve`) and both vendor emulators run as separate processes.
The test creates the tickets through the emulators' APIs (ordinary, look-alike idioms, distress,
ideation, third-party and imminent texts in several languages), then sends the webhooks itself,
so it knows exactly which deliveries got a 202. A delivery whose request failed (connection
refused or cut by the kill) is sent again later, as Zendesk does after a timeout.

Proves: every accepted delivery is processed (a job in state done and an audit row with the
tier the screener gives); every flagged ticket carries exactly one CareRoute note when its tier
writes one, and the tier tag + marker; no vendor call at all for a ticket whose delivery was
refused (bad signature); no writes for ordinary tickets; no dead letters.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import httpx
import pytest

from integration_support import (
    TICKET_TEXTS,
    SandboxProcess,
    ServiceProcess,
    create_freshdesk_tickets,
    create_zendesk_tickets,
    expected_tier,
    freshdesk_delivery,
    freshdesk_tenant_table,
    job_counts,
    query,
    sandbox_get,
    sandbox_put,
    tenant_config,
    wait_drained,
    write_tenants,
    zendesk_delivery,
    zendesk_tenant_table,
)

pytestmark = pytest.mark.timeout(150)

ZD_SECRET = "crash-zd-secret-5c1e2f7a9b"
FD_SECRET = "crash-fd-secret-0d4b6a8c2e"
PER_VENDOR_TICKETS = 480  # + 20 duplicate resends → 500 deliveries per vendor
REFUSED_PER_VENDOR = 20  # crisis tickets whose only delivery carries a wrong secret
KILL_AT = (300, 650)  # accepted deliveries after which the service is killed


def _mix(count: int) -> list[tuple[str, str, str]]:
    """Ordinary and look-alike texts about 60 %, crisis texts about 40 %, cycling languages."""
    calm = [t for t in TICKET_TEXTS if t[0] in ("ordinary", "idiom")]
    crisis = [t for t in TICKET_TEXTS if t[0] not in ("ordinary", "idiom")]
    calm_cycle, crisis_cycle = itertools.cycle(calm), itertools.cycle(crisis)
    return [next(crisis_cycle) if i % 5 in (1, 3) else next(calm_cycle) for i in range(count)]


async def test_kill_9_twice_mid_run_loses_nothing_and_doubles_nothing(tmp_path):
    sandboxes = SandboxProcess({"zd": {"vendor": "zendesk"}, "fd": {"vendor": "freshdesk"}})
    service = None
    try:
        zd_url, fd_url = sandboxes.urls["zd"], sandboxes.urls["fd"]
        zd_table = zendesk_tenant_table("zd-crash", zd_url, ZD_SECRET,
                                        actions={"concern": {"note": True}})
        fd_table = freshdesk_tenant_table("fd-crash", fd_url, FD_SECRET)
        tenants_file = write_tenants(tmp_path / "tenants.toml", [zd_table, fd_table])
        zd_tenant, fd_tenant = tenant_config(zd_table), tenant_config(fd_table)

        zd_texts, fd_texts = _mix(PER_VENDOR_TICKETS), _mix(PER_VENDOR_TICKETS)[::-1]
        zd_ids, fd_ids = await asyncio.gather(create_zendesk_tickets(zd_url, zd_texts),
                                              create_freshdesk_tickets(fd_url, fd_texts))
        texts = {("zd-crash", str(i)): t for i, t in zip(zd_ids, zd_texts)}
        texts.update({("fd-crash", str(i)): t for i, t in zip(fd_ids, fd_texts)})
        tenants = {"zd-crash": zd_tenant, "fd-crash": fd_tenant}

        deliveries = []
        refused: set[tuple[str, str]] = set()
        for tenant_id, ids, vendor_texts in (("zd-crash", zd_ids, zd_texts),
                                             ("fd-crash", fd_ids, fd_texts)):
            crisis_positions = [i for i, t in enumerate(vendor_texts)
                                if t[0] in ("ideation", "imminent")][:REFUSED_PER_VENDOR]
            for position, ticket_id in enumerate(ids):
                wrong = position in crisis_positions
                if wrong:
                    refused.add((tenant_id, str(ticket_id)))
                deliveries.append(_delivery(tenant_id, ticket_id, vendor_texts[position][1],
                                            wrong_secret=wrong, attempt=0))
            for ticket_id in ids[1:200:10]:  # a redelivery of 20 tickets: duplicates
                position = ids.index(ticket_id)
                if (tenant_id, str(ticket_id)) not in refused:
                    deliveries.append(_delivery(tenant_id, ticket_id, vendor_texts[position][1],
                                                wrong_secret=False, attempt=1))
        random.Random(8).shuffle(deliveries)  # both vendors interleaved
        assert len(deliveries) >= 990

        # A little vendor latency keeps the workers behind the senders, so each kill lands on a
        # service with jobs queued or leased (without it the worker can keep pace and the
        # queue may be empty at a kill).
        for url in (zd_url, fd_url):
            await sandbox_put(url, "/_sandbox/faults", {"latency_ms": [5, 15]})
        service = ServiceProcess(tmp_path / "data", tenants_file, log_path=tmp_path / "svc.log")
        service.start()
        outcome = await _send_with_two_kills(service, deliveries)

        accepted = {(d[1], str(d[2])) for d in deliveries if outcome.get(d[0]) == 202}
        assert len(outcome) == len(deliveries), "every delivery got a final answer"
        assert all(outcome[d[0]] == 401 for d in deliveries if (d[1], str(d[2])) in refused)
        assert all(outcome[d[0]] == 202 for d in deliveries if (d[1], str(d[2])) not in refused)
        assert len(accepted) == 2 * PER_VENDOR_TICKETS - 2 * REFUSED_PER_VENDOR

        counts = await wait_drained(service.db_path, timeout=60, expected_jobs=len(accepted))
        assert service.stop() == 0, "graceful stop after recovery"
        dead = query(service.db_path, "SELECT tenant_id, last_error FROM jobs WHERE state='dead'")
        assert counts["dead"] == 0, f"dead letters: {dead}"

        jobs = query(service.db_path, "SELECT tenant_id, json_extract(ref, '$.ticket_id') FROM jobs")
        assert sorted(jobs) == sorted(accepted), "one job per accepted ticket, none for refused"
        audited = {}
        for tenant_id, ticket_id, tier in query(
                service.db_path, "SELECT tenant_id, ticket_id, tier FROM decisions"):
            audited.setdefault((tenant_id, ticket_id), set()).add(tier)

        states = {"zd-crash": await sandbox_get(zd_url, "/_integration/state"),
                  "fd-crash": await sandbox_get(fd_url, "/_integration/state")}
        ledgers = {"zd-crash": await sandbox_get(zd_url, "/_integration/ledger"),
                   "fd-crash": await sandbox_get(fd_url, "/_integration/ledger")}
        touched: dict[tuple[str, str], list[str]] = {}
        for tenant_id, ledger in ledgers.items():
            for entry in ledger:
                parts = entry["path"].split("/")
                if len(parts) > 4 and parts[3] == "tickets" and parts[4].isdigit():
                    touched.setdefault((tenant_id, parts[4]), []).append(entry["method"])

        flagged = notes_written = 0
        for key, (kind, locale, text) in texts.items():
            tenant_id, ticket_id = key
            tenant = tenants[tenant_id]
            ticket = states[tenant_id][ticket_id]
            ours = [t for t in ticket["tags"] if t.startswith("careroute_")]
            if key in refused:
                assert key not in touched, f"vendor called for refused delivery {key}"
                assert ours == [] and ticket["notes"] == []
                continue
            tier = expected_tier(text, locale, tenant)
            if kind == "ordinary":
                assert tier == "none", (kind, locale)
            if kind == "imminent":
                assert tier == "imminent", (kind, locale)
            assert audited.get(key) == {tier}, f"audit for {key}: {audited.get(key)} != {tier}"
            writes = [m for m in touched.get(key, []) if m in ("PUT", "POST")]
            marked_notes = [n for n in ticket["notes"] if n]
            assert len(marked_notes) == len(ticket["notes"]), "every private note is ours"
            if tier == "none":
                assert writes == [] and ours == [] and ticket["notes"] == [], key
                continue
            flagged += 1
            assert sorted(ours) == sorted([tenant.tier_tag(tier), tenant.marker_tag]), (key, ours)
            wants_note = tenant.actions.for_tier(tier).note
            assert len(marked_notes) == (1 if wants_note else 0), (key, ticket["notes"])
            notes_written += len(marked_notes)
            created_public = 1 if tenant.vendor == "zendesk" else 0  # Freshdesk: the description
            assert ticket["public_comments"] == created_public, "nothing said to the customer"
        assert flagged > 300 and notes_written > 250
    finally:
        if service is not None:
            service.stop()
        sandboxes.stop()


def _delivery(tenant_id: str, ticket_id: int, locale: str, *, wrong_secret: bool, attempt: int):
    """(key, tenant, ticket, path, sign) — `sign()` builds the request at send time, so a resend
    carries a fresh timestamp and signature under the same invocation id, as Zendesk's does."""
    if tenant_id.startswith("zd"):
        secret = "not-the-secret-0000" if wrong_secret else ZD_SECRET
        path = f"/webhooks/zendesk/{tenant_id}"

        def sign():
            return zendesk_delivery(secret, ticket_id, invocation=f"inv-{ticket_id}-{attempt}",
                                    locale=locale)
    else:
        secret = "not-the-secret-0000" if wrong_secret else FD_SECRET
        path = f"/webhooks/freshdesk/{tenant_id}"

        def sign():
            return freshdesk_delivery(secret, ticket_id)
    return f"{tenant_id}:{ticket_id}:{attempt}", tenant_id, ticket_id, path, sign


async def _send_with_two_kills(service: ServiceProcess, deliveries: list) -> dict[str, int]:
    """Send at full speed with 32 connections; kill -9 and restart at KILL_AT accepted.
    Returns the final HTTP status per delivery key (unanswered ones are retried)."""
    outcome: dict[str, int] = {}
    pending: asyncio.Queue = asyncio.Queue()
    for delivery in deliveries:
        pending.put_nowait(delivery)
    accepted = 0
    kills_done: list[dict[str, int]] = []
    kills_scheduled = 0
    restarting = asyncio.Lock()
    background: set[asyncio.Task] = set()

    async def kill_and_restart() -> None:
        async with restarting:
            kills_done.append(job_counts(service.db_path))
            service.kill9()
            await asyncio.to_thread(service.start)

    async def sender(http: httpx.AsyncClient) -> None:
        nonlocal accepted, kills_scheduled
        while True:
            try:
                delivery = pending.get_nowait()
            except asyncio.QueueEmpty:
                return
            key, _, _, path, sign = delivery
            body, headers = sign()
            try:
                reply = await http.post(path, content=body, headers=headers)
            except httpx.TransportError:
                await asyncio.sleep(0.05)  # refused or cut by the kill: Zendesk retries
                pending.put_nowait(delivery)
                continue
            if reply.status_code == 503:  # not stored: the vendor retries
                await asyncio.sleep(0.05)
                pending.put_nowait(delivery)
                continue
            outcome[key] = reply.status_code
            if reply.status_code == 202:
                accepted += 1
                if kills_scheduled < len(KILL_AT) and accepted >= KILL_AT[kills_scheduled]:
                    kills_scheduled += 1
                    background.add(asyncio.create_task(kill_and_restart()))

    started = time.monotonic()
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=service.url, timeout=10, limits=limits) as http:
        while len(outcome) < len(deliveries) and time.monotonic() - started < 90:
            await asyncio.gather(*(sender(http) for _ in range(32)))
            await asyncio.gather(*background)
    assert len(kills_done) == 2, "the service was killed twice"
    for counts in kills_done:  # each kill hit a service with work in hand
        assert counts["queued"] + counts["leased"] > 0, counts
    return outcome
