"""Test doubles for the backbone tests: a scripted vendor client and a tiny pipeline.

The real screening, policy and vendor clients have their own tests; here the backbone (queue,
worker, HTTP, logging) is tested on its own, through the same interfaces.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from plugin.config import TenantConfig, tenant_from_dict
from plugin.errors import PermanentVendorError, RateLimitedError, TransientVendorError
from plugin.model import Assessment, Plan, Signal, Ticket, TicketRef, note_marker
from plugin.worker import Pipeline
from plugin.zendesk.webhook import sign

CANARY_TEXT = "CANARY-7f3a quiet harbour lighthouse"  # must never appear in any output
ZENDESK_SECRET = "zd-test-secret-0123456789"
OTHER_SECRET = "other-tenant-secret-987654321"


def zendesk_tenant(tenant_id: str = "acme", secret: str = ZENDESK_SECRET, **extra: Any) -> TenantConfig:
    raw = {"id": tenant_id, "vendor": "zendesk", "subdomain": tenant_id,
           "base_url": "http://127.0.0.1:9", "webhook_secret": secret,
           "auth": {"kind": "api_token", "email": "bot@example.test", "token": "api-token-abcdef"}}
    raw.update(extra)
    return tenant_from_dict(raw)


def signed_headers(body: bytes, secret: str = ZENDESK_SECRET, *, at: float | None = None,
                   invocation: str | None = None) -> dict[str, str]:
    stamp = datetime.fromtimestamp(at or time.time(), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {"Content-Type": "application/json",
               "X-Zendesk-Webhook-Signature": sign(secret, stamp, body),
               "X-Zendesk-Webhook-Signature-Timestamp": stamp}
    if invocation:
        headers["X-Zendesk-Webhook-Invocation-Id"] = invocation
    return headers


def trigger_body(ticket_id: int | str, **extra: Any) -> bytes:
    return json.dumps({"ticket_id": str(ticket_id), **extra}).encode()


@dataclass
class ScriptedClient:
    """A VendorClient whose tickets and failures are scripted by the test."""

    texts: dict[str, str] = field(default_factory=dict)
    failures: list[Exception] = field(default_factory=list)  # raised by apply, in order
    fetch_failures: list[Exception] = field(default_factory=list)
    applied: list[tuple[str, Plan]] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    delay: float = 0.0
    tags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    closed: bool = False

    async def fetch(self, ref: TicketRef) -> Ticket:
        self.fetched.append(ref.ticket_id)
        if self.fetch_failures:
            raise self.fetch_failures.pop(0)
        if self.delay:
            await asyncio.sleep(self.delay)
        return Ticket(vendor=ref.vendor, tenant_id=ref.tenant_id, ticket_id=ref.ticket_id,
                      text=self.texts.get(ref.ticket_id, "Where is my parcel?"),
                      tags=self.tags.get(ref.ticket_id, ()))

    async def apply(self, ref, ticket, plan, *, replan, journal):
        if self.failures:
            raise self.failures.pop(0)
        if await journal.get("applied"):
            return ()
        self.applied.append((ref.ticket_id, plan))
        self.tags[ref.ticket_id] = tuple(ticket.tags) + plan.add_tags
        await journal.put("applied", {"ok": True})
        return plan.actions()

    async def aclose(self) -> None:
        self.closed = True


class ScriptedVendors:
    """`factory_for` for Service/VendorClients: one ScriptedClient per tenant."""

    def __init__(self) -> None:
        self.clients: dict[str, ScriptedClient] = {}

    def client_for(self, tenant_id: str) -> ScriptedClient:
        return self.clients.setdefault(tenant_id, ScriptedClient())

    def __call__(self, vendor: str):
        def make(tenant: TenantConfig, context):
            return self.client_for(tenant.id)
        return make


def word_screen(text: str, *, locale: str | None = None) -> Assessment:
    """Pipeline double: 'crisis' → high, 'urgent-crisis' → imminent, anything else none."""
    if "urgent-crisis" in text:
        i = text.index("urgent-crisis")
        return Assessment("imminent", 0.9, (Signal("t.imminent", "timing", "en", i, i + 13, 1.0),))
    if "crisis" in text:
        i = text.index("crisis")
        return Assessment("high", 0.7, (Signal("t.high", "active_ideation", "en", i, i + 6, 1.0),))
    return Assessment("none", 0.0)


def simple_plan(assessment, tenant, ticket, *, job_id, event="created", now=None) -> Plan:
    if assessment.tier == "none" or tenant.marker_tag in ticket.tags:
        return Plan(tier=assessment.tier)
    return Plan(tier=assessment.tier,
                add_tags=(tenant.tier_tag(assessment.tier), tenant.marker_tag),
                priority="high", note_html=f"<p>CareRoute</p><span>{note_marker(job_id)}</span>",
                marker=job_id)


TEST_PIPELINE = Pipeline(screen=word_screen, plan=simple_plan,
                         tier_for_tenant=lambda a, t: t.screening.tier_for(a.score),
                         feedback_kind=lambda ref, ticket, tenant: None)

__all__ = ["CANARY_TEXT", "ScriptedClient", "ScriptedVendors", "TEST_PIPELINE", "PermanentVendorError",
           "RateLimitedError", "TransientVendorError", "signed_headers", "trigger_body",
           "zendesk_tenant", "OTHER_SECRET", "ZENDESK_SECRET"]
