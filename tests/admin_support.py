"""The whole product on 127.0.0.1 for the admin, agent-view and browser tests: both sandboxes, the
service with the real pipeline and vendor clients, the tenant registry, /admin and the agent view."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
from aiohttp.test_utils import TestServer

import freshdesk_support
import zendesk_support
from plugin.config import ServiceSettings, TenantConfig, tenant_from_dict
from plugin.handlers.admin import setup_admin
from plugin.handlers.http import create_app
from plugin.model import TicketRef
from plugin.registry import TenantRegistry, generate_key
from plugin.sandbox.agent_view import create_app as create_agent_view
from plugin.sandbox.freshdesk import ADMIN_KEY
from plugin.sandbox.zendesk import TRAINED_GROUP_ID
from plugin.service import Service
from plugin.tenants import TenantDirectory

ZENDESK_ADMIN_TOKEN = "zd-admin-token-5b1e9c"
FRESHDESK_ADMIN_TOKEN = "fd-admin-token-77d0aa"
FRESHDESK_TRAINED_GROUP = 2

CRISIS_TEXT = "I can't go on anymore. Tonight I will end it all, goodbye everyone."
HIGH_TEXT = "I feel so hopeless, I don't want to be here anymore."
ORDINARY_TEXT = "Where is my parcel? It was due on Tuesday."


def tenants_for(zendesk_url: str, freshdesk_url: str) -> list[TenantConfig]:
    return [
        tenant_from_dict({"id": "acme-zd", "vendor": "zendesk", "base_url": zendesk_url,
                          "webhook_secret": "whsec-acme", "admin_token": ZENDESK_ADMIN_TOKEN,
                          "trained_group_id": TRAINED_GROUP_ID,
                          "auth": {"kind": "api_token", "email": zendesk_support.AGENT_EMAIL,
                                   "token": "sandbox-token"}}),
        tenant_from_dict({"id": "acme-fd", "vendor": "freshdesk", "domain": "acme.freshdesk.com",
                          "base_url": freshdesk_url, "webhook_secret": freshdesk_support.SECRET,
                          "admin_token": FRESHDESK_ADMIN_TOKEN,
                          "trained_group_id": FRESHDESK_TRAINED_GROUP,
                          "auth": {"kind": "api_key", "key": ADMIN_KEY}}),
    ]


@dataclass
class Stack:
    service: Service
    registry: TenantRegistry
    url: str  # the service (webhooks, /admin)
    agent_view_url: str
    zendesk: zendesk_support.Sandbox
    freshdesk: freshdesk_support.Sandbox

    async def zendesk_ticket(self, text: str, *, locale: str = "en-GB") -> str:
        ticket_id = str(zendesk_support.customer_ticket(self.zendesk.state, text, locale=locale))
        await self._screen("zendesk", "acme-zd", ticket_id)
        return ticket_id

    async def freshdesk_ticket(self, text: str, *, language: str = "en") -> str:
        email = f"person{len(self.freshdesk.state.contacts) + 1}@example.com"
        ticket = await self.freshdesk.ticket(text, email=email, language=language)
        await self._screen("freshdesk", "acme-fd", str(ticket["id"]))
        return str(ticket["id"])

    async def _screen(self, vendor: str, tenant_id: str, ticket_id: str) -> None:
        """What a webhook delivery does, minus the signature: enqueue, then let the worker run."""
        ref = TicketRef(vendor=vendor, tenant_id=tenant_id, ticket_id=ticket_id,  # type: ignore[arg-type]
                        delivery_id=f"delivery-{vendor}-{ticket_id}")
        await self.service.enqueue(ref, time.time())
        assert await self.service.worker.drain(10)


@contextlib.asynccontextmanager
async def running_stack(tmp_path: Path, **settings: Any) -> AsyncIterator[Stack]:
    async with zendesk_support.running_sandbox() as zendesk, \
            freshdesk_support.running_sandbox() as freshdesk:
        directory = TenantDirectory(tenants_for(zendesk.url, freshdesk.url))
        service = Service(ServiceSettings(data_dir=tmp_path / "data", worker_concurrency=2,
                                          **settings), directory)
        registry = TenantRegistry(service.store, secret_key=generate_key(), directory=directory)
        app = create_app(service)
        setup_admin(app, service, registry=registry)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        view = TestServer(create_agent_view(zendesk_url=zendesk.url, freshdesk_url=freshdesk.url),
                          host="127.0.0.1")
        await view.start_server()
        try:
            yield Stack(service, registry, str(server.make_url("")).rstrip("/"),
                        str(view.make_url("")).rstrip("/"), zendesk, freshdesk)
        finally:
            await view.close()
            await server.close()


@contextlib.asynccontextmanager
async def signed_in(stack: Stack, tenant_id: str = "acme-zd",
                    token: str = ZENDESK_ADMIN_TOKEN) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client with an admin session (it went through the login form)."""
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
        page = await http.get("/admin")
        reply = await http.post("/admin/login", data={"tenant": tenant_id, "token": token,
                                                       "csrf": csrf_of(page.text)})
        assert reply.status_code == 303, reply.status_code
        yield http


def csrf_of(page: str) -> str:
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return page[start:page.index('"', start)]
