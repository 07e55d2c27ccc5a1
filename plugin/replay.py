"""`careroute replay`: what CareRoute would do with a saved delivery. Writes nothing, anywhere.

The file is either a webhook body exactly as the helpdesk sent it — then the ticket is read
through the vendor API (reads only) — or `{"webhook": <body>, "ticket": {...}}` with a saved
ticket (`text`, optional `subject`, `tags`, `priority`, `group_id`, `requester_locale`,
`requester_time_zone`), which needs no network at all.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from .config import TenantConfig
from .errors import ConfigError, PayloadError
from .model import Ticket, TicketRef
from .policy import plan as make_plan
from .policy import tier_for_tenant
from .ratelimit import RateBudget
from .resources import resolve_country
from .screening import screen
from .vendors import ClientContext, MemoryTokenStore, client_factory, webhook_module

REPLAY_JOB_ID = "replay"
_TAG = re.compile(r"<[^>]+>")


def _read(path: Path) -> tuple[bytes, dict[str, Any] | None]:
    try:
        raw = path.read_bytes()
    except OSError:
        raise ConfigError(f"cannot read {path}") from None
    try:
        data = json.loads(raw)
    except ValueError:
        return raw, None  # a raw body the vendor parser may still recover (Freshdesk)
    if isinstance(data, dict) and "webhook" in data:
        body = data["webhook"]
        raw_body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        ticket = data.get("ticket")
        if ticket is not None and not isinstance(ticket, dict):
            raise PayloadError("'ticket' must be an object")
        return raw_body, ticket
    return raw, None


def _saved_ticket(ref: TicketRef, saved: dict[str, Any]) -> Ticket:
    if not isinstance(saved.get("text"), str):
        raise PayloadError("the saved ticket needs a 'text'")
    return Ticket(vendor=ref.vendor, tenant_id=ref.tenant_id, ticket_id=ref.ticket_id,
                  text=saved["text"], subject=str(saved.get("subject", "")),
                  tags=tuple(saved.get("tags", ())), priority=saved.get("priority"),
                  group_id=saved.get("group_id"),
                  requester_locale=saved.get("requester_locale") or ref.hints.get("requester_locale"),
                  requester_time_zone=saved.get("requester_time_zone"))


async def _fetch(ref: TicketRef, tenant: TenantConfig) -> Ticket:
    context = ClientContext(budget=RateBudget(tenant.requests_per_minute or 60),
                            token_store=MemoryTokenStore())
    client = client_factory(tenant.vendor)(tenant, context)
    try:
        return await client.fetch(ref)
    finally:
        await client.aclose()


async def replay_file(path: Path, tenant: TenantConfig) -> dict[str, Any]:
    raw, saved = _read(path)
    webhook = webhook_module(tenant.vendor)
    ignorable = getattr(webhook, "IgnorableEvent", ())
    try:
        ref = webhook.parse(raw, tenant_id=tenant.id, headers={"content-type": "application/json"},
                            query={})
    except ignorable as exc:  # type: ignore[misc]
        reason = getattr(exc, "reason", "ignored event")
        return {"ignored": reason, "rendered": f"Ignored: {reason} (CareRoute would answer 202)."}
    ticket = _saved_ticket(ref, saved) if saved is not None else await _fetch(ref, tenant)
    assessment = screen(ticket.text, locale=ticket.requester_locale)
    tier = tier_for_tenant(assessment, tenant)
    plan = make_plan(assessment, tenant, ticket, job_id=REPLAY_JOB_ID, event=ref.event)
    country = resolve_country(ticket.requester_locale, ticket.requester_time_zone,
                              tenant.default_country)
    result = {
        "ticket": {"vendor": ref.vendor, "tenant": ref.tenant_id, "id": ref.ticket_id,
                   "event": ref.event, "dedupe_key": ref.dedupe_key},
        "assessment": {"tier": tier, "score": round(assessment.score, 3),
                       "language": assessment.language, "flags": sorted(assessment.flags),
                       "signals": [{"rule": s.rule, "category": s.category, "start": s.start,
                                    "end": s.end} for s in assessment.signals]},
        "country": country,
        "plan": {"empty": plan.is_empty, "add_tags": list(plan.add_tags),
                 "priority": plan.priority, "group_id": plan.group_id,
                 "macro_id": plan.macro_id, "apply_macro": plan.apply_macro,
                 "unassign": plan.unassign, "auto_reply": bool(plan.auto_reply_html),
                 "note_html": plan.note_html},
    }
    result["rendered"] = render(result, ticket)
    return result


def note_as_text(note_html: str) -> str:
    text = re.sub(r"<span[^>]*display:\s*none[^>]*>.*?</span>", "", note_html, flags=re.S)
    text = re.sub(r"</(p|li|h\d)>|<br\s*/?>", "\n", text)
    text = re.sub(r"<li[^>]*>", "  • ", text)
    text = html.unescape(_TAG.sub("", text))
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


def render(result: dict[str, Any], ticket: Ticket) -> str:
    a, p = result["assessment"], result["plan"]
    lines = [f"Ticket {result['ticket']['id']} ({result['ticket']['vendor']}, "
             f"{result['ticket']['event']}) → tier {a['tier']} · score {a['score']} · "
             f"language {a['language']} · country {result['country'] or 'unknown'}"]
    if a["flags"]:
        lines.append(f"  flags: {', '.join(a['flags'])}")
    for s in a["signals"]:
        lines.append(f"  signal {s['rule']} [{s['category']}] "
                     f"“{ticket.text[s['start']:s['end']]}”")
    if p["empty"]:
        lines.append("Plan: nothing to write.")
        return "\n".join(lines)
    lines.append("Plan:")
    lines.append(f"  tags      + {', '.join(p['add_tags']) or '—'}")
    lines.append(f"  priority  {p['priority'] or 'unchanged'}")
    lines.append(f"  group     {p['group_id'] if p['group_id'] is not None else 'unchanged'}")
    if p["macro_id"] is not None:
        lines.append(f"  macro     {p['macro_id']} ({'applied' if p['apply_macro'] else 'suggested'})")
    if p["auto_reply"]:
        lines.append("  auto-reply to the customer: yes")
    if p["note_html"]:
        lines.append("  internal note:")
        lines += [f"    {line}" for line in note_as_text(p["note_html"]).splitlines()]
    return "\n".join(lines)
