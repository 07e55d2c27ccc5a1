"""Freshdesk client against the sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest

from plugin.errors import (
    ConfigError,
    PermanentVendorError,
    RateLimitedError,
    TicketClosedError,
    TransientVendorError,
)
from plugin.freshdesk.client import make_client
from plugin.model import Plan, Ticket, TicketRef, note_marker
from plugin.sandbox.common import Faults
from plugin.ratelimit import RateBudget
from plugin.vendors import ClientContext, MemoryJournal
from tests.freshdesk_support import context, running_sandbox, tenant

NOTE = "<p>Possible risk indicators. Read the whole message first.</p>"


def ref(ticket_id: int, event: str = "created", comment_id: str | None = None) -> TicketRef:
    return TicketRef(vendor="freshdesk", tenant_id="acme", ticket_id=str(ticket_id),
                     delivery_id=f"d-{ticket_id}", event=event, comment_id=comment_id)  # type: ignore[arg-type]


def plan(job: str = "job-1", **extra) -> Plan:
    values = dict(tier="high", add_tags=("careroute_high", "careroute_screened"),
                  priority="high", group_id=2, note_html=NOTE, marker=job)
    values.update(extra)
    return Plan(**values)


def never_replan(ticket: Ticket) -> Plan:
    raise AssertionError("replan was not expected")


class Crash(Exception):
    pass


class CrashAfterTicketStep(MemoryJournal):
    """Journal that is written, then the worker 'dies' before the note."""

    async def put(self, step, data):
        await super().put(step, data)
        if step == "ticket":
            raise Crash()


async def test_fetch_reads_text_language_markers_and_fields():
    async with running_sandbox() as box:
        created = await box.ticket("<div>I feel like <b>nothing</b> helps anymore</div>",
                                   language="de", time_zone="Berlin", tags=["vip"], priority=2)
        await box.http.post(f"/api/v2/tickets/{created['id']}/notes",
                            json={"body": f"<p>old</p><span>{note_marker('job-0')}</span>"})
        client = make_client(tenant(box.url), context())
        try:
            ticket = await client.fetch(ref(created["id"]))
        finally:
            await client.aclose()
    assert ticket.text == "I feel like nothing helps anymore"
    assert ticket.subject == "Help with my order"
    assert ticket.requester_locale == "de" and ticket.requester_time_zone == "Berlin"
    assert ticket.tags == ("vip",) and ticket.priority == "normal" and ticket.status == "open"
    assert ticket.note_markers == frozenset({"job-0"})
    assert ticket.updated_stamp == created["updated_at"]
    assert "nothing helps" not in repr(ticket)


async def test_fetch_comment_reads_the_newest_incoming_reply():
    async with running_sandbox() as box:
        created = await box.ticket("<div>where is my parcel</div>")
        await box.customer_reply(created["id"], "<div>first follow-up</div>")
        await box.http.post(f"/api/v2/tickets/{created['id']}/reply",
                            json={"body": "<div>agent answer</div>"})
        newest = await box.customer_reply(created["id"], "<div>second follow-up</div>")
        client = make_client(tenant(box.url), context())
        try:
            latest = await client.fetch(ref(created["id"], "comment"))
            chosen = await client.fetch(ref(created["id"], "comment", str(newest["id"] - 2)))
        finally:
            await client.aclose()
    assert latest.text == "second follow-up" and latest.comment_id == str(newest["id"])
    assert chosen.text == "first follow-up"


async def test_fetch_paginates_conversations():
    async with running_sandbox() as box:
        created = await box.ticket("<div>hello</div>")
        for n in range(105):
            body = f"<p>n{n}</p>" + (f"<i>{note_marker('job-late')}</i>" if n == 104 else "")
            await box.http.post(f"/api/v2/tickets/{created['id']}/notes", json={"body": body})
        client = make_client(tenant(box.url), context())
        try:
            ticket = await client.fetch(ref(created["id"]))
        finally:
            await client.aclose()
        pages = [e.query.get("page") for e in box.state.log.entries if e.path.endswith("/conversations")]
    assert "job-late" in ticket.note_markers
    assert pages == ["1", "2"]


async def test_apply_once_unions_tags_sets_priority_group_and_one_private_note():
    calls = []
    async with running_sandbox() as box:
        created = await box.ticket("<div>text</div>", tags=["billing", "vip"])
        client = make_client(tenant(box.url), context(on_call=lambda *a: calls.append(a)))
        try:
            ticket = await client.fetch(ref(created["id"]))
            actions = await client.apply(ref(created["id"]), ticket, plan(), replan=never_replan,
                                         journal=MemoryJournal())
            again = await client.apply(ref(created["id"]), await client.fetch(ref(created["id"])),
                                       plan(), replan=never_replan, journal=MemoryJournal())
        finally:
            await client.aclose()
        stored = box.state.tickets[created["id"]]
        notes = box.private_notes(created["id"])
        puts = [e for e in box.state.log.entries if e.method == "PUT"]
    assert actions == ("tags", "priority", "group", "note")
    assert again == ()  # the second run finds everything in place and writes nothing
    assert stored["tags"] == ["billing", "vip", "careroute_high", "careroute_screened"]
    assert stored["priority"] == 3 and isinstance(stored["priority"], int)
    assert stored["group_id"] == 2
    assert len(notes) == 1 and notes[0]["private"] is True
    assert note_marker("job-1") in notes[0]["body"]
    assert len(puts) == 1 and puts[0].body["priority"] == 3
    assert ("PUT", "/api/v2/tickets/{id}", 200) in [c[:3] for c in calls]


async def test_apply_never_lowers_priority_and_unassigns():
    async with running_sandbox() as box:
        created = await box.ticket("<div>text</div>", priority=4, responder_id=2)
        client = make_client(tenant(box.url), context())
        try:
            ticket = await client.fetch(ref(created["id"]))
            actions = await client.apply(ref(created["id"]), ticket,
                                         plan(note_html=None, unassign=True),
                                         replan=never_replan, journal=MemoryJournal())
        finally:
            await client.aclose()
        stored = box.state.tickets[created["id"]]
    assert stored["priority"] == 4 and stored["responder_id"] is None
    assert actions == ("tags", "group", "unassign")


async def test_tag_change_between_read_and_put_is_merged_and_replanned():
    replanned = []

    def replan(ticket: Ticket) -> Plan:
        replanned.append(ticket.tags)
        return plan()

    async with running_sandbox() as box:
        created = await box.ticket("<div>text</div>", tags=["billing"])
        client = make_client(tenant(box.url), context())
        try:
            ticket = await client.fetch(ref(created["id"]))
            # an agent adds a tag (and, a second later, the stamp differs) after our read
            await box.http.put(f"/api/v2/tickets/{created['id']}",
                               json={"tags": ["billing", "refund"]})
            box.state.tickets[created["id"]]["updated_at"] = "2030-01-01T00:00:00Z"
            await client.apply(ref(created["id"]), ticket, plan(), replan=replan,
                               journal=MemoryJournal())
        finally:
            await client.aclose()
        stored = box.state.tickets[created["id"]]
    assert stored["tags"] == ["billing", "refund", "careroute_high", "careroute_screened"]
    assert replanned == [("billing", "refund")]


async def test_concurrent_writer_after_our_put_is_merged_again():
    async with running_sandbox() as box:
        created = await box.ticket("<div>text</div>", tags=["billing"])
        raced = []

        def stale_writer(stored: dict) -> None:
            if not raced:  # once: another integration writes the tags it read before our PUT
                raced.append(True)
                stored["tags"] = ["billing", "from_other_app"]

        box.state.on_ticket_put = stale_writer
        client = make_client(tenant(box.url), context())
        try:
            ticket = await client.fetch(ref(created["id"]))
            await client.apply(ref(created["id"]), ticket, plan(), replan=never_replan,
                               journal=MemoryJournal())
        finally:
            await client.aclose()
        stored = box.state.tickets[created["id"]]
        puts = [e.body for e in box.state.log.entries if e.method == "PUT"]
    assert stored["tags"] == ["billing", "from_other_app", "careroute_high", "careroute_screened"]
    assert len(puts) == 2 and puts[1] == {"tags": stored["tags"]}


async def test_crash_between_put_and_note_then_rerun_posts_one_note():
    async with running_sandbox() as box:
        created = await box.ticket("<div>text</div>")
        client = make_client(tenant(box.url), context())
        journal = CrashAfterTicketStep()
        try:
            ticket = await client.fetch(ref(created["id"]))
            with pytest.raises(Crash):
                await client.apply(ref(created["id"]), ticket, plan(), replan=never_replan,
                                   journal=journal)
            assert box.private_notes(created["id"]) == []
            kept = MemoryJournal()
            kept.steps = dict(journal.steps)
            actions = await client.apply(ref(created["id"]), ticket, plan(),
                                         replan=never_replan, journal=kept)
            # and the same job once more, with the journal lost: the marker is found
            lost = await client.apply(ref(created["id"]), await client.fetch(ref(created["id"])),
                                      plan(), replan=never_replan, journal=MemoryJournal())
        finally:
            await client.aclose()
        puts = [e for e in box.state.log.entries if e.method == "PUT"]
    assert actions == ("note",)
    assert lost == ()
    assert len(box.private_notes(created["id"])) == 1
    assert len(puts) == 1


async def test_auto_reply_is_posted_once_and_public():
    async with running_sandbox() as box:
        created = await box.ticket("<div>text</div>")
        client = make_client(tenant(box.url), context())
        reply = "<p>Thank you for telling us. You can call 116 123 at any time.</p>"
        try:
            ticket = await client.fetch(ref(created["id"]))
            first = await client.apply(ref(created["id"]), ticket,
                                       plan(auto_reply_html=reply), replan=never_replan,
                                       journal=MemoryJournal())
            # A retry re-reads the ticket (a stale one would carry the old updated_at).
            again = await client.fetch(ref(created["id"]))
            second = await client.apply(ref(created["id"]), again,
                                        plan(auto_reply_html=reply), replan=never_replan,
                                        journal=MemoryJournal())
        finally:
            await client.aclose()
        public = [c for c in box.state.conversations[created["id"]] if not c["private"]]
    assert first == ("tags", "priority", "group", "note", "auto_reply")
    assert second == ()
    assert len(public) == 1 and public[0]["body"].startswith(reply)


async def test_429_raises_and_blocks_the_budget():
    async with running_sandbox(rate_per_minute=5) as box:
        created = await box.ticket("<div>text</div>")
        for _ in range(4):  # someone else (Freshdesk's own webhooks, another app) uses the rest
            await box.http.get("/api/v2/groups")
        ctx = context()
        client = make_client(tenant(box.url), ctx)
        try:
            with pytest.raises(RateLimitedError) as caught:
                await client.fetch(ref(created["id"]))
        finally:
            await client.aclose()
    assert 1 <= caught.value.retry_after <= 60
    assert ctx.budget.blocked_for() > 0
    assert ctx.budget.last_info.retry_after == caught.value.retry_after


async def test_injected_429_without_json_body_is_understood():
    async with running_sandbox(faults=Faults(rate_limit_rate=1.0, retry_after=7)) as box:
        ctx = context()
        client = make_client(tenant(box.url), ctx)
        try:
            with pytest.raises(RateLimitedError) as caught:
                await client.fetch(ref(1))
        finally:
            await client.aclose()
    assert caught.value.retry_after == 7
    assert 6 < ctx.budget.blocked_for() <= 7


async def test_headroom_keeps_part_of_the_window_free():
    async with running_sandbox(rate_per_minute=10) as box:
        created = await box.ticket("<div>text</div>")
        ctx = ClientContext(budget=RateBudget(6000, headroom=0.65))
        seen = []
        client = make_client(tenant(box.url), ctx)
        client.context.on_call = lambda *a: seen.append(ctx.budget.blocked_for())
        try:
            await client.fetch(ref(created["id"]))  # ticket (8 left), conversations (7), contact (6)
        finally:
            await client.aclose()
    assert seen == [0, 0, 0]  # on_call runs before observe: nothing blocked while above 6.5
    assert 59 < ctx.budget.blocked_for() <= 60  # 6 left <= 65 % of 10 kept for webhooks


async def test_rate_headers_are_observed():
    async with running_sandbox(rate_per_minute=100) as box:
        created = await box.ticket("<div>text</div>")
        ctx = context()
        client = make_client(tenant(box.url), ctx)
        try:
            await client.fetch(ref(created["id"]))
        finally:
            await client.aclose()
    assert ctx.budget.last_info.limit == 100
    assert ctx.budget.last_info.remaining == 96  # create, ticket, conversations, contact


@pytest.mark.parametrize("status_setup,expected", [
    ("missing", TicketClosedError),
    ("deleted", TicketClosedError),
    ("bad_key", PermanentVendorError),
    ("server_error", TransientVendorError),
    ("dropped", TransientVendorError),
])
async def test_error_mapping(status_setup, expected):
    async with running_sandbox() as box:
        created = await box.ticket("<div>text</div>")
        ticket_id, key = created["id"], "sandbox-key"
        if status_setup == "missing":
            ticket_id = 999
        elif status_setup == "deleted":
            await box.http.delete(f"/api/v2/tickets/{ticket_id}")
        elif status_setup == "bad_key":
            key = "not-a-key"
        elif status_setup == "server_error":
            box.state.faults.update({"error_rate": 1.0})
        elif status_setup == "dropped":
            box.state.faults.update({"drop_rate": 1.0})
        client = make_client(tenant(box.url, key=key), context())
        try:
            with pytest.raises(expected) as caught:
                await client.fetch(ref(ticket_id))
        finally:
            await client.aclose()
    assert caught.value.reason  # our words
    assert "text" not in caught.value.reason


async def test_validation_error_names_field_and_code_only():
    async with running_sandbox() as box:
        created = await box.ticket("<div>text</div>")
        client = make_client(tenant(box.url), context())
        try:
            ticket = await client.fetch(ref(created["id"]))
            with pytest.raises(PermanentVendorError) as caught:
                await client.apply(ref(created["id"]), ticket, plan(group_id=424242),
                                   replan=never_replan, journal=MemoryJournal())
        finally:
            await client.aclose()
    assert caught.value.status == 400
    assert caught.value.reason == "freshdesk rejected the request (group_id:invalid_value)"


@pytest.mark.parametrize("domain_or_url", ["acme.freshdesk.com.evil.example", "http-only"])
def test_only_freshdesk_domains(domain_or_url):
    from plugin.freshdesk.client import FreshdeskClient

    base = tenant()
    if domain_or_url == "http-only":
        forged = base.model_copy(update={"domain": "acme.freshdesk.com:8443"})
    else:
        forged = base.model_copy(update={"domain": domain_or_url})
    with pytest.raises(ConfigError):
        FreshdeskClient(forged, context())


def test_real_domain_is_https_freshdesk():
    client = make_client(tenant(), context())
    assert str(client._http.base_url) == "https://acme.freshdesk.com"
    assert client._http.auth._auth_header == httpx.BasicAuth("sandbox-key", "X")._auth_header
