"""Contract: what the Zendesk client sends matches Zendesk's official OpenAPI spec, and the recorded
real responses in reference/fixtures/zendesk parse through the client's response code.

The spec is loaded once per module. It has a bare `=` scalar that PyYAML's SafeLoader cannot
construct (tag:yaml.org,2002:value), so a loader subclass reads it as a plain string. The spec
also fails openapi-spec-validator (unresolved path parameters elsewhere), so validation of the
spec itself is switched off; requests are still checked for path, method, parameters and body.
The webhooks API is not in the spec: those requests are checked against the documented shape.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest

from plugin.errors import PermanentVendorError
from plugin.model import Plan, TicketRef
from plugin.ratelimit import RateBudget
from plugin.sandbox.zendesk import TRAINED_GROUP_ID
from plugin.vendors import ClientContext, MemoryJournal, MemoryTokenStore
from plugin.zendesk import provision as provisioning
from plugin.zendesk import responses
from plugin.zendesk.client import ZendeskClient
from plugin.zendesk.webhook import IgnorableEvent, parse
from tests.zendesk_support import (
    RecordingTransport,
    api_token_tenant,
    customer_ticket,
    oauth_tenant,
    running_sandbox,
)

from tests.shared_paths import REFERENCE  # noqa: E402
SPEC_PATH = REFERENCE / "zendesk-support-api.oas.yaml"
FIXTURES = REFERENCE / "fixtures" / "zendesk"
SPEC_HOST = "https://acme.zendesk.com"
WEBHOOK_PATHS = ("/api/v2/webhooks",)

pytestmark = pytest.mark.skipif(not SPEC_PATH.exists(), reason="reference spec not present")


class SpecLoader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader that reads the spec's bare `=` (YAML 1.1 `value` tag) as the string "="."""


SpecLoader.add_constructor("tag:yaml.org,2002:value",
                           lambda loader, node: loader.construct_scalar(node))


def allow_recorded_nulls(spec: dict[str, Any]) -> None:
    """Mark `assignee_id` nullable in the update schema, the one deviation we rely on.

    The spec declares it a plain integer, yet real tickets carry `"assignee_id": null`
    (fixtures/zendesk/ticket_show_ok.json) and `null` is how an update unassigns a ticket.
    Nothing else is relaxed.
    """
    update = spec["components"]["schemas"]["TicketUpdateInput"]["properties"]
    update["assignee_id"] = {**update["assignee_id"], "nullable": True}


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    with SPEC_PATH.open(encoding="utf-8") as handle:
        spec = yaml.load(handle, Loader=SpecLoader)
    assert fixture("ticket_show_ok.json")["response"]["body"]["ticket"]["assignee_id"] is None
    allow_recorded_nulls(spec)
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# ------------------------------------------------------------------ what the client sends


async def _exercise_client(transport: RecordingTransport) -> None:
    """Every kind of request the client and provisioning make, against the sandbox."""
    async with running_sandbox() as sandbox:
        state = sandbox.state
        first_id = customer_ticket(state, "I can't cope with any of this anymore.")
        second_id = customer_ticket(state, "Another message.")
        ticket = state.tickets[second_id]
        for n in range(120):  # a second comments page
            state.add_comment(ticket, body=f"reply {n}", html_body=None, author_id=1, public=True)
        state.macros[9] = {"id": 9, "title": "Protocol", "actions": [
            {"field": "comment_mode_is_public", "value": "false"},
            {"field": "comment_value_html", "value": "<p>Protocol</p>"}]}
        state.tickets[first_id].assignee_id = state.create_user(name="Agent", role="agent")["id"]
        tokens = state.issue_tokens()
        context = ClientContext(budget=RateBudget(6000), token_store=MemoryTokenStore())
        client = ZendeskClient(oauth_tenant(sandbox.url, tokens, expires_at=time.time() - 1),
                               context, transport=transport)
        plan = Plan(tier="imminent", add_tags=("careroute_imminent", "careroute_screened"),
                    priority="urgent", group_id=TRAINED_GROUP_ID, note_html="<p>note</p>",
                    macro_id=9, apply_macro=True, unassign=True, marker="job-c",
                    auto_reply_html="<p>We are here.</p>", metadata={"careroute": {"tier": "imminent"}})
        try:
            for ticket_id in (first_id, second_id):
                ref = TicketRef(vendor="zendesk", tenant_id="acme", ticket_id=str(ticket_id),
                                delivery_id="d")
                fetched = await client.fetch(ref)
                state.tickets[ticket_id].touch()  # force a 409 and a re-read
                await client.apply(ref, fetched, plan, replan=lambda t: plan, journal=MemoryJournal())
            comment_ref = TicketRef(vendor="zendesk", tenant_id="acme", ticket_id=str(first_id),
                                    delivery_id="d2", event="comment")
            await client.fetch(comment_ref)
        finally:
            await client.aclose()
        # Provisioning goes through the same client class; record it too.
        original = ZendeskClient.__init__

        def recording_init(self, tenant, ctx, *, transport_=transport, **kwargs):
            original(self, tenant, ctx, transport=transport_)

        ZendeskClient.__init__ = recording_init  # type: ignore[method-assign]
        try:
            await provisioning.provision(api_token_tenant(sandbox.url), "https://careroute.example",
                                         macro_texts={"en": "<p>reply</p>"})
        finally:
            ZendeskClient.__init__ = original  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def sent_requests() -> list:
    """Run the workload once per module (in its own event loop) and keep what was sent."""
    transport = RecordingTransport()
    asyncio.run(_exercise_client(transport))
    return transport.requests


def _check_webhooks_request(method: str, path: str, body: Any) -> None:
    if method == "POST" and path == "/api/v2/webhooks":
        hook = body["webhook"]
        for key in ("name", "status", "endpoint", "http_method", "request_format"):
            assert isinstance(hook[key], str) and hook[key], key
        assert hook["subscriptions"] == ["conditional_ticket_events"]
    else:
        assert method == "GET" and (path == "/api/v2/webhooks" or path.endswith("/signing_secret"))


def test_every_request_validates_against_the_spec(openapi: OpenAPI, sent_requests) -> None:
    operations = set()
    for sent in sent_requests:
        url = urlsplit(sent.url)
        body = json.loads(sent.body) if sent.body else None
        if url.path.startswith(WEBHOOK_PATHS):
            _check_webhooks_request(sent.method, url.path, body)
            operations.add((sent.method, "webhooks"))
            continue
        # The spec declares only basicAuth; the scheme is not what this test is about.
        request = MockRequest(SPEC_HOST, sent.method.lower(), url.path,
                              args=dict(parse_qsl(url.query)), data=sent.body or None,
                              content_type="application/json" if sent.body else None,
                              headers={"Authorization": "Basic YTpi"})
        openapi.validate_request(request)
        operations.add((sent.method, url.path.split("/")[3] if url.path.startswith("/api/") else url.path))
    assert {("GET", "tickets"), ("PUT", "tickets"), ("GET", "users"), ("POST", "/oauth/tokens"),
            ("POST", "triggers"), ("POST", "macros"), ("POST", "webhooks")} <= operations


def test_the_spec_check_can_fail(openapi: OpenAPI) -> None:
    from openapi_core.validation.request.exceptions import InvalidRequestBody
    bad = MockRequest(SPEC_HOST, "put", "/api/v2/tickets/12",
                      data=json.dumps({"ticket": {"priority": "critical"}}).encode(),
                      content_type="application/json", headers={"Authorization": "Basic YTpi"})
    with pytest.raises(InvalidRequestBody):
        openapi.validate_request(bad)


def test_updates_send_only_known_ticket_keys(sent_requests) -> None:
    """No key the server would drop with `x-zendesk-api-warn`, and no `additional_tags`."""
    allowed = {"comment", "tags", "priority", "group_id", "assignee_id", "metadata", "safe_update",
               "updated_stamp", "macro_id", "status", "type"}
    updates = [json.loads(s.body)["ticket"] for s in sent_requests
               if s.method == "PUT" and "/tickets/" in s.url]
    assert len(updates) >= 4
    for update in updates:
        assert set(update) <= allowed, set(update) - allowed
        assert set(update["comment"]) <= {"html_body", "public"}
    notes = [u for u in updates if u["comment"]["public"] is False]
    assert all(u["safe_update"] is True and u["updated_stamp"] for u in notes)
    assert any(u.get("assignee_id", 0) is None for u in notes)


# ------------------------------------------------------------------ recorded responses


def test_recorded_ticket_show_and_update_parse() -> None:
    for name in ("ticket_show_ok.json", "ticket_update_ok.json", "ticket_create_with_comment_ok.json"):
        recorded = fixture(name)
        fields = responses.parse_ticket(recorded["response"]["body"])
        ticket = recorded["response"]["body"]["ticket"]
        assert fields["id"] == str(ticket["id"]) and fields["updated_at"] == ticket["updated_at"]
        assert fields["tags"] == tuple(ticket["tags"]) and fields["status"] == ticket["status"]


def test_recorded_comments_page_parses() -> None:
    body = fixture("ticket_comments_list_ok.json")["response"]["body"]
    comments, next_url = responses.parse_comments(body)
    assert [c.plain_text for c in comments] == [c["plain_body"] for c in body["comments"]]
    assert comments[0].public is True and next_url is None


def test_recorded_user_parses_locale_and_time_zone() -> None:
    user = responses.parse_user(fixture("user_show_ok.json")["response"]["body"])
    assert (user["locale"], user["time_zone"]) == ("en-US", "America/New_York")


@pytest.mark.parametrize("name, limit, remaining, reset", [
    ("ticket_show_ok.json", 700, 560, 24),  # 2023 spelling: rate-limit-*
    ("ticket_comments_list_ok.json", 700, 697, 48),  # 2024 spelling: ratelimit-*
    ("ticket_update_ok.json", 20, 19, 59),  # zendesk-rate-limit-tickets-update is tighter
    ("webhook_create_ok.json", 100, 57, None),  # x-rate-limit only
])
def test_recorded_rate_limit_headers_parse(name, limit, remaining, reset) -> None:
    info = responses.rate_limit_info(fixture(name)["response"]["headers"])
    assert (info.limit, info.remaining, info.reset_seconds) == (
        limit, remaining, None if reset is None else float(reset))


def test_recorded_per_ticket_header_parses_but_does_not_bind_the_account() -> None:
    headers = fixture("ticket_comment_redact_per_ticket_ratelimit_ok.json")["response"]["headers"]
    per_ticket = responses.per_ticket_limit(headers)
    assert (per_ticket.limit, per_ticket.remaining, per_ticket.reset_seconds) == (30, 29, 468.0)
    assert responses.rate_limit_info(headers).limit == 700


@pytest.mark.parametrize("name, status", [
    ("ticket_update_not_found_404.json", 404),
    ("tickets_create_many_too_many_values_400.json", 400),
])
def test_recorded_errors_map_to_permanent_errors(name, status) -> None:
    recorded = fixture(name)["response"]
    error = responses.error_for(recorded["status"], recorded["body"], recorded["headers"])
    assert isinstance(error, PermanentVendorError) and error.status == status
    assert recorded["body"]["description"] not in str(error)


def test_documented_error_shapes_map() -> None:
    closed = {"error": "RecordInvalid", "description": "Record validation errors",
              "details": {"status": [{"description": "Status closed prevents ticket update"}]}}
    assert type(responses.error_for(422, closed, {})).__name__ == "TicketClosedError"
    newer = {"error": {"title": "Invalid attribute", "message": "You passed an invalid value"}}
    assert responses.error_code(newer) == "Invalid attribute"
    assert "invalid value" not in str(responses.error_for(400, newer, {}))
    limited = responses.error_for(429, None, {"Retry-After": "93", "Content-Type": "text/html"})
    assert limited.retry_after == 93.0


def test_recorded_webhook_responses_parse() -> None:
    created = fixture("webhook_create_ok.json")["response"]["body"]
    assert created["webhook"]["id"] == "01HANAHHBNJDDW768TX5J4YFX7"
    secret = fixture("webhook_signing_secret_show_ok.json")["response"]["body"]
    assert secret["signing_secret"]["algorithm"] == "SHA256"
    macro = fixture("macro_create_ok.json")["response"]["body"]
    assert int(macro["macro"]["id"]) == 6164110315034


def test_recorded_webhook_delivery_parses_as_an_ignorable_event() -> None:
    attempt = fixture("webhook_invocation_attempts_ok.json")["response"]["body"]["attempts"][0]
    headers = {h["key"]: h["value"] for h in attempt["request"]["headers"]}
    with pytest.raises(IgnorableEvent):  # a user.deleted event: nothing for CareRoute to do
        parse(attempt["request"]["payload"].encode(), tenant_id="acme", headers=headers)
