"""Shared helpers for the Freshdesk tests: a sandbox and a webhook receiver on 127.0.0.1."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import httpx
from aiohttp import web
from aiohttp.test_utils import TestServer

from plugin.config import TenantConfig, tenant_from_dict
from plugin.freshdesk import webhook
from plugin.ratelimit import RateBudget
from plugin.sandbox.freshdesk import ADMIN_KEY, FRESHDESK_STATE, FreshdeskState, create_app
from plugin.vendors import ClientContext

SECRET = "s3cret-webhook-token-for-tests"


@dataclass
class Sandbox:
    url: str
    state: FreshdeskState
    http: httpx.AsyncClient  # the admin key, for arranging tickets as an agent would

    async def ticket(self, description: str, *, email: str = "person@example.com",
                     language: str | None = None, time_zone: str | None = None,
                     **fields: Any) -> dict[str, Any]:
        if language or time_zone:
            known = [c for c in self.state.contacts.values() if c["email"] == email]
            if not known:
                contact = {"email": email, "name": "Requester"}
                contact.update({k: v for k, v in (("language", language),
                                                  ("time_zone", time_zone)) if v})
                (await self.http.post("/api/v2/contacts", json=contact)).raise_for_status()
        response = await self.http.post("/api/v2/tickets", json={
            "subject": fields.pop("subject", "Help with my order"), "description": description,
            "email": email, **fields})
        response.raise_for_status()
        return response.json()

    async def customer_reply(self, ticket_id: int, body: str) -> dict[str, Any]:
        response = await self.http.post(f"/_sandbox/freshdesk/tickets/{ticket_id}/customer_reply",
                                        json={"body": body})
        response.raise_for_status()
        return response.json()

    def private_notes(self, ticket_id: int) -> list[dict[str, Any]]:
        return [c for c in self.state.conversations[ticket_id] if c["private"]]


@contextlib.asynccontextmanager
async def running_sandbox(**options: Any) -> AsyncIterator[Sandbox]:
    app = create_app(**options)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    async with httpx.AsyncClient(base_url=url, auth=(ADMIN_KEY, "X")) as http:
        try:
            yield Sandbox(url, app[FRESHDESK_STATE], http)
        finally:
            await server.close()


def tenant(base_url: str | None = None, *, key: str = ADMIN_KEY, **extra: Any) -> TenantConfig:
    raw: dict[str, Any] = {"id": "acme", "vendor": "freshdesk", "domain": "acme.freshdesk.com",
                           "webhook_secret": SECRET, "auth": {"kind": "api_key", "key": key}}
    if base_url:
        raw["base_url"] = base_url
    raw.update(extra)
    return tenant_from_dict(raw)


def context(per_minute: float = 6000, **extra: Any) -> ClientContext:
    return ClientContext(budget=RateBudget(per_minute, headroom=0.0), **extra)


@dataclass
class Receiver:
    """A stand-in for CareRoute's webhook endpoint: verifies and parses with the real code."""

    url: str
    statuses: list[int] = field(default_factory=list)  # answers to give, in order; then 202
    received: list[dict[str, Any]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def running_receiver(secret: str = SECRET) -> AsyncIterator[Receiver]:
    receiver = Receiver(url="")

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = dict(request.query)
        entry: dict[str, Any] = {"raw": raw, "headers": headers, "query": query}
        receiver.received.append(entry)
        try:
            webhook.verify(headers, raw, secret, 0.0, query=query)
            entry["ref"] = webhook.parse(raw, tenant_id="acme", headers=headers, query=query)
        except webhook.IgnorableEvent:
            entry["ignored"] = True
        except Exception as error:  # noqa: BLE001 - recorded for the test to assert on
            entry["error"] = error
            return web.json_response({"error": getattr(error, "reason", "error")},
                                     status=getattr(error, "http_status", 500))
        status = receiver.statuses.pop(0) if receiver.statuses else 202
        return web.json_response({"accepted": status == 202}, status=status)

    app = web.Application()
    app.router.add_post("/webhooks/freshdesk/{tenant}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    receiver.url = str(server.make_url("/webhooks/freshdesk/acme"))
    try:
        yield receiver
    finally:
        await server.close()
