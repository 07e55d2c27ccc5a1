"""plugin.zendesk.client against the Zendesk sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time

import pytest

from plugin.errors import (
    PermanentVendorError,
    RateLimitedError,
    TicketClosedError,
    TransientVendorError,
    VendorError,
)
from plugin.model import Plan, Ticket, TicketRef
from plugin.ratelimit import RateBudget
from plugin.sandbox.zendesk import TRAINED_GROUP_ID
from plugin.vendors import ClientContext, MemoryJournal, MemoryTokenStore
from plugin.zendesk.client import make_client as factory_make_client
from tests.zendesk_support import (
    api_token_tenant,
    customer_ticket,
    make_client,
    make_context,
    oauth_tenant,
    running_sandbox,
)

TEXT = "I don't see the point of going on, I just wanted to cancel my plan."


def ref_for(ticket_id: int, **kwargs) -> TicketRef:
    return TicketRef(vendor="zendesk", tenant_id="acme", ticket_id=str(ticket_id),
                     delivery_id=kwargs.pop("delivery_id", "01HDELIVERY"), **kwargs)


def high_plan(job: str = "job-1", **changes) -> Plan:
    values = dict(tier="high", add_tags=("careroute_high", "careroute_screened"), priority="high",
                  group_id=TRAINED_GROUP_ID, note_html="<p><b>Wellbeing screening:</b> high</p>",
                  marker=job, metadata={"careroute": {"tier": "high", "job": job}})
    values.update(changes)
    return Plan(**values)


def puts(state, ticket_id: int) -> list:
    return [e for e in state.log.entries if e.method == "PUT" and e.path == f"/api/v2/tickets/{ticket_id}"]


def private_notes(state, ticket_id: int) -> list[dict]:
    return [c for c in state.tickets[ticket_id].comments if not c["public"]]


# ------------------------------------------------------------------ reads


async def test_fetch_reads_ticket_first_comment_and_requester() -> None:
    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT, locale="en-GB", time_zone="London")
        client = make_client(api_token_tenant(sandbox.url))
        try:
            ticket = await client.fetch(ref_for(ticket_id))
        finally:
            await client.aclose()
    assert isinstance(ticket, Ticket)
    assert ticket.text == TEXT and ticket.subject == "Help with my account"
    assert ticket.tags == ("billing",) and ticket.priority is None and ticket.status == "new"
    assert ticket.requester_locale == "en-GB" and ticket.requester_time_zone == "Europe/London"
    assert ticket.updated_stamp == sandbox.state.tickets[ticket_id].updated_at
    assert ticket.comment_id is None and ticket.note_markers == frozenset()
    assert TEXT not in repr(ticket)


async def test_fetch_skips_the_user_read_when_the_webhook_gave_a_locale_with_a_region() -> None:
    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT, locale="en", time_zone="London")
        requester = f"/api/v2/users/{sandbox.state.tickets[ticket_id].requester_id}"
        client = make_client(api_token_tenant(sandbox.url))
        try:
            hinted = await client.fetch(ref_for(ticket_id, hints={"requester_locale": "en-IE"}))
            after_hinted = [e.path for e in sandbox.state.log.entries]
            bare = await client.fetch(ref_for(ticket_id, hints={"requester_locale": "en"}))
            after_bare = [e.path for e in sandbox.state.log.entries]
        finally:
            await client.aclose()
    # A region in the hint settles the country: the user record is not read.
    assert not any(p.startswith(requester) for p in after_hinted)
    assert hinted.requester_locale == "en-IE" and hinted.requester_time_zone is None
    # Without a region, the user's own locale and time zone are read.
    assert any(p.startswith(requester) for p in after_bare[len(after_hinted):])
    assert bare.requester_locale == "en" and bare.requester_time_zone == "Europe/London"


async def test_fetch_comment_event_reads_that_comment_or_the_latest_requester_message() -> None:
    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, "My card was charged twice.")
        ticket = sandbox.state.tickets[ticket_id]
        first = sandbox.state.requester_comment(ticket, "Honestly I feel hopeless today.")
        sandbox.state.requester_comment(ticket, "Please just close my account.")
        client = make_client(api_token_tenant(sandbox.url))
        try:
            given = await client.fetch(ref_for(ticket_id, event="comment", comment_id=str(first["id"])))
            latest = await client.fetch(ref_for(ticket_id, event="comment"))
            with pytest.raises(PermanentVendorError):
                await client.fetch(ref_for(ticket_id, event="comment", comment_id="999"))
        finally:
            await client.aclose()
    assert (given.text, given.comment_id) == ("Honestly I feel hopeless today.", str(first["id"]))
    assert latest.text == "Please just close my account."


async def test_a_new_ticket_without_our_tags_is_read_without_its_comments() -> None:
    async with running_sandbox() as sandbox:
        fresh_id = customer_ticket(sandbox.state, TEXT)
        tagged_id = customer_ticket(sandbox.state, TEXT)
        tagged = sandbox.state.tickets[tagged_id]
        tagged.tags.append("careroute_high")
        sandbox.state.add_comment(tagged, body=None, html_body="<p>careroute-job:job-7</p>",
                                  author_id=1, public=False)
        client = make_client(api_token_tenant(sandbox.url))
        try:
            fresh = await client.fetch(ref_for(fresh_id))
            reread = await client.fetch(ref_for(tagged_id))
        finally:
            await client.aclose()
    comment_reads = [e.path for e in sandbox.state.log.entries if e.path.endswith("/comments")]
    # The untouched ticket's text is its description; no comments call was needed.
    assert fresh.text == TEXT and fresh.note_markers == frozenset()
    # A ticket with a CareRoute tag may carry our note: its comments are read for the marker.
    assert comment_reads == [f"/api/v2/tickets/{tagged_id}/comments"]
    assert reread.note_markers == frozenset({"job-7"})


async def test_comment_pages_are_followed() -> None:
    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, "first message")
        ticket = sandbox.state.tickets[ticket_id]
        for n in range(150):
            sandbox.state.add_comment(ticket, body=f"agent reply {n}", html_body=None,
                                      author_id=ticket.requester_id + 10**6, public=True)
        sandbox.state.add_comment(ticket, body=None, html_body="<p>careroute-job:old-job</p>",
                                  author_id=1, public=False)
        ticket.tags.append("careroute_screened")  # ours: the comments must be read
        client = make_client(api_token_tenant(sandbox.url))
        try:
            fetched = await client.fetch(ref_for(ticket_id))
        finally:
            await client.aclose()
    comment_calls = [e for e in sandbox.state.log.entries if e.path.endswith("/comments")]
    assert len(comment_calls) == 2
    assert fetched.text == "first message" and fetched.note_markers == frozenset({"old-job"})


async def test_marketplace_headers_are_sent_on_every_call() -> None:
    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT)
        tenant = api_token_tenant(sandbox.url, marketplace={
            "name": "CareRoute", "organization_id": "123", "app_id": "456"})
        client = factory_make_client(tenant, make_context())
        try:
            await client.fetch(ref_for(ticket_id))
        finally:
            await client.aclose()
    assert len(sandbox.state.log.entries) == 2  # the ticket and its requester
    for entry in sandbox.state.log.entries:
        assert entry.headers["x-zendesk-marketplace-name"] == "CareRoute"
        assert entry.headers["x-zendesk-marketplace-organization-id"] == "123"
        assert entry.headers["x-zendesk-marketplace-app-id"] == "456"


# ------------------------------------------------------------------ writes


async def test_apply_writes_everything_in_one_update_and_keeps_tags() -> None:
    calls: list[tuple[str, str, int]] = []
    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT, tags=("billing", "vip"))
        context = make_context(on_call=lambda m, p, s, t: calls.append((m, p, s)))
        client = make_client(api_token_tenant(sandbox.url), context)
        journal = MemoryJournal()
        try:
            ticket = await client.fetch(ref_for(ticket_id))
            written = await client.apply(ref_for(ticket_id), ticket, high_plan(),
                                         replan=lambda t: high_plan(), journal=journal)
            again = await client.apply(ref_for(ticket_id), ticket, high_plan(),
                                       replan=lambda t: high_plan(), journal=journal)
            refetched = await client.fetch(ref_for(ticket_id))
        finally:
            await client.aclose()
        stored = sandbox.state.tickets[ticket_id]
        [put] = puts(sandbox.state, ticket_id)
        notes = private_notes(sandbox.state, ticket_id)
    assert written == again == ("tags", "priority", "group", "note")
    assert stored.tags == ["billing", "vip", "careroute_high", "careroute_screened"]
    assert stored.priority == "high" and stored.group_id == TRAINED_GROUP_ID
    assert len(notes) == 1 and "careroute-job:job-1" in notes[0]["html_body"]
    assert put.body["ticket"]["safe_update"] is True
    assert put.body["ticket"]["comment"]["public"] is False
    assert stored.audits[-1]["metadata"]["custom"] == {"careroute": {"tier": "high", "job": "job-1"}}
    assert "x-zendesk-api-warn" not in str(put.headers)
    assert refetched.note_markers == frozenset({"job-1"})
    assert ("PUT", "/api/v2/tickets/{ticket_id}", 200) in calls
    assert ("GET", "/api/v2/users/{user_id}", 200) in calls


async def test_replay_with_a_fresh_journal_sees_its_marker_and_writes_nothing() -> None:
    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT)
        client = make_client(api_token_tenant(sandbox.url))
        try:
            ticket = await client.fetch(ref_for(ticket_id))
            await client.apply(ref_for(ticket_id), ticket, high_plan(), replan=lambda t: high_plan(),
                               journal=MemoryJournal())
            replayed = await client.fetch(ref_for(ticket_id))
            await client.apply(ref_for(ticket_id), replayed, high_plan(),
                               replan=lambda t: high_plan(), journal=MemoryJournal())
        finally:
            await client.aclose()
        assert len(puts(sandbox.state, ticket_id)) == 1
        assert len(private_notes(sandbox.state, ticket_id)) == 1


async def test_conflict_rereads_replans_and_still_writes_one_note() -> None:
    seen: list[Ticket] = []

    def replan(fresh: Ticket) -> Plan:
        seen.append(fresh)
        return high_plan()

    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT)
        client = make_client(api_token_tenant(sandbox.url))
        try:
            ticket = await client.fetch(ref_for(ticket_id))
            # An agent edits the ticket between our read and our write.
            stored = sandbox.state.tickets[ticket_id]
            stored.tags.append("agent_added")
            stored.touch()
            written = await client.apply(ref_for(ticket_id), ticket, high_plan(), replan=replan,
                                         journal=MemoryJournal())
        finally:
            await client.aclose()
        statuses = [e.status for e in puts(sandbox.state, ticket_id)]
        notes = private_notes(sandbox.state, ticket_id)
    assert statuses == [409, 200]
    assert len(seen) == 1 and "agent_added" in seen[0].tags
    assert written == ("tags", "priority", "group", "note") and len(notes) == 1
    assert stored.tags == ["billing", "agent_added", "careroute_high", "careroute_screened"]


async def test_empty_replan_after_conflict_writes_nothing() -> None:
    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT)
        client = make_client(api_token_tenant(sandbox.url))
        try:
            ticket = await client.fetch(ref_for(ticket_id))
            sandbox.state.tickets[ticket_id].touch()
            written = await client.apply(ref_for(ticket_id), ticket, high_plan(),
                                         replan=lambda t: Plan(tier="none"), journal=MemoryJournal())
        finally:
            await client.aclose()
        assert written == ()
        assert private_notes(sandbox.state, ticket_id) == []
        assert sandbox.state.tickets[ticket_id].priority is None


async def test_macro_result_is_merged_into_the_single_update() -> None:
    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT)
        macro_id = 777
        sandbox.state.macros[macro_id] = {"id": macro_id, "title": "Wellbeing protocol", "actions": [
            {"field": "comment_mode_is_public", "value": "false"},
            {"field": "comment_value_html", "value": "<p>Follow the wellbeing protocol.</p>"},
            {"field": "current_tags", "value": "wellbeing_protocol"},
            {"field": "set_tags", "value": "only_this"}]}
        client = make_client(api_token_tenant(sandbox.url))
        plan = high_plan(macro_id=macro_id, apply_macro=True)
        try:
            ticket = await client.fetch(ref_for(ticket_id))
            written = await client.apply(ref_for(ticket_id), ticket, plan, replan=lambda t: plan,
                                         journal=MemoryJournal())
        finally:
            await client.aclose()
        stored = sandbox.state.tickets[ticket_id]
        [put] = puts(sandbox.state, ticket_id)
        notes = private_notes(sandbox.state, ticket_id)
    assert "macro" in written and put.body["ticket"]["macro_id"] == macro_id
    assert len(notes) == 1 and "wellbeing protocol" in notes[0]["html_body"]
    assert {"billing", "careroute_high", "careroute_screened", "only_this"} <= set(stored.tags)


async def test_auto_reply_is_a_second_journalled_update() -> None:
    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT)
        client = make_client(api_token_tenant(sandbox.url))
        plan = high_plan(tier="imminent", priority="urgent",
                         auto_reply_html="<p>We read your message and we are here.</p>")
        journal = MemoryJournal()
        try:
            ticket = await client.fetch(ref_for(ticket_id))
            first = await client.apply(ref_for(ticket_id), ticket, plan, replan=lambda t: plan,
                                       journal=journal)
            second = await client.apply(ref_for(ticket_id), ticket, plan, replan=lambda t: plan,
                                        journal=journal)
        finally:
            await client.aclose()
        comments = sandbox.state.tickets[ticket_id].comments
    assert first == second and first[-1] == "auto_reply"
    assert [c["public"] for c in comments] == [True, False, True]
    assert len(puts(sandbox.state, ticket_id)) == 2


# ------------------------------------------------------------------ failures


async def test_closed_ticket_is_terminal() -> None:
    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT)
        client = make_client(api_token_tenant(sandbox.url))
        try:
            ticket = await client.fetch(ref_for(ticket_id))
            sandbox.state.tickets[ticket_id].status = "closed"
            with pytest.raises(TicketClosedError) as info:
                await client.apply(ref_for(ticket_id), ticket, high_plan(),
                                   replan=lambda t: high_plan(), journal=MemoryJournal())
        finally:
            await client.aclose()
    assert info.value.retryable is False and info.value.status == 422
    assert TEXT not in str(info.value)


async def test_rate_limited_update_raises_with_retry_after_and_blocks_the_budget() -> None:
    async with running_sandbox(per_ticket_updates=1) as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT)
        context = make_context()
        client = make_client(api_token_tenant(sandbox.url), context)
        try:
            ticket = await client.fetch(ref_for(ticket_id))
            await client.apply(ref_for(ticket_id), ticket, high_plan("job-1"),
                               replan=lambda t: high_plan("job-1"), journal=MemoryJournal())
            ticket = await client.fetch(ref_for(ticket_id))
            # A later message escalates: a second job, a second update of the same ticket.
            later = high_plan("job-2", tier="imminent", priority="urgent")
            with pytest.raises(RateLimitedError) as info:
                await client.apply(ref_for(ticket_id), ticket, later, replan=lambda t: later,
                                   journal=MemoryJournal())
            requests_before = len(sandbox.state.log.entries)
            blocked = context.budget.blocked_for()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.fetch(ref_for(ticket_id)), 0.3)
        finally:
            await client.aclose()
        assert len(sandbox.state.log.entries) == requests_before  # nothing sent before Retry-After
        assert [e.status for e in puts(sandbox.state, ticket_id)] == [200, 429]
    assert 500 <= info.value.retry_after <= 600 and blocked > 500
    assert "exceeded" not in str(info.value)


async def test_update_budget_running_out_holds_requests_back_before_any_429() -> None:
    async with running_sandbox(ticket_updates_per_minute=1) as sandbox:
        first_id = customer_ticket(sandbox.state, TEXT)
        context = make_context()
        client = make_client(api_token_tenant(sandbox.url), context)
        try:
            ticket = await client.fetch(ref_for(first_id))
            await client.apply(ref_for(first_id), ticket, high_plan(),
                               replan=lambda t: high_plan(), journal=MemoryJournal())
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.fetch(ref_for(first_id)), 0.3)
        finally:
            await client.aclose()
    assert context.budget.last_info.remaining == 0
    assert context.budget.blocked_for() > 50
    assert all(e.status != 429 for e in sandbox.state.log.entries)


async def test_html_429_from_the_account_limit_is_read() -> None:
    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT)
        sandbox.state.faults.update({"rate_limit_rate": 1.0, "retry_after": 7})
        context = make_context()
        client = make_client(api_token_tenant(sandbox.url), context)
        try:
            with pytest.raises(RateLimitedError) as info:
                await client.fetch(ref_for(ticket_id))
        finally:
            await client.aclose()
    assert info.value.retry_after == 7 and 6 < context.budget.blocked_for() <= 7


async def test_remaining_headers_feed_the_budget() -> None:
    async with running_sandbox(account_rate_per_minute=50) as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT)
        budget = RateBudget(6000, headroom=0.2)
        client = make_client(api_token_tenant(sandbox.url), ClientContext(budget=budget))
        try:
            await client.fetch(ref_for(ticket_id))
        finally:
            await client.aclose()
    assert budget.last_info.limit == 50 and budget.last_info.remaining == 48  # 2 calls made


@pytest.mark.parametrize("faults, kind", [
    ({"error_rate": 1.0}, TransientVendorError),
    ({"drop_rate": 1.0}, TransientVendorError),
])
async def test_server_errors_and_dropped_connections_are_transient(faults, kind) -> None:
    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT)
        sandbox.state.faults.update(faults)
        client = make_client(api_token_tenant(sandbox.url))
        try:
            with pytest.raises(kind) as info:
                await client.fetch(ref_for(ticket_id))
        finally:
            await client.aclose()
    assert info.value.retryable is True


async def test_timeout_is_transient() -> None:
    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT)
        sandbox.state.faults.update({"latency_ms": [500, 500]})
        context = ClientContext(budget=RateBudget(6000), timeout_seconds=0.2)
        client = make_client(api_token_tenant(sandbox.url), context)
        try:
            with pytest.raises(TransientVendorError, match="timed out"):
                await client.fetch(ref_for(ticket_id))
        finally:
            await client.aclose()


async def test_not_found_and_bad_credentials_are_permanent() -> None:
    async with running_sandbox() as sandbox:
        good = make_client(api_token_tenant(sandbox.url))
        bad = make_client(api_token_tenant(sandbox.url, auth={
            "kind": "api_token", "email": "agent@sandbox.test", "token": "wrong"}))
        try:
            with pytest.raises(PermanentVendorError) as missing:
                await good.fetch(ref_for(424242))
            with pytest.raises(PermanentVendorError) as refused:
                await bad.fetch(ref_for(1))
        finally:
            await good.aclose()
            await bad.aclose()
    assert missing.value.status == 404 and "RecordNotFound" in str(missing.value)
    assert refused.value.status == 401 and "authenticate" not in str(refused.value)


# ------------------------------------------------------------------ OAuth


async def test_expired_access_token_is_refreshed_and_rotation_persisted() -> None:
    async with running_sandbox(token_ttl=600) as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT)
        tokens = sandbox.state.issue_tokens()
        store = MemoryTokenStore()
        context = ClientContext(budget=RateBudget(6000), token_store=store)
        client = make_client(oauth_tenant(sandbox.url, tokens, expires_at=time.time() - 5), context)
        try:
            ticket = await client.fetch(ref_for(ticket_id))
        finally:
            await client.aclose()
        saved = await store.load("acme")
        assert ticket.ticket_id == str(ticket_id)
        assert sandbox.state.token_grants == ["refresh_token"]
        assert saved.refresh_token != tokens["refresh_token"]
        assert saved.refresh_token in sandbox.state.refresh_tokens
        assert tokens["refresh_token"] not in sandbox.state.refresh_tokens  # rotated out
        assert saved.expires_at == pytest.approx(time.time() + 600, abs=5)


async def test_stored_tokens_supersede_the_tenants_file() -> None:
    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT)
        stale = sandbox.state.issue_tokens()
        current = sandbox.state.issue_tokens()
        sandbox.state.access_tokens.pop(stale["access_token"])
        store = MemoryTokenStore()
        from plugin.vendors import OAuthTokens
        await store.save("acme", OAuthTokens(current["access_token"], current["refresh_token"], None))
        client = make_client(oauth_tenant(sandbox.url, stale),
                             ClientContext(budget=RateBudget(6000), token_store=store))
        try:
            await client.fetch(ref_for(ticket_id))
        finally:
            await client.aclose()
    assert sandbox.state.token_grants == []


async def test_invalid_token_401_refreshes_once_under_concurrency() -> None:
    async with running_sandbox() as sandbox:
        ticket_ids = [customer_ticket(sandbox.state, TEXT) for _ in range(6)]
        tokens = sandbox.state.issue_tokens()
        store = MemoryTokenStore()
        tenant = oauth_tenant(sandbox.url, tokens)
        clients = [make_client(tenant, ClientContext(budget=RateBudget(6000), token_store=store))
                   for _ in ticket_ids]
        sandbox.state.revoke_access_tokens()  # the tokens die server-side before expires_at
        try:
            fetched = await asyncio.gather(*(c.fetch(ref_for(t)) for c, t in zip(clients, ticket_ids)))
        finally:
            for client in clients:
                await client.aclose()
        assert [t.ticket_id for t in fetched] == [str(t) for t in ticket_ids]
        assert sandbox.state.token_grants == ["refresh_token"]
        assert (await store.load("acme")).access_token in sandbox.state.access_tokens


async def test_refused_refresh_is_permanent() -> None:
    async with running_sandbox() as sandbox:
        tokens = sandbox.state.issue_tokens()
        sandbox.state.revoke_access_tokens()
        sandbox.state.refresh_tokens.clear()
        client = make_client(oauth_tenant(sandbox.url, tokens))
        try:
            with pytest.raises(PermanentVendorError, match="token refresh"):
                await client.fetch(ref_for(1))
        finally:
            await client.aclose()


async def test_exception_messages_never_carry_ticket_text() -> None:
    messages: list[str] = []
    async with running_sandbox(ticket_updates_per_minute=1) as sandbox:
        ticket_id = customer_ticket(sandbox.state, TEXT)
        client = make_client(api_token_tenant(sandbox.url))
        try:
            for faults in ({"error_rate": 1.0}, {"rate_limit_rate": 1.0}, {}):
                sandbox.state.faults.update({"error_rate": 0, "rate_limit_rate": 0, "retry_after": 0,
                                             **faults})
                try:
                    await client.fetch(ref_for(ticket_id, event="comment", comment_id="1"))
                except VendorError as exc:
                    messages.append(str(exc))
        finally:
            await client.aclose()
    assert len(messages) == 3
    assert all("point of going on" not in m and "cancel" not in m for m in messages)
