"""Wellbeing rota: the pure chooser, the policy rule, the ledger on SQLite, and (over real HTTP on
127.0.0.1) the vendor clients reading group members from the sandboxes and writing the assignee."""

from __future__ import annotations

import time

import pytest

import freshdesk_support
import zendesk_support
from plugin.config import TenantConfig
from plugin.model import Ticket, TicketRef
from plugin.policy import plan
from plugin.sandbox.freshdesk import TRAINED_AGENTS
from plugin.sandbox.zendesk import TRAINED_GROUP_ID
from plugin.screening import screen
from plugin.store import Store
from plugin.vendors import MemoryJournal
from plugin.wellbeing import (CrisisLoad, MemberLoad, Rota, WellbeingSettings, choose_agent,
                              rota_for, settings_for)

CRISIS_TEXT = "I can't go on anymore. Tonight I will end it all, goodbye everyone."
CONCERN_SCORE_TEXT = "I feel so hopeless, I don't want to be here anymore."


def with_rota(tenant: TenantConfig, **settings) -> TenantConfig:
    """The tenant with `[tenants.wellbeing]` set (until TenantConfig has the field itself)."""
    return tenant.model_copy(update={"wellbeing": WellbeingSettings(enabled=True, **settings)})


def freshdesk_tenant(base_url: str = "http://127.0.0.1:9", **extra) -> TenantConfig:
    return freshdesk_support.tenant(base_url, trained_group_id=2, **extra)


# ------------------------------------------------------------------ the chooser


def test_least_loaded_member_first_then_least_recent():
    members = [MemberLoad(1, 2, 100.0), MemberLoad(2, 1, 300.0), MemberLoad(3, 1, 200.0)]
    assert choose_agent(members, cap=3) == 3
    assert choose_agent([MemberLoad(5, 0, 50.0), MemberLoad(4, 0, None)], cap=3) == 4
    assert choose_agent([MemberLoad(9, 0), MemberLoad(7, 0)], cap=3) == 7  # stable by id


def test_nobody_when_everyone_is_at_the_cap():
    members = [MemberLoad(1, 3, 1.0), MemberLoad(2, 4, 2.0)]
    assert choose_agent(members, cap=3) is None
    assert choose_agent([], cap=3) is None
    assert Rota(tuple(members), cap=5).choose() == 1


def test_settings_are_off_by_default_and_validated():
    tenant = freshdesk_tenant()
    assert settings_for(tenant).enabled is False
    assert settings_for(with_rota(tenant, max_per_shift=2)).max_per_shift == 2
    with pytest.raises(ValueError):
        WellbeingSettings(enabled=True, max_per_shift=0)
    with pytest.raises(ValueError):
        WellbeingSettings.model_validate({"enabled": True, "tiers": ["none"]})


# ------------------------------------------------------------------ policy


def _ticket(tenant: TenantConfig, text: str, **fields) -> Ticket:
    return Ticket(vendor=tenant.vendor, tenant_id=tenant.id, ticket_id="1", text=text, **fields)


ROTA = Rota((MemberLoad(3, 1, 10.0), MemberLoad(4, 0, 20.0)), cap=2)


def test_policy_assigns_the_chosen_member_only_when_the_tenant_enables_the_rota():
    tenant = freshdesk_tenant()
    assessment = screen(CRISIS_TEXT)
    off = plan(assessment, tenant, _ticket(tenant, CRISIS_TEXT), job_id="j", rota=ROTA)
    assert off.assignee_id is None
    on = plan(assessment, with_rota(tenant), _ticket(tenant, CRISIS_TEXT), job_id="j", rota=ROTA)
    assert on.assignee_id == 4 and on.group_id == 2 and "assign" in on.actions()
    assert plan(assessment, with_rota(tenant), _ticket(tenant, CRISIS_TEXT), job_id="j").assignee_id is None


def test_policy_leaves_assigned_tickets_other_groups_and_uncovered_tiers_alone():
    tenant = with_rota(freshdesk_tenant())
    assessment = screen(CRISIS_TEXT)
    taken = plan(assessment, tenant, _ticket(tenant, CRISIS_TEXT, assignee_id=99), job_id="j",
                 rota=ROTA)
    assert taken.assignee_id is None
    elsewhere = tenant.model_copy(update={"trained_group_id": None})
    assert plan(assessment, elsewhere, _ticket(elsewhere, CRISIS_TEXT), job_id="j",
                rota=ROTA).assignee_id is None
    only_imminent = with_rota(freshdesk_tenant(), tiers=("imminent",))
    high = screen(CONCERN_SCORE_TEXT)
    assert plan(high, only_imminent, _ticket(only_imminent, CONCERN_SCORE_TEXT), job_id="j",
                rota=ROTA).assignee_id is None
    full = Rota((MemberLoad(3, 2, 1.0),), cap=2)
    assert plan(assessment, tenant, _ticket(tenant, CRISIS_TEXT), job_id="j",
                rota=full).assignee_id is None


# ------------------------------------------------------------------ the ledger


async def test_the_ledger_counts_a_shift_and_remembers_the_last_crisis(tmp_path):
    store = Store(tmp_path / "careroute.sqlite3")
    await store.open()
    try:
        load = CrisisLoad(store)
        now = 1_000_000.0
        await load.record("acme", 3, "job-old", now - 9 * 3600)  # last shift
        await load.record("acme", 3, "job-a", now - 60)
        await load.record("acme", 3, "job-a", now - 30)  # the same job again counts once
        await load.record("acme", 4, "job-b", now - 120)
        await load.record("other", 5, "job-c", now - 10)
        rota = await load.rota("acme", [3, 4, 5], WellbeingSettings(enabled=True), now)
        assert rota.members == (MemberLoad(3, 1, now - 60), MemberLoad(4, 1, now - 120),
                                MemberLoad(5, 0, None))
        assert rota.choose() == 5
    finally:
        await store.close()


# ------------------------------------------------------------------ over HTTP, with the sandboxes


async def _route(client, tenant: TenantConfig, ticket_id: str, load: CrisisLoad,
                 job_id: str) -> Ticket:
    """The worker's steps for one ticket, with the rota (fetch → screen → rota → plan → apply)."""
    ref = TicketRef(vendor=tenant.vendor, tenant_id=tenant.id, ticket_id=ticket_id,
                    delivery_id=job_id)
    ticket = await client.fetch(ref)
    assessment = screen(ticket.text)
    tier = tenant.screening.tier_for(assessment.score)
    rota = await rota_for(tenant, tier, client, load, time.time())

    def replan(fresh: Ticket):
        return plan(assessment, tenant, fresh, job_id=job_id, rota=rota)

    planned = replan(ticket)
    actions = await client.apply(ref, ticket, planned, replan=replan, journal=MemoryJournal())
    if "assign" in actions and planned.assignee_id is not None:
        await load.record(tenant.id, planned.assignee_id, job_id, time.time())
    return await client.fetch(ref)


async def test_freshdesk_crisis_tickets_rotate_through_the_trained_group_up_to_the_cap(tmp_path):
    store = Store(tmp_path / "careroute.sqlite3")
    await store.open()
    async with freshdesk_support.running_sandbox() as box:
        from plugin.freshdesk.client import FreshdeskClient
        tenant = with_rota(freshdesk_tenant(box.url), max_per_shift=1)
        client = FreshdeskClient(tenant, freshdesk_support.context())
        try:
            assert await client.group_members(2) == tuple(TRAINED_AGENTS)
            load = CrisisLoad(store)
            assignees = []
            for n in range(4):
                created = await box.ticket(CRISIS_TEXT, email=f"p{n}@example.com")
                await _route(client, tenant, str(created["id"]), load, f"job-{n}")
                assignees.append(box.state.tickets[created["id"]]["responder_id"])
            assert assignees == [3, 4, 5, None]  # everyone at the cap of 1: the group queue
            assert all(box.state.tickets[t]["group_id"] == 2 for t in box.state.tickets)
        finally:
            await client.aclose()
            await store.close()


async def test_zendesk_reads_memberships_and_writes_the_assignee(tmp_path):
    store = Store(tmp_path / "careroute.sqlite3")
    await store.open()
    async with zendesk_support.running_sandbox() as box:
        tenant = with_rota(zendesk_support.api_token_tenant(
            box.url, trained_group_id=TRAINED_GROUP_ID))
        client = zendesk_support.make_client(tenant)
        try:
            members = await client.group_members(TRAINED_GROUP_ID)
            assert len(members) == 3
            assert all(box.state.users[m]["role"] == "agent" for m in members)
            load = CrisisLoad(store)
            first = zendesk_support.customer_ticket(box.state, CRISIS_TEXT)
            routed = await _route(client, tenant, str(first), load, "job-1")
            assert routed.assignee_id == members[0] and routed.group_id == TRAINED_GROUP_ID
            second = zendesk_support.customer_ticket(box.state, CRISIS_TEXT)
            assert (await _route(client, tenant, str(second), load, "job-2")).assignee_id == members[1]
            ordinary = zendesk_support.customer_ticket(box.state, "Where is my parcel?")
            assert (await _route(client, tenant, str(ordinary), load, "job-3")).assignee_id is None
        finally:
            await client.aclose()
            await store.close()
