"""Shared helpers for the Zendesk tests: a sandbox on an ephemeral port, tenants, a webhook receiver,
and an httpx transport that records what the client sends (for the contract test)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import httpx
from aiohttp import web

from plugin.config import TenantConfig, tenant_from_dict
from plugin.ratelimit import RateBudget
from plugin.sandbox.zendesk import ZENDESK_STATE, ZendeskState, create_app
from plugin.vendors import ClientContext, MemoryTokenStore
from plugin.zendesk.client import ZendeskClient

AGENT_EMAIL = "agent@sandbox.test"


@dataclass
class Sandbox:
    url: str
    state: ZendeskState
    app: web.Application


@contextlib.asynccontextmanager
async def running_sandbox(**kwargs: Any) -> AsyncIterator[Sandbox]:
    app = create_app(**kwargs)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Sandbox(f"http://127.0.0.1:{port}", app[ZENDESK_STATE], app)
    finally:
        await runner.cleanup()


def api_token_tenant(base_url: str, **extra: Any) -> TenantConfig:
    return tenant_from_dict({
        "id": "acme", "vendor": "zendesk", "base_url": base_url, "webhook_secret": "whsec-test",
        "auth": {"kind": "api_token", "email": AGENT_EMAIL, "token": "sandbox-token"}, **extra})


def oauth_tenant(base_url: str, tokens: dict[str, Any], *, expires_at: float | None = None,
                 **extra: Any) -> TenantConfig:
    auth = {"kind": "oauth", "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"], "client_id": "sandbox-client",
            "client_secret": "sandbox-secret"}
    if expires_at is not None:
        auth["expires_at"] = expires_at
    return tenant_from_dict({"id": "acme", "vendor": "zendesk", "base_url": base_url,
                             "webhook_secret": "whsec-test", "auth": auth, **extra})


@dataclass
class RecordedRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests to the network and keeps a copy of each (method, URL, headers, body)."""

    requests: list[RecordedRequest] = field(default_factory=list)
    inner: httpx.AsyncBaseTransport = field(default_factory=httpx.AsyncHTTPTransport)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.requests.append(RecordedRequest(request.method, str(request.url),
                                             dict(request.headers), body))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def make_context(per_minute: float = 6000, **kwargs: Any) -> ClientContext:
    return ClientContext(budget=RateBudget(per_minute), token_store=MemoryTokenStore(),
                         timeout_seconds=5.0, **kwargs)


def make_client(tenant: TenantConfig, context: ClientContext | None = None,
                transport: httpx.AsyncBaseTransport | None = None) -> ZendeskClient:
    return ZendeskClient(tenant, context or make_context(), transport=transport)


def customer_ticket(state: ZendeskState, text: str, *, tags: tuple[str, ...] = ("billing",),
                    locale: str = "en-GB", time_zone: str = "London") -> int:
    """A ticket a customer wrote, with a requester who has a locale and a time zone."""
    requester = state.create_user(name="Sam Customer", email=f"sam{len(state.users)}@example.com",
                                  locale=locale, time_zone=time_zone)
    return state.create_ticket(subject="Help with my account", body=text,
                               requester_id=requester["id"], tags=list(tags), via="web_form").id


@dataclass
class Receiver:
    """A stand-in for the CareRoute service: records each webhook request, answers `status`."""

    url: str
    received: list[dict[str, Any]]
    statuses: list[int]


@contextlib.asynccontextmanager
async def running_receiver(statuses: list[int] | None = None) -> AsyncIterator[Receiver]:
    received: list[dict[str, Any]] = []
    planned = list(statuses or [])

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        received.append({"path": request.path, "raw": raw,
                         "headers": {k.lower(): v for k, v in request.headers.items()}})
        status = planned.pop(0) if planned else 202
        return web.json_response({"accepted": status == 202}, status=status)

    app = web.Application()
    app.router.add_post("/webhooks/zendesk/{tenant}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Receiver(f"http://127.0.0.1:{port}", received, planned)
    finally:
        await runner.cleanup()


def json_of(raw: bytes) -> Any:
    return json.loads(raw) if raw else None
