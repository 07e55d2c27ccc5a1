"""Tier policy: defaults, the write rules, auto-reply timing, tenant validation, and invariants."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from plugin.config import AutoReply, tenant_from_dict
from plugin.errors import ConfigError
from plugin.model import (
    EMPTY_PLAN,
    Assessment,
    Plan,
    Signal,
    Ticket,
    find_note_markers,
    priority_rank,
    tier_rank,
)
from plugin.policy import existing_tier, note_phrases, outside_business_hours, plan, tier_for_tenant

BASE = {"id": "acme", "vendor": "zendesk", "subdomain": "acme", "webhook_secret": "s",
        "auth": {"kind": "api_token", "email": "bot@acme.example", "token": "t"}}
TEXT = "Sorry to bother you. I can't do this anymore and I keep thinking about not being here."
SATURDAY_NOON = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
MONDAY_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
TIER_SCORES = {"none": 0.1, "concern": 0.4, "high": 0.7, "imminent": 0.9}


def make_tenant(**extra):
    return tenant_from_dict({**BASE, **extra})


def make_ticket(**fields) -> Ticket:
    values = dict(vendor="zendesk", tenant_id="acme", ticket_id="7", text=TEXT)
    values.update(fields)
    return Ticket(**values)


def make_assessment(tier: str = "high", *, score: float | None = None, language: str = "en",
                    flags=frozenset(), signals=None) -> Assessment:
    if signals is None:
        signals = (Signal("en.hopeless.01", "hopelessness", "en", 21, 45, 0.3),
                   Signal("en.passive.02", "passive_ideation", "en", 59, 87, 0.6))
    return Assessment(tier=tier, score=TIER_SCORES[tier] if score is None else score,  # type: ignore[arg-type]
                      signals=signals, flags=frozenset(flags), language=language)


def apply(result: Plan, ticket: Ticket) -> Ticket:
    """What a vendor client does with a plan (union of tags, never a lower priority)."""
    markers = ticket.note_markers
    if result.note_html:
        markers = markers | find_note_markers(result.note_html)
    return dataclasses.replace(
        ticket,
        tags=ticket.tags + result.add_tags,
        priority=result.priority or ticket.priority,
        group_id=result.group_id if result.group_id is not None else ticket.group_id,
        assignee_id=None if result.unassign else ticket.assignee_id,
        note_markers=markers,
    )


# ------------------------------------------------------------------ defaults per tier


def test_tier_none_writes_nothing():
    assert plan(make_assessment("none"), make_tenant(), make_ticket(), job_id="j1") == EMPTY_PLAN


def test_tier_none_with_write_on_none_writes_only_the_marker():
    tenant = make_tenant(write_on_none=True)
    result = plan(make_assessment("none"), tenant, make_ticket(), job_id="j1")
    assert result.add_tags == ("careroute_screened",)
    assert result.actions() == ("tags",) and result.marker == "j1"
    again = plan(make_assessment("none"), tenant, make_ticket(tags=("careroute_screened",)),
                 job_id="j2")
    assert again.is_empty
    later = plan(make_assessment("none"), tenant, make_ticket(), job_id="c1", event="comment")
    assert later.is_empty


def test_concern_default_is_tags_only():
    result = plan(make_assessment("concern"), make_tenant(trained_group_id=5), make_ticket(),
                  job_id="j1")
    assert result.tier == "concern"
    assert result.add_tags == ("careroute_concern", "careroute_screened")
    assert result.actions() == ("tags",)
    assert result.marker == "j1"


def test_high_default_tags_note_priority_and_trained_group():
    result = plan(make_assessment("high"), make_tenant(trained_group_id=5),
                  make_ticket(priority="normal"), job_id="j1")
    assert result.add_tags == ("careroute_high", "careroute_screened")
    assert result.priority == "high" and result.group_id == 5
    assert result.note_html and find_note_markers(result.note_html) == {"j1"}
    assert result.auto_reply_html is None and not result.unassign


def test_imminent_default_is_urgent():
    result = plan(make_assessment("imminent"), make_tenant(trained_group_id=5), make_ticket(),
                  job_id="j1")
    assert result.priority == "urgent" and result.group_id == 5
    assert "careroute_imminent" in result.add_tags and result.note_html


def test_tier_comes_from_the_tenant_thresholds_not_the_screener_label():
    tenant = make_tenant(screening={"concern": 0.2, "high": 0.3, "imminent": 0.95})
    assessment = make_assessment("concern", score=0.4)
    assert tier_for_tenant(assessment, tenant) == "high"
    assert tier_for_tenant(make_assessment("imminent", score=0.9), tenant) == "high"
    assert plan(assessment, tenant, make_ticket(), job_id="j").tier == "high"


def test_metadata_carries_ids_and_score_never_text():
    result = plan(make_assessment("high"), make_tenant(), make_ticket(), job_id="j9")
    assert result.metadata == {"careroute": {
        "tier": "high", "score": 0.7,
        "rules": ["en.hopeless.01", "en.passive.02"], "job_id": "j9"}}
    assert "bother" not in repr(result.metadata)


# ------------------------------------------------------------------ what the actions do


def test_existing_higher_priority_is_never_lowered():
    result = plan(make_assessment("high"), make_tenant(), make_ticket(priority="urgent"),
                  job_id="j1")
    assert result.priority is None
    same = plan(make_assessment("high"), make_tenant(), make_ticket(priority="high"), job_id="j1")
    assert same.priority is None


def test_tags_the_ticket_has_are_not_added_again_and_extra_tier_tags_are_dropped():
    tenant = make_tenant(actions={"high": {"note": True, "tags": ["wellbeing", "careroute_imminent",
                                                                  "VIP"]}})
    result = plan(make_assessment("high"), tenant, make_ticket(tags=("vip", "Careroute_Screened")),
                  job_id="j1")
    assert result.add_tags == ("careroute_high", "wellbeing")


def test_tag_prefix_is_the_tenants():
    result = plan(make_assessment("concern"), make_tenant(tag_prefix="wellbeing"), make_ticket(),
                  job_id="j1")
    assert result.add_tags == ("wellbeing_concern", "wellbeing_screened")


def test_group_rules():
    tenant = make_tenant(trained_group_id=5, actions={
        "high": {"note": True, "group_id": 9},
        "imminent": {"note": True, "group_id": 0, "route_to_trained_group": True},
        "concern": {"route_to_trained_group": True},
    })
    assert plan(make_assessment("high"), tenant, make_ticket(), job_id="j").group_id == 9
    assert plan(make_assessment("imminent"), tenant, make_ticket(), job_id="j").group_id is None
    assert plan(make_assessment("concern"), tenant, make_ticket(), job_id="j").group_id == 5
    assert plan(make_assessment("concern"), tenant, make_ticket(group_id=5), job_id="j").group_id \
        is None
    no_group = make_tenant()
    assert plan(make_assessment("high"), no_group, make_ticket(), job_id="j").group_id is None


def test_unassign_macro_and_apply_macro():
    tenant = make_tenant(actions={"imminent": {"note": True, "unassign": True, "macro_id": 77,
                                               "apply_macro": True}})
    result = plan(make_assessment("imminent"), tenant, make_ticket(assignee_id=3), job_id="j")
    assert result.unassign and result.macro_id == 77 and result.apply_macro
    assert "77" in (result.note_html or "")
    unassigned = plan(make_assessment("imminent"), tenant, make_ticket(), job_id="j")
    assert not unassigned.unassign
    suggest_only = make_tenant(actions={"high": {"note": True, "macro_id": 12}})
    result = plan(make_assessment("high"), suggest_only, make_ticket(), job_id="j")
    assert result.macro_id == 12 and not result.apply_macro and "macro" not in result.actions()


# ------------------------------------------------------------------ the note


def test_note_in_agent_language_with_reply_in_customer_language_and_local_resources():
    tenant = make_tenant(agent_language="de", default_country="DE")
    ticket = make_ticket(requester_time_zone="Brisbane")
    result = plan(make_assessment("high", language="es"), tenant, ticket, job_id="j1")
    note = result.note_html or ""
    assert "Was jetzt zu tun ist" in note
    assert "Gracias por escribirnos" in note
    assert "13 11 14" in note and "Zeitzone" in note
    assert "„I can&#x27;t do this anymore“" in note


def test_unknown_agent_language_gives_an_english_note():
    result = plan(make_assessment("high"), make_tenant(agent_language="ja"), make_ticket(),
                  job_id="j1")
    assert "What to do now" in (result.note_html or "")
    assert "country unknown" in (result.note_html or "")


def test_third_party_flag_gives_the_third_party_reply():
    result = plan(make_assessment("high", flags={"third_party"}), make_tenant(),
                  make_ticket(requester_locale="en-US"), job_id="j1")
    note = result.note_html or ""
    assert "worried about someone else" in note and "about someone else" in note
    assert "988" in note and "911" in note


def test_method_words_are_never_quoted_back():
    text = "I have decided. XYZ-DETAIL is ready. Goodbye everyone tonight."
    def span(words):
        return text.index(words), text.index(words) + len(words)

    signals = (Signal("en.plan.means", "plan_method_means", "en", *span("XYZ-DETAIL"), 0.9),
               Signal("en.farewell.goodbye", "farewell", "en", *span("Goodbye everyone"), 0.5),
               Signal("en.timing.tonight", "timing", "en", *span("tonight"), 0.4))
    phrases, masked = note_phrases(text, signals)
    assert phrases == ("Goodbye everyone", "tonight") and masked
    result = plan(make_assessment("imminent", signals=signals), make_tenant(),
                  make_ticket(text=text), job_id="j1")
    assert "XYZ-DETAIL" not in (result.note_html or "")
    assert "details not repeated here" in (result.note_html or "")


def test_phrases_are_few_short_and_in_range():
    text = "".join(f"w{i:03d} " for i in range(100))  # 100 distinct five-character words
    signals = tuple(Signal(f"r{i}", "distress", "en", i * 5, i * 5 + 4, 0.1) for i in range(10))
    signals += (Signal("long", "distress", "en", 0, 400, 0.9),
                Signal("bad", "distress", "en", 490, 900, 1.0))
    phrases, masked = note_phrases(text, signals)
    assert len(phrases) == 3 and not masked
    assert all(len(p) <= 61 for p in phrases)
    assert phrases[0].startswith("w000 w001") and phrases[0].endswith("…")  # strongest, shortened
    assert phrases[1:] == ("w000", "w001")


# ------------------------------------------------------------------ re-runs and later messages


def test_rerun_with_the_same_job_plans_nothing():
    ticket = make_ticket(note_markers=frozenset({"j1"}))
    assert plan(make_assessment("imminent"), make_tenant(), ticket, job_id="j1").is_empty


def test_handled_ticket_plans_nothing_new():
    ticket = make_ticket(tags=("careroute_high", "careroute_screened"),
                         note_markers=frozenset({"j0"}))
    assert plan(make_assessment("high"), make_tenant(), ticket, job_id="j1").is_empty
    assert plan(make_assessment("concern"), make_tenant(), ticket, job_id="j1").is_empty


def test_a_later_message_can_only_escalate():
    ticket = make_ticket(tags=("careroute_high", "careroute_screened"))
    for tier in ("concern", "high"):
        assert plan(make_assessment(tier), make_tenant(), ticket, job_id="c1",
                    event="comment").is_empty
    result = plan(make_assessment("imminent"), make_tenant(), ticket, job_id="c1", event="comment")
    assert result.add_tags == ("careroute_imminent",) and result.priority == "urgent"


def test_feedback_events_plan_nothing():
    assert plan(make_assessment("imminent"), make_tenant(), make_ticket(), job_id="f1",
                event="feedback").is_empty


def test_a_retried_job_whose_tags_landed_but_note_did_not_plans_the_note_alone():
    ticket = make_ticket(tags=("careroute_high", "careroute_screened"), priority="high")
    result = plan(make_assessment("high"), make_tenant(trained_group_id=5), ticket, job_id="j1")
    assert result.actions() == ("note",) and find_note_markers(result.note_html or "") == {"j1"}
    assert plan(make_assessment("high"), make_tenant(), apply(result, ticket), job_id="j1").is_empty
    higher = make_ticket(tags=("careroute_imminent", "careroute_screened"))
    assert plan(make_assessment("high"), make_tenant(), higher, job_id="j1").is_empty
    by_an_agent = make_ticket(tags=("careroute_high",))  # no marker: CareRoute never wrote here
    assert plan(make_assessment("high"), make_tenant(), by_an_agent, job_id="j1").is_empty


def test_existing_tier_reads_the_highest_tier_tag():
    tenant = make_tenant()
    assert existing_tier(("careroute_concern", "careroute_imminent", "x"), tenant) == "imminent"
    assert existing_tier(("careroute_screened",), tenant) is None


# ------------------------------------------------------------------ auto-reply


def auto_reply_tenant(**auto):
    return make_tenant(actions={"imminent": {"note": True, "priority": "urgent",
                                             "auto_reply": True}},
                       auto_reply={"enabled": True, **auto})


def test_auto_reply_outside_business_hours_only():
    tenant = auto_reply_tenant()
    weekend = plan(make_assessment("imminent"), tenant, make_ticket(), job_id="j",
                   now=SATURDAY_NOON)
    assert weekend.auto_reply_html and "automatic reply" in weekend.auto_reply_html
    weekday = plan(make_assessment("imminent"), tenant, make_ticket(), job_id="j", now=MONDAY_NOON)
    assert weekday.auto_reply_html is None
    evening = MONDAY_NOON.replace(hour=20)
    assert plan(make_assessment("imminent"), tenant, make_ticket(), job_id="j",
                now=evening).auto_reply_html


def test_auto_reply_needs_tenant_and_action_and_imminent():
    disabled = make_tenant(actions={"imminent": {"note": True, "auto_reply": True}})
    assert plan(make_assessment("imminent"), disabled, make_ticket(), job_id="j",
                now=SATURDAY_NOON).auto_reply_html is None
    not_in_action = make_tenant(auto_reply={"enabled": True})
    assert plan(make_assessment("imminent"), not_in_action, make_ticket(), job_id="j",
                now=SATURDAY_NOON).auto_reply_html is None
    tenant = auto_reply_tenant(outside_business_hours_only=False)
    assert plan(make_assessment("high"), tenant, make_ticket(), job_id="j",
                now=SATURDAY_NOON).auto_reply_html is None
    always = plan(make_assessment("imminent"), tenant, make_ticket(), job_id="j", now=MONDAY_NOON)
    assert always.auto_reply_html and "auto_reply" in always.actions()


def test_auto_reply_is_in_the_customers_language():
    result = plan(make_assessment("imminent", language="nl"), auto_reply_tenant(),
                  make_ticket(requester_locale="nl-NL"), job_id="j", now=SATURDAY_NOON)
    assert "Dit is een automatisch antwoord" in (result.auto_reply_html or "")
    assert "113" in (result.auto_reply_html or "")


def test_business_hours_follow_the_tenant_time_zone():
    settings = make_tenant(auto_reply={"time_zone": "America/Los_Angeles"}).auto_reply
    monday_10_in_la = datetime(2026, 11, 23, 18, 0, tzinfo=timezone.utc)
    assert not outside_business_hours(settings, monday_10_in_la)
    utc = make_tenant().auto_reply
    assert outside_business_hours(utc, monday_10_in_la)
    assert outside_business_hours(settings, datetime(2026, 11, 23, 12, 0))  # naive = UTC, 4:00 LA


def test_business_hours_past_midnight_and_unreadable_settings():
    night = make_tenant(auto_reply={"business_hours": "22:00-06:00",
                                    "business_days": [1, 2, 3, 4, 5, 6, 7]}).auto_reply
    assert not outside_business_hours(night, MONDAY_NOON.replace(hour=23))
    assert outside_business_hours(night, MONDAY_NOON)
    # The tenants file rejects such settings at load (test_config.py); should one slip through
    # (model_construct skips validation), the policy still sends nothing rather than guessing.
    bad_zone = AutoReply.model_construct(**{**night.model_dump(), "time_zone": "Mars/Olympus"})
    assert not outside_business_hours(bad_zone, SATURDAY_NOON)
    bad_hours = AutoReply.model_construct(**{**night.model_dump(), "business_hours": "nine to five"})
    assert not outside_business_hours(bad_hours, SATURDAY_NOON)


# ------------------------------------------------------------------ tenant validation (config.py)


@pytest.mark.parametrize("extra, key", [
    ({"actions": {"urgent": {"note": True}}}, "actions.urgent"),
    ({"actions": {"high": {"priority": "critical"}}}, "actions.high.priority"),
    ({"screening": {"concern": -0.1}}, "screening.concern"),
    ({"screening": {"imminent": 1.5}}, "screening.imminent"),
    ({"screening": {"concern": 0.7, "high": 0.6}}, "screening"),
    ({"screening": {"high": 0.9, "imminent": 0.9}}, "screening"),
    ({"actions": {"high": {"auto_reply": True}}}, "actions"),
    ({"actions": {"high": {"colour": "red"}}}, "actions.high.colour"),
])
def test_invalid_tenant_config_fails_at_load_naming_tenant_and_key(extra, key):
    with pytest.raises(ConfigError) as caught:
        tenant_from_dict({**BASE, **extra})
    message = str(caught.value)
    assert message.startswith("tenant 'acme': ") and f" {key}:" in message


def test_thresholds_out_of_order_say_so():
    with pytest.raises(ConfigError, match="thresholds must rise"):
        tenant_from_dict({**BASE, "screening": {"concern": 0.5, "high": 0.4, "imminent": 0.9}})


# ------------------------------------------------------------------ invariants (hypothesis)

TAG_POOL = ["careroute_concern", "careroute_high", "careroute_imminent", "careroute_screened",
            "vip", "billing", "Careroute_High"]
PRIORITIES = [None, "low", "normal", "high", "urgent"]

action_tables = st.fixed_dictionaries({
    "note": st.booleans(),
    "priority": st.sampled_from(PRIORITIES),
    "group_id": st.one_of(st.none(), st.just(0), st.integers(1, 4)),
    "route_to_trained_group": st.booleans(),
    "tags": st.lists(st.sampled_from(["wellbeing", "careroute_imminent", "vip"]), max_size=2),
    "unassign": st.booleans(),
    "macro_id": st.one_of(st.none(), st.integers(1, 9)),
    "apply_macro": st.booleans(),
})


@st.composite
def tenants(draw):
    cuts = sorted(draw(st.lists(st.floats(0, 1), min_size=3, max_size=3, unique=True)))
    assume(cuts[0] < cuts[1] < cuts[2])
    imminent = draw(action_tables)
    imminent["auto_reply"] = draw(st.booleans())
    return tenant_from_dict({
        **BASE,
        "screening": dict(zip(("concern", "high", "imminent"), cuts)),
        "actions": {"concern": draw(action_tables), "high": draw(action_tables),
                    "imminent": imminent},
        "trained_group_id": draw(st.one_of(st.none(), st.integers(1, 4))),
        "write_on_none": draw(st.booleans()),
        "auto_reply": {"enabled": draw(st.booleans()),
                       "outside_business_hours_only": draw(st.booleans())},
    })


tickets = st.builds(
    make_ticket,
    tags=st.lists(st.sampled_from(TAG_POOL), max_size=4, unique=True).map(tuple),
    priority=st.sampled_from(PRIORITIES),
    group_id=st.one_of(st.none(), st.integers(1, 4)),
    assignee_id=st.one_of(st.none(), st.integers(1, 4)),
    note_markers=st.frozensets(st.sampled_from(["job-a", "job-b"]), max_size=2),
    requester_locale=st.sampled_from([None, "en-GB", "de-DE", "pt_BR", "es-419"]),
)
scores = st.floats(0, 1)
events = st.sampled_from(["created", "comment"])
moments = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1),
                       timezones=st.just(timezone.utc))
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None,
                             suppress_health_check=[HealthCheck.filter_too_much])


def tier_tag_count(tags, tenant) -> int:
    return sum(1 for t in tags if t.lower() in tenant.tier_tags)


@PROPERTY_SETTINGS
@given(tenant=tenants(), ticket=tickets, score=scores, event=events, now=moments,
       job_id=st.sampled_from(["job-a", "job-c"]))
def test_plan_invariants(tenant, ticket, score, event, now, job_id):
    assessment = make_assessment("high", score=score)
    result = plan(assessment, tenant, ticket, job_id=job_id, event=event, now=now)
    tier = tier_for_tenant(assessment, tenant)
    present = {t.lower() for t in ticket.tags}
    already = existing_tier(ticket.tags, tenant)

    # none writes nothing (or only the marker when the tenant asked for it)
    if tier == "none":
        assert result.add_tags in ((), (tenant.marker_tag,))
        assert result.actions() in ((), ("tags",))
        if not tenant.write_on_none:
            assert result.is_empty
    # never lowers priority
    if result.priority is not None:
        assert priority_rank(result.priority) > priority_rank(ticket.priority)
    # never removes tags, never re-adds one
    assert not {t.lower() for t in result.add_tags} & present
    after = apply(result, ticket)
    assert set(ticket.tags) <= set(after.tags)
    # exactly one tier tag: at most one added, and it is the plan's own
    added_tier_tags = [t for t in result.add_tags if t in tenant.tier_tags]
    assert len(added_tier_tags) <= 1
    if added_tier_tags:
        assert added_tier_tags == [tenant.tier_tag(result.tier)] and result.tier == tier
    if not result.is_empty and result.tier != "none":
        assert tenant.tier_tag(result.tier) in {t.lower() for t in after.tags}
    # already handled or a later, not higher message: nothing new
    if job_id in ticket.note_markers:
        assert result.is_empty
    if event == "comment" and already is not None and tier_rank(already) >= tier_rank(tier):
        assert result.is_empty
    # the job id travels in the note; the auto-reply is for imminent only
    if result.note_html:
        assert find_note_markers(result.note_html) == {job_id}
    if result.auto_reply_html:
        assert tier == "imminent" and tenant.auto_reply.enabled
    if not result.is_empty:
        assert result.marker == job_id and result.metadata["careroute"]["tier"] == result.tier
    assert "bother" not in repr(result.metadata)


@PROPERTY_SETTINGS
@given(tenant=tenants(), ticket=tickets, score=scores, event=events, now=moments,
       rerun_event=events)
def test_rerun_after_apply_is_idempotent(tenant, ticket, score, event, now, rerun_event):
    assessment = make_assessment("high", score=score)
    first = plan(assessment, tenant, ticket, job_id="job-c", event=event, now=now)
    handled = apply(first, ticket)
    assert plan(assessment, tenant, handled, job_id="job-c", event=event, now=now).is_empty
    if not first.is_empty:
        again = plan(assessment, tenant, handled, job_id="job-d", event=rerun_event, now=now)
        assert again.is_empty


@PROPERTY_SETTINGS
@given(tenant=tenants(), message_scores=st.lists(scores, min_size=1, max_size=5))
def test_messages_over_time_only_escalate(tenant, message_scores):
    ticket = make_ticket()
    highest = -1
    for index, score in enumerate(message_scores):
        event = "created" if index == 0 else "comment"
        result = plan(make_assessment("high", score=score), tenant, ticket,
                      job_id=f"job-{index}", event=event, now=SATURDAY_NOON)
        if not result.is_empty and result.tier != "none":
            assert tier_rank(result.tier) > highest
            highest = tier_rank(result.tier)
        ticket = apply(result, ticket)
        assert tier_tag_count(ticket.tags, tenant) <= 3
        current = existing_tier(ticket.tags, tenant)
        assert (current is None and highest == -1) or tier_rank(current) == highest
