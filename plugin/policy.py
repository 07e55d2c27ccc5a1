"""Tier policy: what CareRoute writes to one ticket for one assessment. Pure — no I/O.

    tier_for_tenant(assessment, tenant) -> Tier
    plan(assessment, tenant, ticket, *, job_id, event="created", now=None, rota=None) -> Plan

Rules (issue 4; DESIGN.md "Decisions"):
- Tier none writes nothing, unless the tenant set `write_on_none` (then only the marker tag, on a
  new ticket).
- A flagged ticket gets exactly one tier tag, the marker tag and the tier's extra tags, minus the
  tags it already has. Tags are never removed; an existing higher priority is never lowered.
- Nothing new for a ticket already handled: our note for this job is there, or the ticket carries
  a CareRoute tier tag at or above the new tier (a later message can only escalate). One exception
  keeps a retried job whole: if our tags for this same tier are there but no CareRoute note is,
  and the tier wants a note, a new-ticket job plans the note alone (Freshdesk writes tags and
  note in two calls).
- The customer auto-reply is for imminent only, when the tier's action and the tenant both enable
  it, and (if so configured) only outside the tenant's business hours.
- Wellbeing rota (plugin.wellbeing, off by default): when the tenant enables it, the tier is one
  the rota covers, the ticket goes to the trained group and nobody else has it, the plan assigns
  the member the rota chooses from `rota` (read by the caller); nobody when all are at the cap.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timezone
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .config import AutoReply, TenantConfig, TierActions
from .model import (
    ACTION_TIERS,
    EMPTY_PLAN,
    Assessment,
    EventKind,
    Plan,
    Priority,
    Signal,
    Tier,
    Ticket,
    priority_rank,
    tier_rank,
)
from .resources import (
    ReplyVariant,
    ResourceSet,
    category_key,
    render_note,
    render_reply,
    resolve_country_with_basis,
    resources_for,
    supported_language,
)
from .resources.country import CountryGuess
from .resources.render import MASKED_CATEGORY_KEYS
from .wellbeing import Rota, settings_for

MAX_PHRASES = 3
MAX_PHRASE_CHARS = 60
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def tier_for_tenant(assessment: Assessment, tenant: TenantConfig) -> Tier:
    """The tenant's tier for the assessment's score (the tenant may move the thresholds)."""
    return tenant.screening.tier_for(assessment.score)


def existing_tier(tags: Iterable[str], tenant: TenantConfig) -> Tier | None:
    """The highest CareRoute tier tag the ticket already carries, if any."""
    present = {t.lower() for t in tags}
    found: Tier | None = None
    for tier in ACTION_TIERS:
        if tenant.tier_tag(tier) in present:
            found = tier
    return found


def plan(assessment: Assessment, tenant: TenantConfig, ticket: Ticket, *, job_id: str,
         event: EventKind = "created", now: datetime | None = None,
         rota: Rota | None = None) -> Plan:
    """What to write to `ticket`; EMPTY_PLAN when there is nothing (new) to write."""
    if event == "feedback" or job_id in ticket.note_markers:
        return EMPTY_PLAN
    tier = tier_for_tenant(assessment, tenant)
    present = {t.lower() for t in ticket.tags}
    metadata = _metadata(assessment, tier, job_id)

    if tier == "none":
        # A later message at tier none escalates nothing, so only a new ticket gets the marker.
        if tenant.write_on_none and event == "created" and tenant.marker_tag not in present:
            return Plan(tier="none", add_tags=(tenant.marker_tag,), marker=job_id, metadata=metadata)
        return EMPTY_PLAN

    action = tenant.actions.for_tier(tier)
    already = existing_tier(ticket.tags, tenant)
    if already is not None and tier_rank(already) >= tier_rank(tier):
        # Same tier, our tags there, no CareRoute note yet: a retry of the job that wrote them.
        note_missing = (event == "created" and already == tier and action.note
                        and tenant.marker_tag in present and not ticket.note_markers)
        if not note_missing:
            return EMPTY_PLAN
        context = _WriteContext(assessment, tenant, ticket)
        return Plan(tier=tier, note_html=context.note(tier, action, job_id), marker=job_id,
                    metadata=metadata)

    wants_auto_reply = (tier == "imminent" and action.auto_reply
                        and _auto_reply_allowed(tenant.auto_reply, now))
    context = (_WriteContext(assessment, tenant, ticket)
               if action.note or wants_auto_reply else None)
    group_id = _target_group(action, tenant, ticket)
    assignee = _rota_assignee(rota, tier, action, tenant, ticket, group_id)
    return Plan(
        tier=tier,
        add_tags=_tags_to_add(tier, action, tenant, present),
        priority=_raised_priority(action.priority, ticket.priority),
        group_id=group_id,
        note_html=context.note(tier, action, job_id) if context and action.note else None,
        macro_id=action.macro_id,
        apply_macro=action.apply_macro and action.macro_id is not None,
        unassign=action.unassign and ticket.assignee_id is not None and assignee is None,
        assignee_id=assignee,
        auto_reply_html=context.reply("automatic") if context and wants_auto_reply else None,
        marker=job_id,
        metadata=metadata,
    )


# ------------------------------------------------------------------ the parts of a plan


def _metadata(assessment: Assessment, tier: Tier, job_id: str) -> Mapping[str, Any]:
    return {"careroute": {"tier": tier, "score": round(float(assessment.score), 3),
                          "rules": list(assessment.rule_ids), "job_id": job_id}}


def _tags_to_add(tier: Tier, action: TierActions, tenant: TenantConfig,
                 present: set[str]) -> tuple[str, ...]:
    tier_tags = set(tenant.tier_tags)
    # An extra tag that is itself a tier tag would give the ticket two tiers: leave it out.
    extras = [t for t in action.tags if t.lower() not in tier_tags]
    wanted = dict.fromkeys([tenant.tier_tag(tier), tenant.marker_tag, *extras])
    return tuple(t for t in wanted if t.lower() not in present)


def _raised_priority(wanted: Priority | None, current: Priority | None) -> Priority | None:
    if wanted is None or priority_rank(wanted) <= priority_rank(current):
        return None
    return wanted


def _target_group(action: TierActions, tenant: TenantConfig, ticket: Ticket) -> int | None:
    group = action.group_id
    if group is None and action.route_to_trained_group:
        group = tenant.trained_group_id
    if not group or group == ticket.group_id:  # 0 means "leave the group alone"
        return None
    return group


def _rota_assignee(rota: Rota | None, tier: Tier, action: TierActions, tenant: TenantConfig,
                   ticket: Ticket, group_id: int | None) -> int | None:
    settings = settings_for(tenant)
    if rota is None or not settings.enabled or tier not in settings.tiers:
        return None
    lands_in = group_id if group_id is not None else ticket.group_id
    if tenant.trained_group_id is None or lands_in != tenant.trained_group_id:
        return None
    if ticket.assignee_id is not None and not action.unassign:
        return None  # someone already has it: the rota never takes a ticket from an agent
    chosen = rota.choose()
    return None if chosen == ticket.assignee_id else chosen


def _auto_reply_allowed(settings: AutoReply, now: datetime | None) -> bool:
    if not settings.enabled:
        return False
    if not settings.outside_business_hours_only:
        return True
    return outside_business_hours(settings, now or datetime.now(timezone.utc))


def outside_business_hours(settings: AutoReply, now: datetime) -> bool:
    """Is `now` outside the tenant's business hours and days (in its time zone)?

    A time zone or hours string we cannot read counts as "inside": the quiet choice, no message.
    """
    match = _HOURS.match(settings.business_hours)
    if not match:
        return False
    try:
        zone = ZoneInfo(settings.time_zone)
        start = time(int(match[1]), int(match[2]))
        end = time(int(match[3]) % 24, int(match[4]))
    except (ZoneInfoNotFoundError, ValueError):
        return False
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    local = now.astimezone(zone)
    if local.isoweekday() not in settings.business_days:
        return True
    moment = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= moment < end
    else:  # hours that run past midnight, e.g. 22:00-06:00
        inside = moment >= start or moment < end
    return not inside


def _shorten(phrase: str) -> str:
    phrase = " ".join(phrase.split())
    if len(phrase) <= MAX_PHRASE_CHARS:
        return phrase
    cut = phrase[:MAX_PHRASE_CHARS].rsplit(" ", 1)[0]
    return cut + "…"


def note_phrases(text: str, signals: tuple[Signal, ...]) -> tuple[tuple[str, ...], bool]:
    """A few of the customer's matched words for the note, and whether any were held back.

    Words matched by method, means or attempt rules are never quoted (safe messaging §3.3).
    """
    chosen: dict[str, int] = {}  # phrase → where it starts, strongest signals first
    masked = False
    for signal in sorted(signals, key=lambda s: (-s.weight, s.start)):
        if category_key(signal.category) in MASKED_CATEGORY_KEYS:
            masked = True
            continue
        if not (0 <= signal.start < signal.end <= len(text)):
            continue
        phrase = _shorten(text[signal.start:signal.end])
        if phrase and phrase not in chosen and len(chosen) < MAX_PHRASES:
            chosen[phrase] = signal.start
    # Shown in the order the customer wrote them.
    return tuple(sorted(chosen, key=chosen.__getitem__)), masked


class _WriteContext:
    """Country, resources and language for one ticket, worked out once and only when needed."""

    def __init__(self, assessment: Assessment, tenant: TenantConfig, ticket: Ticket) -> None:
        self.assessment = assessment
        self.tenant = tenant
        self.ticket = ticket
        self.guess: CountryGuess = resolve_country_with_basis(
            ticket.requester_locale, ticket.requester_time_zone, tenant.default_country)
        self.resources: ResourceSet = resources_for(self.guess.country, tenant)
        # The customer's reply follows the language they wrote in, then their account setting.
        self.reply_language = (supported_language(assessment.language)
                               or supported_language(ticket.requester_locale)
                               or supported_language(tenant.agent_language) or "en")

    def reply(self, variant: ReplyVariant) -> str:
        return render_reply(self.reply_language, self.resources, variant=variant)

    def note(self, tier: Tier, action: TierActions, job_id: str) -> str:
        variant: ReplyVariant = ("third_party" if "third_party" in self.assessment.flags
                                 else "personal")
        phrases, masked = note_phrases(self.ticket.text, self.assessment.signals)
        return render_note(
            language=self.tenant.agent_language,
            tier=tier,
            score=self.assessment.score,
            categories=self.assessment.categories,
            phrases=phrases,
            masked=masked,
            flags=self.assessment.flags,
            resources=self.resources,
            basis=self.guess.basis,
            reply_html=self.reply(variant),
            macro_id=action.macro_id,
            protocol_url=self.tenant.protocol_url,
            staff_support_url=self.tenant.staff_support_url,
            job_id=job_id,
        )
