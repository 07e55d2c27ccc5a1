"""plugin.zendesk.provision against the sandbox: creates what is missing, twice changes nothing,
dry-run writes nothing, and the provisioned triggers really deliver verifiable webhooks."""

from __future__ import annotations

import json
import time

import httpx

from plugin.zendesk.provision import (
    FEEDBACK_TRIGGER,
    NEW_TICKETS_TRIGGER,
    REPLIES_TRIGGER,
    provision,
)
from plugin.zendesk.webhook import parse, verify
from tests.zendesk_support import api_token_tenant, customer_ticket, running_receiver, running_sandbox

REPLIES = {"en": "<p>Thank you for telling us. You are not alone.</p>"}


def writes(state) -> list[tuple[str, str]]:
    return [(e.method, e.path) for e in state.log.entries if e.method != "GET"]


async def test_dry_run_writes_nothing() -> None:
    async with running_sandbox() as sandbox:
        result = await provision(api_token_tenant(sandbox.url), "https://careroute.example",
                                 dry_run=True, macro_texts=REPLIES)
        assert writes(sandbox.state) == []
        assert not sandbox.state.webhooks and not sandbox.state.triggers and not sandbox.state.macros
    assert result.webhook_secret is None and result.changed
    assert result.steps[0].startswith("create webhook 'CareRoute (acme)' → POST "
                                      "https://careroute.example/webhooks/zendesk/acme")
    assert f"create trigger {NEW_TICKETS_TRIGGER!r}" in result.steps


async def test_provision_creates_everything_once() -> None:
    async with running_sandbox() as sandbox:
        tenant = api_token_tenant(sandbox.url)
        first = await provision(tenant, "https://careroute.example/", macro_texts=REPLIES)
        writes_after_first = writes(sandbox.state)
        second = await provision(tenant, "https://careroute.example", macro_texts=REPLIES)
        state = sandbox.state
        assert writes(state) == writes_after_first  # the second run wrote nothing
    assert sorted(writes_after_first) == sorted([
        ("POST", "/api/v2/webhooks"), ("POST", "/api/v2/triggers"), ("POST", "/api/v2/triggers"),
        ("POST", "/api/v2/triggers"), ("POST", "/api/v2/macros")])
    assert first.changed and not second.changed and second.steps[-1] == "nothing to change"
    assert first.webhook_id == second.webhook_id and first.webhook_secret == second.webhook_secret
    assert first.webhook_secret == state.webhook_secrets[first.webhook_id]
    hook = state.webhooks[first.webhook_id]
    assert hook["endpoint"] == "https://careroute.example/webhooks/zendesk/acme"
    assert hook["subscriptions"] == ["conditional_ticket_events"] and hook["http_method"] == "POST"
    assert set(first.trigger_ids) == {NEW_TICKETS_TRIGGER, REPLIES_TRIGGER, FEEDBACK_TRIGGER}
    new_tickets = state.triggers[first.trigger_ids[NEW_TICKETS_TRIGGER]]
    assert new_tickets["conditions"]["all"] == [
        {"field": "update_type", "operator": "is", "value": "Create"}]
    webhook_id, body = new_tickets["actions"][0]["value"]
    assert webhook_id == first.webhook_id
    assert json.loads(body) == {"event": "created", "ticket_id": "{{ticket.id}}",
                                "requester_locale": "{{ticket.requester.locale}}",
                                "via": "{{ticket.via}}"}
    macro = state.macros[first.macro_ids["en"]]
    assert {"field": "comment_value_html", "value": REPLIES["en"]} in macro["actions"]


async def test_default_reply_macros_come_from_the_resources_renderer() -> None:
    async with running_sandbox() as sandbox:
        tenant = api_token_tenant(sandbox.url, default_country="GB", agent_language="de")
        result = await provision(tenant, "https://careroute.example")
        macros = [sandbox.state.macros[i] for i in result.macro_ids.values()]
    assert sorted(result.macro_ids) == ["de", "de, third party"]
    assert [m["title"] for m in macros] == ["CareRoute: wellbeing reply (de)",
                                            "CareRoute: wellbeing reply (de, third party)"]
    for macro in macros:
        actions = {a["field"]: a["value"] for a in macro["actions"]}
        assert actions["comment_mode_is_public"] == "true"
        assert actions["comment_value_html"].lstrip().startswith("<")
        assert actions["current_tags"] == "careroute_reply_used"


async def test_changed_service_url_is_reported_not_silently_changed() -> None:
    async with running_sandbox() as sandbox:
        tenant = api_token_tenant(sandbox.url)
        await provision(tenant, "https://old.example", macro_texts={})
        again = await provision(tenant, "https://new.example", macro_texts={})
    assert any(step.startswith("warning: webhook") for step in again.steps)
    assert not again.changed


async def test_provisioned_triggers_deliver_signed_webhooks() -> None:
    async with running_receiver() as receiver, running_sandbox() as sandbox:
        tenant = api_token_tenant(sandbox.url)
        result = await provision(tenant, receiver.url, macro_texts={})
        ticket_id = customer_ticket(sandbox.state, "I need help", locale="pt-BR")
        sandbox.state.requester_comment(sandbox.state.tickets[ticket_id], "more words")
        await sandbox.state.sender.drain()
    refs = []
    for delivery in receiver.received:
        verify(delivery["headers"], delivery["raw"], result.webhook_secret, time.time())
        refs.append(parse(delivery["raw"], tenant_id="acme", headers=delivery["headers"]))
    assert [(r.event, r.ticket_id) for r in refs] == [("created", str(ticket_id)),
                                                      ("comment", str(ticket_id))]
    assert refs[0].hints["requester_locale"] == "pt-BR"
    assert receiver.received[0]["path"] == "/webhooks/zendesk/acme"


async def test_feedback_trigger_ignores_api_updates() -> None:
    """CareRoute's own API writes never come back as feedback; only screened tickets count."""
    async with running_receiver() as receiver, running_sandbox() as sandbox:
        tenant = api_token_tenant(sandbox.url)
        await provision(tenant, receiver.url, macro_texts={})
        ticket_id = customer_ticket(sandbox.state, "hi", tags=("careroute_screened", "careroute_high"))
        await sandbox.state.sender.drain()
        async with httpx.AsyncClient(base_url=sandbox.url, auth=httpx.BasicAuth(
                "agent@sandbox.test/token", "sandbox-token")) as http:
            written = await http.put(f"/api/v2/tickets/{ticket_id}", json={"ticket": {
                "tags": ["careroute_screened", "careroute_high", "x"], "priority": "high"}})
            assert written.status_code == 200
        await sandbox.state.sender.drain()
        created_only = len(receiver.received)
        ticket = sandbox.state.tickets[ticket_id]
        agent = sandbox.state.create_user(name="Agent", email="a@x.test", role="agent")
        before = list(ticket.tags)
        ticket.tags.remove("careroute_high")  # an agent in the Zendesk UI removes the tier tag
        sandbox.state._after_change(ticket, update_type="Change", actor_id=agent["id"], comment=None,
                                    tags_before=before, via="web_form")
        await sandbox.state.sender.drain()
    assert created_only == 1
    feedback = parse(receiver.received[-1]["raw"], tenant_id="acme",
                     headers=receiver.received[-1]["headers"])
    assert feedback.event == "feedback" and feedback.tags == ("careroute_screened", "x")
