"""The sidebar API: what the Zendesk and Freshdesk apps show the agent about the open ticket.

    GET /api/v1/{vendor}/{tenant}/tickets/{ticket_id}/assessment
        Authorization: Bearer <the tenant's admin_token>

The answer is built from the audit row (ids, tier, score, rule ids, categories — never ticket
text) plus texts CareRoute writes itself: category labels in the tenant's agent language, the
crisis lines of the decision's country and a suggested reply. Both apps call through their
vendor's server-side proxy (ZAF `client.request` with `cors: false`, Freshworks request
templates), so no browser origin is allowed here (no CORS): the token never sits in a page.

Every refusal is the same 401 without detail (unknown tenant, wrong vendor, disabled tenant, no
token, wrong token), so the API does not tell which tenants exist.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timezone
from typing import Any, Mapping

from aiohttp import web

from ..config import TenantConfig
from ..resources import category_key, render_reply, resources_for
from ..resources.directory import ResourceSet
from ..resources.render import supported_language, texts
from ..service import Service
from .guard import guarded

ASSESSMENT_PATH = "/api/v1/{vendor}/{tenant_id}/tickets/{ticket_id}/assessment"
VENDORS = ("zendesk", "freshdesk")
NO_STORE = {"Cache-Control": "no-store"}
SERVICE: web.AppKey[Service] = web.AppKey("careroute_api_service", Service)


def unauthorized() -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(text='{"error": "unauthorized"}', content_type="application/json",
                                headers={"WWW-Authenticate": 'Bearer realm="careroute"',
                                         **NO_STORE})


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def token_matches(presented: str | None, expected: str | None) -> bool:
    """Constant-time comparison; no token configured never matches."""
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def authorized_tenant(request: web.Request, service: Service, *,
                      allow_disabled: bool = False) -> TenantConfig:
    """The tenant of `{vendor}/{tenant_id}` whose admin token the request carries, else 401."""
    vendor = request.match_info.get("vendor", "")
    tenant = service.tenants.get(request.match_info.get("tenant_id", ""))
    expected = tenant.admin_token.get_secret_value() if tenant and tenant.admin_token else None
    # Compare even when there is no tenant, so timing says nothing about which ids exist.
    matches = token_matches(bearer_token(request) or "", expected or "\0unset")
    if (tenant is None or not matches or tenant.vendor != vendor
            or not (tenant.enabled or allow_disabled)):
        raise unauthorized()
    return tenant


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds") \
        .replace("+00:00", "Z")


def category_labels(categories: list[str], language: str) -> list[str]:
    labels = texts(language).get("category", {})
    return [str(labels.get(category_key(c), labels.get("other", c))) for c in categories]


def resource_items(resources: ResourceSet) -> list[dict[str, Any]]:
    """Local lines (directly reachable first), then the tenant's own; the international
    directory when the country has none."""
    entries = list(resources.local_channels) + [e for e in resources.entries if not e.has_channel]
    entries += list(resources.custom)
    items = [{"service": e.service, "phone": e.phone, "sms": e.sms, "chat_url": e.chat_url,
              "url": e.url, "hours": e.hours} for e in entries]
    if not items:
        items.append({"service": resources.international.name, "phone": None, "sms": None,
                      "chat_url": None, "url": resources.international.url, "hours": None})
    return items


def assessment_view(record: Mapping[str, Any], tenant: TenantConfig) -> dict[str, Any]:
    """The sidebar's answer for one audit row."""
    categories = [str(c) for c in record.get("categories", [])]
    flags = [str(f) for f in record.get("flags", [])]
    language = supported_language(record.get("language")) or tenant.agent_language
    resources = resources_for(record.get("country") or tenant.default_country, tenant)
    flagged = record["tier"] != "none"
    variant = "third_party" if "third_party" in flags else "personal"
    return {
        "ticket_id": str(record["ticket_id"]),
        "tier": record["tier"],
        "score": round(float(record["score"]), 4),
        "rule_ids": [str(r) for r in record.get("rule_ids", [])],
        "categories": categories,
        "category_labels": category_labels(categories, tenant.agent_language),
        "flags": flags,
        "language": record.get("language"),
        "decided_at": iso_time(float(record["decided_at"])),
        "resources": resource_items(resources) if flagged else [],
        "emergency_number": resources.emergency_number if flagged else None,
        "suggested_reply_html": render_reply(language, resources, variant=variant)
        if flagged else None,
        "actions": [str(a) for a in record.get("actions", [])],
    }


async def assessment(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    tenant = authorized_tenant(request, service, allow_disabled=True)
    ticket_id = request.match_info["ticket_id"]
    record = await service.audit.latest_for_ticket(tenant.id, ticket_id)
    if record is None:
        return web.json_response({"error": "no assessment"}, status=404, headers=NO_STORE)
    return web.json_response(assessment_view(record, tenant), headers=NO_STORE)


def setup_api(app: web.Application, service: Service) -> None:
    app[SERVICE] = service
    app.router.add_get(ASSESSMENT_PATH.replace("{vendor}", "{vendor:zendesk|freshdesk}"),
                       guarded(assessment))
