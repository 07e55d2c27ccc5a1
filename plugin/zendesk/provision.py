"""`careroute provision zendesk`: create CareRoute's webhook, triggers and reply macros. Idempotent.

Everything is found by name first; what exists is left as it is, so a second run changes nothing.
`dry_run` only reads. The webhook's signing secret is read back for the tenant record.

What gets created (names are fixed; they are how a re-run recognises its own objects):
- webhook "CareRoute (<tenant>)": POST JSON to {service_url}/webhooks/zendesk/<tenant>,
  subscriptions ["conditional_ticket_events"] (fired by the triggers below);
- trigger "CareRoute: screen new tickets" — update_type is Create → CREATED_BODY;
- trigger "CareRoute: screen requester replies" — an end-user adds a public comment → COMMENT_BODY;
- trigger "CareRoute: agent feedback" — an agent (not the API) updates a ticket CareRoute
  screened → FEEDBACK_BODY with the current tags (the service compares them with its decision);
- one reply macro per entry of `macro_texts` ("CareRoute: wellbeing reply (<key>)"); by default
  (`macro_texts=None`) the personal and third-party replies in the tenant's agent language, with
  the crisis lines of its default country (plugin.resources.render_reply).
Trigger bodies carry ids and codes only; ticket text is always read through the API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..config import TenantConfig
from ..ratelimit import RateBudget
from ..resources import render_reply, resources_for
from ..vendors import ClientContext
from .client import ZendeskClient

CREATED_BODY = json.dumps({
    "event": "created", "ticket_id": "{{ticket.id}}",
    "requester_locale": "{{ticket.requester.locale}}", "via": "{{ticket.via}}"})
COMMENT_BODY = json.dumps({
    "event": "comment", "ticket_id": "{{ticket.id}}",
    "requester_locale": "{{ticket.requester.locale}}", "via": "{{ticket.via}}"})
FEEDBACK_BODY = json.dumps({
    "event": "feedback", "ticket_id": "{{ticket.id}}", "current_tags": "{{ticket.tags}}"})

NEW_TICKETS_TRIGGER = "CareRoute: screen new tickets"
REPLIES_TRIGGER = "CareRoute: screen requester replies"
FEEDBACK_TRIGGER = "CareRoute: agent feedback"
MACRO_TITLE = "CareRoute: wellbeing reply ({key})"
API_VIA_ID = "5"  # "Web service (API)": CareRoute's own updates never count as feedback

WEBHOOKS = "/api/v2/webhooks"
SIGNING_SECRET = "/api/v2/webhooks/{webhook_id}/signing_secret"
TRIGGERS = "/api/v2/triggers"
MACROS = "/api/v2/macros"
MAX_PAGES = 50


@dataclass
class ProvisionResult:
    steps: list[str] = field(default_factory=list)
    webhook_id: str | None = None
    webhook_secret: str | None = None
    trigger_ids: dict[str, int] = field(default_factory=dict)
    macro_ids: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(step.startswith("create") for step in self.steps)


def webhook_name(tenant: TenantConfig) -> str:
    return f"CareRoute ({tenant.id})"


def webhook_endpoint(tenant: TenantConfig, service_url: str) -> str:
    return f"{service_url.rstrip('/')}/webhooks/zendesk/{tenant.id}"


def trigger_definitions(tenant: TenantConfig, webhook_id: str) -> list[dict[str, Any]]:
    """The three triggers, as Zendesk's Create Trigger API takes them."""
    def notify(body: str) -> list[dict[str, Any]]:
        return [{"field": "notification_webhook", "value": [webhook_id, body]}]

    return [
        {"title": NEW_TICKETS_TRIGGER, "active": True,
         "description": "Sends new ticket ids to CareRoute for wellbeing screening.",
         "conditions": {"all": [{"field": "update_type", "operator": "is", "value": "Create"}],
                        "any": []},
         "actions": notify(CREATED_BODY)},
        {"title": REPLIES_TRIGGER, "active": True,
         "description": "Sends ticket ids to CareRoute when the requester writes again.",
         "conditions": {"all": [
             {"field": "update_type", "operator": "is", "value": "Change"},
             {"field": "role", "operator": "is", "value": "end_user"},
             {"field": "comment_is_public", "operator": "is", "value": "true"}], "any": []},
         "actions": notify(COMMENT_BODY)},
        {"title": FEEDBACK_TRIGGER, "active": True,
         "description": "Tells CareRoute when an agent updates a ticket it screened.",
         "conditions": {"all": [
             {"field": "update_type", "operator": "is", "value": "Change"},
             {"field": "role", "operator": "is", "value": "agent"},
             {"field": "current_via_id", "operator": "is_not", "value": API_VIA_ID},
             {"field": "current_tags", "operator": "includes", "value": tenant.marker_tag}],
             "any": []},
         "actions": notify(FEEDBACK_BODY)},
    ]


def macro_definition(tenant: TenantConfig, key: str, reply_html: str) -> dict[str, Any]:
    """A reply macro agents apply themselves: a public reply text plus a tag for feedback."""
    return {"title": MACRO_TITLE.format(key=key), "active": True,
            "description": "CareRoute reply with wellbeing resources. Review before sending.",
            "actions": [{"field": "comment_mode_is_public", "value": "true"},
                        {"field": "comment_value_html", "value": reply_html},
                        {"field": "current_tags", "value": f"{tenant.tag_prefix}_reply_used"}]}


def default_macro_texts(tenant: TenantConfig) -> dict[str, str]:
    """Reply macros for agents: {"<lang>": personal reply, "<lang>, third party": …}."""
    resources = resources_for(tenant.default_country, tenant)
    language = tenant.agent_language
    return {language: render_reply(language, resources, variant="personal"),
            f"{language}, third party": render_reply(language, resources, variant="third_party")}


async def _list_all(client: ZendeskClient, template: str, key: str,
                    params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every item of a list endpoint (offset `next_page` or cursor `links.next`)."""
    items: list[dict[str, Any]] = []
    page_params: dict[str, Any] = dict(params or {})
    for page in range(1, MAX_PAGES + 1):
        body = await client.request_json("GET", template, params=page_params or None)
        found = body.get(key) if isinstance(body, dict) else None
        items.extend(item for item in found or [] if isinstance(item, dict))
        links = body.get("links") if isinstance(body, dict) else None
        meta = body.get("meta") if isinstance(body, dict) else None
        if isinstance(meta, dict) and meta.get("has_more") and meta.get("after_cursor"):
            page_params = {**(params or {}), "page[after]": meta["after_cursor"]}
        elif isinstance(body, dict) and body.get("next_page") and not isinstance(links, dict):
            page_params = {**(params or {}), "page": page + 1}
        else:
            break
    return items


async def provision(tenant: TenantConfig, service_url: str, *, dry_run: bool = False,
                    context: ClientContext | None = None,
                    macro_texts: Mapping[str, str] | None = None) -> ProvisionResult:
    """Create what is missing; report every step.

    `macro_texts`: reply HTML per macro key (e.g. {"en": "<p>…</p>"}); None → default_macro_texts,
    {} → no macros.
    """
    context = context or ClientContext(budget=RateBudget(tenant.requests_per_minute or 200))
    client = ZendeskClient(tenant, context)
    result = ProvisionResult()
    try:
        await _provision_webhook(client, tenant, service_url, dry_run, result)
        await _provision_triggers(client, tenant, dry_run, result)
        texts = default_macro_texts(tenant) if macro_texts is None else macro_texts
        await _provision_macros(client, tenant, dry_run, texts, result)
    finally:
        await client.aclose()
    if not result.changed:
        result.steps.append("nothing to change")
    return result


async def _provision_webhook(client: ZendeskClient, tenant: TenantConfig, service_url: str,
                             dry_run: bool, result: ProvisionResult) -> None:
    name, endpoint = webhook_name(tenant), webhook_endpoint(tenant, service_url)
    existing = [hook for hook in await _list_all(client, WEBHOOKS, "webhooks",
                                                 {"filter[name_contains]": name})
                if hook.get("name") == name]
    if existing:
        hook = existing[0]
        result.webhook_id = str(hook["id"])
        result.steps.append(f"exists: webhook {name!r} ({result.webhook_id})")
        if hook.get("endpoint") != endpoint:
            result.steps.append(f"warning: webhook {name!r} points at {hook.get('endpoint')}, "
                                f"expected {endpoint}; change it in Zendesk or delete it and re-run")
    elif dry_run:
        result.steps.append(f"create webhook {name!r} → POST {endpoint}")
        return
    else:
        body = await client.request_json("POST", WEBHOOKS, json={"webhook": {
            "name": name, "status": "active", "endpoint": endpoint, "http_method": "POST",
            "request_format": "json", "subscriptions": ["conditional_ticket_events"],
            "description": "CareRoute wellbeing screening (created by careroute provision)"}})
        result.webhook_id = str(body["webhook"]["id"])
        result.steps.append(f"create webhook {name!r} → POST {endpoint} ({result.webhook_id})")
    if not dry_run:
        body = await client.request_json("GET", SIGNING_SECRET,
                                         path={"webhook_id": result.webhook_id})
        result.webhook_secret = body["signing_secret"]["secret"]
        result.steps.append("read webhook signing secret (store it as the tenant's webhook_secret)")


async def _provision_triggers(client: ZendeskClient, tenant: TenantConfig, dry_run: bool,
                              result: ProvisionResult) -> None:
    existing = {t.get("title"): t for t in await _list_all(client, TRIGGERS, "triggers")}
    for definition in trigger_definitions(tenant, result.webhook_id or "<new webhook>"):
        title = definition["title"]
        if title in existing:
            result.trigger_ids[title] = int(existing[title]["id"])
            result.steps.append(f"exists: trigger {title!r} ({existing[title]['id']})")
        elif dry_run:
            result.steps.append(f"create trigger {title!r}")
        else:
            body = await client.request_json("POST", TRIGGERS, json={"trigger": definition})
            result.trigger_ids[title] = int(body["trigger"]["id"])
            result.steps.append(f"create trigger {title!r} ({body['trigger']['id']})")


async def _provision_macros(client: ZendeskClient, tenant: TenantConfig, dry_run: bool,
                            macro_texts: Mapping[str, str], result: ProvisionResult) -> None:
    if not macro_texts:
        result.steps.append("skip: reply macros (no reply texts given)")
        return
    existing = {m.get("title"): m for m in await _list_all(client, MACROS, "macros")}
    for key, reply_html in macro_texts.items():
        definition = macro_definition(tenant, key, reply_html)
        title = definition["title"]
        if title in existing:
            result.macro_ids[key] = int(existing[title]["id"])
            result.steps.append(f"exists: macro {title!r} ({existing[title]['id']})")
        elif dry_run:
            result.steps.append(f"create macro {title!r}")
        else:
            body = await client.request_json("POST", MACROS, json={"macro": definition})
            result.macro_ids[key] = int(body["macro"]["id"])
            result.steps.append(f"create macro {title!r} ({body['macro']['id']})")
