"""The webhook service over real HTTP on 127.0.0.1, with the real Zendesk verifier and SQLite store.

The vendor client and the pipeline are test doubles (tests/backbone_support.py): this file tests
the backbone — answers, durability, dedupe, metrics, worker outcomes, privacy.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time

import httpx
import pytest
from aiohttp.test_utils import TestServer

from backbone_support import (CANARY_TEXT, OTHER_SECRET, TEST_PIPELINE, PermanentVendorError,
                              RateLimitedError, ScriptedVendors, TransientVendorError,
                              signed_headers, trigger_body, zendesk_tenant)
from plugin import logging as cr_logging
from plugin.config import ServiceSettings
from plugin.handlers.http import create_app
from plugin.service import Service
from plugin.tenants import TenantDirectory


class Running:
    def __init__(self, service: Service, server: TestServer, vendors: ScriptedVendors) -> None:
        self.service, self.server, self.vendors = service, server, vendors
        self.http = httpx.AsyncClient(base_url=str(server.make_url("")), timeout=10)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post(path, content=body, headers=headers)

    async def metrics(self) -> str:
        return (await self.http.get("/metrics")).text


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
async def running(tmp_path):
    settings = ServiceSettings(data_dir=tmp_path / "data", worker_concurrency=2,
                               body_limit_bytes=4096, retry_base_seconds=0.05,
                               retry_max_seconds=0.1, max_attempts=3)
    tenants = TenantDirectory([zendesk_tenant("acme"), zendesk_tenant("other", OTHER_SECRET)])
    vendors = ScriptedVendors()
    service = Service(settings, tenants, pipeline=TEST_PIPELINE, factory_for=vendors)
    server = TestServer(create_app(service), host="127.0.0.1")
    await server.start_server()
    run = Running(service, server, vendors)
    yield run
    await run.http.aclose()
    await server.close()


async def test_signed_delivery_is_accepted_and_its_job_runs(running):
    running.vendors.client_for("acme").texts["101"] = "I am in crisis"
    body = trigger_body(101)
    reply = await running.post("/webhooks/zendesk/acme", body, signed_headers(body, invocation="inv-1"))
    assert reply.status_code == 202
    assert reply.json() == {"accepted": True, "duplicate": False}
    assert await running.service.worker.drain(5)
    applied = running.vendors.client_for("acme").applied
    assert [t for t, _ in applied] == ["101"]
    decision = (await running.service.audit.recent("acme"))[0]
    assert decision["tier"] == "high" and decision["outcome"] == "applied"
    assert decision["rule_ids"] == ["t.high"]


async def test_an_event_we_do_not_act_on_is_acknowledged_as_ignored_json(running):
    body = json.dumps({"type": "zen:event-type:ticket.priority_changed",
                       "detail": {"id": "55"}}).encode()
    reply = await running.post("/webhooks/zendesk/acme", body, signed_headers(body, invocation="ig"))
    assert reply.status_code == 202
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json() == {"accepted": False, "ignored": True}
    assert (await running.service.queue.counts())["queued"] == 0


async def test_same_delivery_again_is_a_duplicate_with_no_second_job(running):
    body = trigger_body(7)
    first = await running.post("/webhooks/zendesk/acme", body, signed_headers(body, invocation="i"))
    again = await running.post("/webhooks/zendesk/acme", body, signed_headers(body, invocation="i"))
    assert first.json()["duplicate"] is False
    assert again.status_code == 202 and again.json() == {"accepted": True, "duplicate": True}
    assert await running.service.worker.drain(5)
    assert running.vendors.client_for("acme").fetched == ["7"]
    counts = await running.service.queue.counts()
    assert counts["done"] == 1


@pytest.mark.parametrize("case, status", [
    ("bad_signature", 401), ("other_tenants_secret", 401), ("stale", 401), ("missing_headers", 401),
    ("oversize", 413), ("garbage", 400), ("unknown_tenant", 404), ("wrong_vendor", 404),
    ("form_body", 415), ("empty_body", 401),
])
async def test_rejections(running, case, status):
    body = trigger_body(5)
    headers = signed_headers(body)
    path = "/webhooks/zendesk/acme"
    if case == "bad_signature":
        headers["X-Zendesk-Webhook-Signature"] = "AAAA" + headers["X-Zendesk-Webhook-Signature"][4:]
    elif case == "other_tenants_secret":
        headers = signed_headers(body, OTHER_SECRET)
    elif case == "stale":
        headers = signed_headers(body, at=time.time() - 3600)
    elif case == "missing_headers":
        headers = {"Content-Type": "application/json"}
    elif case == "oversize":
        body = trigger_body(5, brand_id="x" * 5000)
        headers = signed_headers(body)
    elif case == "garbage":
        body = b"{not json" + CANARY_TEXT.encode()
        headers = signed_headers(body)
    elif case == "unknown_tenant":
        path = "/webhooks/zendesk/nobody"
    elif case == "wrong_vendor":
        path = "/webhooks/freshdesk/acme"
    elif case == "form_body":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif case == "empty_body":
        body = b""
    reply = await running.post(path, body, headers)
    assert reply.status_code == status
    assert CANARY_TEXT not in reply.text and "x" * 50 not in reply.text
    assert set(reply.json()) == {"error"} and len(reply.json()["error"]) < 60
    assert (await running.service.queue.counts())["queued"] == 0


async def test_metrics_count_what_happened(running):
    body = trigger_body(9)
    await running.post("/webhooks/zendesk/acme", body, signed_headers(body, invocation="a"))
    await running.post("/webhooks/zendesk/acme", body, signed_headers(body, invocation="a"))
    await running.post("/webhooks/zendesk/acme", body, signed_headers(body, OTHER_SECRET))
    await running.post("/webhooks/zendesk/acme", b"x" * 5000, signed_headers(b"x"))
    await running.post("/webhooks/zendesk/ghost", body, signed_headers(body))
    await running.post("/webhooks/zendesk/acme", b"[]", signed_headers(b"[]"))
    assert await running.service.worker.drain(5)
    text = await running.metrics()
    assert _metric(text, "careroute_webhooks_received_total", vendor="zendesk") == 6
    assert _metric(text, "careroute_webhooks_accepted_total", duplicate="false") == 1
    assert _metric(text, "careroute_webhooks_accepted_total", duplicate="true") == 1
    assert _metric(text, "careroute_webhooks_rejected_total", reason="signature") == 1
    assert _metric(text, "careroute_webhooks_rejected_total", reason="too_large") == 1
    assert _metric(text, "careroute_webhooks_rejected_total", reason="unknown_tenant") == 1
    assert _metric(text, "careroute_webhooks_rejected_total", reason="payload") == 1
    assert _metric(text, "careroute_decisions_total", tier="none") == 1
    assert "careroute_webhook_ack_seconds_bucket" in text


async def test_health_and_readiness(running):
    assert (await running.http.get("/healthz")).json() == {"ok": True}
    assert (await running.http.get("/readyz")).status_code == 200
    await running.service.store.close()
    assert (await running.http.get("/readyz")).status_code == 503


async def test_store_down_answers_503_so_the_vendor_retries(running):
    from plugin.errors import StoreUnavailableError

    async def broken(ref, received_at):
        raise StoreUnavailableError()

    running.service.enqueue = broken
    body = trigger_body(11)
    reply = await running.post("/webhooks/zendesk/acme", body, signed_headers(body))
    assert reply.status_code == 503 and reply.headers["Retry-After"] == "5"


async def test_transient_failures_retry_then_succeed(running):
    client = running.vendors.client_for("acme")
    client.texts["20"] = "crisis"
    client.failures = [TransientVendorError(status=503) for _ in range(4)]  # > quick retries
    body = trigger_body(20)
    await running.post("/webhooks/zendesk/acme", body, signed_headers(body))
    assert await running.service.worker.drain(10)
    assert [t for t, _ in client.applied] == ["20"]
    assert (await running.service.queue.counts())["dead"] == 0


async def test_permanent_failure_is_a_dead_letter_with_reason(running):
    client = running.vendors.client_for("acme")
    client.texts["21"] = "crisis"
    client.failures = [PermanentVendorError("vendor refused the request", status=403)]
    body = trigger_body(21)
    await running.post("/webhooks/zendesk/acme", body, signed_headers(body))
    assert await running.service.worker.drain(5)
    dead = await running.service.queue.dead_letters()
    assert [(d["ticket_id"], d["reason"]) for d in dead] == [("21", "vendor refused the request")]


async def test_rate_limited_tenant_waits_and_others_go_on(running):
    slow, fine = running.vendors.client_for("acme"), running.vendors.client_for("other")
    slow.texts["30"] = fine.texts["31"] = "crisis"
    slow.failures = [RateLimitedError(retry_after=0.5)]
    b1, b2 = trigger_body(30), trigger_body(31)
    await running.post("/webhooks/zendesk/acme", b1, signed_headers(b1))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await running.post("/webhooks/zendesk/other", b2, signed_headers(b2, OTHER_SECRET))
    while not fine.applied and time.monotonic() - started < 2:
        await asyncio.sleep(0.01)
    assert fine.applied and time.monotonic() - started < 0.4  # not held up by acme's Retry-After
    assert await running.service.worker.drain(5)
    assert [t for t, _ in slow.applied] == ["30"]


async def test_tenant_isolation_each_tenant_uses_its_own_client(running):
    body = trigger_body(40)
    await running.post("/webhooks/zendesk/other", body, signed_headers(body, OTHER_SECRET))
    assert await running.service.worker.drain(5)
    assert running.vendors.client_for("other").fetched == ["40"]
    assert running.vendors.client_for("acme").fetched == []


async def test_canary_text_and_secrets_never_reach_logs_audit_or_metrics(running, tmp_path):
    stream = io.StringIO()
    cr_logging.configure(level="debug", fmt="json", stream=stream)
    try:
        client = running.vendors.client_for("acme")
        client.texts["50"] = f"crisis {CANARY_TEXT} reach me at someone@example.org"
        client.texts["51"] = f"{CANARY_TEXT} ordinary"
        client.failures = [TransientVendorError(status=500)]
        for ticket in (50, 51):
            body = trigger_body(ticket)
            await running.post("/webhooks/zendesk/acme", body, signed_headers(body))
        bad = trigger_body(52, brand_id=CANARY_TEXT)
        await running.post("/webhooks/zendesk/acme", bad, signed_headers(bad, OTHER_SECRET))
        await running.post("/webhooks/zendesk/acme", CANARY_TEXT.encode(), signed_headers(b"x"))
        assert await running.service.worker.drain(5)
        cr_logging.get_logger().info("probe", body=CANARY_TEXT, note="x",
                                     detail=f"token {OTHER_SECRET} mail a@b.example.com")
        metrics = await running.metrics()
        audit = json.dumps(await running.service.audit.recent())
    finally:
        cr_logging.configure(level="info", fmt="json")
    logs = stream.getvalue()
    assert "webhook_accepted" in logs and "job_done" in logs  # the logs did get written
    for place, text in (("logs", logs), ("metrics", metrics), ("audit", audit)):
        assert "CANARY-7f3a" not in text, place
        assert "someone@example.org" not in text, place
        assert OTHER_SECRET not in text and "zd-test-secret" not in text, place
    assert "a@b.example.com" not in logs and "[email]" in logs
    db = (tmp_path / "data" / "careroute.sqlite3").read_bytes()
    assert b"CANARY-7f3a" not in db
    assert re.search(r'"tier": ?"high"', audit)


async def test_job_that_wrote_tags_but_not_its_note_finishes_the_note_on_retry(running):
    """Freshdesk-style two-step apply: tags (with the marker) land, the note fails until the
    queue retries the job; the re-fetched ticket carries the marker, yet the note is written."""
    client = running.vendors.client_for("acme")
    client.texts["60"] = "crisis"
    note_failures = [TransientVendorError(status=502) for _ in range(4)]
    notes: list[str] = []

    async def two_step_apply(ref, ticket, plan, *, replan, journal):
        if await journal.get("tags") is None:
            client.tags[ref.ticket_id] = tuple(ticket.tags) + plan.add_tags
            await journal.put("tags", {"ok": True})
        if await journal.get("note") is None:
            if note_failures:
                raise note_failures.pop(0)
            notes.append(plan.note_html)
            await journal.put("note", {"ok": True})
        return plan.actions()

    client.apply = two_step_apply
    body = trigger_body(60)
    await running.post("/webhooks/zendesk/acme", body, signed_headers(body))
    assert await running.service.worker.drain(10)
    assert len(notes) == 1
    assert client.fetched.count("60") >= 2  # it really was re-fetched with the marker on it
    decision = (await running.service.audit.recent("acme"))[0]
    assert decision["outcome"] == "applied"
