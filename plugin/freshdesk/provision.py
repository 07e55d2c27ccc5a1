"""`careroute provision freshdesk`: the automation rules and the canned responses, idempotently.

Through the API (admin key; agent keys get 403):
- three automation rules with a "Trigger webhook" action to {service_url}/webhooks/freshdesk/{id},
  Basic auth (user `careroute`, the tenant's webhook secret as password) and the exact JSON bodies
  from plugin.freshdesk.webhook: new tickets (type 1), customer replies and agent feedback on
  tags (type 4);
- a canned-response folder "CareRoute" with one reply per language.
Rules and responses are found by name / title: equal → left alone, different → updated, missing →
created, so a re-run writes nothing. `dry_run` only reads. Where the API refuses (403: not an
admin key; 404: the account's plan has no such API), the exact manual steps are returned instead.
The webhook secret never appears in a step line.

The rule JSON (`performer`, `events`, `conditions`, action keys) follows Freshdesk's "Create an
Automation Rule" schema; the event names `reply_sent` and `tags` and the `content_layout` value
are [unverified] on a live account: check the rules once in Admin → Automations after provisioning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from plugin.config import TenantConfig
from plugin.errors import ConfigError, PermanentVendorError
from plugin.freshdesk.client import FreshdeskClient
from plugin.freshdesk.webhook import COMMENT_BODY, CREATE_BODY, FEEDBACK_BODY, TOKEN_HEADER
from plugin.ratelimit import RateBudget
from plugin.vendors import ClientContext

FOLDER_NAME = "CareRoute"
WEBHOOK_USER = "careroute"
RULES_PATH = "/api/v2/automations/{type}/rules"
RULE_PATH = "/api/v2/automations/{type}/rules/{id}"
ALL_SOURCES = [1, 2, 3, 7, 9, 10]


@dataclass
class ProvisionResult:
    steps: list[str] = field(default_factory=list)
    manual_steps: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RuleSpec:
    type_id: int
    name: str
    body: str
    performer: dict[str, Any] | None
    events: list[dict[str, Any]] | None
    conditions: list[dict[str, Any]]
    ui: str  # the same rule described for Admin → Workflows → Automations


RULES = (
    RuleSpec(1, "CareRoute: screen new tickets", CREATE_BODY, None, None,
             [{"name": "condition_set_1", "match_type": "any", "properties": [
                 {"resource_type": "ticket", "field_name": "source", "operator": "in",
                  "value": ALL_SOURCES}]}],
             "Ticket Creation tab. Condition: Source is any of Email, Portal, Phone, Chat, "
             "Feedback widget, Outbound email (a rule needs a condition; this one matches all)."),
    RuleSpec(4, "CareRoute: screen customer replies", COMMENT_BODY, {"type": 2},
             [{"field_name": "reply_sent"}], [],
             "Ticket Updates tab. When an action is performed by: Customer. "
             "Involves any of these events: Reply is sent. No condition."),
    RuleSpec(4, "CareRoute: agent feedback on tags", FEEDBACK_BODY, {"type": 1},
             [{"field_name": "tags"}], [],
             "Ticket Updates tab. When an action is performed by: Agent. "
             "Involves any of these events: Tags are changed (if your account lists no such "
             "event, skip this rule: feedback then comes only from the sidebar app)."),
)


def webhook_url(service_url: str, tenant: TenantConfig) -> str:
    if not service_url.startswith(("https://", "http://")):
        raise ConfigError("service URL must start with https:// (or http:// for local tests)")
    return f"{service_url.rstrip('/')}/webhooks/freshdesk/{tenant.id}"


def rule_payload(spec: RuleSpec, url: str, secret: str) -> dict[str, Any]:
    action = {"field_name": "trigger_webhook", "request_type": "POST", "url": url,
              "auth_header": {"username": WEBHOOK_USER, "password": secret},
              "content_type": "JSON", "content_layout": "2", "content": spec.body}
    payload: dict[str, Any] = {"name": spec.name, "active": True, "conditions": spec.conditions,
                               "actions": [action]}
    if spec.performer is not None:
        payload["performer"] = spec.performer
    if spec.events is not None:
        payload["events"] = spec.events
    return payload


def _same_rule(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Compare what decides behaviour; a password the API masks is not compared."""
    for key in ("active", "performer", "events", "conditions"):
        if (existing.get(key) or None) != (wanted.get(key) or None):
            return False
    have = [a for a in existing.get("actions") or [] if a.get("field_name") == "trigger_webhook"]
    if len(have) != 1:
        return False
    got, want = have[0], wanted["actions"][0]
    for key in ("request_type", "url", "content_type", "content_layout", "content"):
        if str(got.get(key)) != str(want.get(key)):
            return False
    auth = got.get("auth_header") or {}
    if auth.get("username") != WEBHOOK_USER:
        return False
    password = auth.get("password")
    return not password or "*" in str(password) or password == want["auth_header"]["password"]


def manual_rule_steps(spec: RuleSpec, url: str) -> list[str]:
    return [
        f"Admin → Workflows → Automations → {spec.ui} Rule name: \"{spec.name}\".",
        f"  Action: Trigger webhook. Request type POST. URL: {url}",
        f"  Requires authentication: yes. Username {WEBHOOK_USER}, password: this tenant's "
        f"webhook_secret (or, if custom headers are offered: {TOKEN_HEADER}: <webhook_secret>).",
        f"  Encoding: JSON. Content: Advanced. Body (exactly): {spec.body}",
    ]


def default_reply_texts(tenant: TenantConfig) -> dict[str, str]:
    """CareRoute's customer reply per language, with the tenant's default country's resources
    (none set → the international directory): the agent adapts it to the requester."""
    from plugin.resources import LANGUAGES, render_reply, resources_for

    resources = resources_for(tenant.default_country, tenant)
    return {language: render_reply(language, resources) for language in LANGUAGES}


async def _list(client: FreshdeskClient, template: str, **path: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in range(1, 21):
        body = await client.call("GET", template, params={"page": page, "per_page": 100}, **path)
        batch = [i for i in body if isinstance(i, dict)] if isinstance(body, list) else []
        items.extend(batch)
        if len(batch) < 100:
            return items
    return items


def _refused(error: PermanentVendorError) -> bool:
    """403 (not an admin) and 404 (plan without the API) call for manual steps."""
    return error.status in (403, 404)


async def _provision_rules(client: FreshdeskClient, url: str, secret: str, dry_run: bool,
                           result: ProvisionResult) -> None:
    existing: dict[int, list[dict[str, Any]]] = {}
    for spec in RULES:
        try:
            if spec.type_id not in existing:
                existing[spec.type_id] = await _list(client, RULES_PATH, type=spec.type_id)
        except PermanentVendorError as error:
            if not _refused(error):
                raise
            result.steps.append(f"rule \"{spec.name}\": the API refused ({error.reason}); "
                                "see the manual steps")
            result.manual_steps.extend(manual_rule_steps(spec, url))
            continue
        wanted = rule_payload(spec, url, secret)
        found = [r for r in existing[spec.type_id] if r.get("name") == spec.name]
        if found and _same_rule(found[0], wanted):
            result.steps.append(f"rule \"{spec.name}\": up to date")
        elif found:
            result.steps.append(f"rule \"{spec.name}\": {'would update' if dry_run else 'updated'}")
            if not dry_run:
                await client.call("PUT", RULE_PATH, json=wanted, type=spec.type_id,
                                  id=found[0]["id"])
        else:
            result.steps.append(f"rule \"{spec.name}\": {'would create' if dry_run else 'created'}"
                                f" (POST → {url})")
            if not dry_run:
                await client.call("POST", RULES_PATH, json=wanted, type=spec.type_id)


def _reply_title(language: str) -> str:
    return f"CareRoute reply ({language})"


async def _provision_canned(client: FreshdeskClient, texts: Mapping[str, str], dry_run: bool,
                            result: ProvisionResult) -> None:
    if not texts:
        result.steps.append("canned responses: no reply texts available; skipped")
        return
    try:
        folders = await client.call("GET", "/api/v2/canned_response_folders")
        folder = next((f for f in folders or [] if f.get("name") == FOLDER_NAME), None)
        responses: list[dict[str, Any]] = []
        if folder is None:
            result.steps.append(f"canned folder \"{FOLDER_NAME}\": "
                                f"{'would create' if dry_run else 'created'}")
            if not dry_run:
                folder = await client.call("POST", "/api/v2/canned_response_folder",
                                           json={"name": FOLDER_NAME})
        else:
            result.steps.append(f"canned folder \"{FOLDER_NAME}\": exists")
            responses = await client.call("GET", "/api/v2/canned_response_folders/{id}/responses",
                                          id=folder["id"]) or []
        by_title = {r.get("title"): r for r in responses if isinstance(r, dict)}
        for language, content in sorted(texts.items()):
            title = _reply_title(language)
            current = by_title.get(title)
            if current is not None and current.get("content_html") == content:
                result.steps.append(f"canned response \"{title}\": up to date")
                continue
            verb = "update" if current is not None else "create"
            result.steps.append(f"canned response \"{title}\": "
                                f"{'would ' + verb if dry_run else verb + 'd'}")
            if dry_run:
                continue
            if current is not None:
                await client.call("PUT", "/api/v2/canned_responses/{id}", id=current["id"],
                                  json={"content_html": content})
            else:
                assert folder is not None
                await client.call("POST", "/api/v2/canned_responses", json={
                    "title": title, "content_html": content, "folder_id": folder["id"],
                    "visibility": 0})
    except PermanentVendorError as error:
        if not _refused(error):
            raise
        result.steps.append(f"canned responses: the API refused ({error.reason}); "
                            "see the manual steps")
        result.manual_steps.append(f"Admin → Agent productivity → Canned responses → New folder "
                                   f"\"{FOLDER_NAME}\" (visible to all agents).")
        for language, content in sorted(texts.items()):
            result.manual_steps.append(f"  New canned response in \"{FOLDER_NAME}\": title "
                                       f"\"{_reply_title(language)}\", content (HTML): "
                                       f"{json.dumps(content, ensure_ascii=False)}")


async def provision(tenant: TenantConfig, service_url: str, *, dry_run: bool = False,
                    context: ClientContext | None = None,
                    reply_texts: Mapping[str, str] | None = None) -> ProvisionResult:
    if tenant.vendor != "freshdesk":
        raise ConfigError(f"tenant {tenant.id!r}: vendor: not a freshdesk tenant")
    url = webhook_url(service_url, tenant)
    secret = tenant.webhook_secret.get_secret_value()
    context = context or ClientContext(budget=RateBudget(tenant.requests_per_minute or 50,
                                                         headroom=tenant.rate_headroom))
    result = ProvisionResult()
    if dry_run:
        result.steps.append("dry run: nothing is written")
    client = FreshdeskClient(tenant, context)
    try:
        await _provision_rules(client, url, secret, dry_run, result)
        texts = dict(reply_texts) if reply_texts is not None else default_reply_texts(tenant)
        await _provision_canned(client, texts, dry_run, result)
    finally:
        await client.aclose()
    return result
