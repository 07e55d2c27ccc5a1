"""Zendesk end to end: a ticket created in the sandbox → signed webhook → the real service, worker,
screener, policy and client → the ticket in the sandbox. Real HTTP on 127.0.0.1 throughout."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import AsyncIterator

import httpx
from aiohttp.test_utils import TestServer

from plugin.config import ServiceSettings, TenantConfig, tenant_from_dict
from plugin.handlers.http import create_app
from plugin.ratelimit import RateBudget
from plugin.sandbox.zendesk import SANDBOX_TOKEN, TRAINED_GROUP_ID
from plugin.service import Service
from plugin.tenants import TenantDirectory
from plugin.vendors import ClientContext
from plugin.zendesk.provision import provision
from plugin.zendesk.webhook import sign
from tests.zendesk_support import Sandbox, running_sandbox

CRISIS = "Please cancel everything on my account. I want to end my life, I can't go on."
ORDINARY = "This update is killing me, the export button is gone. Can you bring it back?"
AUTH = ("agent@sandbox.test/token", SANDBOX_TOKEN)


def make_tenant(box: Sandbox, secret: str, *others: str, **extra) -> TenantConfig:
    return tenant_from_dict({
        "id": "acme", "vendor": "zendesk", "base_url": box.url, "webhook_secret": secret,
        "other_webhook_secrets": list(others), "trained_group_id": TRAINED_GROUP_ID,
        "requests_per_minute": 6000,
        "auth": {"kind": "api_token", "email": "agent@sandbox.test", "token": SANDBOX_TOKEN},
        **extra})


class Stack:
    def __init__(self, box: Sandbox, service: Service, server: TestServer) -> None:
        self.box, self.service, self.server = box, service, server
        self.url = str(server.make_url("")).rstrip("/")

    def ticket(self, text: str, *, tags: tuple[str, ...] = ()) -> int:
        requester = self.box.state.create_user(name="Customer", email=f"c{time.time_ns()}@x.org",
                                               locale="en-GB", time_zone="London")
        return self.box.state.create_ticket(subject="Help", body=text, requester_id=requester["id"],
                                            tags=list(tags)).id

    def notes(self, ticket_id: int) -> list[dict]:
        return [c for c in self.box.state.tickets[ticket_id].comments
                if not c["public"] and "careroute-job:" in c["html_body"]]

    async def settle(self, *ticket_ids: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(self.notes(t) for t in ticket_ids):
            assert time.monotonic() < deadline, "tickets were not handled in time"
            await asyncio.sleep(0.05)
        await self.box.state.sender.drain()
        assert await self.service.worker.drain(10)


@contextlib.asynccontextmanager
async def stack(tmp_path, *, event_route: bool = False, tenant_extra: dict | None = None,
                **sandbox) -> AsyncIterator[Stack]:
    extra = tenant_extra or {}
    async with running_sandbox(per_ticket_updates=1000, **sandbox) as box:
        tenants = TenantDirectory([make_tenant(box, "provisional-secret", **extra)])
        settings = ServiceSettings(data_dir=tmp_path / "data", retry_base_seconds=0.1,
                                   retry_max_seconds=0.5, shutdown_grace_seconds=0.5)
        service = Service(settings, tenants)
        server = TestServer(create_app(service), host="127.0.0.1")
        await server.start_server()
        try:
            url = str(server.make_url("")).rstrip("/")
            result = await provision(tenants.get("acme"), url, macro_texts={},
                                     context=ClientContext(budget=RateBudget(6000)))
            others: list[str] = []
            if event_route:  # the same account also subscribes an event webhook
                async with httpx.AsyncClient(base_url=box.url, auth=AUTH) as http:
                    hook = (await http.post("/api/v2/webhooks", json={"webhook": {
                        "name": "CareRoute events", "status": "active",
                        "endpoint": f"{url}/webhooks/zendesk/acme", "http_method": "POST",
                        "request_format": "json",
                        "subscriptions": ["zen:event-type:ticket.created"]}})).json()["webhook"]
                    secret = (await http.get(f"/api/v2/webhooks/{hook['id']}/signing_secret")
                              ).json()["signing_secret"]["secret"]
                others.append(secret)
            tenants.put(make_tenant(box, result.webhook_secret, *others, **extra))
            box.state.log.clear()
            yield Stack(box, service, server)
        finally:
            await server.close()


async def test_crisis_ticket_is_routed_once_and_an_ordinary_one_is_untouched(tmp_path):
    async with stack(tmp_path) as s:
        crisis = s.ticket(CRISIS, tags=("vip", "billing"))
        ordinary = s.ticket(ORDINARY, tags=("bug",))
        await s.settle(crisis)
        await asyncio.sleep(0.2)  # give the ordinary ticket's job every chance to write
        assert await s.service.worker.drain(5)
        flagged, left = s.box.state.tickets[crisis], s.box.state.tickets[ordinary]
        puts = [e.path for e in s.box.state.log.entries if e.method == "PUT"]
        decisions = await s.service.audit.recent("acme")
    assert {"vip", "billing", "careroute_screened"} <= set(flagged.tags)
    assert {"careroute_high", "careroute_imminent"} & set(flagged.tags)
    assert len(s.notes(crisis)) == 1
    assert flagged.priority in ("high", "urgent") and flagged.group_id == TRAINED_GROUP_ID
    assert left.tags == ["bug"] and not s.notes(ordinary) and left.priority is None
    assert f"/api/v2/tickets/{ordinary}" not in puts  # nothing at all was written to it
    assert {d["ticket_id"]: d["outcome"] for d in decisions} == {
        str(crisis): "applied", str(ordinary): "nothing_to_do"}


async def test_both_webhook_routes_and_redelivery_still_give_one_note(tmp_path):
    async with stack(tmp_path, event_route=True) as s:
        crisis = s.ticket(CRISIS)
        await s.settle(crisis)
        attempts = [a for a in s.box.state.sender.attempts if a["url"].endswith("/acme")]
        # Zendesk delivers the same invocation again (at-least-once): re-sign and resend it.
        first = attempts[0]
        body = first["body"].encode()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        secret = s.service.tenants.get("acme").webhook_secret.get_secret_value()
        async with httpx.AsyncClient() as http:
            again = await http.post(first["url"], content=body, headers={
                "Content-Type": "application/json", "X-Zendesk-Webhook-Invocation-Id":
                first["invocation_id"], "X-Zendesk-Webhook-Signature-Timestamp": stamp,
                "X-Zendesk-Webhook-Signature": sign(secret, stamp, body)})
        assert await s.service.worker.drain(5)
        decisions = [d for d in await s.service.audit.recent("acme") if d["event"] == "created"]
        counts = await s.service.queue.counts()
    assert len({a["webhook_id"] for a in attempts}) == 2  # trigger route and event route
    assert all(a["status"] == 202 for a in attempts)
    assert again.status_code == 202 and again.json()["duplicate"] is True
    assert len(decisions) == 1 and len(s.notes(crisis)) == 1
    assert counts == {"queued": 0, "leased": 0, "done": 1, "dead": 0}


async def test_429_storm_is_waited_out_and_gives_one_note_each(tmp_path):
    async with stack(tmp_path) as s:
        s.box.state.faults.update({"rate_limit_rate": 1.0, "retry_after": 1})
        tickets = [s.ticket(CRISIS) for _ in range(2)]
        deadline = time.monotonic() + 10
        while sum(e.status == 429 for e in s.box.state.log.entries) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        s.box.state.faults.update({"rate_limit_rate": 0.0})  # the window opens again
        await s.settle(*tickets)
        entries = sorted(s.box.state.log.entries, key=lambda e: e.at)
    limited = [e.at for e in entries if e.status == 429]
    # No request arrived while a Retry-After it had been told was still running (allowing for a
    # request already in flight when the 429 left: a few ms).
    for at in limited:
        early = [e for e in entries if at + 0.05 < e.at < at + 1.0 - 0.05]
        assert not early, f"{len(early)} requests sent before Retry-After elapsed"
    assert all(len(s.notes(t)) == 1 for t in tickets)


async def test_an_agent_edit_between_read_and_write_gives_a_409_and_still_one_note(tmp_path):
    async with stack(tmp_path) as s:
        # Slow API calls, so the agent's edit lands between CareRoute's read and its write.
        s.box.state.faults.update({"latency_ms": [60, 60]})
        crisis = s.ticket(CRISIS, tags=("vip",))
        read = f"/api/v2/tickets/{crisis}"
        deadline = time.monotonic() + 10
        # Wait until the ticket read was answered (status set after the handler ran).
        while not any(e.method == "GET" and e.path == read and e.status == 200
                      for e in s.box.state.log.entries):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        ticket = s.box.state.tickets[crisis]
        ticket.tags.append("agent_edit")  # an agent tags the ticket meanwhile
        ticket.touch()
        await s.settle(crisis)
        statuses = [e.status for e in s.box.state.log.entries if e.method == "PUT"
                    and e.path == f"/api/v2/tickets/{crisis}"]
        tags = set(ticket.tags)
    assert statuses[0] == 409 and statuses[-1] == 200  # conflict, re-read, re-plan, write
    assert len(s.notes(crisis)) == 1
    assert {"vip", "agent_edit", "careroute_screened"} <= tags  # nobody's tags were lost


async def test_wellbeing_rota_spreads_crisis_tickets_up_to_the_cap(tmp_path):
    rota = {"wellbeing": {"enabled": True, "max_per_shift": 1}}
    async with stack(tmp_path, tenant_extra=rota) as s:
        assignees = []
        for _ in range(4):
            crisis = s.ticket(CRISIS)
            await s.settle(crisis)
            assignees.append(s.box.state.tickets[crisis].assignee_id)
    first_three = assignees[:3]
    assert None not in first_three and len(set(first_three)) == 3  # one each, round the group
    assert assignees[3] is None  # everyone at the cap: the ticket waits in the group queue
