"""Recorded Freshdesk responses (reference/fixtures/freshdesk) parse through our client code.

A small server on 127.0.0.1 answers with the recorded bodies, so the client reads them exactly
as it reads Freshdesk: fetch, apply, the error body, groups, and the canned-response listings.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from plugin.errors import ConflictError, PermanentVendorError
from plugin.freshdesk.client import TICKET, error_for, groups_from_json, make_client, ticket_update
from plugin.freshdesk.provision import provision
from plugin.model import Plan, TicketRef, note_marker
from plugin.vendors import MemoryJournal
from tests.freshdesk_support import context, tenant

from tests.shared_paths import REFERENCE  # noqa: E402

CANDIDATES = (Path(__file__).parents[1] / "fixtures" / "freshdesk",
              REFERENCE / "fixtures" / "freshdesk")
FIXTURES = next((p for p in CANDIDATES if p.is_dir()), CANDIDATES[-1])
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="recorded fixtures not present")


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


REF = TicketRef(vendor="freshdesk", tenant_id="acme", ticket_id="1", delivery_id="d1")


@contextlib.asynccontextmanager
async def recorded_freshdesk(writes: list[tuple[str, Any]]) -> AsyncIterator[str]:
    headers = {"X-Ratelimit-Total": "50", "X-Ratelimit-Remaining": "45",
               "X-Ratelimit-Used-CurrentRequest": "1"}

    def answer(name: str, status: int = 200) -> Any:
        async def handler(request: web.Request) -> web.Response:
            if request.can_read_body:
                writes.append((request.method, await request.json()))
            return web.json_response(load(name), status=status, headers=headers)
        return handler

    async def empty(_: web.Request) -> web.Response:
        return web.json_response([], headers=headers)

    app = web.Application()
    app.router.add_get("/api/v2/tickets/1", answer("ticket_1.json"))
    app.router.add_put("/api/v2/tickets/1", answer("ticket_1_updated.json"))
    app.router.add_get("/api/v2/tickets/1/conversations", answer("conversations.json"))
    app.router.add_post("/api/v2/tickets/1/notes", answer("docs_note_create_response.json", 201))
    app.router.add_get("/api/v2/tickets/2", answer("docs_error_validation_failed.json", 400))
    app.router.add_get("/api/v2/contacts/6012691534", answer("contact.json"))
    app.router.add_get("/api/v2/groups", answer("groups.json"))
    app.router.add_get("/api/v2/canned_response_folders", answer("docs_canned_response_folders.json"))
    app.router.add_get("/api/v2/automations/{type}/rules", empty)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_recorded_ticket_conversations_and_contact_parse():
    async with recorded_freshdesk([]) as url:
        client = make_client(tenant(url), context())
        try:
            ticket = await client.fetch(REF)
            comment = await client.fetch(TicketRef(vendor="freshdesk", tenant_id="acme",
                                                   ticket_id="1", delivery_id="d2",
                                                   event="comment"))
            groups = await client.groups()
        finally:
            await client.aclose()
    assert ticket.text == "This is a sample ticket, feel free to delete it."
    assert ticket.subject == "This is a sample ticket"
    assert ticket.tags == ("foo", "bar")
    assert (ticket.priority, ticket.status, ticket.group_id) == ("low", "open", None)
    assert ticket.assignee_id == 6010396333 and ticket.requester_id == "6012691534"
    assert (ticket.requester_locale, ticket.requester_time_zone) == ("en", "Brisbane")
    assert ticket.updated_stamp == "2016-05-18T23:42:50Z"
    assert ticket.note_markers == frozenset()
    # the recorded conversations hold a private note and an agent's reply: no customer message
    assert comment.text == "" and comment.comment_id is None
    assert groups == {1: "Entertainers", 2: "Helpdesk"}


async def test_apply_against_recorded_write_responses():
    writes: list[tuple[str, Any]] = []
    plan = Plan(tier="high", add_tags=("careroute_high", "careroute_screened"), priority="high",
                note_html="<p>Possible risk indicators.</p>", marker="job-9")
    async with recorded_freshdesk(writes) as url:
        client = make_client(tenant(url), context())
        journal = MemoryJournal()
        try:
            ticket = await client.fetch(REF)
            with pytest.raises(ConflictError):
                # the recorded ticket never shows our tags: merged again, bounded, then given up
                await client.apply(REF, ticket, plan, replan=lambda t: plan, journal=journal)
        finally:
            await client.aclose()
    assert journal.steps == {}  # the ticket step is not journalled until the tags hold
    assert len(writes) == 1 + 3
    assert writes[0] == ("PUT", {"tags": ["foo", "bar", "careroute_high", "careroute_screened"],
                                 "priority": 3})


def test_recorded_note_and_reply_are_told_apart():
    note, reply = load("note_1.json"), load("reply_1.json")
    assert (note["private"], note["source"]) == (True, 2)
    assert (reply["private"], reply["source"]) == (False, 0)
    from plugin.freshdesk.client import ticket_from_json

    marked = dict(note, body=note["body"] + f"<span>{note_marker('job-3')}</span>")
    ticket = ticket_from_json("acme", load("ticket_1.json"), [marked, reply], load("contact.json"),
                              REF)
    assert ticket.note_markers == frozenset({"job-3"})
    unmarked_reply = dict(reply, body=reply["body"] + note_marker("job-4"))
    assert "job-4" not in ticket_from_json("acme", load("ticket_1.json"), [unmarked_reply], {},
                                           REF).note_markers  # public replies are not notes


def test_recorded_updated_ticket_and_plan_to_put_body():
    updated = load("ticket_1_updated.json")
    body, actions = ticket_update(updated, Plan(tier="imminent", add_tags=("careroute_imminent",),
                                                priority="urgent", group_id=2))
    assert body == {"tags": ["hello", "world", "careroute_imminent"], "priority": 4, "group_id": 2}
    assert actions == ("tags", "priority", "group")
    nothing, none = ticket_update(updated, Plan(tier="high", add_tags=("hello",), priority="low"))
    assert (nothing, none) == ({}, ())  # priority 3 is not lowered to low; the tag is there


def test_recorded_error_body_maps_without_echo():
    error = error_for(400, load("docs_error_validation_failed.json"), TICKET)
    assert isinstance(error, PermanentVendorError) and error.status == 400
    assert error.reason == "freshdesk rejected the request (name:missing_field)"
    assert "Mandatory" not in error.reason


async def test_recorded_error_over_http():
    async with recorded_freshdesk([]) as url:
        client = make_client(tenant(url), context())
        try:
            with pytest.raises(PermanentVendorError, match="name:missing_field"):
                await client.fetch(TicketRef(vendor="freshdesk", tenant_id="acme",
                                             ticket_id="2", delivery_id="d"))
        finally:
            await client.aclose()


def test_recorded_groups_parse():
    assert groups_from_json(load("groups.json")) == {1: "Entertainers", 2: "Helpdesk"}
    assert groups_from_json([load("group_1.json")]) == {1: "Entertainers"}


async def test_recorded_canned_folders_are_read_by_provisioning():
    async with recorded_freshdesk([]) as url:
        result = await provision(tenant(url), "https://careroute.example", dry_run=True,
                                 context=context(), reply_texts={"en": "<p>hello</p>"})
    assert 'canned folder "CareRoute": would create' in result.steps  # "My folder" is not ours
    assert sum("would create" in s for s in result.steps) == 3 + 1 + 1


def test_recorded_canned_response_shapes():
    folder = load("docs_canned_response_folder.json")
    response = load("docs_canned_response.json")
    assert folder["canned_responses"][0].keys() >= {"id", "title"}
    assert {"title", "folder_id", "content_html"} <= response.keys()
    assert "{{ticket.url}}" in response["content_html"]  # placeholders stay unrendered
