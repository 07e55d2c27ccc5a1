"""The Freshdesk sandbox: vendor semantics, rule webhooks with each auth kind, limits, errors."""

from __future__ import annotations

import json

import httpx
import pytest

from plugin.freshdesk.webhook import COMMENT_BODY, CREATE_BODY, FEEDBACK_BODY
from plugin.sandbox.freshdesk import AGENT_KEY, render_placeholders
from tests.freshdesk_support import SECRET, running_receiver, running_sandbox


def webhook_rule(url: str, body: str = CREATE_BODY, **action: object) -> dict:
    return {"name": "CareRoute test", "conditions": [], "actions": [{
        "field_name": "trigger_webhook", "request_type": "POST", "url": url,
        "content_type": "JSON", "content_layout": "2", "content": body, **action}]}


async def test_put_replaces_tags_and_keeps_integer_fields():
    async with running_sandbox() as box:
        created = await box.ticket("<div>Line one<br>Line &amp; two</div>", tags=["a", "b"])
        assert created["description_text"] == "Line one\nLine & two"
        assert (created["priority"], created["status"], created["source"]) == (1, 2, 2)
        updated = await box.http.put(f"/api/v2/tickets/{created['id']}",
                                     json={"tags": ["c"], "priority": 4, "status": 3})
        assert updated.status_code == 200
        assert updated.json()["tags"] == ["c"]  # replaced, not merged
        assert (updated.json()["priority"], updated.json()["status"]) == (4, 3)


@pytest.mark.parametrize("body,field,code", [
    ({"priority": 9}, "priority", "invalid_value"),
    ({"status": 1}, "status", "invalid_value"),
    ({"group_id": 999}, "group_id", "invalid_value"),
    ({"tags": "not-a-list"}, "tags", "datatype_mismatch"),
    ({"colour": "red"}, "colour", "invalid_field"),
])
async def test_documented_error_bodies(body, field, code):
    async with running_sandbox() as box:
        created = await box.ticket("<div>x</div>")
        response = await box.http.put(f"/api/v2/tickets/{created['id']}", json=body)
    assert response.status_code == 400
    answer = response.json()
    assert answer["description"] == "Validation failed"
    assert answer["errors"][0]["field"] == field and answer["errors"][0]["code"] == code


async def test_auth_required_and_admin_only_endpoints():
    async with running_sandbox() as box:
        async with httpx.AsyncClient(base_url=box.url) as anonymous:
            assert (await anonymous.get("/api/v2/groups")).status_code == 401
        async with httpx.AsyncClient(base_url=box.url, auth=(AGENT_KEY, "X")) as agent:
            assert (await agent.get("/api/v2/groups")).status_code == 200
            denied = await agent.get("/api/v2/canned_response_folders")
            rules = await agent.get("/api/v2/automations/1/rules")
        assert (await box.http.get("/api/v2/canned_response_folders")).status_code == 200
    assert denied.status_code == 403 and denied.json()["code"] == "access_denied"
    assert rules.status_code == 403


async def test_rate_limit_headers_and_429():
    async with running_sandbox(rate_per_minute=3) as box:
        answers = [await box.http.get("/api/v2/groups") for _ in range(4)]
        with_include = await box.http.get("/api/v2/groups")
    assert [a.headers["X-Ratelimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["X-Ratelimit-Total"] == "3"
    assert answers[0].headers["X-Ratelimit-Used-CurrentRequest"] == "1"
    assert answers[3].status_code == 429
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 60
    assert with_include.status_code == 429


async def test_include_costs_extra_credits():
    async with running_sandbox() as box:
        created = await box.ticket("<div>x</div>")
        shown = await box.http.get(f"/api/v2/tickets/{created['id']}",
                                   params={"include": "requester,conversations"})
    assert shown.headers["X-Ratelimit-Used-CurrentRequest"] == "4"
    assert shown.json()["requester"]["email"] == "person@example.com"


def test_placeholders_render_like_freshdesk():
    rendered = render_placeholders('{"a": "{{ticket.subject}}", "b": "{{ticket.unknown}}"}',
                                   {"ticket.subject": 'two\nlines and a "quote"'})
    assert rendered == '{"a": "two\\nlines and a "quote"", "b": ""}'


@pytest.mark.parametrize("auth_kind", ["basic", "header", "token"])
async def test_rule_webhook_with_each_auth_kind(auth_kind):
    async with running_receiver() as receiver, running_sandbox() as box:
        url, extra = receiver.url, {}
        if auth_kind == "basic":
            extra = {"auth_header": {"username": "freshdesk", "password": SECRET}}
        elif auth_kind == "header":
            extra = {"custom_headers": {"X-CareRoute-Token": SECRET}}
        else:
            url = f"{receiver.url}?token={SECRET}"
        created_rule = await box.http.post("/api/v2/automations/1/rules",
                                           json=webhook_rule(url, **extra))
        assert created_rule.status_code == 201
        ticket = await box.ticket("<div>hello</div>", source=1)
        await box.state.idle()
        deliveries = box.state.deliveries
    assert [d.auth for d in deliveries] == [auth_kind]
    assert deliveries[0].status == 202
    (entry,) = receiver.received
    assert entry["ref"].ticket_id == str(ticket["id"]) and entry["ref"].event == "created"
    assert entry["ref"].hints == {"source": "Email", "portal": "Sandbox Support"}


async def test_wrong_secret_is_refused_and_retried_then_admins_are_mailed():
    async with running_receiver() as receiver, running_sandbox() as box:
        box.state.retry_delays = (0.01, 0.02, 0.03)
        await box.http.post("/api/v2/automations/1/rules", json=webhook_rule(
            receiver.url, custom_headers={"X-CareRoute-Token": "not-the-secret"}))
        await box.ticket("<div>hello</div>")
        await box.state.idle()
        statuses = [(d.attempt, d.status) for d in box.state.deliveries]
        mails = box.state.failure_emails
    assert statuses == [(1, 401), (2, 401), (3, 401), (4, 401)]
    assert mails == ["CareRoute test"]


async def test_failed_delivery_is_retried_until_accepted_with_identical_body():
    async with running_receiver() as receiver, running_sandbox() as box:
        box.state.retry_delays = (0.01, 0.02, 0.03)
        receiver.statuses = [500, 503]
        await box.http.post("/api/v2/automations/1/rules", json=webhook_rule(
            receiver.url, auth_header={"username": "u", "password": SECRET}))
        await box.ticket("<div>hello</div>")
        await box.state.idle()
        attempts = [(d.attempt, d.status) for d in box.state.deliveries]
    assert attempts == [(1, 500), (2, 503), (3, 202)]
    refs = [e["ref"] for e in receiver.received]
    assert len({r.dedupe_key for r in refs}) == 1  # retries dedupe on the receiving side


async def test_quote_in_subject_breaks_the_body_and_the_id_is_recovered():
    template = ('{"event": "created", "ticket_id": "{{ticket.id}}", '
                '"subject": "{{ticket.subject}}"}')
    async with running_receiver() as receiver, running_sandbox() as box:
        await box.http.post("/api/v2/automations/1/rules", json=webhook_rule(
            receiver.url, template, custom_headers={"X-CareRoute-Token": SECRET}))
        ticket = await box.ticket("<div>x</div>", subject='Order "A-17" missing')
        await box.state.idle()
    (entry,) = receiver.received
    with pytest.raises(ValueError):
        json.loads(entry["raw"])
    assert entry["ref"].ticket_id == str(ticket["id"])
    assert entry["ref"].hints == {"recovered": "true"}


async def test_update_rules_fire_for_customer_replies_and_agent_tag_changes():
    comment_rule = {**webhook_rule("", COMMENT_BODY), "name": "replies",
                    "performer": {"type": 2}, "events": [{"field_name": "reply_sent"}]}
    feedback_rule = {**webhook_rule("", FEEDBACK_BODY), "name": "feedback",
                     "performer": {"type": 1}, "events": [{"field_name": "tags"}]}
    async with running_receiver() as receiver, running_sandbox() as box:
        for rule in (comment_rule, feedback_rule):
            rule["actions"][0].update(url=receiver.url,
                                      custom_headers={"X-CareRoute-Token": SECRET})
            await box.http.post("/api/v2/automations/4/rules", json=rule)
        ticket = await box.ticket("<div>x</div>")
        await box.customer_reply(ticket["id"], "<div>any news?\nthanks</div>")
        await box.http.post(f"/api/v2/tickets/{ticket['id']}/reply", json={"body": "<p>yes</p>"})
        await box.http.put(f"/api/v2/tickets/{ticket['id']}",
                           json={"tags": ["careroute_not_crisis"]})
        await box.state.idle()
    events = sorted((e["ref"].event, e["ref"].tags) for e in receiver.received)
    assert events == [("comment", ()), ("feedback", ("careroute_not_crisis",))]


async def test_webhook_target_without_provisioning():
    async with running_receiver() as receiver:
        async with running_sandbox(webhook_target=receiver.url, webhook_secret=SECRET) as box:
            ticket = await box.ticket("<div>x</div>")
            await box.customer_reply(ticket["id"], "<div>hello again</div>")
            await box.state.idle()
            kinds = {d.auth for d in box.state.deliveries}
    refs = [e["ref"] for e in receiver.received]
    assert [r.event for r in refs] == ["created", "comment"]
    assert kinds == {"header"}


async def test_conversations_paginate_with_link_header():
    async with running_sandbox() as box:
        ticket = await box.ticket("<div>x</div>")
        for n in range(3):
            await box.http.post(f"/api/v2/tickets/{ticket['id']}/notes", json={"body": f"n{n}"})
        first = await box.http.get(f"/api/v2/tickets/{ticket['id']}/conversations",
                                   params={"per_page": 2})
        last = await box.http.get(f"/api/v2/tickets/{ticket['id']}/conversations",
                                  params={"per_page": 2, "page": 2})
        too_many = await box.http.get(f"/api/v2/tickets/{ticket['id']}/conversations",
                                      params={"per_page": 101})
    assert len(first.json()) == 2 and 'rel="next"' in first.headers["Link"]
    assert len(last.json()) == 1 and "Link" not in last.headers
    assert too_many.status_code == 400
    assert all(n["private"] for n in first.json() + last.json())


async def test_request_log_and_faults_come_from_common():
    async with running_sandbox() as box:
        await box.http.put("/_sandbox/faults", json={"error_rate": 1.0})
        failed = await box.http.get("/api/v2/groups")
        log = (await box.http.get("/_sandbox/requests")).json()
    assert failed.status_code == 503
    assert log[-1]["path"] == "/api/v2/groups" and log[-1]["status"] == 503
